//! The fault drills' switches. `FIRESIGHT_DRILL_PANIC_SATELLITE=<name>` makes the detections stage
//! panic on every detection from that satellite, so a drill (or a test that runs the binary)
//! can show what a bug in a stage does to a running service: the batch fails alone, and on
//! Kafka the record is isolated and dead-lettered. `FIRESIGHT_DRILL_SLOW_INSERT_MS=<ms>` makes
//! every index insert take that much longer, so a test can show that nothing is published or
//! answered before its event is searchable. Each is read once; unset, it costs one load per
//! use and never fires.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that arms the drill.
pub const PANIC_SATELLITE: &str = "FIRESIGHT_DRILL_PANIC_SATELLITE";

/// Panics when the drill is armed for `satellite`.
pub fn check(satellite: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        let armed = std::env::var(PANIC_SATELLITE).ok().filter(|s| !s.is_empty());
        if let Some(satellite) = &armed {
            tracing::warn!(%satellite, "Fault drill armed: the detections stage panics on this satellite.");
        }
        armed
    });
    if armed.as_deref() == Some(satellite) {
        panic!("fault drill: the detections stage panics on satellite {satellite}");
    }
}

/// The environment variable that slows every index insert down, in milliseconds.
pub const SLOW_INSERT_MS: &str = "FIRESIGHT_DRILL_SLOW_INSERT_MS";

/// Sleeps for the armed delay before an index insert (at most a minute).
pub fn slow_insert() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        let ms: u64 = std::env::var(SLOW_INSERT_MS).ok()?.parse().ok()?;
        tracing::warn!(ms, "Fault drill armed: every index insert is slowed down.");
        Some(Duration::from_millis(ms.min(60_000)))
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
    }
}
