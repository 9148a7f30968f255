//! GeoJSON (RFC 7946) answers: format negotiation (`?f=geojson` or `Accept:
//! application/geo+json`) and the geometries of the places FireSight serves.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ApiError;
use crate::event::FireEventV2;
use firesight_core::params::Params;

/// The GeoJSON media type.
pub const MEDIA_TYPE: &str = "application/geo+json";

/// Whether the request asks for GeoJSON: `f=geojson` (or `f=json` for plain JSON), else the
/// `Accept` header naming `application/geo+json`.
pub fn wanted(params: &Params, headers: &HeaderMap) -> Result<bool, ApiError> {
    match params.text("f") {
        Some("geojson") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::bad(
            "f",
            format!("`{other}` is not one of json, geojson"),
        )),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().starts_with(MEDIA_TYPE)))),
    }
}

/// A GeoJSON body with its media type.
pub fn response(body: &Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

/// The geometry of a ring (`[lon, lat]`, counter-clockwise, unclosed): a Polygon from three
/// vertices, otherwise a LineString or a Point.
pub fn ring_geometry(ring: &[[f64; 2]]) -> Value {
    match ring {
        [] => Value::Null,
        [p] => json!({"type": "Point", "coordinates": p}),
        [_, _] => json!({"type": "LineString", "coordinates": ring}),
        _ => {
            let mut closed = ring.to_vec();
            closed.push(ring[0]);
            json!({"type": "Polygon", "coordinates": [closed]})
        }
    }
}

/// A Feature with `id`, `geometry` and the object's fields (the geometry's source fields left
/// out) as properties.
pub fn feature(id: &str, geometry: Value, properties: Value, drop: &[&str]) -> Value {
    let mut properties = properties;
    if let Some(map) = properties.as_object_mut() {
        for key in drop {
            map.remove(*key);
        }
    }
    json!({"type": "Feature", "id": id, "geometry": geometry, "properties": properties})
}

/// A detection as a Point Feature with flat properties (what GIS tools show as attribute
/// columns): the event's source, time, fire characteristics, the joined weather, the rule
/// anomalies and each model output as `<model>.<name>`.
pub fn fire_feature(event: &FireEventV2) -> Value {
    let time = chrono::DateTime::from_timestamp_millis(event.detection_time).unwrap_or_default();
    let fire = &event.fire_characteristics;
    let mut properties = json!({
        "event_id": event.event_id,
        "detection_time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "satellite": event.source.satellite,
        "instrument": event.source.instrument,
        "provider": event.source.provider,
        "frp_mw": fire.frp_mw,
        "brightness_k": fire.brightness_k,
        "brightness_background_k": fire.brightness_background_k,
        "scan_km": fire.scan_km,
        "track_km": fire.track_km,
        "confidence": fire.confidence,
        "confidence_percent": fire.confidence_percent,
        "daytime": fire.daytime,
        "weather_status": event.weather_status,
        // 0 for a first version; a late weather re-join counts it up.
        "revision": event.revision.unwrap_or(0),
    });
    let map = properties.as_object_mut().expect("an object literal");
    if let Some(w) = &event.weather_conditions {
        map.insert("station_name".into(), json!(w.station_name));
        map.insert("station_distance_km".into(), json!(w.distance_km));
        map.insert("weather_age_hours".into(), json!(w.age_hours));
        map.insert("max_temp_c".into(), json!(w.max_temp_c));
        map.insert("rain_mm".into(), json!(w.rain_mm));
        map.insert("rh_3pm_pct".into(), json!(w.rh_3pm_pct));
        map.insert("wind_3pm_kmh".into(), json!(w.wind_3pm_kmh));
        map.insert("max_gust_kmh".into(), json!(w.max_gust_kmh));
        // Flat, so a GIS client can style or filter by danger without parsing nested JSON.
        if let Some(f) = &w.fire_weather {
            for (name, value) in [
                ("ffmc", f.ffmc),
                ("dmc", f.dmc),
                ("dc", f.dc),
                ("isi", f.isi),
                ("bui", f.bui),
                ("fwi", f.fwi),
            ] {
                map.insert(name.into(), json!(value));
            }
            map.insert("danger_class".into(), json!(f.danger_class));
        }
    }
    if let Some(impact) = &event.impact_assessment {
        map.insert("anomalies".into(), json!(impact.anomalies.join(",")));
    }
    for p in event.ml_predictions.iter().flatten() {
        map.insert(format!("{}.{}", p.model, p.name), json!(p.value));
    }
    let point = json!({
        "type": "Point",
        "coordinates": [event.location.longitude, event.location.latitude],
    });
    json!({"type": "Feature", "id": event.event_id, "geometry": point, "properties": properties})
}

/// A FeatureCollection of `features`, with extra foreign members (paging).
pub fn collection(features: Vec<Value>, extra: Value) -> Value {
    let mut body = json!({"type": "FeatureCollection", "features": features});
    if let (Some(map), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            map.insert(k.clone(), v.clone());
        }
    }
    body
}

