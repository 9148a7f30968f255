//! The operations map at `/map` (and `/`): a page, its script and style, and the libraries it
//! needs, all compiled into the binary, so it works where there is no internet (no CDN, no tile
//! server). MapLibre GL JS and the Natural Earth countries (world-atlas) are vendored at pinned
//! versions under `assets/map/vendor/` (`scripts/vendor-web.sh` fetches and checks them).
//!
//! The page itself holds no data and no key: it calls the read routes like any client, so
//! it needs read access (an API key typed into the page when keys are configured).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::ApiError;

/// A file served under `/map/`.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static [u8],
}

/// A file of `assets/map/`, served under the same path below `/map/`.
macro_rules! asset {
    ($path:literal, $media_type:literal) => {
        Asset {
            path: $path,
            media_type: $media_type,
            body: include_bytes!(concat!("assets/map/", $path)),
        }
    };
}

/// Everything the page loads. Vendored files have their version in their path, so browsers
/// may keep them for good; the page's own files are checked again after five minutes.
const ASSETS: [Asset; 6] = [
    asset!("map.js", "text/javascript; charset=utf-8"),
    asset!("map.css", "text/css; charset=utf-8"),
    asset!(
        "vendor/maplibre-gl-5.24.1/maplibre-gl.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "vendor/maplibre-gl-5.24.1/maplibre-gl.css",
        "text/css; charset=utf-8"
    ),
    asset!(
        "vendor/maplibre-gl-5.24.1/LICENSE.txt",
        "text/plain; charset=utf-8"
    ),
    asset!(
        "vendor/world-atlas-2.0.2/countries-50m.json",
        "application/json"
    ),
];

/// `GET /`: the map.
pub async fn root() -> Redirect {
    Redirect::to("/map")
}

/// `GET /map`: the page.
pub async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        include_str!("assets/map/index.html"),
    )
        .into_response()
}

/// `GET /map/{*path}`: one of the page's files.
pub async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.path == path)
        .ok_or(ApiError::NotFound {
            what: "map file",
            id: path.clone(),
        })?;
    let cache = if asset.path.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}
