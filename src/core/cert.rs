//! Development certificates that browsers accept through `serverCertificateHashes`: ECDSA P-256,
//! valid at most 14 days (the W3C rule), with the SHA-256 hash of the DER to pin.

use std::net::IpAddr;

use super::error::{Error, ErrorCode, Result};

/// Longest validity browsers accept for a hash-pinned certificate.
pub const MAX_DAYS: u32 = 14;

/// A generated certificate and key, both PEM, and the hash to give a browser.
#[derive(Debug, Clone)]
pub struct GeneratedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub sha256: [u8; 32],
}

/// Generates a self-signed certificate for `hostnames` (DNS names or IP literals), valid `days`.
pub fn generate(hostnames: &[String], days: u32) -> Result<GeneratedCert> {
    let Some(common_name) = hostnames.first() else {
        return Err(Error::new(ErrorCode::InvalidOption, "hostnames must name at least one host"));
    };
    if days == 0 || days > MAX_DAYS {
        return Err(Error::new(
            ErrorCode::InvalidOption,
            format!("days must be 1 to {MAX_DAYS} (browsers refuse longer)"),
        ));
    }
    let fail = |e: rcgen::Error| Error::new(ErrorCode::CertGeneration, format!("cannot generate the certificate: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::default();
    for host in hostnames {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) if !is_dns_name(host) => {
                return Err(Error::new(ErrorCode::InvalidOption, format!("{host:?} is not a valid hostname")));
            }
            Err(_) => rcgen::SanType::DnsName(
                host.as_str()
                    .try_into()
                    .map_err(|_| Error::new(ErrorCode::InvalidOption, format!("{host:?} is not a valid hostname")))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name.clone());
    // Backdate an hour for clock skew, and count the validity from there so that the whole
    // period stays within the limit browsers enforce.
    let not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_before = not_before;
    params.not_after = not_before + time::Duration::days(i64::from(days));
    let cert = params.self_signed(&key).map_err(fail)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    Ok(GeneratedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), sha256 })
}

/// Letters, digits, hyphens and dots, optionally a leading `*.` wildcard label.
fn is_dns_name(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_into_tls() {
        let generated = generate(&["localhost".into(), "127.0.0.1".into()], 10).unwrap();
        assert!(generated.cert_pem.contains("BEGIN CERTIFICATE"));
        let chain = crate::core::tls::parse_cert_chain(generated.cert_pem.as_bytes()).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &chain[0]);
        assert_eq!(digest.as_ref(), &generated.sha256);
        crate::core::tls::server_crypto(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes()).unwrap();
    }

    #[test]
    fn refuses_bad_arguments() {
        assert_eq!(generate(&[], 10).unwrap_err().code, ErrorCode::InvalidOption);
        assert_eq!(generate(&["a".into()], 15).unwrap_err().code, ErrorCode::InvalidOption);
        assert_eq!(generate(&["a".into()], 0).unwrap_err().code, ErrorCode::InvalidOption);
        assert_eq!(generate(&["bad host!".into()], 1).unwrap_err().code, ErrorCode::InvalidOption);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = generate(&["a.test".into()], 1).unwrap();
        let b = generate(&["b.test".into()], 1).unwrap();
        let err = crate::core::tls::server_crypto(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::KeyMismatch);
        assert_eq!(
            crate::core::tls::server_crypto(b"junk", a.key_pem.as_bytes()).unwrap_err().code,
            ErrorCode::InvalidCert
        );
        assert_eq!(
            crate::core::tls::server_crypto(a.cert_pem.as_bytes(), b"junk").unwrap_err().code,
            ErrorCode::InvalidKey
        );
    }
}
