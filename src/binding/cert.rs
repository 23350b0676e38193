use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use super::error::to_js;
use crate::core::cert;

/// A generated development certificate.
#[napi(object)]
pub struct GeneratedCertificate {
    /// The certificate, PEM.
    pub cert: String,
    /// The private key (PKCS#8), PEM.
    pub key: String,
    /// SHA-256 of the certificate's DER, for `serverCertificateHashes`.
    pub sha256: Buffer,
}

/// Generates an ECDSA P-256 self-signed certificate for `hostnames`, valid `days` (at most 14).
#[napi(catch_unwind)]
pub fn generate_certificate(hostnames: Vec<String>, days: u32) -> napi::Result<GeneratedCertificate> {
    let generated = cert::generate(&hostnames, days).map_err(to_js)?;
    Ok(GeneratedCertificate {
        cert: generated.cert_pem,
        key: generated.key_pem,
        sha256: generated.sha256.to_vec().into(),
    })
}
