//! Logging, and OTLP trace export when a collector is configured.
//!
//! Every request already runs in a `request` span (method, route template); with
//! `telemetry.otlp_endpoint` set, those spans and the ones inside them go to an OpenTelemetry
//! collector over OTLP/HTTP (protobuf), batched on a background thread.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetrySettings;

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes what is still batched.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still batched and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "Trace export did not flush.");
        }
    }
}

/// The collector's trace URL: `endpoint` as given when it names `/v1/traces`, else with it added.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Installs the global subscriber: human-readable logs on stderr (`RUST_LOG` filters them) and,
/// when configured, the OTLP layer.
pub fn init(settings: &TelemetrySettings, trust: &crate::tls::Trust) -> anyhow::Result<Telemetry> {
    // FireSight's own crates at info, every dependency at warn (tantivy alone wrote ~240 info
    // lines in the first two minutes); RUST_LOG=info brings them all back.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,firesight=info,firesight_core=info,firesight_index=info")
    });
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if settings.otlp_endpoint.is_empty() {
        tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .init();
        return Ok(Telemetry { provider: None });
    }
    // Built here, not by the exporter, so an https:// collector is checked against `trust`.
    let client = trust
        .blocking_http()
        .timeout(Duration::from_secs(10))
        .build()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(traces_url(&settings.otlp_endpoint))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("firesight");
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .init();
    tracing::info!(endpoint = %crate::credentials::redacted(&traces_url(&settings.otlp_endpoint)), "Exporting traces over OTLP/HTTP.");
    Ok(Telemetry {
        provider: Some(provider),
    })
}
