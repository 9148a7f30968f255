//! The windows state machine driven by arbitrary sequences of valid detections (times from
//! 2000 to 2100, any order; the decoders refuse anything else) and idle flushes, under arbitrary
//! settings. Checked: nothing panics; every detection is counted once, in a closed window or as
//! late; the state survives its JSON round trip (it is stored that way with every batch); and
//! the same inputs give the same outputs.
#![no_main]

use firesight_core::windows::{Emitted, PartitionState, Point, WindowSettings};
use libfuzzer_sys::fuzz_target;

/// 2000-01-01T00:00Z and about a century after it, ms.
const FROM_MS: i64 = 946_684_800_000;
const SPAN_MS: i64 = 100 * 365 * 86_400_000;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Runs the steps; returns everything emitted, the detections fed and the final state.
fn run(settings: &WindowSettings, steps: &[u8]) -> (Vec<Emitted>, u64, PartitionState) {
    let mut state = PartitionState::default();
    let mut emitted = Vec::new();
    let mut fed = 0;
    for (i, step) in steps.chunks_exact(12).enumerate() {
        if step[0] % 16 == 0 {
            emitted.push(state.flush(settings));
            continue;
        }
        let offset = i64::from(u32::from_le_bytes([step[1], step[2], step[3], step[4]]));
        let point = Point {
            event_id: format!("fd_{i}"),
            time_ms: FROM_MS + (offset * 734_003).rem_euclid(SPAN_MS),
            latitude: f64::from(u16_at(step, 5)) / 65_535.0 * 180.0 - 90.0,
            longitude: f64::from(u16_at(step, 7)) / 65_535.0 * 360.0 - 180.0,
            frp_mw: f64::from(u16_at(step, 9)) / 10.0,
            confidence: f64::from(step[11] % 101),
        };
        emitted.push(state.on_detection(&point, settings));
        fed += 1;
        if step[0] % 16 == 1 {
            // A checkpoint: the state goes to the store as JSON and comes back.
            let json = serde_json::to_string(&state).expect("the state serialises");
            let back: PartitionState = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(back, state, "the state survives its JSON round trip");
            state = back;
        }
    }
    emitted.push(state.flush(settings));
    (emitted, fed, state)
}

fuzz_target!(|data: &[u8]| {
    let Some((head, steps)) = data.split_at_checked(5) else {
        return;
    };
    let settings = WindowSettings {
        tumble_seconds: u32::from(u16_at(head, 0)) * 60 + 1,
        tumble_grace_seconds: u32::from(u16_at(head, 2)),
        region_deg: [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 90.0][usize::from(head[4] % 8)],
        idle_close_seconds: 60,
    };
    let (emitted, fed, state) = run(&settings, steps);
    assert!(state.is_quiet(), "a flush closes every window");
    let in_windows: u64 = emitted
        .iter()
        .flat_map(|e| &e.active_fires)
        .map(|w| u64::from(w.detections))
        .sum();
    let late = emitted.iter().filter(|e| e.late.is_some()).count() as u64;
    assert_eq!(in_windows + late, fed, "every detection counted once");
    assert_eq!(state.late_counts.values().sum::<u64>(), late);
    for window in emitted.iter().flat_map(|e| &e.active_fires) {
        assert!(
            window.detections > 0 && window.end_ms > window.start_ms,
            "{window:?}"
        );
        assert!(window.max_frp_mw.is_finite() && window.mean_confidence.is_finite());
    }
    assert_eq!(
        run(&settings, steps),
        (emitted, fed, state),
        "deterministic"
    );
});
