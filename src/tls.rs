//! Trust for every HTTPS and gRPC-TLS peer: Weaviate (REST and gRPC), the schema registry,
//! webhook receivers and the OTLP collector. One crypto stack serves them all: rustls on
//! aws-lc-rs, rustls's default, which has post-quantum key exchange. Certificates are checked
//! against the system's roots plus the CA certificates of `tls.ca_file`, for a private CA.
//! Kafka's TLS is librdkafka's own (OpenSSL), set under `[kafka.client]`.

use std::sync::Arc;

use crate::config::TlsSettings;

/// A CA file that cannot be used, named with the reason.
#[derive(Debug, thiserror::Error)]
#[error("tls.ca_file `{path}`: {reason}")]
pub struct TlsError {
    path: String,
    reason: String,
}

/// The roots to trust beyond the system's, read and checked once.
#[derive(Clone, Default)]
pub struct Trust {
    pem: Option<Arc<Vec<u8>>>,
    certificates: Vec<reqwest::Certificate>,
}

impl Trust {
    /// Reads `tls.ca_file` (if set). A file that cannot be read, or holds no certificate,
    /// stops the start with its path and the reason.
    pub fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        let path = settings.ca_file.trim();
        if path.is_empty() {
            return Ok(Self::default());
        }
        let error = |reason: String| TlsError {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| error(format!("not PEM certificates: {e}")))?;
        if certificates.is_empty() {
            return Err(error("holds no PEM certificate".to_owned()));
        }
        Ok(Self {
            pem: Some(Arc::new(pem)),
            certificates,
        })
    }

    /// An async HTTP client builder that trusts these roots (and the system's).
    pub fn http(&self) -> reqwest::ClientBuilder {
        self.certificates
            .iter()
            .fold(reqwest::Client::builder(), |builder, certificate| {
                builder.add_root_certificate(certificate.clone())
            })
    }

    /// A blocking HTTP client builder that trusts these roots (and the system's).
    pub fn blocking_http(&self) -> reqwest::blocking::ClientBuilder {
        self.certificates.iter().fold(
            reqwest::blocking::Client::builder(),
            |builder, certificate| builder.add_root_certificate(certificate.clone()),
        )
    }

    /// `endpoint` with TLS when its scheme is `https` (the system's roots and these), as it is
    /// otherwise.
    pub fn grpc(
        &self,
        endpoint: tonic::transport::Endpoint,
    ) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = &self.pem {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem.as_slice()));
        }
        endpoint.tls_config(tls)
    }
}
