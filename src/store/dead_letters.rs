//! Refused records with their reasons (the embedded default's dead-letter place), kept once
//! per source, line, field and text.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Family, Store, StoreError, decode_json, decode_u64};
use crate::event::FieldError;

/// A refused record kept with its reason (the embedded default's dead-letter place).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Where it came from, e.g. `http:/v1/events/firms` or a file path.
    pub source: String,
    /// Field and reason.
    pub error: FieldError,
    /// The original text.
    pub raw: String,
    /// When it was refused, ms since the epoch.
    pub at_ms: i64,
}

impl Store {
    /// Keeps refused records with their reasons, once: the same line of the same source refused
    /// on the same field (a file loaded again at every start) is not stored twice.
    /// Returns how many were new.
    pub fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<usize, StoreError> {
        let mut batch = WriteBatch::default();
        let mut in_batch = HashSet::new();
        for letter in letters {
            let digest = dead_letter_digest(letter);
            let known = self
                .db
                .get_pinned_cf(self.cf(Family::DeadLetterDigests)?, digest)?
                .is_some();
            if known || !in_batch.insert(digest) {
                continue;
            }
            let seq = self.next_dead_letter.fetch_add(1, Ordering::AcqRel);
            batch.put_cf(
                self.cf(Family::DeadLetters)?,
                seq.to_be_bytes(),
                serde_json::to_vec(letter)?,
            );
            batch.put_cf(
                self.cf(Family::DeadLetterDigests)?,
                digest,
                seq.to_be_bytes(),
            );
        }
        self.commit(batch)?;
        Ok(in_batch.len())
    }

    /// Dead letters stored.
    pub fn dead_letter_count(&self) -> u64 {
        self.next_dead_letter.load(Ordering::Acquire)
    }

    /// The most recent `limit` dead letters, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .dead_letters_before(None, limit)?
            .into_iter()
            .map(|(_, letter)| letter)
            .collect())
    }

    /// Up to `limit` dead letters with their sequence numbers, newest first, starting below
    /// `before` (all when `None`): a page, whose last number is the next page's `before`.
    pub fn dead_letters_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, DeadLetter)>, StoreError> {
        let start = match before {
            Some(0) => return Ok(Vec::new()),
            Some(seq) => (seq - 1).to_be_bytes(),
            None => u64::MAX.to_be_bytes(),
        };
        self.db
            .iterator_cf(
                self.cf(Family::DeadLetters)?,
                IteratorMode::From(&start, Direction::Reverse),
            )
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    decode_u64(Family::DeadLetters, &key)?,
                    decode_json(Family::DeadLetters, &value)?,
                ))
            })
            .collect()
    }
}

/// Identity of a refusal: where, which line and field, and the text — not when, and not the
/// reason's wording, which may name context that changed (an earlier line, now stored).
fn dead_letter_digest(letter: &DeadLetter) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let line = letter.error.line.to_string();
    for part in [
        letter.source.as_str(),
        &line,
        &letter.error.field,
        &letter.raw,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_are_kept_once_and_counted_after_reopen() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let letter = |line, at_ms| DeadLetter {
            source: "a.csv".into(),
            error: FieldError::new(line, "frp", "is empty"),
            raw: "x".into(),
            at_ms,
        };
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(
                store
                    .put_dead_letters(&[letter(2, 1), letter(2, 1), letter(3, 1)])
                    .expect("put"),
                2
            );
            assert_eq!(
                store.put_dead_letters(&[letter(2, 99)]).expect("replay"),
                0,
                "a replay is not new"
            );
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.dead_letter_count(), 2);
        assert_eq!(store.put_dead_letters(&[letter(4, 5)]).expect("put"), 1);
        let lines: Vec<u64> = store
            .dead_letters(10)
            .expect("list")
            .iter()
            .map(|d| d.error.line)
            .collect();
        assert_eq!(lines, vec![4, 3, 2], "newest first, nothing overwritten");
    }
}
