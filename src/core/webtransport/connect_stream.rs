//! Parses what a client sends on a session's CONNECT stream after its HEADERS: DATA frames whose
//! payloads form a capsule sequence (RFC 9297 §3.2). Fed chunk by chunk, so the session driver
//! can read with a cancel-safe `read_chunk` and never loses a partial frame.

use bytes::{Buf, BytesMut};

use super::wire::{take_capsule, Capsule, CapsuleError};
use crate::core::h3::proto::frame;
use crate::core::h3::varint;

/// Largest capsule the server buffers: a close capsule is at most 1028 bytes; unknown capsules
/// beyond this are a protocol error rather than an unbounded buffer.
const MAX_CAPSULE: usize = 64 * 1024;

/// Why the CONNECT stream's content is refused; each ends the session with H3_MESSAGE_ERROR or
/// H3_FRAME_UNEXPECTED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectStreamError {
    Capsule(CapsuleError),
    /// A frame type that may not appear on a request stream (RFC 9114 §7.2).
    UnexpectedFrame(u64),
    /// The WebTransport stream signal (0x41), valid only as a stream's first bytes.
    MisplacedStreamSignal,
}

#[derive(Debug, Default)]
pub struct ConnectStreamParser {
    raw: BytesMut,
    /// Bytes still to come of the current DATA frame's payload.
    data_left: u64,
    /// Bytes still to skip of the current non-DATA frame.
    skip_left: u64,
    capsules: BytesMut,
}

impl ConnectStreamParser {
    /// Feeds bytes read from the stream and returns the capsules they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Capsule>, ConnectStreamError> {
        self.raw.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.data_left > 0 {
                let take = (self.data_left.min(self.raw.len() as u64)) as usize;
                if take == 0 {
                    break;
                }
                let data = self.raw.split_to(take);
                self.capsules.extend_from_slice(&data);
                self.data_left -= take as u64;
                while let Some(capsule) =
                    take_capsule(&mut self.capsules, MAX_CAPSULE).map_err(ConnectStreamError::Capsule)?
                {
                    out.push(capsule);
                }
                continue;
            }
            if self.skip_left > 0 {
                let take = (self.skip_left.min(self.raw.len() as u64)) as usize;
                if take == 0 {
                    break;
                }
                self.raw.advance(take);
                self.skip_left -= take as u64;
                continue;
            }
            let Some((kind, kind_len)) = varint::decode_slice(&self.raw) else { break };
            let Some((len, len_len)) = self.raw.get(kind_len..).and_then(varint::decode_slice) else { break };
            self.raw.advance(kind_len + len_len);
            match kind {
                frame::DATA => self.data_left = len,
                // Trailers (a second HEADERS) carry nothing we act on.
                frame::HEADERS => self.skip_left = len,
                frame::SETTINGS | frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH | frame::PUSH_PROMISE => {
                    return Err(ConnectStreamError::UnexpectedFrame(kind));
                }
                frame::WEBTRANSPORT_STREAM => return Err(ConnectStreamError::MisplacedStreamSignal),
                k if frame::is_http2_only(k) => return Err(ConnectStreamError::UnexpectedFrame(k)),
                // Unknown and reserved (grease) frame types are skipped (RFC 9114 §9).
                _ => self.skip_left = len,
            }
        }
        Ok(out)
    }

    /// Whether the stream may end here: not inside a frame (else H3_FRAME_ERROR).
    pub fn at_frame_boundary(&self) -> bool {
        self.raw.is_empty() && self.data_left == 0 && self.skip_left == 0
    }

    /// Whether no partial capsule is buffered (a stream ending inside one is malformed).
    pub fn at_capsule_boundary(&self) -> bool {
        self.capsules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::webtransport::wire::close_capsule_frame;

    #[test]
    fn close_capsule_split_at_every_byte() {
        let mut stream = vec![0x21, 0x02, 0xaa, 0xbb]; // a grease frame first
        stream.extend_from_slice(&close_capsule_frame(4001, "bye from server"));
        for cut in 0..stream.len() {
            let mut parser = ConnectStreamParser::default();
            let mut got = parser.push(&stream[..cut]).unwrap();
            got.extend(parser.push(&stream[cut..]).unwrap());
            assert_eq!(got, vec![Capsule::Close { code: 4001, reason: "bye from server".into() }], "cut at {cut}");
        }
    }

    #[test]
    fn capsule_spanning_two_data_frames() {
        let frame = close_capsule_frame(7, "ab");
        // Re-frame the capsule bytes (after the DATA header) as two DATA frames.
        let capsule = &frame[2..];
        let mut stream = vec![0x00, 3];
        stream.extend_from_slice(&capsule[..3]);
        stream.push(0x00);
        stream.push((capsule.len() - 3) as u8);
        stream.extend_from_slice(&capsule[3..]);
        let mut parser = ConnectStreamParser::default();
        assert_eq!(parser.push(&stream).unwrap(), vec![Capsule::Close { code: 7, reason: "ab".into() }]);
    }

    #[test]
    fn control_frames_are_refused() {
        let mut parser = ConnectStreamParser::default();
        assert_eq!(parser.push(&[0x04, 0x00]).unwrap_err(), ConnectStreamError::UnexpectedFrame(frame::SETTINGS));
        let mut parser = ConnectStreamParser::default();
        assert_eq!(parser.push(&[0x02, 0x00]).unwrap_err(), ConnectStreamError::UnexpectedFrame(0x02));
    }
}
