//! API keys: who may call which routes.
//!
//! A key arrives as `X-API-Key: <key>` or `Authorization: Bearer <key>`. The configuration holds
//! only its SHA-256, so a leaked config file leaks no key; the key itself is never logged, only
//! the name it was configured under. No key is 401, a key whose role is too low is 403.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::config::{AuthSettings, Role};

/// The configured keys, by hash.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: HashMap<[u8; 32], (String, Role)>,
    read_open: bool,
}

/// The name of the key a request was let in with, for handlers that want to record it.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl KeyRing {
    /// The keys in `settings`, which [`crate::config::Settings::validate`] has checked.
    pub fn new(settings: &AuthSettings) -> Self {
        let by_hash = settings
            .keys
            .iter()
            .filter_map(|k| {
                let bytes: [u8; 32] = hex::decode(&k.sha256).ok()?.try_into().ok()?;
                Some((bytes, (k.name.clone(), k.role)))
            })
            .collect();
        Self {
            by_hash,
            read_open: settings.read_open,
        }
    }

    /// No keys configured: every route is open.
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Lets the request through, or says why not. `Ok(None)` is an open route.
    fn check(&self, headers: &HeaderMap, need: Role) -> Result<Option<Caller>, ApiError> {
        if self.is_open() || (need == Role::Read && self.read_open) {
            return Ok(None);
        }
        let Some(key) = presented(headers) else {
            return Err(ApiError::Unauthorized(
                "this route needs an API key: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`",
            ));
        };
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let Some((name, role)) = self.by_hash.get(&hash) else {
            return Err(ApiError::Unauthorized(
                "the API key is not one this service knows",
            ));
        };
        if *role < need {
            return Err(ApiError::Forbidden(format!(
                "the key `{name}` has the role `{}`; this route needs `{}`",
                role.as_str(),
                need.as_str()
            )));
        }
        Ok(Some(Caller(name.clone())))
    }
}

fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().ok().map(str::trim);
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `router`'s routes, each requiring a key with at least `need`.
pub fn require<S>(router: Router<S>, keys: Arc<KeyRing>, need: Role) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.route_layer(middleware::from_fn_with_state((keys, need), gate))
}

async fn gate(
    State((keys, need)): State<(Arc<KeyRing>, Role)>,
    mut request: Request,
    next: Next,
) -> Response {
    match keys.check(request.headers(), need) {
        Ok(caller) => {
            if let Some(caller) = caller {
                tracing::debug!(key = %caller.0, "Authenticated.");
                request.extensions_mut().insert(caller);
            }
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

/// A fresh key: 32 random bytes from the kernel, hex-encoded with a `fsk_` prefix (so a key
/// pasted where it should not be is easy to spot), and its SHA-256 for the config.
pub fn new_key() -> std::io::Result<(String, String)> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let key = format!("fsk_{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    Ok((key, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeySetting;

    fn ring(read_open: bool) -> (KeyRing, String, String) {
        let (reader, reader_hash) = new_key().expect("key");
        let (writer, writer_hash) = new_key().expect("key");
        let settings = AuthSettings {
            read_open,
            allow_open: false,
            keys: vec![
                ApiKeySetting {
                    name: "dash".into(),
                    role: Role::Read,
                    sha256: reader_hash,
                },
                ApiKeySetting {
                    name: "bot".into(),
                    role: Role::Write,
                    sha256: writer_hash.to_ascii_uppercase(),
                },
            ],
        };
        (KeyRing::new(&settings), reader, writer)
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
        h
    }

    #[test]
    fn roles_order_and_both_headers_carry_a_key() {
        let (ring, reader, writer) = ring(false);
        let bearer = headers("authorization", &format!("Bearer {writer}"));
        let caller = ring.check(&bearer, Role::Write).expect("writer writes");
        assert_eq!(caller.map(|c| c.0).as_deref(), Some("bot"));
        assert!(
            ring.check(&bearer, Role::Read).is_ok(),
            "write includes read"
        );
        assert!(matches!(
            ring.check(&bearer, Role::Admin),
            Err(ApiError::Forbidden(_))
        ));
        let plain = headers("x-api-key", &reader);
        assert!(ring.check(&plain, Role::Read).is_ok());
        assert!(matches!(
            ring.check(&plain, Role::Write),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            ring.check(&HeaderMap::new(), Role::Read),
            Err(ApiError::Unauthorized(_))
        ));
        let wrong = headers("x-api-key", &format!("{reader}x"));
        assert!(matches!(
            ring.check(&wrong, Role::Read),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn open_reads_still_guard_writes_and_no_keys_opens_everything() {
        let (ring, ..) = ring(true);
        assert!(matches!(
            ring.check(&HeaderMap::new(), Role::Read),
            Ok(None)
        ));
        assert!(matches!(
            ring.check(&HeaderMap::new(), Role::Write),
            Err(ApiError::Unauthorized(_))
        ));
        let open = KeyRing::new(&AuthSettings {
            read_open: false,
            allow_open: false,
            keys: vec![],
        });
        assert!(matches!(
            open.check(&HeaderMap::new(), Role::Admin),
            Ok(None)
        ));
    }
}
