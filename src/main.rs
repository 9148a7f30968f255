//! The `firesight` binary: parses the command line, loads settings, starts logging and hands over to `app`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Wildfire intelligence: correlate, embed, index and query fire detections.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, env = "FIRESIGHT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service on the embedded default (RocksDB + local HNSW), optionally loading files first.
    Serve {
        /// FIRMS, BOM weather, BOM station or NDJSON event files to load before serving.
        #[arg(long, num_args = 1..)]
        load: Vec<PathBuf>,
    },
    /// Load files through the pipeline, write the index snapshot, and exit.
    Load {
        /// Files to load.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Re-embed every stored event with another encoder, index it, and make it the serving
    /// model. Resumes where an interrupted run stopped. Run it while the service is stopped
    /// (RocksDB admits one process); `POST /v1/admin/reindex` does the same in a running one.
    Reindex {
        /// The encoder, `NAME@VERSION` as listed in the model manifest.
        #[arg(long)]
        model: String,
    },
    /// Print the OpenAPI document (what `/openapi.json` serves and `schemas/openapi.json` holds).
    Openapi,
    /// Make a new API key: prints the key once (give it to its holder) and the `[[auth.keys]]`
    /// entry for the config, which holds only its SHA-256.
    ApiKey {
        /// Who will hold it; appears in logs and 403 messages.
        #[arg(long)]
        name: String,
        /// `read`, `write` (ingest) or `admin` (re-index); each includes the ones before.
        #[arg(long, value_parser = ["read", "write", "admin"])]
        role: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = &cli.command {
        print!("{}", firesight::api::openapi::document());
        return Ok(());
    }
    if let Command::ApiKey { name, role } = &cli.command {
        let (key, hash) = firesight::api::auth::new_key()?;
        println!("# The key, for {name} only (it is not stored anywhere):\n# {key}\n");
        println!("[[auth.keys]]\nname = {name:?}\nrole = {role:?}\nsha256 = \"{hash}\"");
        return Ok(());
    }
    let settings = firesight::config::Settings::load(cli.config.as_deref())?;
    let trust = firesight::tls::Trust::load(&settings.tls)?;
    let telemetry = firesight::telemetry::init(&settings.telemetry, &trust)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = run(cli.command, settings, &runtime);
    drop(runtime);
    telemetry.shutdown();
    outcome
}

fn run(
    command: Command,
    settings: firesight::config::Settings,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    match command {
        Command::Serve { load } => {
            runtime.block_on(firesight::app::run(settings, load, shutdown_signal()))
        }
        Command::Reindex { model } => runtime.block_on(async move {
            tokio::task::spawn_blocking(move || {
                let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
                let service = firesight::app::Service::open(settings, &[], progress)?;
                let report = firesight::reindex::reindex(&service.lifecycle, &model, progress)?;
                println!(
                    "re-indexed {} events into {} ({} vectors indexed, resumed from {}) in {:.1} s",
                    report.embedded,
                    report.model,
                    report.indexed,
                    report.resumed_from,
                    report.seconds
                );
                anyhow::Ok(())
            })
            .await?
        }),
        Command::Load { files } => runtime.block_on(async move {
            tokio::task::spawn_blocking(move || {
                let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
                // The index built while loading is written out, so the next start loads it
                // instead of building it again from the store.
                firesight::app::Service::open(settings, &files, progress)?.save_index()?;
                anyhow::Ok(())
            })
            .await?
        }),
        Command::ApiKey { .. } | Command::Openapi => Ok(()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "Ctrl-C handler failed.");
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => tracing::error!(%error, "SIGTERM handler failed."),
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("Shutdown requested; finishing in-flight requests.");
}
