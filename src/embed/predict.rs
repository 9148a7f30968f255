//! The predictors in the model registry: each reads an event's feature row and gives one number,
//! written into the event's `ml_predictions` with the model's name and version.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;

use super::onnx::{open_session, run_features};
use super::{EmbedError, FEATURE_COUNT, Manifest, WIDE_FEATURE_COUNT, wide_features};
use crate::event::{FireEventV2, MlPrediction};

/// One loaded predictor.
struct Predictor {
    name: String,
    version: String,
    prediction: String,
    input: String,
    output: String,
    /// Reads the features followed by the Fire Weather Index codes ([`wide_features`]).
    wide: bool,
    session: Mutex<Session>,
}

/// Every predictor named in the configuration, loaded and verified.
pub struct Predictors {
    models: Vec<Predictor>,
}

impl Predictors {
    /// Loads the named predictors (bare names take the highest version; `name@version` pins
    /// one). An empty list loads none.
    pub fn load(
        manifest: &Path,
        names: &[String],
        runtime_lib: &str,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let manifest = Manifest::load(manifest)?;
        let mut models = Vec::with_capacity(names.len());
        for name in names {
            let entry = manifest.model_of_kind(name, "predictor")?;
            let contract = |reason: String| EmbedError::Contract {
                model: format!("{}@{}", entry.name, entry.version),
                reason,
            };
            let wide = entry.input_width == WIDE_FEATURE_COUNT;
            if !(wide || entry.input_width == FEATURE_COUNT) || entry.output_dim != 1 {
                return Err(contract(format!(
                    "expected {FEATURE_COUNT} features (or {WIDE_FEATURE_COUNT} with the Fire Weather Index codes) in and 1 value out, the manifest says {} and {}",
                    entry.input_width, entry.output_dim
                )));
            }
            let prediction = entry
                .prediction
                .clone()
                .ok_or_else(|| contract("the manifest gives no `prediction` name".into()))?;
            let bytes = manifest.verified_bytes(entry)?;
            let session = open_session(&bytes, &entry.file, runtime_lib, threads)?;
            let predictor = Predictor {
                name: entry.name.clone(),
                version: entry.version.clone(),
                prediction,
                input: entry.input.clone(),
                output: entry.output.clone(),
                wide,
                session: Mutex::new(session),
            };
            let (session, input, output) =
                (&predictor.session, &predictor.input, &predictor.output);
            let probe = if wide {
                run_features(session, input, output, &[[0.0; WIDE_FEATURE_COUNT]])
            } else {
                run_features(session, input, output, &[[0.0; FEATURE_COUNT]])
            };
            probe.map_err(|e| contract(e.to_string()))?;
            models.push(predictor);
        }
        Ok(Self { models })
    }

    /// No predictors.
    pub fn none() -> Self {
        Self { models: Vec::new() }
    }

    /// True when no predictor is loaded.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// `name@version` of each loaded predictor.
    pub fn versions(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|m| format!("{}@{}", m.name, m.version))
            .collect()
    }

    /// The predictions for each event, `rows` being their feature rows. A model whose inputs
    /// are missing for a row (its output is NaN, e.g. fire danger without weather) gives no
    /// prediction for that row: absent, never a made-up number.
    pub fn predict(
        &self,
        events: &[FireEventV2],
        rows: &[[f32; FEATURE_COUNT]],
    ) -> Result<Vec<Vec<MlPrediction>>, EmbedError> {
        let mut out = vec![Vec::with_capacity(self.models.len()); rows.len()];
        if rows.is_empty() {
            return Ok(out);
        }
        let wide: Vec<[f32; WIDE_FEATURE_COUNT]> = if self.models.iter().any(|m| m.wide) {
            events
                .iter()
                .zip(rows)
                .map(|(event, row)| wide_features(event, row))
                .collect()
        } else {
            Vec::new()
        };
        for model in &self.models {
            let (session, input, output) = (&model.session, &model.input, &model.output);
            let (_, values) = if model.wide {
                run_features(session, input, output, &wide)?
            } else {
                run_features(session, input, output, rows)?
            };
            for (row, value) in out.iter_mut().zip(values) {
                if value.is_finite() {
                    row.push(MlPrediction {
                        model: model.name.clone(),
                        version: model.version.clone(),
                        name: model.prediction.clone(),
                        value: f64::from(value),
                    });
                }
            }
        }
        Ok(out)
    }
}
