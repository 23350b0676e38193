//! Regular HTTP/3 requests through the core's `HttpHandler`, with the raw HTTP/3 client of
//! `support`: bodies both ways, HEAD and 204 without a body, a dropped exchange answered 500, a
//! body past the limit answered 413, a response that breaks its content-length reset.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::*;
use webtransport_napi::core::h3::{qpack, varint};
use webtransport_napi::core::{Exchange, HttpHandler};

const H3_MESSAGE_ERROR: u64 = 0x10e;

/// Answers by path: `/echo` streams the body back, `/text` a fixed text (also to HEAD),
/// `/empty` 204, `/drop` drops the exchange, `/short` declares 10 bytes and sends 3.
struct App;

impl HttpHandler for App {
    fn on_request(&self, exchange: Exchange) {
        tokio::spawn(async move {
            let Exchange { info, mut body, response } = exchange;
            match info.path.as_str() {
                "/echo" => {
                    response
                        .send_head(200, vec![("content-type".into(), "application/octet-stream".into())])
                        .await
                        .unwrap();
                    while let Some(chunk) = body.read(64 * 1024).await.unwrap() {
                        response.write(chunk).await.unwrap();
                    }
                    response.finish().await.unwrap();
                }
                "/text" => {
                    response.send_head(200, vec![("content-length".into(), "5".into())]).await.unwrap();
                    response.write(Bytes::from_static(b"hello")).await.unwrap();
                    response.finish().await.unwrap();
                }
                "/empty" => {
                    response.send_head(204, vec![]).await.unwrap();
                    response.write(Bytes::from_static(b"ignored")).await.unwrap();
                    response.finish().await.unwrap();
                }
                "/drop" => drop(response),
                "/short" => {
                    response.send_head(200, vec![("content-length".into(), "10".into())]).await.unwrap();
                    response.write(Bytes::from_static(b"abc")).await.unwrap();
                    assert!(response.finish().await.is_err());
                }
                "/slurp" => {
                    let mut total = 0;
                    let outcome = loop {
                        match body.read(64 * 1024).await {
                            Ok(Some(chunk)) => total += chunk.len(),
                            Ok(None) => break Ok(total),
                            Err(e) => break Err(e),
                        }
                    };
                    if let Ok(total) = outcome {
                        response.send_head(200, vec![]).await.unwrap();
                        response.write(Bytes::from(total.to_string())).await.unwrap();
                        response.finish().await.unwrap();
                    }
                }
                _ => {
                    response.send_head(404, vec![]).await.unwrap();
                    response.finish().await.unwrap();
                }
            }
        });
    }
}

fn headers_block(method: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![(":method", method), (":scheme", "https"), (":authority", authority), (":path", path)];
    fields.extend_from_slice(extra);
    encode_headers(&fields)
}

/// Sends a request with `body` (in DATA frames of 16 KiB), finishes it, and reads the whole
/// response: status, headers, body, and the stream's end (or its reset code).
async fn exchange(
    conn: &quinn::Connection,
    block: &[u8],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>, Option<u64>) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(0x01, block)).await.unwrap();
    for piece in body.chunks(16 * 1024) {
        send.write_all(&frame(0x00, piece)).await.unwrap();
    }
    let _ = send.finish();
    let mut buf = BytesMut::new();
    let mut status = 0;
    let mut headers = Vec::new();
    let mut out = Vec::new();
    let reset = loop {
        let mut cursor = &buf[..];
        if let (Some(kind), Some(len)) = (varint::decode(&mut cursor), varint::decode(&mut cursor)) {
            let header = buf.len() - cursor.len();
            if cursor.len() as u64 >= len {
                let _ = buf.split_to(header);
                let payload = buf.split_to(len as usize);
                match kind {
                    0x01 => {
                        for field in qpack::decode_field_section(&payload, 1 << 16).unwrap() {
                            if field.name == ":status" {
                                status = field.value.parse().unwrap();
                            } else {
                                headers.push((field.name, field.value));
                            }
                        }
                    }
                    0x00 => out.extend_from_slice(&payload),
                    _ => {}
                }
                continue;
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), recv.read_chunk(64 * 1024, true))
            .await
            .expect("a response in time")
        {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => break None,
            Err(quinn::ReadError::Reset(code)) => break Some(code.into_inner()),
            Err(e) => panic!("the response stream failed: {e}"),
        }
    };
    (status, headers, out, reset)
}

