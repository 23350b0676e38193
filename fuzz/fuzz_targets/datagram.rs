//! HTTP datagram framing (RFC 9297 §2.1): a varint Quarter Stream ID, then the payload. The server
//! (src/core/connection.rs, the datagram loop) decodes the prefix with `varint::decode_slice` and
//! refuses quarter ids from 2^60 and multiplies by four; a session (src/core/session.rs) writes `varint::encode(id / 4)` in front of
//! each datagram it sends. This target drives both halves.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::{split_header, varint};

/// What connection.rs does with one received datagram: `Err` closes the connection with
/// H3_DATAGRAM_ERROR, `Ok` routes the payload to the session id.
fn route(datagram: &Bytes) -> Result<(u64, Bytes), &'static str> {
    let Some((quarter_id, prefix)) = varint::decode_slice(datagram) else {
        return Err("datagram without a quarter stream id");
    };
    if quarter_id >= 1 << 60 {
        return Err("datagram quarter stream id out of range");
    }
    Ok((quarter_id * 4, datagram.slice(prefix..)))
}

fuzz_target!(|data: &[u8]| {
    // 1. Any received datagram.
    let datagram = Bytes::copy_from_slice(data);
    match route(&datagram) {
        Ok((session_id, payload)) => {
            assert_eq!(session_id % 4, 0, "a datagram can only name a client bidirectional stream");
            assert!(session_id <= varint::MAX, "session id past the largest stream id (RFC 9297 §2.1)");
            let prefix = data.len() - payload.len();
            assert_eq!(prefix, 1 << (data[0] >> 6));
            assert_eq!(&data[prefix..], &payload[..]);
        }
        Err(_) => {
            let prefix = varint::decode_slice(data);
            assert!(prefix.is_none_or(|(quarter_id, _)| quarter_id > (1 << 60) - 1));
        }
    }

    // 2. Round trip: a session's outgoing prefix, then an arbitrary payload.
    let (head, payload) = split_header::<8>(data);
    // Session ids are client bidirectional stream ids: multiples of 4 below 2^62.
    let session_id = (u64::from_le_bytes(head) & varint::MAX) & !3;
    let mut wire = Vec::new();
    varint::encode(session_id / 4, &mut wire);
    wire.extend_from_slice(payload);
    let (got_id, got_payload) = route(&Bytes::from(wire)).expect("our own datagram must route");
    assert_eq!(got_id, session_id);
    assert_eq!(&got_payload[..], payload);
});
