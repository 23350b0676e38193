//! Wire constants and small codecs of HTTP/3 (RFC 9114), HTTP Datagrams (RFC 9297) and
//! WebTransport over HTTP/3 (draft-ietf-webtrans-http3), kept in one place so every value can be
//! checked against its source.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::varint;

/// HTTP/3 frame types the server reads or writes.
pub mod frame {
    pub const DATA: u64 = 0x00;
    pub const HEADERS: u64 = 0x01;
    pub const CANCEL_PUSH: u64 = 0x03;
    pub const SETTINGS: u64 = 0x04;
    pub const PUSH_PROMISE: u64 = 0x05;
    pub const GOAWAY: u64 = 0x07;
    pub const MAX_PUSH_ID: u64 = 0x0d;
    /// Opens a client bidirectional stream that belongs to a WebTransport session.
    pub const WEBTRANSPORT_STREAM: u64 = 0x41;

    /// HTTP/2 frame types that RFC 9114 §7.2.8 forbids; receiving one is H3_FRAME_UNEXPECTED.
    pub fn is_http2_only(kind: u64) -> bool {
        matches!(kind, 0x02 | 0x06 | 0x08 | 0x09)
    }
}

/// Unidirectional stream types.
pub mod stream_type {
    pub const CONTROL: u64 = 0x00;
    pub const PUSH: u64 = 0x01;
    pub const QPACK_ENCODER: u64 = 0x02;
    pub const QPACK_DECODER: u64 = 0x03;
    pub const WEBTRANSPORT: u64 = 0x54;
}

/// SETTINGS identifiers.
pub mod setting {
    pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
    pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
    pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
    pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
    /// RFC 9297.
    pub const H3_DATAGRAM: u64 = 0x33;
    /// draft-ietf-masque-h3-datagram-04, still sent by some clients.
    pub const H3_DATAGRAM_DRAFT04: u64 = 0xffd277;
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

/// HTTP/3 and WebTransport error codes used on streams and connections.
pub mod code {
    pub const H3_NO_ERROR: u64 = 0x100;
    pub const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
    pub const H3_INTERNAL_ERROR: u64 = 0x102;
    pub const H3_STREAM_CREATION_ERROR: u64 = 0x103;
    pub const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
    pub const H3_FRAME_UNEXPECTED: u64 = 0x105;
    pub const H3_FRAME_ERROR: u64 = 0x106;
    pub const H3_EXCESSIVE_LOAD: u64 = 0x107;
    pub const H3_ID_ERROR: u64 = 0x108;
    pub const H3_SETTINGS_ERROR: u64 = 0x109;
    pub const H3_MISSING_SETTINGS: u64 = 0x10a;
    pub const H3_REQUEST_REJECTED: u64 = 0x10b;
    pub const H3_REQUEST_CANCELLED: u64 = 0x10c;
    pub const H3_MESSAGE_ERROR: u64 = 0x10e;
    pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
    pub const H3_DATAGRAM_ERROR: u64 = 0x33;
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

/// The SETTINGS this server sends. Values that say "supported" are 1; session limits are the
/// configured maximum; `flow` is the initial per-session flow-control limits, which a client
/// that declares flow control (Safari 26.4+, draft-14 on) otherwise takes to be 0.
pub fn server_settings(max_sessions: u64, max_field_section_size: u64, flow: [(u64, u64); 3]) -> Vec<(u64, u64)> {
    let mut settings = vec![
        (setting::MAX_FIELD_SECTION_SIZE, max_field_section_size),
        (setting::ENABLE_CONNECT_PROTOCOL, 1),
        (setting::H3_DATAGRAM, 1),
        (setting::ENABLE_WEBTRANSPORT_DRAFT02, 1),
        (setting::WT_ENABLED, 1),
        (setting::WT_MAX_SESSIONS, max_sessions.max(1)),
    ];
    settings.extend(flow);
    settings
}

/// Appends a whole frame: type, length, payload.
pub fn put_frame(kind: u64, payload: &[u8], out: &mut BytesMut) {
    varint::encode(kind, out);
    varint::encode(payload.len() as u64, out);
    out.put_slice(payload);
}

/// The control stream's opening bytes: stream type, then the SETTINGS frame.
pub fn control_stream_preamble(settings: &[(u64, u64)]) -> Bytes {
    let mut payload = BytesMut::new();
    for &(id, value) in settings {
        varint::encode(id, &mut payload);
        varint::encode(value, &mut payload);
    }
    let mut out = BytesMut::new();
    varint::encode(stream_type::CONTROL, &mut out);
    put_frame(frame::SETTINGS, &payload, &mut out);
    out.freeze()
}

/// What a peer said in its SETTINGS frame.
#[derive(Debug, Clone, Default)]
pub struct PeerSettings {
    values: Vec<(u64, u64)>,
}

/// Why a SETTINGS frame was refused; every variant is a connection error H3_SETTINGS_ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    Truncated,
    Duplicate(u64),
    /// An HTTP/2 setting identifier (RFC 9114 §7.2.4.1).
    Http2Setting(u64),
}

impl PeerSettings {
    /// Parses a SETTINGS payload.
    pub fn parse(mut payload: &[u8]) -> Result<Self, SettingsError> {
        let mut values: Vec<(u64, u64)> = Vec::new();
        while !payload.is_empty() {
            let id = varint::decode(&mut payload).ok_or(SettingsError::Truncated)?;
            let value = varint::decode(&mut payload).ok_or(SettingsError::Truncated)?;
            if matches!(id, 0x02..=0x05) {
                return Err(SettingsError::Http2Setting(id));
            }
            if values.iter().any(|&(seen, _)| seen == id) {
                return Err(SettingsError::Duplicate(id));
            }
            values.push((id, value));
        }
        Ok(Self { values })
    }

