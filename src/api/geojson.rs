//! GeoJSON (RFC 7946) answers: format negotiation (`?f=geojson` or `Accept:
//! application/geo+json`) and the geometries of the places FireSight serves.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;

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

#[cfg(test)]
mod tests {
    use super::*;

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
