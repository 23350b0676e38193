//! Certificates and keys from PEM into the rustls configuration QUIC needs: TLS 1.3 only, ALPN h3.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{Error, ErrorCode, Result};

/// Parses a PEM certificate chain (leaf first).
pub fn parse_cert_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let mut reader = pem;
    let chain = rustls_pemfile::certs(&mut reader)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::new(ErrorCode::InvalidCert, format!("cannot parse the certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::new(ErrorCode::InvalidCert, "the certificate PEM holds no CERTIFICATE block"));
    }
    Ok(chain)
}

/// Parses a PEM private key: PKCS#8, SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
pub fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    let mut reader = pem;
    rustls_pemfile::private_key(&mut reader)
        .map_err(|e| Error::new(ErrorCode::InvalidKey, format!("cannot parse the key PEM: {e}")))?
        .ok_or_else(|| Error::new(ErrorCode::InvalidKey, "the key PEM holds no PRIVATE KEY block"))
}

/// The rustls server configuration for HTTP/3.
pub fn server_crypto(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig> {
    let chain = parse_cert_chain(cert_pem)?;
    let key = parse_private_key(key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::new(ErrorCode::InvalidKey, format!("unsupported private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(Error::new(ErrorCode::KeyMismatch, "the private key does not belong to the certificate"));
        }
        Err(e) => return Err(Error::new(ErrorCode::InvalidCert, format!("cannot read the certificate: {e}"))),
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::new(ErrorCode::InvalidCert, format!("tls setup failed: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCert(Arc::new(certified))));
    config.alpn_protocols = vec![b"h3".to_vec()];
    // 0-RTT would let a replayed CONNECT open a session; keep it off.
    config.max_early_data_size = 0;
    Ok(config)
}

/// Serves the one configured certificate whatever name the client asks for: the server has a
/// single identity, and browsers pinning by hash do not send a useful SNI for IP literals.
#[derive(Debug)]
struct OneCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}
