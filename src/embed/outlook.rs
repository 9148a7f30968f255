//! The incident growth-outlook model (`kind: "incident-predictor"` in the registry): reads rows
//! of the width the caller names (the tracker's outlook rows) and gives one probability per row.
//! It knows nothing of incidents: the tracker's `OutlookModel` port is fitted to it in `app.rs`.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;

use super::onnx::{open_session, run_features};
use super::{EmbedError, Manifest};

/// The registry's kind for models that read incident rows.
pub const INCIDENT_PREDICTOR: &str = "incident-predictor";

/// One loaded incident model.
pub struct IncidentOutlook {
    name: String,
    version: String,
    input: String,
    output: String,
    session: Mutex<Session>,
}

impl IncidentOutlook {
    /// Loads `name` (bare for its highest version, or `name@version`) from the manifest and
    /// checks its contract: `WIDTH` columns in, one value out.
    pub fn load<const WIDTH: usize>(
        manifest: &Path,
        name: &str,
        runtime_lib: &str,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let manifest = Manifest::load(manifest)?;
        let entry = manifest.model_of_kind(name, INCIDENT_PREDICTOR)?;
        let contract = |reason: String| EmbedError::Contract {
            model: format!("{}@{}", entry.name, entry.version),
            reason,
        };
        if entry.input_width != WIDTH || entry.output_dim != 1 {
            return Err(contract(format!(
                "expected {WIDTH} incident features in and 1 value out, the manifest says {} and {}",
                entry.input_width, entry.output_dim
            )));
        }
        let bytes = manifest.verified_bytes(entry)?;
        let model = Self {
            name: entry.name.clone(),
            version: entry.version.clone(),
            input: entry.input.clone(),
            output: entry.output.clone(),
            session: Mutex::new(open_session(&bytes, &entry.file, runtime_lib, threads)?),
        };
        model
            .predict(&[[0.0; WIDTH]])
            .map_err(|e| contract(e.to_string()))?;
        Ok(model)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// One value per row.
    pub fn predict<const WIDTH: usize>(
        &self,
        rows: &[[f32; WIDTH]],
    ) -> Result<Vec<f32>, EmbedError> {
        Ok(run_features(&self.session, &self.input, &self.output, rows)?.1)
    }
}
