//! Agency incident records (CAL FIRE's exports), merged by incident id, and the sentence
//! encoder's cached text vectors, so a restart does not embed every text again.

use rocksdb::{IteratorMode, WriteBatch};

use super::keys::text_vector_key;
use super::{Family, Store, StoreError};
use crate::event::HistoricalIncident;

impl Store {
    /// Stores historical incidents; one already stored is merged with the new record (the two
    /// CAL FIRE exports fill each other's gaps). Returns how many ids were new, and the records
    /// as stored.
    pub fn put_historical_incidents(
        &self,
        incidents: Vec<HistoricalIncident>,
    ) -> Result<(usize, Vec<HistoricalIncident>), StoreError> {
        let cf = self.cf(Family::HistoricalIncidents)?;
        let mut batch = WriteBatch::default();
        let mut merged: std::collections::HashMap<String, HistoricalIncident> =
            std::collections::HashMap::new();
        let mut new = 0;
        for incident in incidents {
            if let Some(seen) = merged.get_mut(&incident.id) {
                seen.merge(incident);
                continue;
            }
            let stored = match self.db.get_pinned_cf(cf, incident.id.as_bytes())? {
                Some(bytes) => Some(serde_json::from_slice::<HistoricalIncident>(&bytes)?),
                None => None,
            };
            let record = match stored {
                Some(mut s) => {
                    s.merge(incident);
                    s
                }
                None => {
                    new += 1;
                    incident
                }
            };
            merged.insert(record.id.clone(), record);
        }
        for (id, record) in &merged {
            batch.put_cf(cf, id.as_bytes(), serde_json::to_vec(record)?);
        }
        self.commit(batch)?;
        Ok((new, merged.into_values().collect()))
    }

    /// Every stored historical incident, in id order.
    pub fn historical_incidents(&self) -> Result<Vec<HistoricalIncident>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(Family::HistoricalIncidents)?, IteratorMode::Start)
        {
            let (_, value) = item?;
            out.push(serde_json::from_slice(&value)?);
        }
        Ok(out)
    }

    /// The cached text vector of a document under a sentence-encoder version.
    pub fn text_vector(&self, model: &str, doc: &str) -> Result<Option<Vec<f32>>, StoreError> {
        let key = text_vector_key(model, doc);
        Ok(self
            .db
            .get_pinned_cf(self.cf(Family::TextVectors)?, key)?
            .map(|v| {
                v.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            }))
    }

    /// Caches text vectors.
    pub fn put_text_vectors(
        &self,
        model: &str,
        vectors: &[(&str, &[f32])],
    ) -> Result<(), StoreError> {
        let cf = self.cf(Family::TextVectors)?;
        let mut batch = WriteBatch::default();
        for (doc, v) in vectors {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            batch.put_cf(cf, text_vector_key(model, doc), bytes);
        }
        Ok(self.commit(batch)?)
    }
}
