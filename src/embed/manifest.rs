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
    /// File, relative to the manifest.
    pub file: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Input tensor name.
    pub input: String,
    /// Features per input row.
    pub input_width: usize,
    /// Output tensor name.
    pub output: String,
    /// Output dimension.
    pub output_dim: usize,
    /// How inputs are normalised (documentation; the graph does it).
    pub normalisation: String,
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

    /// Reads the entry's file and checks its digest.
    pub fn verified_bytes(&self, entry: &ModelEntry) -> Result<Vec<u8>, EmbedError> {
        let path = self.dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|e| EmbedError::ModelMissing {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if !found.eq_ignore_ascii_case(&entry.sha256) {
            return Err(EmbedError::ChecksumMismatch {
                path: path.display().to_string(),
                expected: entry.sha256.clone(),
                found,
            });
        }
        Ok(bytes)
    }
}
