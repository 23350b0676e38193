//! Wire constants and small codecs of WebTransport over HTTP/3 (draft-ietf-webtrans-http3): its
//! SETTINGS, capsules and error codes, kept in one place so every value can be checked against
//! its source. HTTP/3's own are in `h3::proto`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::core::config::FlowLimits;
use crate::core::h3::proto::{frame, put_frame, PeerSettings};
use crate::core::h3::request::RequestInfo;
use crate::core::h3::varint;

/// WebTransport SETTINGS identifiers, every draft's.
pub mod setting {
    /// ENABLE_WEBTRANSPORT of draft-02 to draft-06 (Chromium, Firefox).
    pub const ENABLE_WEBTRANSPORT_DRAFT02: u64 = 0x2b603742;
    /// WEBTRANSPORT_MAX_SESSIONS of draft-07 to draft-12.
    pub const WEBTRANSPORT_MAX_SESSIONS_DRAFT07: u64 = 0xc671706a;
    /// SETTINGS_WT_ENABLED, newer drafts (webtransport-go >= 0.11).
    pub const WT_ENABLED: u64 = 0x2c7cf000;
    /// SETTINGS_WT_MAX_SESSIONS, draft-14 on (Safari wants it >= 1).
    pub const WT_MAX_SESSIONS: u64 = 0x14e9cd29;
    /// Initial per-session flow-control limits (draft-14 on).
    pub const WT_INITIAL_MAX_DATA: u64 = 0x2b61;
    pub const WT_INITIAL_MAX_STREAMS_UNI: u64 = 0x2b64;
    pub const WT_INITIAL_MAX_STREAMS_BIDI: u64 = 0x2b65;
}

/// Capsule types carried in DATA frames on a CONNECT stream.
pub mod capsule {
    pub const CLOSE_WEBTRANSPORT_SESSION: u64 = 0x2843;
    pub const DRAIN_WEBTRANSPORT_SESSION: u64 = 0x78ae;
    /// Flow control (draft §5.6), each carrying one varint.
    pub const WT_MAX_DATA: u64 = 0x190b4d3d;
    /// Defined for HTTP/2 only; HTTP/3 forbids it.
    pub const WT_MAX_STREAM_DATA: u64 = 0x190b4d3e;
    pub const WT_MAX_STREAMS_BIDI: u64 = 0x190b4d3f;
    pub const WT_MAX_STREAMS_UNI: u64 = 0x190b4d40;
    pub const WT_DATA_BLOCKED: u64 = 0x190b4d41;
    /// Defined for HTTP/2 only; HTTP/3 forbids it.
    pub const WT_STREAM_DATA_BLOCKED: u64 = 0x190b4d42;
    pub const WT_STREAMS_BLOCKED_BIDI: u64 = 0x190b4d43;
    pub const WT_STREAMS_BLOCKED_UNI: u64 = 0x190b4d44;
}

/// WebTransport error codes, in HTTP/3's error space.
pub mod code {
    pub const WT_BUFFERED_STREAM_REJECTED: u64 = 0x3994bd84;
    pub const WT_SESSION_GONE: u64 = 0x170d7b68;
    pub const WT_FLOW_CONTROL_ERROR: u64 = 0x045d4487;
    /// First code of the range that carries WebTransport application error codes.
    pub const WT_APPLICATION_FIRST: u64 = 0x52e4a40fa8db;
    pub const WT_APPLICATION_LAST: u64 = 0x52e5ac983162;
}

/// Maps a WebTransport application error code into the HTTP/3 error space, skipping the reserved
/// `0x1f * N + 0x21` codepoints as the draft requires.
pub fn app_code_to_h3(code: u32) -> u64 {
    let code = u64::from(code);
    code::WT_APPLICATION_FIRST + code + code / 0x1e
}

/// Inverse of [`app_code_to_h3`]; `None` for codes outside the range or on a reserved codepoint,
/// which a peer must not send for a WebTransport stream.
pub fn h3_to_app_code(h3: u64) -> Option<u32> {
    if !(code::WT_APPLICATION_FIRST..=code::WT_APPLICATION_LAST).contains(&h3) {
        return None;
    }
    if (h3 - 0x21).is_multiple_of(0x1f) {
        return None;
    }
    let shifted = h3 - code::WT_APPLICATION_FIRST;
    u32::try_from(shifted - shifted / 0x1f).ok()
}

