//! A stand-in for a Confluent schema registry, for the Kafka tests. No schema registry can run on
//! this machine (Confluent's is a JVM image; Karapace is not on PyPI), so this serves the two
//! calls FireSight makes, as Confluent documents them:
//! - `POST /subjects/{subject}/versions` with `{"schema": "<Avro JSON>"}` answers `{"id": N}`;
//!   the same schema under the same subject answers the id it already has;
//! - `GET /schemas/ids/{id}` answers `{"schema": "<Avro JSON>"}`, or 404 with error code 40403.
//!
//! Ids start at 100, so that they never equal the bundled fixed ids of `schemas/registry.json`.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

const FIRST_ID: u32 = 100;

type Subjects = Arc<Mutex<Vec<(String, String)>>>;

/// A registry on a free loopback port, served until dropped.
pub struct Registry {
    /// Base URL, for `kafka.schema_registry_url`.
    pub url: String,
    subjects: Subjects,
    _runtime: tokio::runtime::Runtime,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// A registry served over TLS with `tls`'s certificate when given, and answering 401 to a
    /// request without `basic` (user, password) when given, as Confluent Cloud's does.
    pub fn start_with(tls: Option<rustls::ServerConfig>, basic: Option<(&str, &str)>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let subjects = Subjects::default();
        let mut app = Router::new()
            .route("/subjects/{subject}/versions", post(register))
            .route("/schemas/ids/{id}", get(schema))
            .with_state(Arc::clone(&subjects));
        if let Some((user, password)) = basic {
            use base64::Engine as _;
            let wanted = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            app = app.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let authorized = request
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes() == wanted.as_bytes());
                    async move {
                        if authorized {
                            next.run(request).await
                        } else {
                            let body = json!({"error_code": 401, "message": "Unauthorized"});
                            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
                        }
                    }
                },
            ));
        }
        let url = match tls {
            Some(server) => runtime.block_on(super::tls::serve_tls(app, server)),
            None => {
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                    .expect("a free port");
                let url = format!("http://{}", listener.local_addr().expect("address"));
                runtime.spawn(async move { axum::serve(listener, app).await });
                url
            }
        };
        Self {
            url,
            subjects,
            _runtime: runtime,
        }
    }

    /// Registers `schema` under `subject` as a producer would; returns its id.
    pub fn add(&self, subject: &str, schema: &str) -> u32 {
        add(&self.subjects, subject, schema)
    }

    /// The id of `schema` under `subject`, if it was registered.
    pub fn id_of(&self, subject: &str, schema: &str) -> Option<u32> {
        let subjects = self.subjects.lock().expect("registry lock");
        subjects
            .iter()
            .position(|(s, text)| s == subject && text == schema)
            .map(|i| FIRST_ID + i as u32)
    }
}

fn add(subjects: &Subjects, subject: &str, schema: &str) -> u32 {
    let mut subjects = subjects.lock().expect("registry lock");
    let index = match subjects
        .iter()
        .position(|(s, text)| s == subject && text == schema)
    {
        Some(index) => index,
        None => {
            subjects.push((subject.to_owned(), schema.to_owned()));
            subjects.len() - 1
        }
    };
    FIRST_ID + index as u32
}

async fn register(
    State(subjects): State<Subjects>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    match body.get("schema").and_then(Value::as_str) {
        Some(schema) => (
            StatusCode::OK,
            Json(json!({ "id": add(&subjects, &subject, schema) })),
        ),
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error_code": 42201, "message": "Invalid schema" })),
        ),
    }
}

async fn schema(
    State(subjects): State<Subjects>,
    Path(id): Path<u32>,
) -> (StatusCode, Json<Value>) {
    let subjects = subjects.lock().expect("registry lock");
    let found = id
        .checked_sub(FIRST_ID)
        .and_then(|i| subjects.get(i as usize));
    match found {
        Some((_, schema)) => (StatusCode::OK, Json(json!({ "schema": schema }))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error_code": 40403, "message": format!("Schema {id} not found") })),
        ),
    }
}
