//! `wire::close_capsule_frame(code, reason)` read back by the CONNECT-stream parser and by
//! `wire::take_capsule`: the code survives and the reason is cut at 1024 bytes on a char boundary.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::connect_stream::ConnectStreamParser;
use webtransport_napi_fuzz::{chunks, cut_reason, proto, split_header, varint, wire};
use wire::Capsule;

fuzz_target!(|data: &[u8]| {
    let (head, rest) = split_header::<5>(data);
    let code = u32::from_le_bytes(head[..4].try_into().unwrap());
    // Lossy decoding turns stray bytes into U+FFFD (3 bytes), which puts multi-byte characters
    // across the 1024-byte cut often.
    let reason = String::from_utf8_lossy(rest);
    let expect = Capsule::Close { code, reason: cut_reason(&reason).to_owned() };

    let frame = wire::close_capsule_frame(code, &reason);
    // The DATA frame header is honest.
    let (ty, a) = varint::decode_slice(&frame).unwrap();
    let (len, b) = varint::decode_slice(&frame[a..]).unwrap();
    assert_eq!(ty, proto::frame::DATA);
    assert_eq!(len as usize, frame.len() - a - b);
    // The capsule alone.
    let mut capsule = BytesMut::from(&frame[a + b..]);
    assert_eq!(wire::take_capsule(&mut capsule, 4 + wire::MAX_CLOSE_REASON), Ok(Some(expect.clone())));
    assert!(capsule.is_empty());
    // The whole frame through the CONNECT-stream parser, delivered in chunks.
    let mut parser = ConnectStreamParser::default();
    let mut got = Vec::new();
    for chunk in chunks(&frame, &[head[4]]) {
        got.extend(parser.push(chunk).expect("our own close capsule refused"));
    }
    assert_eq!(got, vec![expect]);
});
