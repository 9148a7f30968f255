//! `models/manifest.json`: which model files exist, their digests, inputs and outputs.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::EmbedError;

/// The model registry file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Registered models.
    pub models: Vec<ModelEntry>,
    #[serde(skip)]
    dir: PathBuf,
}

/// One registered model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// What the model is for: `event-encoder` (the default), `predictor` or `sentence-encoder`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// For a predictor: the name its value carries in `ml_predictions`.
    #[serde(default)]
    pub prediction: Option<String>,
    /// For a sentence encoder: its `tokenizer.json`, relative to the manifest.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Hex sha256 of the tokenizer file.
    #[serde(default)]
    pub tokenizer_sha256: Option<String>,
    /// For a sentence encoder: the longest input in tokens; longer texts are truncated.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Where a file not kept in the repository comes from (installed by `scripts/setup.sh`).
    #[serde(default)]
    pub source: Option<String>,
    /// File, relative to the manifest.
    pub file: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Input tensor name.
    pub input: String,
    /// Features per input row (0 for token inputs).
    #[serde(default)]
    pub input_width: usize,
    /// Output tensor name.
    pub output: String,
    /// Output dimension.
    pub output_dim: usize,
    /// How inputs are normalised (documentation; the graph does it).
    pub normalisation: String,
    /// For an event encoder: how the vector index should be built for its space, as measured
    /// on its vectors.
    #[serde(default)]
    pub index: Option<IndexHint>,
}

/// A vector index setting measured for one encoder's space (its model card says how).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexHint {
    /// The build-time candidate list size that reaches the recall the card reports at
    /// `M` = 64; `index.ef_construction = 0` takes it.
    pub ef_construction: usize,
    /// Where the figure comes from (documentation).
    pub measured: String,
}

fn default_kind() -> String {
    "event-encoder".into()
}

impl Manifest {
    /// Reads and parses the manifest.
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let error = |reason: String| EmbedError::Manifest {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let mut manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        manifest.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(manifest)
    }

    /// The entry `name@version`, or for a bare `name` its highest version.
    pub fn model(&self, name: &str) -> Result<&ModelEntry, EmbedError> {
        let (name, version) = match name.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (name, None),
        };
        self.models
            .iter()
            .filter(|m| m.name == name && version.is_none_or(|v| m.version == v))
            .max_by(|a, b| a.version.cmp(&b.version))
            .ok_or_else(|| EmbedError::Manifest {
                path: self.dir.join("manifest.json").display().to_string(),
                reason: match version {
                    Some(v) => format!("no model `{name}` at version `{v}`"),
                    None => format!("no model named `{name}`"),
                },
            })
    }

    /// Like [`Manifest::model`], and the entry must be of `kind` (a predictor cannot be loaded
    /// as an encoder by a typo in the configuration). A bare name takes the highest
    /// version of that kind, so a new kind of model under an old name does not displace
    /// the old one where it is configured by name.
    pub fn model_of_kind(&self, name: &str, kind: &str) -> Result<&ModelEntry, EmbedError> {
        let entry = if name.contains('@') {
            self.model(name)?
        } else {
            match self
                .models
                .iter()
                .filter(|m| m.name == name && m.kind == kind)
                .max_by(|a, b| a.version.cmp(&b.version))
            {
                Some(entry) => entry,
                None => self.model(name)?,
            }
        };
        if entry.kind != kind {
            return Err(EmbedError::Contract {
                model: format!("{}@{}", entry.name, entry.version),
                reason: format!("is a {}, not a {kind}", entry.kind),
            });
        }
        Ok(entry)
    }

    /// The highest version of each predictor, in manifest order of first appearance.
    pub fn predictors(&self) -> Vec<&ModelEntry> {
        let mut names: Vec<&str> = Vec::new();
        for m in self.models.iter().filter(|m| m.kind == "predictor") {
            if !names.contains(&m.name.as_str()) {
                names.push(&m.name);
            }
        }
        names
            .iter()
            .filter_map(|n| self.model_of_kind(n, "predictor").ok())
            .collect()
    }

    /// Reads the entry's file and checks its digest.
    pub fn verified_bytes(&self, entry: &ModelEntry) -> Result<Vec<u8>, EmbedError> {
        self.verified_file(&entry.file, &entry.sha256)
    }

    /// Reads a file named relative to the manifest and checks it against `sha256`.
    pub fn verified_file(&self, file: &str, sha256: &str) -> Result<Vec<u8>, EmbedError> {
        let path = self.dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| EmbedError::ModelMissing {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if !found.eq_ignore_ascii_case(sha256) {
            return Err(EmbedError::ChecksumMismatch {
                path: path.display().to_string(),
                expected: sha256.to_owned(),
                found,
            });
        }
        Ok(bytes)
    }
}