async fn serving(max_body: u64, test: impl AsyncFnOnce(&TestServer, &quinn::Connection)) {
    let server = start_http_server(Arc::new(App), |config| config.max_request_body = max_body);
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    tokio::time::timeout(Duration::from_secs(30), test(&server, &conn)).await.expect("the test exceeded its bound");
    server.server.close(0, "", Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_and_head_and_204_carry_none() {
    serving(64 << 20, async |server, conn| {
        let auth = server.authority();
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (status, _, echoed, reset) = exchange(conn, &headers_block("POST", &auth, "/echo", &[]), &body).await;
        assert_eq!((status, reset), (200, None));
        assert!(echoed == body, "the echo differs ({} bytes back)", echoed.len());

        let (status, headers, text, _) = exchange(conn, &headers_block("GET", &auth, "/text", &[]), &[]).await;
        assert_eq!((status, text.as_slice()), (200, &b"hello"[..]));
        assert!(headers.contains(&("content-length".into(), "5".into())));
        let (status, headers, text, reset) = exchange(conn, &headers_block("HEAD", &auth, "/text", &[]), &[]).await;
        assert_eq!((status, text.len(), reset), (200, 0, None), "HEAD: the head only");
        assert!(headers.contains(&("content-length".into(), "5".into())));
        let (status, _, text, reset) = exchange(conn, &headers_block("GET", &auth, "/empty", &[]), &[]).await;
        assert_eq!((status, text.len(), reset), (204, 0, None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_exchange_is_500_and_a_short_body_is_reset() {
    serving(64 << 20, async |server, conn| {
        let auth = server.authority();
        let (status, headers, _, reset) = exchange(conn, &headers_block("GET", &auth, "/drop", &[]), &[]).await;
        assert_eq!((status, reset), (500, None));
        assert!(headers.contains(&("content-length".into(), "0".into())));
        // The reset may overtake the head (QUIC drops a reset stream's undelivered data): what
        // matters is that no complete response arrives.
        let (_, _, body, reset) = exchange(conn, &headers_block("GET", &auth, "/short", &[]), &[]).await;
        assert_eq!(reset, Some(H3_MESSAGE_ERROR), "3 bytes of a declared 10 must not look complete ({body:?})");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_limit_get_413() {
    serving(100_000, async |server, conn| {
        let auth = server.authority();
        let declared = headers_block("POST", &auth, "/slurp", &[("content-length", "200000")]);
        let (status, _, _, _) = exchange(conn, &declared, &[1u8; 10]).await;
        assert_eq!(status, 413, "a declared length past the limit is refused before the handler");
        let (status, _, _, _) = exchange(conn, &headers_block("POST", &auth, "/slurp", &[]), &[1u8; 150_000]).await;
        assert_eq!(status, 413, "a streamed body past the limit");
        let (status, _, count, _) = exchange(conn, &headers_block("POST", &auth, "/slurp", &[]), &[1u8; 90_000]).await;
        assert_eq!((status, count.as_slice()), (200, &b"90000"[..]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_handler_regular_requests_are_404() {
    let server = start_server(Arc::new(Echo { headers: Vec::new() }), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let (status, ..) = exchange(&conn, &headers_block("GET", &server.authority(), "/text", &[]), &[]).await;
    assert_eq!(status, 404);
    server.server.close(0, "", Duration::from_millis(200)).await;
}