    pub fn get(&self, id: u64) -> Option<u64> {
        self.values.iter().find(|&&(seen, _)| seen == id).map(|&(_, v)| v)
    }

    /// Whether the peer can receive HTTP datagrams (either the RFC or the draft-04 setting).
    pub fn supports_datagrams(&self) -> bool {
        self.get(setting::H3_DATAGRAM) == Some(1) || self.get(setting::H3_DATAGRAM_DRAFT04) == Some(1)
    }

    /// Whether the peer announced WebTransport in any draft's form.
    pub fn supports_webtransport(&self) -> bool {
        self.get(setting::ENABLE_WEBTRANSPORT_DRAFT02) == Some(1)
            || self.get(setting::WT_ENABLED) == Some(1)
            || self.get(setting::WEBTRANSPORT_MAX_SESSIONS_DRAFT07).is_some_and(|n| n > 0)
            || self.get(setting::WT_MAX_SESSIONS).is_some_and(|n| n > 0)
    }

    /// Whether the peer speaks a WebTransport draft from before flow control (draft-02 to -07,
    /// what Chromium and Firefox send): such clients pool sessions on a connection without it.
    pub fn speaks_legacy_webtransport(&self) -> bool {
        self.get(setting::ENABLE_WEBTRANSPORT_DRAFT02) == Some(1)
            || self.get(setting::WEBTRANSPORT_MAX_SESSIONS_DRAFT07).is_some_and(|n| n > 0)
    }

    /// All identifiers and values, in the order received.
    pub fn values(&self) -> &[(u64, u64)] {
        &self.values
    }
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
        assert_eq!(h3_to_app_code(code::H3_NO_ERROR), None);
        assert_eq!(h3_to_app_code(code::WT_APPLICATION_LAST + 1), None);
    }

    #[test]
    fn settings_parse_and_refuse_duplicates_and_http2_ids() {
        let mut payload = BytesMut::new();
        for (id, v) in [(setting::H3_DATAGRAM, 1), (setting::ENABLE_WEBTRANSPORT_DRAFT02, 1)] {
            varint::encode(id, &mut payload);
            varint::encode(v, &mut payload);
        }
        let parsed = PeerSettings::parse(&payload).unwrap();
        assert!(parsed.supports_datagrams() && parsed.supports_webtransport());
        let mut dup = payload.clone();
        dup.extend_from_slice(&payload[..]);
        assert_eq!(PeerSettings::parse(&dup).unwrap_err(), SettingsError::Duplicate(setting::H3_DATAGRAM));
        assert_eq!(PeerSettings::parse(&[0x02, 0x00]).unwrap_err(), SettingsError::Http2Setting(2));
        assert_eq!(PeerSettings::parse(&[0x40]).unwrap_err(), SettingsError::Truncated);
        assert!(!PeerSettings::parse(&[]).unwrap().supports_webtransport());
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
