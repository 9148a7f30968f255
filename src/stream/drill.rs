//! The fault drills' switch: `FIRESIGHT_DRILL_PANIC_SATELLITE=<name>` makes the detections stage
//! panic on every detection from that satellite, so a drill (or a test that runs the binary)
//! can show what a bug in a stage does to a running service: the batch fails alone, and on
//! Kafka the record is isolated and dead-lettered. Read once; unset, it costs one load per
//! detection and never fires.

use std::sync::OnceLock;

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
