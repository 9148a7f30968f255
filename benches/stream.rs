//! Streaming through a real Kafka-protocol broker (tansu, in memory, started here): the
//! service's throughput (consumed → correlated, embedded, indexed, windowed → produced, with the
//! outbox guarantee on) and produce → visible latency at a fixed offered rate, each beside the
//! broker's own ceiling measured with the same client settings (consume → produce, nothing else).
//!
//! Run: `scripts/bench-stream.sh` (release build). `FIRESIGHT_BENCH_COPIES` (default 3) sets how
//! many time-shifted copies of the Australian archive are replayed.

#[path = "../tests/it/broker.rs"]
#[expect(
    dead_code,
    reason = "the bench starts the broker and produces; the tests' other helpers are not needed"
)]
mod broker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::Broker;
use firesight::app::Service;
use firesight::config::Settings;
use firesight::event::FireDetection;
use firesight::stream::decode::{CsvStream, FirmsDecoder, StreamDecoder};
use firesight::stream::kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: u32 = 4;
/// Default offered rate for the latency figures, records per second.
const DEFAULT_RATE: u64 = 5_000;

/// The offered rate: `FIRESIGHT_BENCH_RATE` records per second, 5,000 unless set.
fn rate() -> u64 {
    std::env::var("FIRESIGHT_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(DEFAULT_RATE)
}
/// How long the fixed rate is offered.
const RATE_SECONDS: u64 = 10;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample")
        .join(name)
}

/// The archive in acquisition order, plus copies shifted by 30 days each (still inside the
/// weather file's span, so the joins stay real).
fn detections(copies: u32) -> anyhow::Result<Vec<FireDetection>> {
    let bytes = std::fs::read(sample("fire_archive_M6_96619.csv"))?;
    let mut stream = CsvStream::<FirmsDecoder>::new();
    let mut decoded = Vec::new();
    stream
        .push(&bytes, &mut decoded)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    stream
        .finish(&mut decoded)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut base: Vec<FireDetection> = decoded
        .into_iter()
        .filter_map(Result::ok)
        .map(|(_, d)| d)
        .collect();
    base.sort_by_key(|d| d.acquired_at);
    let mut out = Vec::with_capacity(base.len() * copies as usize);
    for copy in 0..copies {
        for d in &base {
            let mut d = d.clone();
            d.acquired_at += chrono::Duration::days(30 * i64::from(copy));
            out.push(d);
        }
    }
    Ok(out)
}

fn records(detections: &[FireDetection]) -> Vec<(String, Vec<u8>, String)> {
    detections
        .iter()
        .map(|d| {
            let json = serde_json::to_vec(d).unwrap_or_default();
            (kafka::cell_key(d.latitude, d.longitude), json, d.event_id())
        })
        .collect()
}

fn client(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &broker.address);
    config
}