/// The WebTransport SETTINGS this server sends, for every draft a client may speak: session
/// limits are the configured maximum; `flow` is the initial per-session flow-control limits,
/// which a client that declares flow control (Safari 26.4+, draft-14 on) otherwise takes to be 0.
pub fn server_settings(max_sessions: u64, flow: &FlowLimits) -> Vec<(u64, u64)> {
    vec![
        (setting::ENABLE_WEBTRANSPORT_DRAFT02, 1),
        (setting::WT_ENABLED, 1),
        (setting::WT_MAX_SESSIONS, max_sessions.max(1)),
        (setting::WT_INITIAL_MAX_DATA, flow.max_data),
        (setting::WT_INITIAL_MAX_STREAMS_BIDI, flow.max_streams_bidi),
        (setting::WT_INITIAL_MAX_STREAMS_UNI, flow.max_streams_uni),
    ]
}

/// The `:protocol` values that open a WebTransport session: `webtransport` (draft-02 to -14, what
/// Chromium and Firefox send) and `webtransport-h3` (draft-15 on).
pub const PROTOCOL_TOKENS: [&str; 2] = ["webtransport", "webtransport-h3"];

/// Whether a request asks for a WebTransport session (an extended CONNECT with either token).
pub fn is_session_request(request: &RequestInfo) -> bool {
    request.method == "CONNECT" && PROTOCOL_TOKENS.contains(&request.protocol.as_str())
}

/// The status and headers a refusal goes out with. An application's 404 says that nothing here
/// takes WebTransport, which draft-02 answers with 404 and draft-15 on with 405 (Method Not
/// Allowed): each client gets its own draft's answer, by the token it sent. A 405 must list the
/// allowed methods (RFC 9110 §15.5.6); an empty `allow` says none, true of a server that answers
/// every plain request with 404, unless the application gave its own.
pub fn refusal(request: &RequestInfo, status: u16, mut headers: Vec<(String, String)>) -> (u16, Vec<(String, String)>) {
    if status != 404 || request.protocol != "webtransport-h3" {
        return (status, headers);
    }
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("allow")) {
        headers.push(("allow".into(), String::new()));
    }
    (405, headers)
}

/// Whether a peer announced WebTransport in any draft's form.
pub fn supports_webtransport(settings: &PeerSettings) -> bool {
    settings.get(setting::ENABLE_WEBTRANSPORT_DRAFT02) == Some(1)
        || settings.get(setting::WT_ENABLED) == Some(1)
        || settings.get(setting::WEBTRANSPORT_MAX_SESSIONS_DRAFT07).is_some_and(|n| n > 0)
        || settings.get(setting::WT_MAX_SESSIONS).is_some_and(|n| n > 0)
}

/// Whether a peer speaks a WebTransport draft from before flow control (draft-02 to -07, what
/// Chromium and Firefox send): such clients pool sessions on a connection without it.
pub fn speaks_legacy_webtransport(settings: &PeerSettings) -> bool {
    settings.get(setting::ENABLE_WEBTRANSPORT_DRAFT02) == Some(1)
        || settings.get(setting::WEBTRANSPORT_MAX_SESSIONS_DRAFT07).is_some_and(|n| n > 0)
}

/// Whether a peer announced WebTransport in the current drafts' form (draft-15 on: WT_ENABLED or
/// WT_MAX_SESSIONS), whose sessions a client opens with the `webtransport-h3` token.
pub fn speaks_current_webtransport(settings: &PeerSettings) -> bool {
    settings.get(setting::WT_ENABLED) == Some(1) || settings.get(setting::WT_MAX_SESSIONS).is_some_and(|n| n > 0)
}

/// A capsule read from a CONNECT stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capsule {
    Close {
        code: u32,
        reason: String,
    },
    Drain,
    /// A flow-control capsule (WT_MAX_DATA, WT_MAX_STREAMS, the BLOCKED ones, or one HTTP/3
    /// forbids, whose value is then 0) with its one value.
    Flow {
        kind: u64,
        value: u64,
    },
    /// A type this server does not act on; RFC 9297 says to skip it.
    Unknown(u64),
}

/// Why a capsule was refused. The draft makes each of these a session error (H3_MESSAGE_ERROR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapsuleError {
    CloseTooShort,
    ReasonTooLong,
    ReasonNotUtf8,
    TooLarge,
    /// A flow-control capsule whose body is not exactly one varint.
    BadFlowValue,
}

/// Longest close reason the draft allows, in bytes.
pub const MAX_CLOSE_REASON: usize = 1024;

