//! Training rows for the incident growth outlook: replays a FIRMS archive through the service's
//! own pipeline (weather joined, the tracker on), one granule at a time in time order, and after
//! each granule writes every incident it changed as the tracker then saw it
//! (`tracker::outlook::outlook_features`), with the burned area the incident went on to add in
//! the next 24 hours. Growth is counted from the tracker's own areas: what an incident and
//! whatever it merged into added, less the area of incidents it absorbed (a merge joins two
//! fires; it does not burn ground). Rows whose 24 hours run past the archive's end are left out.
//!
//! Run (then `python3 models/train_models.py`):
//! `cargo run --locked --profile test --example incident_states -- models/data/incident_states.csv`

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use firesight::app::Service;
use firesight::config::Settings;
use firesight::stream::Lane;
use firesight::stream::decode::{CsvStream, FirmsDecoder, StreamDecoder};
use firesight::tracker::outlook::{HORIZON_MS, OUTLOOK_FEATURE_NAMES, outlook_features};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One row: an incident as of a time, and what it added after.
struct Row {
    incident: String,
    as_of_ms: i64,
    features: Vec<f32>,
    added_km2: f64,
}

fn detections(path: &Path) -> anyhow::Result<Vec<firesight::event::FireDetection>> {
    let bytes = std::fs::read(path)?;
    let mut stream = CsvStream::<FirmsDecoder>::new();
    let mut out = Vec::new();
    for chunk in bytes.chunks(64 * 1024) {
        stream
            .push(chunk, &mut out)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
    }
    stream
        .finish(&mut out)
        .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
    let mut rejected = 0usize;
    let mut kept: Vec<_> = out
        .into_iter()
        .filter_map(|d| match d {
            Ok((_, detection)) => Some(detection),
            Err(_) => {
                rejected += 1;
                None
            }
        })
        .collect();
    if rejected > 0 {
        eprintln!(
            "{rejected} rows of {} were refused by the decoder",
            path.display()
        );
    }
    kept.sort_by_key(|d| (d.acquired_at, d.event_id()));
    Ok(kept)
}

fn main() -> anyhow::Result<()> {
    let out_path = std::env::args().nth(1).map_or_else(
        || repo().join("models/data/incident_states.csv"),
        PathBuf::from,
    );
    let sample = |name: &str| repo().join("data/sample").join(name);
    let dir = tempfile::TempDir::new()?;
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.path().join("db");
    settings.embed.manifest = repo().join("models/manifest.json");
    settings.search.enabled = false;
    // The rows are the model's input: the outlook it gives must not feed back into them.
    settings.incidents.outlook_model.clear();
    let weather = [
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
    ];
    let service = Service::open(settings, &weather, false)?;
    let all = detections(&sample("fire_archive_M6_96619.csv"))?;
    let end_ms = all.last().map_or(0, |d| d.acquired_at.timestamp_millis());

    let mut rows: Vec<Row> = Vec::new();
    // Rows still inside their 24 hours, by the incident they are now part of.
    let mut open: HashMap<String, Vec<usize>> = HashMap::new();
    // Each incident's area after the last granule that changed it.
    let mut areas: HashMap<String, f64> = HashMap::new();
    let mut seq = 0u64;
    let mut start = 0;
    while start < all.len() {
        let at = all[start].acquired_at;
        let time = at.timestamp_millis();
        let end = start + all[start..].partition_point(|d| d.acquired_at == at);
        let batch: Vec<_> = all[start..end]
            .iter()
            .map(|d| {
                seq += 1;
                (seq, d.clone())
            })
            .collect();
        start = end;
        service
            .pipeline
            .ingest_detections_with(Lane::Bulk, batch, |_, _, tracked| {
                // Merges first: the absorbed incident's rows follow it to the incident that
                // survives (through every merge of the granule: A into B, then B into C), and its
                // area is not growth.
                let into: HashMap<&str, &str> = tracked
                    .incidents
                    .iter()
                    .filter_map(|i| Some((i.id.as_str(), i.merged_into.as_deref()?)))
                    .collect();
                let survivor = |id: &str| {
                    let mut id = id.to_owned();
                    for _ in 0..into.len() {
                        match into.get(id.as_str()) {
                            Some(next) => id = (*next).to_owned(),
                            None => break,
                        }
                    }
                    id
                };
                let mut absorbed: HashMap<String, f64> = HashMap::new();
                for gone in into.keys() {
                    let to = survivor(gone);
                    let area = areas.remove(*gone).unwrap_or(0.0);
                    *absorbed.entry(to.clone()).or_default() += area;
                    if let Some(moved) = open.remove(*gone) {
                        open.entry(to).or_default().extend(moved);
                    }
                }
                for incident in tracked.incidents.iter().filter(|i| i.merged_into.is_none()) {
                    let before = areas.get(&incident.id).copied().unwrap_or(0.0)
                        + absorbed.get(&incident.id).copied().unwrap_or(0.0);
                    let grown = (incident.area_km2 - before).max(0.0);
                    areas.insert(incident.id.clone(), incident.area_km2);
                    let list = open.entry(incident.id.clone()).or_default();
                    list.retain(|&r| time.saturating_sub(rows[r].as_of_ms) <= HORIZON_MS);
                    for &r in list.iter() {
                        if time > rows[r].as_of_ms {
                            rows[r].added_km2 += grown;
                        }
                    }
                    list.push(rows.len());
                    rows.push(Row {
                        incident: incident.id.clone(),
                        as_of_ms: incident.last_ms,
                        features: outlook_features(incident, incident.last_ms).to_vec(),
                        added_km2: 0.0,
                    });
                }
                Ok(Vec::new())
            })?;
    }

    if let Some(parent) = out_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
    writeln!(
        out,
        "incident,as_of_ms,{},added_km2",
        OUTLOOK_FEATURE_NAMES.join(",")
    )?;
    let mut written = 0usize;
    for row in rows.iter().filter(|r| r.as_of_ms + HORIZON_MS <= end_ms) {
        let features: Vec<String> = row
            .features
            .iter()
            .map(|v| {
                if v.is_nan() {
                    String::new()
                } else {
                    v.to_string()
                }
            })
            .collect();
        writeln!(
            out,
            "{},{},{},{}",
            row.incident,
            row.as_of_ms,
            features.join(","),
            row.added_km2
        )?;
        written += 1;
    }
    out.flush()?;
    eprintln!(
        "{written} rows ({} left out: their 24 h run past the archive) -> {}",
        rows.len() - written,
        out_path.display()
    );
    Ok(())
}
