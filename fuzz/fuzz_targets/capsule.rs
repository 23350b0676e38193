//! Capsules (RFC 9297 §3.2) as `wire::take_capsule` takes them off a buffer: the capsule sequence
//! carried in a CONNECT stream's DATA frames.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::{proto, split_header, varint, wire};
use wire::{Capsule, CapsuleError};

/// The flow-control capsule types (draft-ietf-webtrans-http3 §5.6, and the two HTTP/2 ones).
const FLOW_FIRST: u64 = 0x190b_4d3d;
const FLOW_LAST: u64 = 0x190b_4d44;

fuzz_target!(|data: &[u8]| {
    // Two header bytes pick `max_len` (the connect-stream parser uses 64 KiB); the rest is the buffer.
    let (head, body) = split_header::<2>(data);
    let max_len = match head[0] % 4 {
        0 => 64 * 1024,
        1 => usize::from(u16::from_le_bytes(head)),
        2 => 4 + wire::MAX_CLOSE_REASON,
        _ => usize::MAX,
    };
    let mut buf = BytesMut::from(body);
    loop {
        let before = buf.clone();
        let header = varint::decode_slice(&before)
            .and_then(|(kind, a)| varint::decode_slice(&before[a..]).map(|(len, b)| (kind, len, a + b)));
        match wire::take_capsule(&mut buf, max_len) {
            Ok(None) => {
                assert_eq!(buf, before, "an incomplete capsule must consume nothing");
                match header {
                    None => {}
                    Some((_, len, h)) => {
                        assert!(len as usize <= max_len);
                        assert!(before.len() < h + len as usize, "a whole capsule was left in the buffer");
                    }
                }
                break;
            }
            Ok(Some(capsule)) => {
                let (kind, len, h) = header.expect("a capsule without a header");
                let len = len as usize;
                assert!(len <= max_len, "capsule longer than max_len accepted");
                assert_eq!(before.len() - buf.len(), h + len, "consumed other than one capsule");
                assert_eq!(&before[h + len..], &buf[..]);
                let payload = &before[h..h + len];
                match capsule {
                    Capsule::Close { code, reason } => {
                        assert_eq!(kind, wire::capsule::CLOSE_WEBTRANSPORT_SESSION);
                        assert_eq!(code, u32::from_be_bytes(payload[..4].try_into().unwrap()));
                        assert!(reason.len() <= wire::MAX_CLOSE_REASON);
                        assert_eq!(reason.as_bytes(), &payload[4..]);
                        // Encoding it back (in its DATA frame) gives the same capsule bytes.
                        let frame = wire::close_capsule_frame(code, &reason);
                        let (ty, a) = varint::decode_slice(&frame).unwrap();
                        let (flen, b) = varint::decode_slice(&frame[a..]).unwrap();
                        assert_eq!(ty, proto::frame::DATA);
                        assert_eq!(flen as usize, frame.len() - a - b);
                        let mut again = BytesMut::from(&frame[a + b..]);
                        let back = wire::take_capsule(&mut again, max_len.max(4 + wire::MAX_CLOSE_REASON));
                        assert_eq!(back, Ok(Some(Capsule::Close { code, reason })));
                        assert!(again.is_empty());
                    }
                    Capsule::Drain => assert_eq!(kind, wire::capsule::DRAIN_WEBTRANSPORT_SESSION),
                    Capsule::Flow { kind: k, value } => {
                        assert_eq!(k, kind);
                        assert!((FLOW_FIRST..=FLOW_LAST).contains(&k));
                        if k == wire::capsule::WT_MAX_STREAM_DATA || k == wire::capsule::WT_STREAM_DATA_BLOCKED {
                            // Forbidden in HTTP/3: refused whatever its body.
                            assert_eq!(value, 0);
                        } else {
                            // Exactly one varint, nothing after it.
                            assert_eq!(varint::decode_slice(payload), Some((value, payload.len())));
                        }
                    }
                    Capsule::Unknown(k) => {
                        assert!(!(FLOW_FIRST..=FLOW_LAST).contains(&k));
                        assert_eq!(k, kind);
                        assert_ne!(k, wire::capsule::CLOSE_WEBTRANSPORT_SESSION);
                        assert_ne!(k, wire::capsule::DRAIN_WEBTRANSPORT_SESSION);
                    }
                }
            }
            Err(e) => {
                let (kind, len, h) = header.expect("an error before a whole header");
                match e {
                    CapsuleError::TooLarge => assert!(len > max_len as u64),
                    CapsuleError::CloseTooShort => {
                        assert_eq!(kind, wire::capsule::CLOSE_WEBTRANSPORT_SESSION);
                        assert!(len < 4);
                    }
                    CapsuleError::ReasonTooLong => {
                        assert_eq!(kind, wire::capsule::CLOSE_WEBTRANSPORT_SESSION);
                        assert!(len as usize - 4 > wire::MAX_CLOSE_REASON);
                    }
                    CapsuleError::BadFlowValue => {
                        assert!((FLOW_FIRST..=FLOW_LAST).contains(&kind));
                        let payload = &before[h..h + len as usize];
                        assert_ne!(varint::decode_slice(payload).map(|(_, n)| n), Some(payload.len()));
                    }
                    CapsuleError::ReasonNotUtf8 => {
                        assert_eq!(kind, wire::capsule::CLOSE_WEBTRANSPORT_SESSION);
                        assert!(std::str::from_utf8(&before[h + 4..h + len as usize]).is_err());
                    }
                }
                break;
            }
        }
    }
});