/// Takes one whole capsule off the front of `buf`; `Ok(None)` when more bytes are needed.
/// `max_len` bounds what an unknown capsule may make us buffer.
pub fn take_capsule(buf: &mut BytesMut, max_len: usize) -> Result<Option<Capsule>, CapsuleError> {
    let Some((kind, kind_len)) = varint::decode_slice(buf) else {
        return Ok(None);
    };
    let Some((len, len_len)) = buf.get(kind_len..).and_then(varint::decode_slice) else {
        return Ok(None);
    };
    let header = kind_len + len_len;
    let len = usize::try_from(len).map_err(|_| CapsuleError::TooLarge)?;
    if len > max_len {
        return Err(CapsuleError::TooLarge);
    }
    if buf.len() < header + len {
        return Ok(None);
    }
    buf.advance(header);
    let mut body = buf.split_to(len);
    let capsule = match kind {
        capsule::CLOSE_WEBTRANSPORT_SESSION => {
            if body.len() < 4 {
                return Err(CapsuleError::CloseTooShort);
            }
            let code = body.get_u32();
            if body.len() > MAX_CLOSE_REASON {
                return Err(CapsuleError::ReasonTooLong);
            }
            let reason = String::from_utf8(body.to_vec()).map_err(|_| CapsuleError::ReasonNotUtf8)?;
            Capsule::Close { code, reason }
        }
        capsule::DRAIN_WEBTRANSPORT_SESSION => Capsule::Drain,
        capsule::WT_MAX_STREAM_DATA | capsule::WT_STREAM_DATA_BLOCKED => Capsule::Flow { kind, value: 0 },
        kind if (capsule::WT_MAX_DATA..=capsule::WT_STREAMS_BLOCKED_UNI).contains(&kind) => {
            let value = match varint::decode_slice(&body) {
                Some((value, len)) if len == body.len() => value,
                _ => return Err(CapsuleError::BadFlowValue),
            };
            Capsule::Flow { kind, value }
        }
        other => Capsule::Unknown(other),
    };
    Ok(Some(capsule))
}

/// A CLOSE_WEBTRANSPORT_SESSION capsule wrapped in the DATA frame that carries it on the stream.
/// `reason` is cut at a character boundary to the draft's 1024-byte limit.
pub fn close_capsule_frame(code: u32, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason[..end];
    let mut capsule = BytesMut::new();
    varint::encode(capsule::CLOSE_WEBTRANSPORT_SESSION, &mut capsule);
    varint::encode(4 + reason.len() as u64, &mut capsule);
    capsule.put_u32(code);
    capsule.put_slice(reason.as_bytes());
    let mut out = BytesMut::new();
    put_frame(frame::DATA, &capsule, &mut out);
    out.freeze()
}

