//! The stateless-reset key and the address-validation token key, from the application's `secret`
//! or at random.
//!
//! A stateless reset is only accepted by a client if its token was derived, when the connection
//! began, from the same key; a restarted server (or another host behind the same balancer) can
//! therefore end a connection it has no state for only if it shares that key. The same holds for
//! the tokens quinn hands out (Retry, NEW_TOKEN). Both keys come from one secret through HKDF
//! with distinct labels, so neither reveals the other.

use std::sync::Arc;

use ring::{hkdf, hmac};

use crate::core::error::{Error, ErrorCode, Result};

/// Shortest secret accepted: HKDF can only spread the entropy it is given.
pub const MIN_SECRET: usize = 32;

/// Fixed salt: it only separates our use of the secret from any other use of the same bytes.
const SALT: &[u8] = b"webtransport-napi fleet keys v1";

/// Keys every endpoint of a server, and every server sharing the secret, uses alike.
#[derive(Clone)]
pub struct EndpointKeys {
    pub reset: Arc<hmac::Key>,
    pub token: Arc<hkdf::Prk>,
}

impl std::fmt::Debug for EndpointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointKeys(..)")
    }
}

impl EndpointKeys {
    /// Derives both keys from `secret`, or makes fresh random ones without it.
    pub fn new(secret: Option<&[u8]>) -> Result<Self> {
        let material = match secret {
            Some(secret) if secret.len() < MIN_SECRET => {
                return Err(Error::new(
                    ErrorCode::InvalidOption,
                    format!("secret must be at least {MIN_SECRET} bytes, got {}", secret.len()),
                ))
            }
            Some(secret) => secret.to_vec(),
            None => {
                let mut fresh = vec![0u8; 64];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
                    .map_err(|_| Error::new(ErrorCode::Bind, "no randomness for the endpoint keys"))?;
                fresh
            }
        };
        let master = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&material);
        let expand_err = || Error::new(ErrorCode::Bind, "cannot derive the endpoint keys");
        let reset: hmac::Key =
            master.expand(&[b"stateless reset"], hmac::HMAC_SHA256).map_err(|_| expand_err())?.into();
        let token: hkdf::Prk = master.expand(&[b"address token"], hkdf::HKDF_SHA256).map_err(|_| expand_err())?.into();
        Ok(Self { reset: Arc::new(reset), token: Arc::new(token) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset_tag(keys: &EndpointKeys) -> Vec<u8> {
        hmac::sign(&keys.reset, b"connection id").as_ref().to_vec()
    }

    #[test]
    fn the_same_secret_gives_the_same_keys() {
        let secret = [5u8; 32];
        let a = EndpointKeys::new(Some(&secret)).unwrap();
        let b = EndpointKeys::new(Some(&secret)).unwrap();
        assert_eq!(reset_tag(&a), reset_tag(&b));
        let c = EndpointKeys::new(Some(&[6u8; 32])).unwrap();
        assert_ne!(reset_tag(&a), reset_tag(&c));
        let random = EndpointKeys::new(None).unwrap();
        assert_ne!(reset_tag(&a), reset_tag(&random));
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = EndpointKeys::new(Some(b"too short")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidOption);
    }
}
