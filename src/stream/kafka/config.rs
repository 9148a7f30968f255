//! Client settings: what every consumer and the producer share, and the consumers' own.

use rdkafka::config::ClientConfig;

use crate::config::KafkaSettings;

/// A consumer's settings: no automatic offsets (FireSight's are in its store), from the start
/// of a partition it has none for, fetches sized for `max_record_bytes`, and statistics for the
/// lag gauge. Only consumers whose context records the statistics may use it.
pub(super) fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "fetch.max.bytes",
            (settings.max_record_bytes.max(1 << 20) * 16).to_string(),
        )
        .set(
            "max.partition.fetch.bytes",
            (settings.max_record_bytes.max(1 << 20) * 2).to_string(),
        );
    // Statistics feed the consumer-lag gauge (`lag::record`); a user's own interval wins.
    let interval = settings
        .client
        .get("statistics.interval.ms")
        .map_or(super::lag::STATS_INTERVAL_MS, String::as_str);
    config.set("statistics.interval.ms", interval);
    config
}

pub(super) fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.client {
        // Statistics are for the consumers whose context records them (`consumer_config`);
        // the others' contexts would log every report.
        if key != "statistics.interval.ms" {
            config.set(key, value);
        }
    }
    config
}