/// The same consumer and producer settings the service uses.
fn passthrough_clients(
    broker: &Broker,
    group: &str,
) -> anyhow::Result<(BaseConsumer, BaseProducer)> {
    let consumer: BaseConsumer = client(broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create()?;
    let producer: BaseProducer = client(broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?;
    Ok((consumer, producer))
}

/// Copies `input` to `output` until `count` records went through; returns the elapsed time.
fn passthrough(
    broker: &Broker,
    input: &str,
    output: &str,
    count: usize,
    stop_after: Duration,
) -> anyhow::Result<Duration> {
    let (consumer, producer) = passthrough_clients(broker, &format!("{input}-passthrough"))?;
    consumer.subscribe(&[input])?;
    let mut started = None;
    let mut copied = 0;
    let deadline = Instant::now() + stop_after;
    while copied < count && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(1)) {
            started.get_or_insert_with(Instant::now);
            let mut record = BaseRecord::to(output).payload(message.payload().unwrap_or_default());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            while let Err((_, back)) = producer.send(record) {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            copied += 1;
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(started.map_or(Duration::ZERO, |s| s.elapsed()))
}

fn produce_all(
    broker: &Broker,
    topic: &str,
    records: &[(String, Vec<u8>, String)],
) -> anyhow::Result<f64> {
    let producer = broker.producer();
    let started = Instant::now();
    for (key, payload, _) in records {
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        while let Err((_, back)) = producer.send(record) {
            record = back;
            producer.poll(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(records.len() as f64 / started.elapsed().as_secs_f64())
}

/// Offers `records` at `rate()` per second and returns each one's produce → visible latency on
/// `output` (matched by key for the service's output, by payload order for the passthrough).
fn latencies(
    broker: &Broker,
    input: &str,
    output: &str,
    records: &[(String, Vec<u8>, String)],
    by_event_id: bool,
) -> anyhow::Result<Vec<Duration>> {
    let reader: BaseConsumer = client(broker)
        .set("group.id", format!("{output}-reader"))
        .create()?;
    let metadata = reader.fetch_metadata(Some(output), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(output, partition.id(), Offset::End)?;
    }
    reader.assign(&tpl)?;
    // Let the reader settle at the end before anything is offered.
    for _ in 0..20 {
        reader.poll(Duration::from_millis(50));
    }
    let producer = broker.producer();
    let records = records.to_vec();
    let input = input.to_owned();
    let sender = std::thread::spawn(move || -> HashMap<Vec<u8>, Instant> {
        let mut sent = HashMap::with_capacity(records.len());
        let started = Instant::now();
        for (i, (key, payload, event_id)) in records.iter().enumerate() {
            let due = started + Duration::from_micros(i as u64 * 1_000_000 / rate());
            while Instant::now() < due {
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_micros(100));
            }
            let mut record = BaseRecord::to(&input)
                .key(key.as_str())
                .payload(payload.as_slice());
            let marker = if by_event_id {
                event_id.as_bytes().to_vec()
            } else {
                payload.clone()
            };
            sent.insert(marker, Instant::now());
            while let Err((_, back)) = producer.send(record) {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
        }
        let _ = producer.flush(Duration::from_secs(60));
        sent
    });
    let mut seen: HashMap<Vec<u8>, Instant> = HashMap::new();
    let expected = rate() as usize * RATE_SECONDS as usize;
    let deadline = Instant::now() + Duration::from_secs(RATE_SECONDS * 6 + 60);
    while seen.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = reader.poll(Duration::from_millis(5)) {
            let marker = if by_event_id {
                message.key()
            } else {
                message.payload()
            };
            if let Some(marker) = marker {
                seen.entry(marker.to_vec()).or_insert_with(Instant::now);
            }
        }
    }
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))?;
    let mut out: Vec<Duration> = seen
        .iter()
        .filter_map(|(marker, at)| sent.get(marker).map(|s| at.saturating_duration_since(*s)))
        .collect();
    out.sort();
    anyhow::ensure!(
        out.len() == expected,
        "{} of {expected} records became visible",
        out.len()
    );
    Ok(out)
}

/// A histogram's buckets: (upper bound in ms, cumulative count).
fn buckets(histogram: &prometheus::Histogram) -> Vec<(f64, u64)> {
    let proto = prometheus::core::Metric::metric(histogram);
    proto
        .get_histogram()
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound() * 1e3, b.cumulative_count()))
        .collect()
}

/// For each of `qs`, the upper bound (ms) of the bucket the quantile of the observations made
/// between `before` and `after` falls in (`inf` past the last bucket).
fn quantiles(before: &[(f64, u64)], after: &[(f64, u64)], qs: &[f64]) -> Vec<String> {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .zip(before)
        .map(|(&(le, a), &(_, b))| (le, a - b))
        .collect();
    let total = delta.last().map_or(0, |&(_, n)| n);
    qs.iter()
        .map(|q| {
            let wanted = (q * total as f64).ceil() as u64;
            delta
                .iter()
                .find(|&&(_, n)| n >= wanted && total > 0)
                .map_or("inf".to_owned(), |&(le, _)| format!("{le:.1}"))
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn settings(dir: &std::path::Path, broker: &Broker) -> anyhow::Result<Settings> {
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.join("db");
    settings.embed.manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/manifest.json");
    settings.search.enabled = false;
    settings.kafka.brokers = broker.address.clone();
    settings.kafka.group_id = "bench".into();
    settings.windows.idle_close_seconds = 3600;
    if let Some(threads) = std::env::var("FIRESIGHT_BENCH_BUILD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.index.build_threads = threads;
    }
    if let Some(k) = std::env::var("FIRESIGHT_BENCH_SIMILAR_K")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.kafka.similar_k = k;
    }
    Ok(settings)
}

fn main() -> anyhow::Result<()> {
    let copies: u32 = std::env::var("FIRESIGHT_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // The copies after the bulk ones feed the fixed-rate run (one copy is fewer records than
    // rate() × RATE_SECONDS).
    let all = detections(copies + 2)?;
    let per_copy = all.len() / (copies as usize + 2);
    let (bulk, fresh) = all.split_at(per_copy * copies as usize);
    let bulk = records(bulk);
    let fresh = records(&fresh[..(rate() * RATE_SECONDS) as usize]);
    let broker = Broker::start();
    let s = Settings::defaults()?.kafka;
    for topic in [
        &s.detections_topic,
        &s.weather_topic,
        &s.sensors_topic,
        &"bench-state-changelog".to_owned(),
    ] {
        broker.create_topic(topic, PARTITIONS);
    }
    for topic in [
        &s.enriched_topic,
        &s.alerts_topic,
        &s.late_topic,
        &s.dead_letter_topic,
        &s.incidents_topic,
        &s.active_fires_topic,
    ] {
        broker.create_topic(topic, PARTITIONS);
    }
    for topic in [
        "ceiling-in",
        "ceiling-out",
        "ceiling-rate-in",
        "ceiling-rate-out",
    ] {
        broker.create_topic(topic, PARTITIONS);
    }
    println!(
        "{} detections ({} copies of the archive), {PARTITIONS} partitions, tansu in memory",
        bulk.len(),
        copies
    );

    let produce_rate = produce_all(&broker, "ceiling-in", &bulk)?;
    let ceiling = passthrough(
        &broker,
        "ceiling-in",
        "ceiling-out",
        bulk.len(),
        Duration::from_secs(600),
    )?;
    let ceiling_rate = bulk.len() as f64 / ceiling.as_secs_f64();

    produce_all(&broker, &s.detections_topic, &bulk)?;
    let dir = tempfile::TempDir::new()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let settings = settings(dir.path(), &broker)?;
    let weather = vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
    ];
    let service = Arc::new(Service::open(settings.clone(), &weather, false)?);
    let reader: BaseConsumer = client(&broker)
        .set("group.id", "bench-reader")
        .set("auto.offset.reset", "earliest")
        .create()?;
    reader.subscribe(&[s.enriched_topic.as_str()])?;
    let started = Instant::now();
    let stream = kafka::start(
        &settings,
        Arc::clone(&service.pipeline),
        runtime.handle().clone(),
    )?;
    let mut seen = std::collections::HashSet::with_capacity(bulk.len());
    let deadline = Instant::now() + Duration::from_secs(3600);
    while seen.len() < bulk.len() && Instant::now() < deadline {
        if let Some(Ok(message)) = reader.poll(Duration::from_millis(10))
            && let Some(key) = message.key()
        {
            seen.insert(key.to_vec());
        }
    }
    let service_time = started.elapsed();
    anyhow::ensure!(
        seen.len() == bulk.len(),
        "only {} of {} enriched",
        seen.len(),
        bulk.len()
    );
    let service_rate = bulk.len() as f64 / service_time.as_secs_f64();

    // FireSight's own part, and two steps inside it: the granule gate's wait, and the record
    // searchable (its outputs then go to the producer).
    let owned_metrics = [
        service.metrics.stream_granule_wait.clone(),
        service
            .metrics
            .ingest_latency
            .with_label_values(&["firms", "kafka"]),
        service.metrics.stream_output_latency.clone(),
    ];
    let owned_before: Vec<_> = owned_metrics.iter().map(buckets).collect();
    let service_latency = latencies(
        &broker,
        &s.detections_topic,
        &s.enriched_topic,
        &fresh,
        true,
    )?;
    let owned: Vec<Vec<String>> = owned_metrics
        .iter()
        .zip(&owned_before)
        .map(|(metric, before)| quantiles(before, &buckets(metric), &[0.5, 0.95, 0.99]))
        .collect();
    stream.stop();
    drop(service);
    // The broker's own latency: a passthrough with the service's client settings, same rate.
    let ceiling_latency = std::thread::scope(|scope| {
        let copier = scope.spawn(|| {
            passthrough(
                &broker,
                "ceiling-rate-in",
                "ceiling-rate-out",
                fresh.len(),
                Duration::from_secs(RATE_SECONDS * 6 + 60),
            )
        });
        let measured = latencies(
            &broker,
            "ceiling-rate-in",
            "ceiling-rate-out",
            &fresh,
            false,
        );
        let copied = copier
            .join()
            .map_err(|_| anyhow::anyhow!("passthrough panicked"))?;
        copied.and(measured)
    })?;

    println!();
    println!(
        "| path | records/s | p50 ms | p95 ms | p99 ms (at {}/s for {RATE_SECONDS} s) |",
        rate()
    );
    println!("|---|---|---|---|---|");
    println!("| producer alone | {produce_rate:.0} | | | |");
    println!(
        "| broker ceiling: consume → produce | {ceiling_rate:.0} | {:.1} | {:.1} | {:.1} |",
        percentile(&ceiling_latency, 0.50),
        percentile(&ceiling_latency, 0.95),
        percentile(&ceiling_latency, 0.99)
    );
    println!(
        "| FireSight: consume → correlate, embed, index, windows → outbox → produce | {service_rate:.0} | {:.1} | {:.1} | {:.1} |",
        percentile(&service_latency, 0.50),
        percentile(&service_latency, 0.95),
        percentile(&service_latency, 0.99)
    );
    let steps = [
        "FireSight's own part, up to the granule gate passing it on (`firesight_stream_granule_wait_seconds`)",
        "FireSight's own part, up to searchable (`firesight_ingest_latency_seconds{path=\"kafka\"}`)",
        "FireSight's own part: poll → outputs acknowledged (`firesight_stream_output_latency_seconds`)",
    ];
    for (step, q) in steps.iter().zip(&owned) {
        println!(
            "| {step}, bucket upper bounds | | ≤ {} | ≤ {} | ≤ {} |",
            q[0], q[1], q[2]
        );
    }
    println!(
        "service / ceiling throughput: {:.3}",
        service_rate / ceiling_rate
    );
    Ok(())
}