/// A streamed answer goes out in pieces of about this many bytes.
const STREAM_PIECE: usize = 64 * 1024;
/// Pieces waiting for a slow reader; the producer pauses behind them.
const STREAM_QUEUE: usize = 4;
/// A reader that takes no piece for this long is given up on, so it holds no thread for ever.
const STREAM_STALL: Duration = Duration::from_secs(30);

/// A FeatureCollection written while it is read: `produce` runs on a blocking thread, hands each
/// Feature to the sink it is given, and returns the collection's other members (paging). Memory
/// stays at a few pieces whatever the size. An error once the answer has started (the reader
/// went away or stalled, the store failed) ends the body early, so the document is visibly
/// incomplete, never silently short; it is logged.
pub fn streamed<F>(produce: F) -> Response
where
    F: FnOnce(&mut dyn FnMut(Value) -> Result<(), ApiError>) -> Result<Value, ApiError>
        + Send
        + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_QUEUE);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let send = |piece: Vec<u8>| -> Result<(), ApiError> {
            match runtime.block_on(tokio::time::timeout(STREAM_STALL, tx.send(piece.into()))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(ApiError::Internal("the reader went away".into())),
                Err(_) => Err(ApiError::Internal(format!(
                    "the reader took nothing for {} s",
                    STREAM_STALL.as_secs()
                ))),
            }
        };
        let mut piece = br#"{"type":"FeatureCollection","features":["#.to_vec();
        let mut first = true;
        let result = produce(&mut |feature| {
            if !std::mem::take(&mut first) {
                piece.push(b',');
            }
            serde_json::to_writer(&mut piece, &feature)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if piece.len() >= STREAM_PIECE {
                send(std::mem::take(&mut piece))?;
            }
            Ok(())
        });
        let ended = result.and_then(|members| {
            piece.push(b']');
            for (name, value) in members.as_object().into_iter().flatten() {
                piece.extend_from_slice(format!(",{}:{value}", json!(name)).as_bytes());
            }
            piece.push(b'}');
            send(piece)
        });
        if let Err(e) = ended {
            tracing::warn!(error = %e, "a streamed GeoJSON answer ended early");
        }
    });
    // Fused: a body may be polled again after its end (the gzip layer does), which an unfold
    // alone does not allow.
    let pieces =
        futures_util::StreamExt::fuse(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|piece| (Ok::<_, Infallible>(piece), rx))
        }));
    let mut response = Body::from_stream(pieces).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_collection_is_one_document_with_its_members() {
        let response = streamed(|sink| {
            for i in 0..5_000 {
                sink(json!({"type": "Feature", "id": i, "geometry": null, "properties": {}}))?;
            }
            Ok(json!({"next_cursor": "00ff", "note": "a \"quoted\" one"}))
        });
        assert_eq!(response.headers()[header::CONTENT_TYPE], MEDIA_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert!(bytes.len() > STREAM_PIECE, "spans several pieces");
        let body: Value = serde_json::from_slice(&bytes).expect("one JSON document");
        assert_eq!(body["features"].as_array().map(Vec::len), Some(5_000));
        assert_eq!(body["features"][4_999]["id"], 4_999);
        assert_eq!(body["next_cursor"], "00ff");
        assert_eq!(body["note"], "a \"quoted\" one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_stops_producing_when_its_reader_goes_away() {
        let (done, outcome) = std::sync::mpsc::channel();
        let response = streamed(move |sink| {
            let mut accepted = 0usize;
            let ended = loop {
                let feature = json!({"type": "Feature", "properties": {"pad": "x".repeat(1_000)}});
                if let Err(e) = sink(feature) {
                    break Err(e);
                }
                accepted += 1;
                if accepted == 1_000_000 {
                    break Ok(());
                }
            };
            let _ = done.send((accepted, ended.is_err()));
            ended.map(|()| json!({}))
        });
        drop(response);
        let (accepted, stopped) = tokio::task::spawn_blocking(move || {
            outcome
                .recv_timeout(Duration::from_secs(60))
                .expect("the producer ended")
        })
        .await
        .expect("join");
        assert!(stopped, "the producer was told the reader left");
        assert!(accepted < 1_000, "it went on for {accepted} features");
    }

    #[test]
    fn rings_close_into_polygons_and_small_ones_degrade() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let polygon = ring_geometry(&square);
        assert_eq!(polygon["type"], "Polygon");
        let ring = polygon["coordinates"][0].as_array().expect("ring");
        assert_eq!(ring.len(), 5);
        assert_eq!(ring[0], ring[4]);
        assert_eq!(ring_geometry(&square[..1])["type"], "Point");
        assert_eq!(ring_geometry(&square[..2])["type"], "LineString");
        assert!(ring_geometry(&[]).is_null());
    }
}
