//! The event encoder on ONNX Runtime (`ort`, loaded dynamically from the onnxruntime wheel).

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::TensorRef;

use super::{EmbedError, Embedder, FEATURE_COUNT, Manifest};

/// The process-wide ONNX Runtime environment; `ort` can load one library per process.
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// The encoder session. `Session::run` needs `&mut`, so calls are serialised; batching keeps that cheap.
pub struct OnnxEmbedder {
    session: Mutex<Session>,
    input: String,
    output: String,
    dim: usize,
    model_version: String,
    ef_construction: Option<usize>,
}

impl OnnxEmbedder {
    /// Loads ONNX Runtime, verifies the model against the manifest, and opens a session.
    ///
    /// `runtime_lib` empty means the `ORT_DYLIB_PATH` environment variable.
    pub fn load(
        manifest: &Path,
        model: &str,
        runtime_lib: &str,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let manifest = Manifest::load(manifest)?;
        let entry = manifest.model_of_kind(model, "event-encoder")?;
        if entry.input_width != FEATURE_COUNT {
            return Err(EmbedError::Contract {
                model: entry.name.clone(),
                reason: format!(
                    "manifest input width {} but this build computes {FEATURE_COUNT} features",
                    entry.input_width
                ),
            });
        }
        let bytes = manifest.verified_bytes(entry)?;
        let session = open_session(&bytes, &entry.file, runtime_lib, threads)?;
        let embedder = Self {
            session: Mutex::new(session),
            input: entry.input.clone(),
            output: entry.output.clone(),
            dim: entry.output_dim,
            model_version: format!("{}@{}", entry.name, entry.version),
            ef_construction: entry.index.as_ref().map(|i| i.ef_construction),
        };
        embedder.check_contract()?;
        Ok(embedder)
    }

    /// Runs one zero row to prove the named tensors and the output width are what the manifest says.
    fn check_contract(&self) -> Result<(), EmbedError> {
        let out = self
            .embed(&[[0.0; FEATURE_COUNT]])
            .map_err(|e| EmbedError::Contract {
                model: self.model_version.clone(),
                reason: e.to_string(),
            })?;
        match out.first() {
            Some(v) if v.len() == self.dim => Ok(()),
            other => Err(EmbedError::Contract {
                model: self.model_version.clone(),
                reason: format!(
                    "expected output width {}, got {:?}",
                    self.dim,
                    other.map(Vec::len)
                ),
            }),
        }
    }
}

/// Opens a session over verified model bytes.
pub(crate) fn open_session(
    bytes: &[u8],
    file: &str,
    runtime_lib: &str,
    threads: usize,
) -> Result<Session, EmbedError> {
    let environment = environment(runtime_lib)?;
    let open_error = |e: &dyn std::fmt::Display| {
        EmbedError::Inference(format!("could not open model {file}: {e}"))
    };
    let builder = Session::builder(environment).map_err(|e| open_error(&e))?;
    let mut builder = builder
        .with_intra_threads(threads.max(1))
        .map_err(|e| open_error(&e))?;
    builder
        .commit_from_memory(bytes)
        .map_err(|e| open_error(&e))
}

/// Runs a model whose one input is a feature matrix; returns the output's row width and values.
pub(crate) fn run_features<const WIDTH: usize>(
    session: &Mutex<Session>,
    input: &str,
    output: &str,
    rows: &[[f32; WIDTH]],
) -> Result<(usize, Vec<f32>), EmbedError> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let tensor = TensorRef::from_array_view(([rows.len(), WIDTH], flat.as_slice()))
        .map_err(|e| EmbedError::Inference(e.to_string()))?;
    let mut session = session
        .lock()
        .map_err(|_| EmbedError::Inference("session lock poisoned".into()))?;
    let outputs = session
        .run(ort::inputs![input => tensor])
        .map_err(|e| EmbedError::Inference(e.to_string()))?;
    let value = outputs
        .get(output)
        .ok_or_else(|| EmbedError::Inference(format!("model has no output `{output}`")))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| EmbedError::Inference(e.to_string()))?;
    let width = shape.last().copied().unwrap_or(0) as usize;
    if width == 0 || data.len() != rows.len() * width {
        return Err(EmbedError::Inference(format!(
            "unexpected output shape {shape:?}"
        )));
    }
    Ok((width, data.to_vec()))
}

pub(crate) fn environment(
    runtime_lib: &str,
) -> Result<&'static ort::environment::Environment, EmbedError> {
    let given = if runtime_lib.is_empty() {
        std::env::var("ORT_DYLIB_PATH").unwrap_or_default()
    } else {
        runtime_lib.to_owned()
    };
    let (path, looked) = if given.is_empty() {
        let (found, looked) = find_runtime();
        (found.unwrap_or_default(), looked)
    } else {
        (given, Vec::new())
    };
    let result = ENVIRONMENT.get_or_init(|| {
        if path.is_empty() {
            return Err(format!(
                "no library given and none found: set embed.onnxruntime_lib or ORT_DYLIB_PATH, \
                 or run scripts/setup.sh, which installs it where FireSight looks (looked in {})",
                looked.join(", ")
            ));
        }
        if !Path::new(&path).is_file() {
            return Err(format!(
                "{path} does not exist; run scripts/setup.sh to install the onnxruntime wheel"
            ));
        }
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("firesight")
            .build()
            .map_err(|e| e.to_string())
    });
    result.as_ref().map_err(|reason| EmbedError::Runtime {
        path: if path.is_empty() {
            "(no path)".into()
        } else {
            path
        },
        reason: reason.clone(),
    })
}

/// The ONNX Runtime library `scripts/setup.sh` installs (the onnxruntime wheel in a virtualenv
/// under `$FIRESIGHT_CACHE`, by default `~/.cache/firesight`), else a system-wide one; with every
/// place looked in, for the error when there is none.
fn find_runtime() -> (Option<String>, Vec<String>) {
    let cache = std::env::var_os("FIRESIGHT_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/firesight")));
    let mut looked = Vec::new();
    if let Some(cache) = cache {
        let lib = cache.join("venv-onnxruntime-1.31.1/lib");
        looked.push(format!(
            "{}/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*",
            lib.display()
        ));
        let pythons = std::fs::read_dir(&lib).into_iter().flatten().flatten();
        for python in pythons.filter(|e| e.file_name().to_string_lossy().starts_with("python3")) {
            let capi = python.path().join("site-packages/onnxruntime/capi");
            let libs = std::fs::read_dir(&capi).into_iter().flatten().flatten();
            let mut found: Vec<_> = libs
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so."))
                })
                .collect();
            found.sort();
            if let Some(first) = found.first() {
                return (Some(first.display().to_string()), looked);
            }
        }
    }
    for system in [
        "/usr/local/lib/libonnxruntime.so",
        "/usr/lib/libonnxruntime.so",
    ] {
        looked.push(system.to_owned());
        if Path::new(system).is_file() {
            return (Some(system.to_owned()), looked);
        }
    }
    (None, looked)
}

impl Embedder for OnnxEmbedder {
    fn model_version(&self) -> &str {
        &self.model_version
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ef_construction(&self) -> Option<usize> {
        self.ef_construction
    }

    fn embed(&self, rows: &[[f32; FEATURE_COUNT]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (width, data) = run_features(&self.session, &self.input, &self.output, rows)?;
        data.chunks_exact(width)
            .enumerate()
            .map(|(row, v)| {
                if v.iter().all(|x| x.is_finite()) {
                    Ok(v.to_vec())
                } else {
                    Err(EmbedError::NonFinite { row })
                }
            })
            .collect()
    }
}
