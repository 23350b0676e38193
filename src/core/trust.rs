//! How a client decides to trust a server: the Web PKI (roots, with the usual name and chain
//! checks), or the W3C `serverCertificateHashes` rule, under which a certificate nobody signed is
//! accepted when its SHA-256 hash was given and it is the kind browsers accept that way (ECDSA
//! P-256, valid for at most 14 days, valid now). The rustls configuration for HTTP/3 comes out.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};

use super::error::{Error, ErrorCode, Result};
use super::tls::parse_cert_chain;

/// The longest validity a hash-pinned certificate may have (W3C WebTransport, "verify a
/// certificate hash"): short-lived, because nothing can revoke it.
pub const MAX_PINNED_VALIDITY: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Whom a client trusts.
#[derive(Clone)]
pub enum ServerTrust {
    /// Certificates chaining to one of these roots and naming the server.
    Roots(Arc<RootCertStore>),
    /// Exactly the certificates with these SHA-256 hashes (the W3C rules apply).
    Hashes(Vec<[u8; 32]>),
}

impl fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Roots(roots) => write!(f, "Roots({} certificates)", roots.len()),
            Self::Hashes(hashes) => write!(f, "Hashes({})", hashes.len()),
        }
    }
}

/// Adds every certificate of PEM text to `roots`; fails on text that holds none or one that is
/// not a usable trust anchor.
pub fn add_pem_roots(roots: &mut RootCertStore, pem: &[u8]) -> Result<()> {
    for cert in parse_cert_chain(pem)? {
        roots.add(cert).map_err(|e| Error::new(ErrorCode::InvalidCert, format!("cannot use a CA certificate: {e}")))?;
    }
    Ok(())
}

/// Why a connection's verifier refused the server's certificate, in words. The handshake error
/// quinn reports carries only rustls's debug dump of it.
#[derive(Debug, Clone, Default)]
pub struct Refusal(Arc<Mutex<Option<String>>>);

impl Refusal {
    fn set(&self, why: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The refusal, if the certificate was refused.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The rustls client configuration for HTTP/3 (TLS 1.3, ALPN h3, no 0-RTT) under `trust`; a
/// refused certificate is explained in `refusal`.
pub fn client_crypto(trust: &ServerTrust, refusal: &Refusal) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::new(ErrorCode::InvalidOption, format!("tls setup failed: {e}")))?;
    let check = match trust {
        ServerTrust::Roots(roots) => Check::Roots(
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| Error::new(ErrorCode::InvalidOption, format!("cannot use the trusted roots: {e}")))?,
        ),
        ServerTrust::Hashes(hashes) => Check::Hashes(hashes.clone()),
    };
    let verifier = Arc::new(Verifier { check, provider, refusal: refusal.clone() });
    let mut config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    config.alpn_protocols = vec![b"h3".to_vec()];
    Ok(config)
}

fn explain(error: &rustls::Error, server_name: &ServerName<'_>) -> String {
    let name = server_name.to_str();
    let why = match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired".to_string(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "it is not valid yet".to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("it is not valid for {name}")
            }
            CertificateError::Revoked => "it is revoked".to_string(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "it is not meant for a TLS server".to_string()
            }
            CertificateError::BadEncoding => "it cannot be parsed".to_string(),
            // Unknown issuer, or a signature none of the roots made: no trusted chain either way.
            _ => "it is not signed by a trusted root (pin a self-signed certificate with \
                  serverCertificateHashes, or add its CA with the ca option)"
                .to_string(),
        },
        other => other.to_string(),
    };
    format!("the server's certificate for {name} is not trusted: {why}")
}

/// Why a pinned certificate was refused; rustls carries the text into the handshake's error.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(message: impl Into<String>) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(Refused(message.into())))))
}

/// How the server's certificate is judged: the Web PKI, or the pinned hashes.
#[derive(Debug)]
enum Check {
    Roots(Arc<rustls::client::WebPkiServerVerifier>),
    Hashes(Vec<[u8; 32]>),
}

/// Verifies under [`Check`] and puts a refusal in words. Either way the handshake's signature is
/// checked with the certificate's key, so a server must hold the key of the certificate it shows.
#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<rustls::crypto::CryptoProvider>,
    refusal: Refusal,
}

/// Checks the W3C rules on a certificate whose hash was pinned, at `now`.
pub fn check_pinned_certificate(der: &[u8], now: SystemTime) -> std::result::Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the server's certificate cannot be parsed: {e}"))?;
    let spki = cert.public_key();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve != Some(OID_EC_P256) {
        return Err(
            "the pinned certificate's key is not ECDSA P-256, the only kind serverCertificateHashes accepts".into()
        );
    }
    let validity = cert.validity();
    let (from, until) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    let span = until.saturating_sub(from);
    if span < 0 || span.unsigned_abs() > MAX_PINNED_VALIDITY.as_secs() {
        return Err(format!(
            "the pinned certificate is valid for {} days; serverCertificateHashes accepts at most 14",
            span / 86_400
        ));
    }
    let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    if now < from {
        return Err("the pinned certificate is not valid yet".into());
    }
    if now > until {
        return Err("the pinned certificate has expired".into());
    }
    Ok(())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let hashes = match &self.check {
            Check::Roots(webpki) => {
                return webpki
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .inspect_err(|e| {
                        self.refusal.set(explain(e, server_name));
                    });
            }
            Check::Hashes(hashes) => hashes,
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity);
        let verdict = if hashes.iter().any(|h| h.as_slice() == digest.as_ref()) {
            check_pinned_certificate(end_entity, UNIX_EPOCH + Duration::from_secs(now.as_secs()))
        } else {
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            Err(format!("the server's certificate (SHA-256 {hex}) matches none of serverCertificateHashes"))
        };
        verdict.map(|()| ServerCertVerified::assertion()).map_err(|why| {
            self.refusal.set(why.clone());
            refuse(why)
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(alg: &'static rcgen::SignatureAlgorithm, days: i64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now - time::Duration::hours(1) + time::Duration::days(days);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn pinned_rules_take_short_lived_p256_only() {
        let now = SystemTime::now();
        assert_eq!(check_pinned_certificate(&certificate(&rcgen::PKCS_ECDSA_P256_SHA256, 14), now), Ok(()));
        let long = check_pinned_certificate(&certificate(&rcgen::PKCS_ECDSA_P256_SHA256, 15), now).unwrap_err();
        assert!(long.contains("at most 14"), "{long}");
        let p384 = check_pinned_certificate(&certificate(&rcgen::PKCS_ECDSA_P384_SHA384, 5), now).unwrap_err();
        assert!(p384.contains("not ECDSA P-256"), "{p384}");
        let ed = check_pinned_certificate(&certificate(&rcgen::PKCS_ED25519, 5), now).unwrap_err();
        assert!(ed.contains("not ECDSA P-256"), "{ed}");
        let later = now + Duration::from_secs(20 * 24 * 3600);
        let expired = check_pinned_certificate(&certificate(&rcgen::PKCS_ECDSA_P256_SHA256, 5), later).unwrap_err();
        assert!(expired.contains("expired"), "{expired}");
        let earlier = now - Duration::from_secs(24 * 3600);
        let early = check_pinned_certificate(&certificate(&rcgen::PKCS_ECDSA_P256_SHA256, 5), earlier).unwrap_err();
        assert!(early.contains("not valid yet"), "{early}");
        assert!(check_pinned_certificate(b"not a certificate", now).unwrap_err().contains("cannot be parsed"));
    }
}
