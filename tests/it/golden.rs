//! The Rust features and the ONNX embedding agree with the training script's golden fixture.

use firesight::embed::{Embedder, FEATURE_COUNT, OnnxEmbedder, event_features};
use firesight::event::{FireCharacteristics, FireEventV2, Location, SourceInfo, WeatherConditions};
use serde_json::Value;

use super::support::repo;

pub fn event_from(fixture: &Value) -> FireEventV2 {
    let f = |k: &str| fixture[k].as_f64().expect(k);
    let weather = fixture["weather"].as_object().map(|w| WeatherConditions {
        station_id: 0,
        station_name: String::new(),
        distance_km: 0.0,
        observation_date: String::new(),
        age_hours: 0.0,
        min_temp_c: w["min_temp_c"].as_f64(),
        max_temp_c: w["max_temp_c"].as_f64(),
        rain_mm: w["rain_mm"].as_f64(),
        rh_3pm_pct: w["rh_3pm_pct"].as_f64(),
        wind_3pm_kmh: w["wind_3pm_kmh"].as_f64(),
        max_gust_kmh: w["max_gust_kmh"].as_f64(),
        fire_weather: fixture["fire_weather"].as_object().map(|c| {
            let code = |k: &str| c[k].as_f64().expect(k);
            firesight::event::FireWeather {
                date: String::new(),
                ffmc: code("ffmc"),
                dmc: code("dmc"),
                dc: code("dc"),
                isi: code("isi"),
                bui: code("bui"),
                fwi: code("fwi"),
                dsr: 0.0,
                danger_class: String::new(),
                days_in_series: c["days_in_series"].as_i64().expect("days") as i32,
            }
        }),
    });
    FireEventV2 {
        event_id: "golden".into(),
        correlation_id: None,
        source: SourceInfo {
            provider: "NASA FIRMS".into(),
            satellite: "Terra".into(),
            instrument: fixture["instrument"].as_str().expect("instrument").into(),
            version: "6.3".into(),
        },
        detection_time: fixture["detection_time"].as_i64().expect("time"),
        location: Location {
            latitude: f("latitude"),
            longitude: f("longitude"),
        },
        fire_characteristics: FireCharacteristics {
            brightness_k: f("brightness_k"),
            brightness_background_k: f("brightness_background_k"),
            frp_mw: f("frp_mw"),
            scan_km: f("scan_km"),
            track_km: f("track_km"),
            confidence: fixture["confidence"]
                .as_str()
                .and_then(firesight::event::ConfidenceClass::parse)
                .expect("confidence"),
            confidence_percent: fixture["confidence_percent"].as_f64().map(|c| c as f32),
            daytime: fixture["daytime"].as_bool().expect("daytime"),
            detection_type: None,
        },
        weather_status: None,
        weather_conditions: weather,
        sensor_summary: None,
        impact_assessment: None,
        ml_predictions: None,
        model_version: None,
        ingested_at: None,
        similar_events: None,
        revision: None,
    }
}

#[test]
fn features_and_embeddings_match_the_training_script() {
    let text = std::fs::read_to_string(repo().join("models/fixtures/event_encoder_golden.json"))
        .expect("fixture");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("json");
    let embedder = OnnxEmbedder::load(
        &repo().join("models/manifest.json"),
        "event-encoder@1",
        "",
        1,
    )
    .expect("encoder loads");
    assert!(
        cases.iter().any(|c| c["event"]["weather"].is_null())
            && cases.iter().any(|c| !c["event"]["weather"].is_null())
    );
    for case in &cases {
        let features = event_features(&event_from(&case["event"]));
        let expected: Vec<f32> = case["features"]
            .as_array()
            .expect("features")
            .iter()
            .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
            .collect();
        assert_eq!(expected.len(), FEATURE_COUNT);
        for (i, (got, want)) in features.iter().zip(&expected).enumerate() {
            let same =
                (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-4 * want.abs().max(1.0);
            assert!(same, "feature {i}: rust {got} vs python {want}");
        }
        let vector = embedder.embed(&[features]).expect("embeds").remove(0);
        let want: Vec<f64> = case["embedding"]
            .as_array()
            .expect("embedding")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        for (got, want) in vector.iter().zip(&want) {
            assert!(
                (f64::from(*got) - want).abs() < 1e-4,
                "embedding {got} vs {want}"
            );
        }
    }
}

#[test]
fn a_tampered_model_is_refused_at_load() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let manifest = std::fs::read_to_string(repo().join("models/manifest.json")).expect("manifest");
    let mut model = std::fs::read(repo().join("models/event_encoder.onnx")).expect("model");
    let last = model.len() - 1;
    model[last] ^= 0xff;
    std::fs::write(dir.path().join("event_encoder.onnx"), model).expect("write");
    std::fs::write(dir.path().join("manifest.json"), manifest).expect("write");
    let err = OnnxEmbedder::load(&dir.path().join("manifest.json"), "event-encoder@1", "", 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("sha256"), "{err}");
    let err = OnnxEmbedder::load(&dir.path().join("absent.json"), "event-encoder", "", 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("absent.json"), "{err}");
}
