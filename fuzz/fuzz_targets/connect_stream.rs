//! What a client sends on a session's CONNECT stream after its HEADERS: HTTP/3 frames whose DATA
//! payloads form a capsule sequence, fed to `ConnectStreamParser` in the chunks the network chose.
//!
//! Invariants: the result matches a whole-input reference reading of the same bytes (RFC 9114 §7.2
//! frame rules, RFC 9297 §3.2 capsules); byte-at-a-time feeding yields exactly the capsules before
//! the first error; any other chunking yields the same error and a prefix of those capsules.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::connect_stream::{ConnectStreamError, ConnectStreamParser};
use webtransport_napi_fuzz::{chunks, proto, split_header, varint, wire};
use wire::Capsule;

/// The parser's bound on one capsule (`MAX_CAPSULE` in src/core/connect_stream.rs).
const MAX_CAPSULE: usize = 64 * 1024;

type Outcome = (Vec<Capsule>, Option<ConnectStreamError>);

/// Where a stream that ends here stands: (not inside a frame, not inside a capsule).
type Boundaries = (bool, bool);

/// Feeds `parts` in order; stops at the first error, as the session driver does.
fn run<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> (Outcome, Boundaries) {
    let mut parser = ConnectStreamParser::default();
    let mut got = Vec::new();
    for part in parts {
        match parser.push(part) {
            Ok(capsules) => got.extend(capsules),
            Err(e) => return ((got, Some(e)), (false, false)),
        }
    }
    ((got, None), (parser.at_frame_boundary(), parser.at_capsule_boundary()))
}

/// Reads the whole stream front to back with no incremental state: frames, then the capsules of
/// the concatenated DATA payloads (a DATA frame cut short by the end of input still counts).
fn reference(mut stream: &[u8]) -> (Outcome, Boundaries) {
    use proto::frame;
    let mut capsules = BytesMut::new();
    let mut out = Vec::new();
    let mut in_frame = false;
    while let Some((kind, a)) = varint::decode_slice(stream) {
        let Some((len, b)) = varint::decode_slice(&stream[a..]) else { break };
        stream = &stream[a + b..];
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(stream.len());
        in_frame = (take as u64) < len;
        let (payload, rest) = stream.split_at(take);
        stream = rest;
        match kind {
            frame::DATA => {
                capsules.extend_from_slice(payload);
                loop {
                    match wire::take_capsule(&mut capsules, MAX_CAPSULE) {
                        Ok(Some(c)) => out.push(c),
                        Ok(None) => break,
                        Err(e) => return ((out, Some(ConnectStreamError::Capsule(e))), (false, false)),
                    }
                }
            }
            // The WebTransport stream signal is only valid as a stream's first bytes.
            frame::WEBTRANSPORT_STREAM => {
                return ((out, Some(ConnectStreamError::MisplacedStreamSignal)), (false, false))
            }
            frame::CANCEL_PUSH
            | frame::SETTINGS
            | frame::PUSH_PROMISE
            | frame::GOAWAY
            | frame::MAX_PUSH_ID
            | 0x02
            | 0x06
            | 0x08
            | 0x09 => return ((out, Some(ConnectStreamError::UnexpectedFrame(kind))), (false, false)),
            _ => {}
        }
    }
    ((out, None), (stream.is_empty() && !in_frame, capsules.is_empty()))
}

fuzz_target!(|data: &[u8]| {
    // Up to four header bytes pick the chunk lengths; the rest is the stream.
    let (head, stream) = split_header::<4>(data);
    let n = usize::from(head[0] % 4);
    let lengths: &[u8] = if n == 0 { &[1] } else { &head[1..1 + n] };

    let (expect, boundaries) = reference(stream);
    for capsule in &expect.0 {
        if let Capsule::Close { reason, .. } = capsule {
            assert!(reason.len() <= wire::MAX_CLOSE_REASON);
        }
    }
    // Byte at a time: every capsule comes out of the push that completes it.
    let (bytewise, at) = run(stream.chunks(1));
    assert_eq!(bytewise, expect, "byte-at-a-time parsing differs from the reference");
    // Where the stream would end (a FIN here is H3_FRAME_ERROR unless on a frame boundary, and
    // malformed inside a capsule).
    assert_eq!(at, boundaries, "(at_frame_boundary, at_capsule_boundary) differ from the reference");
    // All at once: one push, which fails whole or yields everything.
    let (whole, at) = run([stream]);
    assert_eq!(at, boundaries);
    match &expect.1 {
        None => assert_eq!(whole, expect),
        Some(_) => assert_eq!(whole, (vec![], expect.1.clone())),
    }
    // Any chunking: same error; capsules a prefix of the reference's (a failing push drops the
    // capsules it completed before the error).
    let ((got, err), at) = run(chunks(stream, lengths));
    assert_eq!(at, boundaries);
    assert_eq!(err, expect.1, "chunking changed the error");
    if err.is_none() {
        assert_eq!(got, expect.0, "chunking changed the capsules");
    } else {
        assert!(expect.0.starts_with(&got), "chunked capsules are not a prefix of the reference's");
    }
});
