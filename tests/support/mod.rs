//! A raw HTTP/3 WebTransport test client on quinn, written from the RFCs for these tests: it
//! lets a test put the CONNECT on any stream, delay or change its SETTINGS, and see the bytes.
//! It shares only the QPACK decoder with the server (to read responses; the decoder is checked
//! against the RFC's own examples in its unit tests). Requests are encoded here, by hand.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use webtransport_napi::core::h3::{qpack, varint};
use webtransport_napi::core::{cert, HttpHandler, IncomingRequest, OriginPolicy, RequestHandler, Server, ServerConfig};

pub const SETTINGS_WT: &[(u64, u64)] = &[(0x08, 1), (0x33, 1), (0x2b603742, 1)];

pub fn put_varint(v: u64, out: &mut BytesMut) {
    varint::encode(v, out)
}

/// A QPACK field section using only "literal field line with literal name", no Huffman.
pub fn encode_headers(fields: &[(&str, &str)]) -> Vec<u8> {
    fn prefixed(value: usize, prefix_bits: u8, first: u8, out: &mut Vec<u8>) {
        let max = (1usize << prefix_bits) - 1;
        if value < max {
            out.push(first | value as u8);
            return;
        }
        out.push(first | max as u8);
        let mut rest = value - max;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
    let mut out = vec![0, 0];
    for (name, value) in fields {
        // 001N H NameLen(3+) : pattern 0b0010_0000, H=0, 3-bit prefix
        prefixed(name.len(), 3, 0x20, &mut out);
        out.extend_from_slice(name.as_bytes());
        prefixed(value.len(), 7, 0x00, &mut out);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

pub fn frame(kind: u64, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    put_varint(kind, &mut out);
    put_varint(payload.len() as u64, &mut out);
    out.put_slice(payload);
    out.freeze()
}

pub fn connect_headers(authority: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    encode_headers(&fields)
}

#[derive(Debug)]
struct PinnedCert(Vec<u8>);

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate does not match the pinned one".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("tls 1.2 is not used".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

/// A running server plus what a client needs to reach it.
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    cert_der: Vec<u8>,
}

pub fn start_server(handler: Arc<dyn RequestHandler>, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    bind_test_server(handler, None, configure)
}

/// A server whose regular requests go to `http` (WebTransport requests to the echo).
pub fn start_http_server(http: Arc<dyn HttpHandler>, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    bind_test_server(Arc::new(Echo { headers: Vec::new() }), Some(http), configure)
}

fn bind_test_server(
    handler: Arc<dyn RequestHandler>,
    http: Option<Arc<dyn HttpHandler>>,
    configure: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let generated = cert::generate(&["localhost".into(), "127.0.0.1".into()], 5).unwrap();
    let der = webtransport_napi::core::tls::parse_cert_chain(generated.cert_pem.as_bytes()).unwrap()[0].to_vec();
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        generated.cert_pem.into_bytes(),
        generated.key_pem.into_bytes(),
    );
    config.origin_policy = OriginPolicy::SameHost;
    configure(&mut config);
    let server = Server::bind_serving(config, handler, http).unwrap();
    let addr = server.local_addr();
    TestServer { server, addr, cert_der: der }
}

impl TestServer {
    /// A quinn client endpoint that trusts this server's certificate (pinned), ALPN `h3`.
    pub fn client_endpoint(&self) -> quinn::Endpoint {
        let mut crypto =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert(self.cert_der.clone())))
                .with_no_client_auth();
        crypto.alpn_protocols = vec![b"h3".to_vec()];
        let mut client =
            quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap()));
        let mut transport = quinn::TransportConfig::default();
        transport.datagram_receive_buffer_size(Some(1 << 20));
        client.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(client);
        endpoint
    }

    /// The server certificate's SHA-256, for `ServerTrust::Hashes`.
    pub fn cert_hash(&self) -> [u8; 32] {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    pub async fn connect(&self) -> quinn::Connection {
        self.client_endpoint().connect(self.addr, "localhost").unwrap().await.unwrap()
    }

    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }
}

/// Opens the client's control stream and sends SETTINGS. Keep the returned stream alive.
pub async fn send_settings(conn: &quinn::Connection, settings: &[(u64, u64)]) -> quinn::SendStream {
    let mut payload = BytesMut::new();
    for &(id, v) in settings {
        put_varint(id, &mut payload);
        put_varint(v, &mut payload);
    }
    let mut bytes = BytesMut::new();
    put_varint(0x00, &mut bytes);
    bytes.put_slice(&frame(0x04, &payload));
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&bytes).await.unwrap();
    send
}

/// Reads one HTTP/3 frame (type, payload) from a request stream.
pub async fn read_frame(recv: &mut quinn::RecvStream, buf: &mut BytesMut) -> Option<(u64, Bytes)> {
    loop {
        let mut cursor = &buf[..];
        if let (Some(kind), Some(len)) = (varint::decode(&mut cursor), varint::decode(&mut cursor)) {
            let header = buf.len() - cursor.len();
            if cursor.len() as u64 >= len {
                buf.advance(header);
                return Some((kind, buf.split_to(len as usize).freeze()));
            }
        }
        match recv.read_chunk(65536, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            _ => return None,
        }
    }
}

/// Sends a request on a fresh bidi stream and returns its response headers and the stream.
pub async fn request(
    conn: &quinn::Connection,
    header_block: &[u8],
) -> (Vec<(String, String)>, quinn::SendStream, quinn::RecvStream, BytesMut) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(0x01, header_block)).await.unwrap();
    let mut buf = BytesMut::new();
    let (kind, payload) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv, &mut buf))
        .await
        .expect("response in time")
        .expect("a response frame");
    assert_eq!(kind, 0x01, "first response frame is HEADERS");
    let fields = qpack::decode_field_section(&payload, 1 << 16).unwrap();
    (fields.into_iter().map(|f| (f.name, f.value)).collect(), send, recv, buf)
}

pub fn status(headers: &[(String, String)]) -> &str {
    headers.iter().find(|(n, _)| n == ":status").map(|(_, v)| v.as_str()).unwrap_or("")
}

/// Opens a WebTransport bidi stream for `session_id`, sends `data`, finishes, returns what comes back.
pub async fn bidi_echo(conn: &quinn::Connection, session_id: u64, data: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut header = BytesMut::new();
    put_varint(0x41, &mut header);
    put_varint(session_id, &mut header);
    send.write_all(&header).await.unwrap();
    send.write_all(data).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 24)).await.unwrap().unwrap()
}

/// The echo the tests' servers run, over the core API only.
pub struct Echo {
    /// Extra response headers to accept with.
    pub headers: Vec<(String, String)>,
}

impl RequestHandler for Echo {
    fn on_request(&self, request: IncomingRequest) {
        let headers = self.headers.clone();
        tokio::spawn(async move {
            if let Some(session) = request.accept(headers, String::new()).await {
                serve_echo(session).await;
            }
        });
    }
}

/// The core's reference echo.
pub use webtransport_napi::core::webtransport::echo::serve as serve_echo;
