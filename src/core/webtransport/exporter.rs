//! WebTransport keying material exporters (draft-ietf-webtrans-http3 §4.8): what the TLS
//! exporter is given, so that every session of a connection derives its own material. Used by
//! [`Session::export_keying_material`](super::Session::export_keying_material).

use crate::core::error::{Error, ErrorCode};

/// The TLS exporter label of WebTransport keying material (draft-ietf-webtrans-http3 §4.8).
pub(crate) const EXPORTER_LABEL: &[u8] = b"EXPORTER-WebTransport";

/// Longest application label or context of [`Session::export_keying_material`](super::Session::export_keying_material): the exporter
/// context gives each a one-byte length.
pub const MAX_EXPORTER_INPUT: usize = 255;

/// Most bytes [`Session::export_keying_material`](super::Session::export_keying_material) gives at once: what Chromium and Firefox allow
/// (the W3C API asks at least 4096 of an implementation), well within TLS 1.3's limit.
pub const MAX_EXPORTER_OUTPUT: usize = 4096;

/// The WebTransport Exporter Context struct: session id (64 bits, network order), the
/// application label and context, each after its 8-bit length.
pub fn exporter_context(session_id: u64, label: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
    let length_of = |what: &str, bytes: &[u8]| {
        u8::try_from(bytes.len()).map_err(|_| {
            Error::new(
                ErrorCode::InvalidOption,
                format!("{what} must be at most {MAX_EXPORTER_INPUT} bytes, got {}", bytes.len()),
            )
        })
    };
    let (label_length, context_length) = (length_of("label", label)?, length_of("context", context)?);
    let mut out = Vec::with_capacity(10 + label.len() + context.len());
    out.extend_from_slice(&session_id.to_be_bytes());
    out.push(label_length);
    out.extend_from_slice(label);
    out.push(context_length);
    out.extend_from_slice(context);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_context_is_the_drafts_struct() {
        let context = exporter_context(0x0102_0304_0506_0708, b"ab", b"xyz").unwrap();
        assert_eq!(context, [1, 2, 3, 4, 5, 6, 7, 8, 2, b'a', b'b', 3, b'x', b'y', b'z']);
        // An omitted context is an empty one (draft §4.8).
        assert_eq!(exporter_context(4, b"", b"").unwrap(), [0, 0, 0, 0, 0, 0, 0, 4, 0, 0]);
    }

    #[test]
    fn exporter_inputs_longer_than_a_byte_can_count_are_refused() {
        assert!(exporter_context(0, &[0; 255], &[0; 255]).is_ok());
        let label = exporter_context(0, &[0; 256], b"").unwrap_err();
        assert_eq!(
            (label.code, label.message.as_str()),
            (ErrorCode::InvalidOption, "label must be at most 255 bytes, got 256")
        );
        let context = exporter_context(0, b"", &[0; 256]).unwrap_err();
        assert_eq!(context.message, "context must be at most 255 bytes, got 256");
    }
}
