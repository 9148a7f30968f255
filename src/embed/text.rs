//! The in-process sentence encoder: all-MiniLM-L6-v2 (int8 ONNX) behind the `tokenizers` crate,
//! mean-pooled over real tokens and L2-normalised, as sentence-transformers does.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::TensorRef;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::onnx::open_session;
use super::{EmbedError, Manifest};

/// One text's vector and what the encoder did with it.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Unit-length vector.
    pub vector: Vec<f32>,
    /// Tokens the model saw, with `[CLS]` and `[SEP]`.
    pub tokens: usize,
    /// True when the text ran past the model's window and its tail was left out.
    pub truncated: bool,
}

/// The sentence encoder.
pub struct SentenceEncoder {
    tokenizer: Tokenizer,
    session: Mutex<Session>,
    output: String,
    dim: usize,
    max_tokens: usize,
    version: String,
}

impl SentenceEncoder {
    /// Loads the `sentence-encoder` entry `model` of the manifest, checking both files' digests.
    pub fn load(
        manifest: &Path,
        model: &str,
        runtime_lib: &str,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let manifest = Manifest::load(manifest)?;
        let entry = manifest.model_of_kind(model, "sentence-encoder")?;
        let version = format!("{}@{}", entry.name, entry.version);
        let contract = |reason: String| EmbedError::Contract {
            model: version.clone(),
            reason,
        };
        let (Some(tokenizer_file), Some(tokenizer_sha)) =
            (&entry.tokenizer, &entry.tokenizer_sha256)
        else {
            return Err(contract(
                "the manifest names no tokenizer file and digest".into(),
            ));
        };
        let max_tokens = entry.max_tokens.unwrap_or(256);
        let mut tokenizer =
            Tokenizer::from_bytes(manifest.verified_file(tokenizer_file, tokenizer_sha)?)
                .map_err(|e| contract(format!("tokenizer: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| contract(format!("tokenizer: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        let bytes = manifest.verified_bytes(entry)?;
        let session = open_session(&bytes, &entry.file, runtime_lib, threads)?;
        let encoder = Self {
            tokenizer,
            session: Mutex::new(session),
            output: entry.output.clone(),
            dim: entry.output_dim,
            max_tokens,
            version: version.clone(),
        };
        let probe = encoder.encode(&["contract check"])?;
        if probe.first().map(|e| e.vector.len()) != Some(encoder.dim) {
            return Err(contract(format!(
                "expected vectors of {} values",
                encoder.dim
            )));
        }
        Ok(encoder)
    }

    /// `name@version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's window in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Encodes texts in one batch (callers chunk large inputs).
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Encoded>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Inference(format!("tokenizer: {e}")))?;
        let batch = encodings.len();
        let seq = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        let mut types = Vec::with_capacity(batch * seq);
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&v| i64::from(v)));
            mask.extend(e.get_attention_mask().iter().map(|&v| i64::from(v)));
            types.extend(e.get_type_ids().iter().map(|&v| i64::from(v)));
        }
        fn tensor(
            batch: usize,
            seq: usize,
            data: &[i64],
        ) -> Result<TensorRef<'_, i64>, EmbedError> {
            TensorRef::from_array_view(([batch, seq], data))
                .map_err(|e| EmbedError::Inference(e.to_string()))
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| EmbedError::Inference("session lock poisoned".into()))?;
        let outputs = session
            .run(ort::inputs![
                "input_ids" => tensor(batch, seq, &ids)?,
                "attention_mask" => tensor(batch, seq, &mask)?,
                "token_type_ids" => tensor(batch, seq, &types)?
            ])
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let value = outputs.get(&self.output).ok_or_else(|| {
            EmbedError::Inference(format!("model has no output `{}`", self.output))
        })?;
        let (shape, hidden) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        if hidden.len() != batch * seq * self.dim {
            return Err(EmbedError::Inference(format!(
                "unexpected output shape {shape:?}"
            )));
        }
        let mut out = Vec::with_capacity(batch);
        for (row, e) in encodings.iter().enumerate() {
            let mut v = vec![0.0f32; self.dim];
            let mut used = 0usize;
            for (t, &m) in e.get_attention_mask().iter().enumerate() {
                if m == 0 {
                    continue;
                }
                used += 1;
                let start = (row * seq + t) * self.dim;
                for (acc, h) in v.iter_mut().zip(&hidden[start..start + self.dim]) {
                    *acc += h;
                }
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if used == 0 || !norm.is_finite() || norm == 0.0 {
                return Err(EmbedError::NonFinite { row });
            }
            v.iter_mut().for_each(|x| *x /= norm);
            out.push(Encoded {
                vector: v,
                tokens: used,
                truncated: !e.get_overflowing().is_empty(),
            });
        }
        Ok(out)
    }
}
