//! Stream headers: a unidirectional stream opens with its type and, for WebTransport (0x54), the
//! session id; a client bidirectional stream opens with a frame type and, for WEBTRANSPORT_STREAM
//! (0x41), the session id. The server (src/core/connection.rs `read_varint_exact`) reads exactly the
//! length the first byte announces and decodes it with `varint::decode_slice`, so the rest of the
//! stream is handed over untouched; `Session::open_uni`/`open_bi` write the same header with
//! `varint::encode`. This target drives both halves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::{proto, split_header, varint};

/// connection.rs `read_varint_exact`, over a byte slice instead of a `quinn::RecvStream`: one byte,
/// then exactly the rest of the announced length, then `decode_slice` of those bytes.
fn read_varint_exact(stream: &mut &[u8]) -> Option<u64> {
    let first = *stream.first()?;
    let len = 1usize << (first >> 6);
    let bytes = stream.get(..len)?;
    let (value, used) = varint::decode_slice(bytes).expect("a varint of its announced length always decodes");
    assert_eq!(used, len, "decode_slice must take exactly the announced length");
    *stream = &stream[len..];
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    // 1. Parse the input as a stream's first bytes, as the server does.
    let mut stream = data;
    if let Some(kind) = read_varint_exact(&mut stream) {
        let is_wt = kind == proto::stream_type::WEBTRANSPORT || kind == proto::frame::WEBTRANSPORT_STREAM;
        if is_wt {
            let before = stream;
            if let Some(session_id) = read_varint_exact(&mut stream) {
                assert!(session_id <= varint::MAX);
                // What is handed to the session is exactly what followed the header.
                let header_len = data.len() - stream.len();
                assert_eq!(&data[header_len..], stream);
                assert_eq!(before.len() - stream.len(), 1 << (before[0] >> 6));
            }
        }
    }

    // 2. Round trip: the header `Session` writes, then an arbitrary payload, parses back.
    let (head, payload) = split_header::<9>(data);
    let kind = if head[0] & 1 == 0 { proto::stream_type::WEBTRANSPORT } else { proto::frame::WEBTRANSPORT_STREAM };
    let session_id = u64::from_le_bytes(head[1..9].try_into().unwrap()) & varint::MAX;
    let mut wire = Vec::new();
    varint::encode(kind, &mut wire);
    varint::encode(session_id, &mut wire);
    assert_eq!(wire.len(), varint::size(kind) + varint::size(session_id));
    wire.extend_from_slice(payload);
    let mut stream = &wire[..];
    assert_eq!(read_varint_exact(&mut stream), Some(kind));
    assert_eq!(read_varint_exact(&mut stream), Some(session_id));
    assert_eq!(stream, payload);
});