/// A DRAIN_WEBTRANSPORT_SESSION capsule in its DATA frame.
pub fn drain_capsule_frame() -> Bytes {
    let mut capsule = BytesMut::new();
    varint::encode(capsule::DRAIN_WEBTRANSPORT_SESSION, &mut capsule);
    varint::encode(0, &mut capsule);
    let mut out = BytesMut::new();
    put_frame(frame::DATA, &capsule, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_codes_round_trip_across_the_u32_range() {
        for code in [0u32, 1, 7, 0x1d, 0x1e, 0x1f, 255, 65_535, 1 << 31, u32::MAX] {
            let h3 = app_code_to_h3(code);
            assert!((code::WT_APPLICATION_FIRST..=code::WT_APPLICATION_LAST).contains(&h3));
            assert_ne!((h3 - 0x21) % 0x1f, 0, "code {code} landed on a reserved codepoint");
            assert_eq!(h3_to_app_code(h3), Some(code));
        }
        assert_eq!(app_code_to_h3(u32::MAX), code::WT_APPLICATION_LAST);
    }

    #[test]
    fn non_application_codes_do_not_map() {
        assert_eq!(h3_to_app_code(crate::core::h3::proto::code::H3_NO_ERROR), None);
        assert_eq!(h3_to_app_code(code::WT_APPLICATION_LAST + 1), None);
    }

    fn request(method: &str, protocol: &str) -> RequestInfo {
        RequestInfo {
            method: method.into(),
            protocol: protocol.into(),
            scheme: "https".into(),
            authority: "localhost:4433".into(),
            path: "/".into(),
            origin: None,
            headers: Vec::new(),
            protocols: Vec::new(),
            remote: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    #[test]
    fn both_tokens_open_sessions_and_nothing_else_does() {
        assert!(is_session_request(&request("CONNECT", "webtransport")));
        assert!(is_session_request(&request("CONNECT", "webtransport-h3")));
        assert!(!is_session_request(&request("CONNECT", "websocket")));
        assert!(!is_session_request(&request("GET", "webtransport")));
    }

    #[test]
    fn not_found_is_405_for_draft16_clients_only() {
        let draft02 = request("CONNECT", "webtransport");
        assert_eq!(refusal(&draft02, 404, vec![]), (404, vec![]));
        assert_eq!(refusal(&draft02, 403, vec![]).0, 403);
        let draft16 = request("CONNECT", "webtransport-h3");
        assert_eq!(refusal(&draft16, 404, vec![]), (405, vec![("allow".into(), String::new())]));
        assert_eq!(
            refusal(&draft16, 404, vec![("Allow".into(), "GET".into())]),
            (405, vec![("Allow".into(), "GET".into())])
        );
        assert_eq!(refusal(&draft16, 403, vec![]).0, 403);
    }

    #[test]
    fn webtransport_support_in_every_drafts_form() {
        let parse = |values: &[(u64, u64)]| {
            let mut payload = BytesMut::new();
            for &(id, v) in values {
                varint::encode(id, &mut payload);
                varint::encode(v, &mut payload);
            }
            PeerSettings::parse(&payload).unwrap()
        };
        assert!(supports_webtransport(&parse(&[(setting::ENABLE_WEBTRANSPORT_DRAFT02, 1)])));
        assert!(supports_webtransport(&parse(&[(setting::WT_ENABLED, 1)])));
        assert!(supports_webtransport(&parse(&[(setting::WT_MAX_SESSIONS, 1)])));
        assert!(!supports_webtransport(&parse(&[(setting::WT_MAX_SESSIONS, 0)])));
        assert!(speaks_legacy_webtransport(&parse(&[(setting::WEBTRANSPORT_MAX_SESSIONS_DRAFT07, 4)])));
        assert!(!speaks_legacy_webtransport(&parse(&[(setting::WT_ENABLED, 1)])));
    }

    #[test]
    fn close_capsule_round_trips_and_limits_reason() {
        let frame = close_capsule_frame(0xdead_beef, "bye ✓");
        let mut buf = BytesMut::from(&frame[..]);
        assert_eq!(varint::decode(&mut buf), Some(frame::DATA));
        let len = varint::decode(&mut buf).unwrap() as usize;
        assert_eq!(len, buf.len());
        assert_eq!(
            take_capsule(&mut buf, 4096).unwrap(),
            Some(Capsule::Close { code: 0xdead_beef, reason: "bye ✓".into() })
        );
        let long = "é".repeat(600);
        let frame = close_capsule_frame(1, &long);
        assert!(frame.len() < 4 + MAX_CLOSE_REASON + 16);
    }

    #[test]
    fn capsule_errors_and_partial_input() {
        let mut partial = BytesMut::from(&[0x68, 0x43, 0x05, 0, 0][..]);
        assert_eq!(take_capsule(&mut partial, 4096).unwrap(), None);
        let mut short = BytesMut::from(&[0x68, 0x43, 0x02, 0, 0][..]);
        assert_eq!(take_capsule(&mut short, 4096).unwrap_err(), CapsuleError::CloseTooShort);
        let mut bad = BytesMut::from(&[0x68, 0x43, 0x05, 0, 0, 0, 1, 0xff][..]);
        assert_eq!(take_capsule(&mut bad, 4096).unwrap_err(), CapsuleError::ReasonNotUtf8);
        let mut long = BytesMut::new();
        varint::encode(capsule::CLOSE_WEBTRANSPORT_SESSION, &mut long);
        varint::encode(4 + 1025, &mut long);
        long.put_u32(0);
        long.put_slice(&[b'a'; 1025]);
        assert_eq!(take_capsule(&mut long, 4096).unwrap_err(), CapsuleError::ReasonTooLong);
        let mut unknown = BytesMut::from(&[0x21, 0x01, 0xaa, 0x40][..]);
        assert_eq!(take_capsule(&mut unknown, 4096).unwrap(), Some(Capsule::Unknown(0x21)));
        assert_eq!(&unknown[..], &[0x40]);
        let mut huge = BytesMut::from(&[0x21, 0x80, 0x10, 0x00, 0x00][..]);
        assert_eq!(take_capsule(&mut huge, 4096).unwrap_err(), CapsuleError::TooLarge);
    }
}
