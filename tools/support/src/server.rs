//! What the echo and test servers share: how they are told where to listen and with which
//! certificate, and how they tell a runner (bench/run.mjs, __test__/support/peer-servers.mjs) that
//! they are up.

use std::io::{Read, Write};

use crate::json::write_str;

/// `--cert FILE --key FILE` (PEM, both or neither) and `--port N` (0: any free port).
#[derive(Default)]
pub struct Listen {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub port: u16,
}

impl Listen {
    /// Takes `arg` and its value from `rest` if it is one of these options; false if it is not,
    /// so the server's own options and its "unknown argument" error stay its own.
    pub fn take(&mut self, arg: &str, rest: &mut impl Iterator<Item = String>) -> Result<bool, String> {
        let mut value = |name: &str| rest.next().ok_or_else(|| format!("{name} needs a value"));
        match arg {
            "--cert" => self.cert = Some(value("--cert")?),
            "--key" => self.key = Some(value("--key")?),
            "--port" => self.port = value("--port")?.parse().map_err(|_| "bad --port".to_string())?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Once every argument is read: a certificate without its key (or the reverse) is a mistake,
    /// not a request for a generated one.
    pub fn check(&self) -> Result<(), String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err("--cert and --key go together".into());
        }
        Ok(())
    }

    /// The PEM files given, if any.
    pub fn pem_files(&self) -> Option<(&str, &str)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// Prints `{"ready":true,"port":N,"pid":N,"certHash":"<hex>",...extra}` and flushes: the runners
/// wait for this line (stdout may be a pipe, so it is flushed at once) and pin the hash.
/// `extra` values are JSON already.
pub fn print_ready(port: u16, cert_hash: &str, extra: &[(&str, String)]) {
    let mut line = format!("{{\"ready\":true,\"port\":{port},\"pid\":{},\"certHash\":", std::process::id());
    write_str(&mut line, cert_hash);
    for (k, v) in extra {
        line.push(',');
        write_str(&mut line, k);
        line.push(':');
        line.push_str(v);
    }
    line.push('}');
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Exits the process once stdin reaches its end, so that a runner that dies (even by SIGKILL)
/// takes its servers with it instead of leaving them bound.
pub fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

/// A certificate for `localhost` and `127.0.0.1`, and its key.
#[cfg(feature = "self-signed")]
pub struct SelfSigned {
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
}

/// A self-signed ECDSA P-256 certificate valid for 10 days: the key type and lifetime that
/// certificate-hash pinning (W3C serverCertificateHashes) accepts, so clients can pin it.
#[cfg(feature = "self-signed")]
pub fn self_signed() -> Result<SelfSigned, String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| e.to_string())?;
    // An hour back, so a client clock slightly behind still finds it valid; 10 days is within the
    // 14 days that certificate-hash pinning allows.
    let now = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_before = now;
    params.not_after = now + time::Duration::days(10);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(SelfSigned { cert_der: cert.der().to_vec(), key_pkcs8_der: key.serialize_der() })
}

/// The identity a wtransport server presents: the PEM files given, else [`self_signed`].
#[cfg(feature = "wtransport")]
pub async fn wtransport_identity(listen: &Listen) -> Result<wtransport::Identity, String> {
    use wtransport::tls::{Certificate, CertificateChain, PrivateKey};

    if let Some((cert, key)) = listen.pem_files() {
        return wtransport::Identity::load_pemfiles(cert, key)
            .await
            .map_err(|e| format!("cannot load {cert} / {key}: {e}"));
    }
    let generated = self_signed()?;
    let cert = Certificate::from_der(generated.cert_der).map_err(|e| e.to_string())?;
    Ok(wtransport::Identity::new(CertificateChain::single(cert), PrivateKey::from_der_pkcs8(generated.key_pkcs8_der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_options_are_taken_and_others_left() {
        let mut listen = Listen::default();
        let mut rest = ["c.pem", "k.pem", "8443", "x"].map(String::from).into_iter();
        assert!(listen.take("--cert", &mut rest).unwrap());
        assert!(listen.check().is_err());
        assert!(listen.take("--key", &mut rest).unwrap());
        assert!(listen.take("--port", &mut rest).unwrap());
        assert!(!listen.take("--protocols", &mut rest).unwrap());
        assert_eq!((listen.pem_files(), listen.port), (Some(("c.pem", "k.pem")), 8443));
        assert!(listen.check().is_ok());
        assert_eq!(listen.take("--port", &mut rest), Err("bad --port".to_string()));
        assert_eq!(listen.take("--key", &mut rest), Err("--key needs a value".to_string()));
    }
}
