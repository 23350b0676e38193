//! SHA-256 certificate hashes as the tools read and print them (lower-case hex).

/// Lower-case hex, two digits a byte: how every tool prints a certificate hash.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a hash argument was refused; each tool words its own message, as it always has.
#[derive(Debug, PartialEq, Eq)]
pub enum HashError {
    /// Not 64 characters once `:` and whitespace are dropped (the count is in bytes).
    Length(usize),
    /// 64 bytes, but not all ASCII: a pair of them could not be sliced as two digits.
    NotAscii,
    /// A pair that `u8::from_str_radix` refuses.
    NotHex,
}

/// A SHA-256 hash written as 64 hex digits; `:` separators and whitespace are allowed, as in the
/// fingerprints browsers and openssl print.
pub fn parse_sha256(s: &str) -> Result<[u8; 32], HashError> {
    let clean: String = s.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
    if clean.len() != 64 {
        return Err(HashError::Length(clean.len()));
    }
    if !clean.is_ascii() {
        return Err(HashError::NotAscii);
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&clean[2 * i..2 * i + 2], 16).map_err(|_| HashError::NotHex)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip() {
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let text = hex(&bytes);
        assert_eq!(text.len(), 64);
        assert_eq!(parse_sha256(&text).unwrap().to_vec(), bytes);
        let spaced: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_sha256(&spaced.join(":")).unwrap().to_vec(), bytes);
    }

    #[test]
    fn bad_hashes_say_why() {
        assert_eq!(parse_sha256("ab"), Err(HashError::Length(2)));
        assert_eq!(parse_sha256(&"zz".repeat(32)), Err(HashError::NotHex));
        assert_eq!(parse_sha256(&format!("{}é", "a".repeat(62))), Err(HashError::NotAscii));
    }
}
