//! Wire constants and small codecs of HTTP/3 (RFC 9114) and HTTP Datagrams (RFC 9297), kept in
//! one place so every value can be checked against its source. WebTransport's own are in
//! `webtransport::wire`.

use bytes::{BufMut, Bytes, BytesMut};

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
    /// Opens a client bidirectional stream that belongs to an extension's session
    /// (WebTransport's signal value): the connection hands such streams to its extension.
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
    /// A WebTransport unidirectional stream: handed to the connection's extension.
    pub const WEBTRANSPORT: u64 = 0x54;
}

/// HTTP/3 SETTINGS identifiers.
pub mod setting {
    pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
    pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
    pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
    pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
    /// RFC 9297.
    pub const H3_DATAGRAM: u64 = 0x33;
    /// draft-ietf-masque-h3-datagram-04, still sent by some clients.
    pub const H3_DATAGRAM_DRAFT04: u64 = 0xffd277;
}

/// HTTP/3 error codes used on streams and connections.
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
}

/// The SETTINGS this server sends: HTTP/3's own (extended CONNECT and HTTP datagrams supported,
/// the largest header section), then the extension's.
pub fn server_settings(max_field_section_size: u64, extension: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut settings = vec![
        (setting::MAX_FIELD_SECTION_SIZE, max_field_section_size),
        (setting::ENABLE_CONNECT_PROTOCOL, 1),
        (setting::H3_DATAGRAM, 1),
    ];
    settings.extend_from_slice(extension);
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

    /// All identifiers and values, in the order received.
    pub fn values(&self) -> &[(u64, u64)] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_duplicates_and_http2_ids() {
        let mut payload = BytesMut::new();
        for (id, v) in [(setting::H3_DATAGRAM, 1), (setting::ENABLE_CONNECT_PROTOCOL, 1)] {
            varint::encode(id, &mut payload);
            varint::encode(v, &mut payload);
        }
        let parsed = PeerSettings::parse(&payload).unwrap();
        assert!(parsed.supports_datagrams());
        assert_eq!(parsed.get(setting::ENABLE_CONNECT_PROTOCOL), Some(1));
        let mut dup = payload.clone();
        dup.extend_from_slice(&payload[..]);
        assert_eq!(PeerSettings::parse(&dup).unwrap_err(), SettingsError::Duplicate(setting::H3_DATAGRAM));
        assert_eq!(PeerSettings::parse(&[0x02, 0x00]).unwrap_err(), SettingsError::Http2Setting(2));
        assert_eq!(PeerSettings::parse(&[0x40]).unwrap_err(), SettingsError::Truncated);
        assert!(!PeerSettings::parse(&[]).unwrap().supports_datagrams());
    }
}
