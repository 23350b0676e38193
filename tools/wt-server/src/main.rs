//! `wt-server`: an independent WebTransport test server on the `wtransport` 0.7 crate, for the
//! tests of this package's WebTransport *client*. A client tested only against the server it
//! shares its HTTP/3 and session code with could carry the same mistake on both ends unseen; this
//! server shares no code with it (quinn underneath, but wtransport's own HTTP/3 and session layer).
//!
//! It does what `__test__/support/echo-server.mjs` does, as far as wtransport lets it:
//! - a client bidi stream is echoed back on itself, then finished;
//! - a client uni stream is read whole, then sent back on a server-opened uni stream;
//! - every datagram is sent back as it came;
//! - a bidi stream whose first bytes are a command line makes the server act instead:
//!   `open-bidi\n` / `open-uni\n` (a server stream carrying `server bidi` / `server uni`),
//!   `close <code> <reason>\n`, `reset <code>\n` (RESET_STREAM on this stream's send side),
//!   `stop <code>\n` (STOP_SENDING on its receive side, then the send side is finished),
//!   `burst <count> <size>\n` and `burst-reuse <count> <size>\n` (`count` datagrams, the first 4
//!   bytes numbering them, then `sent` on the stream), `drain\n` (answers `drain unsupported`:
//!   wtransport 0.7 cannot send DRAIN_WEBTRANSPORT_SESSION).
//!
//! wtransport 0.7 limits what these mean on the wire, which a test must allow for:
//! - `close` closes the whole QUIC connection (CONNECTION_CLOSE with that application code and
//!   reason): wtransport gives a server no way to send CLOSE_WEBTRANSPORT_SESSION.
//! - It hands stream error codes to quinn unchanged, so this server maps WebTransport application
//!   codes to and from the HTTP/3 range itself (as tools/wt-client does).
//! - It speaks the pre-draft-15 protocol only: SETTINGS_ENABLE_WEBTRANSPORT and
//!   `:protocol webtransport`; a CONNECT with `webtransport-h3` is refused by the library.
//!
//! Usage: wt-server [--cert cert.pem --key key.pem] [--port N] [--protocols a,b]
//!
//! Listens on 127.0.0.1 only. Without `--cert`/`--key` it generates a self-signed ECDSA P-256
//! certificate valid 10 days (what hash pinning accepts). `--protocols` lists the subprotocols it
//! supports: the first of the client's `wt-available-protocols` found there is answered in
//! `wt-protocol`. A request for `/status/403`, `/status/404` or `/status/429` is refused with that
//! status (the only refusals wtransport can send).
//!
//! Prints one JSON line per event on stdout, so a test can check what the client sent:
//! `{"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>",...}` once listening;
//! `{"session":{"path":...,"availableProtocols":...,"protocol":...,"origin":...}}` per session;
//! `{"sessionClosed":{"path":...,"code":N,"reason":"...","remote":true,"via":"capsule"}}` when a
//! session ends (`via`: `capsule` while the QUIC connection is still up, `connection-close` once it
//! is closed too, with its own `quicCode`/`quicReason`; `code` is null when it ended otherwise);
//! `{"streamError":{"path":...,"kind":"read"|"write","raw":N,"code":N|null}}` for a client's
//! RESET_STREAM / STOP_SENDING seen while echoing; `{"upgradeFailed":{"path":...,"error":...}}`
//! when a session could not be set up after its 200 went out.
//! Exits when stdin reaches its end (so a runner that dies takes its servers with it) or on
//! SIGTERM/SIGINT.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tool_support::hash::hex;
use tool_support::json::quote;
use tool_support::server::{self, Listen};
use wtransport::endpoint::IncomingSession;
use wtransport::error::{ConnectionError, StreamReadError, StreamWriteError};
use wtransport::{Connection, Endpoint, RecvStream, SendStream, ServerConfig, VarInt};

/// Uni streams are buffered whole before they are sent back: a bound, so a client cannot make the
/// server hold more than this.
const UNI_LIMIT: usize = 64 * 1024 * 1024;

struct Args {
    listen: Listen,
    protocols: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { listen: Listen::default(), protocols: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if args.listen.take(&arg, &mut it)? {
            continue;
        }
        match arg.as_str() {
            "--protocols" => {
                args.protocols = it
                    .next()
                    .ok_or("--protocols needs a value")?
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
                // The answer is an sf-string, which holds printable ASCII only.
                if let Some(bad) = args.protocols.iter().find(|p| !p.bytes().all(|b| (0x20..0x7f).contains(&b))) {
                    return Err(format!("--protocols: {bad:?} is not printable ASCII"));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.listen.check()?;
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// JSON lines (no serde: the values are few and flat).

fn json_opt_str(s: Option<&str>) -> String {
    s.map(quote).unwrap_or_else(|| "null".into())
}

fn json_opt_num(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "null".into())
}

/// One line per event; println! holds stdout's lock for the whole line, so lines never interleave.
fn emit(kind: &str, fields: &[(&str, String)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", quote(k))).collect();
    println!("{{{}:{{{}}}}}", quote(kind), body.join(","));
}

// ---------------------------------------------------------------------------------------------
// WebTransport application error codes (draft-ietf-webtrans-http3 §4.4): wtransport 0.7 passes
// stream codes to quinn as they are, so the mapping to the HTTP/3 range is done here.

const WT_CODE_FIRST: u64 = 0x52e4a40fa8db;
const WT_CODE_LAST: u64 = 0x52e5ac983162;

fn wt_to_h3(code: u32) -> VarInt {
    let h3 = WT_CODE_FIRST + u64::from(code) + u64::from(code) / 0x1e;
    // The largest (u32::MAX) is WT_CODE_LAST, well below the varint bound.
    VarInt::try_from_u64(h3).unwrap_or(VarInt::MAX)
}

/// The application code an HTTP/3 code carries; None outside the WebTransport range or on a
/// reserved (GREASE) codepoint.
fn h3_to_wt(h3: u64) -> Option<u32> {
    if !(WT_CODE_FIRST..=WT_CODE_LAST).contains(&h3) || (h3 - 0x21).is_multiple_of(0x1f) {
        return None;
    }
    let shifted = h3 - WT_CODE_FIRST;
    u32::try_from(shifted - shifted / 0x1f).ok()
}

// ---------------------------------------------------------------------------------------------
// Subprotocols: `wt-available-protocols` is an RFC 8941 List of sf-strings, `wt-protocol` one
// sf-string.

/// The strings of an sf-list whose members are all sf-strings (parameters are skipped); None when
/// it does not parse or holds another kind of item, which the draft says to treat as no offer.
fn parse_string_list(field: &str) -> Option<Vec<String>> {
    let b = field.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ows = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    skip_ows(&mut i);
    if i == b.len() {
        return Some(out);
    }
    loop {
        let (s, next) = parse_sf_string(b, i)?;
        out.push(s);
        i = next;
        // Parameters: ;key or ;key=bare-item.
        while i < b.len() && b[i] == b';' {
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_lowercase() || b[i].is_ascii_digit() || b"_-.*".contains(&b[i])) {
                i += 1;
            }
            if i == start {
                return None;
            }
            if i < b.len() && b[i] == b'=' {
                i += 1;
                if i < b.len() && b[i] == b'"' {
                    i = parse_sf_string(b, i)?.1;
                } else {
                    let start = i;
                    while i < b.len() && !b" \t;,".contains(&b[i]) {
                        i += 1;
                    }
                    if i == start {
                        return None;
                    }
                }
            }
        }
        skip_ows(&mut i);
        if i == b.len() {
            return Some(out);
        }
        if b[i] != b',' {
            return None;
        }
        i += 1;
        skip_ows(&mut i);
        if i == b.len() {
            return None; // a trailing comma
        }
    }
}

/// The sf-string starting at `b[i]` (its opening quote) and the index after its closing quote.
fn parse_sf_string(b: &[u8], mut i: usize) -> Option<(String, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let mut s = String::new();
    loop {
        match *b.get(i)? {
            b'\\' => {
                let c = *b.get(i + 1)?;
                if c != b'"' && c != b'\\' {
                    return None;
                }
                s.push(char::from(c));
                i += 2;
            }
            b'"' => return Some((s, i + 1)),
            c if (0x20..0x7f).contains(&c) => {
                s.push(char::from(c));
                i += 1;
            }
            _ => return None,
        }
    }
}

fn sf_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The first offered protocol this server supports, in the client's order of preference.
fn select_protocol(offered: Option<&str>, supported: &[String]) -> Option<String> {
    parse_string_list(offered?)?.into_iter().find(|p| supported.contains(p))
}

// ---------------------------------------------------------------------------------------------
// Commands.

#[derive(Debug, PartialEq)]
enum Command {
    OpenBidi,
    OpenUni,
    Close(u32, String),
    Drain,
    Reset(u32),
    Stop(u32),
    Burst { count: u32, size: usize },
}

/// The command a bidi stream's first bytes carry, if they are one line of a command; anything else
/// is echoed. A line with out-of-range numbers is not a command either.
fn parse_command(head: &[u8]) -> Option<Command> {
    let end = head.iter().take(2048).position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let number = |s: &str| s.parse::<u32>().ok().filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    match word {
        "open-bidi" => Some(Command::OpenBidi),
        "open-uni" => Some(Command::OpenUni),
        "drain" => Some(Command::Drain),
        "close" => {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(Command::Close(number(code)?, reason.to_string()))
        }
        "reset" => number(rest).map(Command::Reset),
        "stop" => number(rest).map(Command::Stop),
        "burst" | "burst-reuse" => {
            let (count, size) = rest.split_once(' ')?;
            let (count, size) = (number(count)?, number(size)? as usize);
            // Each datagram starts with its 4-byte number; the bounds keep a typo from pinning
            // the server.
            (count <= 100_000 && (4..=65_535).contains(&size)).then_some(Command::Burst { count, size })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wt-server: {e}");
            eprintln!("usage: wt-server [--cert cert.pem --key key.pem] [--port N] [--protocols a,b]");
            std::process::exit(2);
        }
    };
    let identity = match server::wtransport_identity(&args.listen).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("wt-server: {e}");
            std::process::exit(1);
        }
    };
    let Some(leaf) = identity.certificate_chain().as_slice().first() else {
        eprintln!("wt-server: the certificate file holds no certificate");
        std::process::exit(1);
    };
    let hash = hex(leaf.hash().as_ref());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.listen.port));
    let config = ServerConfig::builder().with_bind_address(addr).with_identity(identity).build();
    let server = match Endpoint::server(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wt-server: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
    let protocols: Vec<String> = args.protocols.iter().map(|p| quote(p)).collect();
    let extra = [("library", quote("wtransport 0.7")), ("protocols", format!("[{}]", protocols.join(",")))];
    server::print_ready(port, &hash, &extra);
    server::exit_on_stdin_eof();
    let protocols = Arc::new(args.protocols);
    loop {
        let incoming = server.accept().await;
        tokio::spawn(session(incoming, protocols.clone()));
    }
}

/// How this server ended a session itself, for its `sessionClosed` line.
type LocalClose = Arc<Mutex<Option<(u32, String)>>>;

async fn session(incoming: IncomingSession, protocols: Arc<Vec<String>>) {
    let Ok(request) = incoming.await else { return };
    let path = request.path().to_string();
    let headers: &HashMap<String, String> = request.headers();
    let offered = headers.get("wt-available-protocols").cloned();
    let origin = request.origin().map(str::to_string);
    match path.as_str() {
        "/status/403" => return request.forbidden().await,
        "/status/404" => return request.not_found().await,
        "/status/429" => return request.too_many_requests().await,
        _ => {}
    }
    let protocol = select_protocol(offered.as_deref(), &protocols);
    let accepted = match &protocol {
        Some(p) => request.accept_with_headers([("wt-protocol", sf_string(p))]).await,
        None => request.accept().await,
    };
    // wtransport sends the 200 before it registers the session: a client that closes at once can
    // end the connection in between, and the accept fails.
    let conn = match accepted {
        Ok(conn) => conn,
        Err(e) => {
            return emit("upgradeFailed", &[("path", quote(&path)), ("error", quote(&e.to_string()))]);
        }
    };
    emit(
        "session",
        &[
            ("path", quote(&path)),
            ("availableProtocols", json_opt_str(offered.as_deref())),
            ("protocol", json_opt_str(protocol.as_deref())),
            ("origin", json_opt_str(origin.as_deref())),
        ],
    );
    let path: Arc<str> = path.into();
    let local_close: LocalClose = Arc::default();

    let datagrams = conn.clone();
    tokio::spawn(async move {
        while let Ok(datagram) = datagrams.receive_datagram().await {
            let _ = datagrams.send_datagram(datagram.payload());
        }
    });
    let uni = conn.clone();
    tokio::spawn(async move {
        while let Ok(recv) = uni.accept_uni().await {
            tokio::spawn(echo_uni(uni.clone(), recv));
        }
    });
    let end = loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(handle_bidi(conn.clone(), send, recv, path.clone(), local_close.clone()));
            }
            Err(e) => break e,
        }
    };
    report_end(&conn, &path, &end, &local_close);
}

fn report_end(conn: &Connection, path: &str, end: &ConnectionError, local_close: &LocalClose) {
    let mut fields = vec![("path", quote(path))];
    let local = local_close.lock().ok().and_then(|l| l.clone());
    let quic = conn.quic_connection().close_reason();
    match (end, local) {
        (_, Some((code, reason))) => {
            fields.push(("code", code.to_string()));
            fields.push(("reason", quote(&reason)));
            fields.push(("remote", "false".into()));
            fields.push(("via", quote("connection-close")));
        }
        (ConnectionError::ApplicationClosed(close), None) => {
            fields.push(("code", close.code().into_inner().to_string()));
            fields.push(("reason", quote(&String::from_utf8_lossy(close.reason()))));
            fields.push(("remote", "true".into()));
            fields.push(("via", quote(if quic.is_none() { "capsule" } else { "connection-close" })));
        }
        (other, None) => {
            fields.push(("code", "null".into()));
            fields.push(("reason", "null".into()));
            fields.push(("remote", quote("unknown")));
            fields.push(("via", quote("error")));
            fields.push(("error", quote(&other.to_string())));
        }
    }
    if let Some(wtransport::quinn::ConnectionError::ApplicationClosed(close)) = &quic {
        fields.push(("quicCode", close.error_code.into_inner().to_string()));
        fields.push(("quicReason", quote(&String::from_utf8_lossy(&close.reason))));
    } else if let Some(other) = &quic {
        fields.push(("quicError", quote(&other.to_string())));
    }
    emit("sessionClosed", &fields);
}

fn report_stream_error(path: &str, kind: &str, raw: Option<u64>, text: String) {
    emit(
        "streamError",
        &[
            ("path", quote(path)),
            ("kind", quote(kind)),
            ("raw", json_opt_num(raw)),
            ("code", json_opt_num(raw.and_then(h3_to_wt).map(u64::from))),
            ("error", quote(&text)),
        ],
    );
}

/// Reads a stream to its end and drops what it reads: a receive side dropped before its end makes
/// quinn send STOP_SENDING with code 0, which a client would see as a stop it did not ask for.
fn drain(mut recv: RecvStream) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(Some(_)) = recv.read(&mut buf).await {}
    });
}

async fn handle_bidi(conn: Connection, mut send: SendStream, mut recv: RecvStream, path: Arc<str>, local: LocalClose) {
    let mut buf = vec![0u8; 64 * 1024];
    let first = match recv.read(&mut buf).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            let _ = send.finish().await;
            return;
        }
        Err(e) => return read_failed(&path, e, send),
    };
    let Some(command) = parse_command(&buf[..first]) else {
        return echo_bidi(send, recv, buf, first, &path).await;
    };
    match command {
        Command::OpenBidi => {
            if let Ok((mut s, r)) = open_bi(&conn).await {
                drain(r);
                let _ = s.write_all(b"server bidi").await;
                let _ = s.finish().await;
            }
            drain(recv);
            let _ = send.finish().await;
        }
        Command::OpenUni => {
            if let Ok(mut s) = open_uni(&conn).await {
                let _ = s.write_all(b"server uni").await;
                let _ = s.finish().await;
            }
            drain(recv);
            let _ = send.finish().await;
        }
        Command::Drain => {
            drain(recv);
            let _ = send.write_all(b"drain unsupported").await;
            let _ = send.finish().await;
        }
        Command::Close(code, reason) => {
            if let Ok(mut slot) = local.lock() {
                *slot = Some((code, reason.clone()));
            }
            conn.close(VarInt::from_u32(code), reason.as_bytes());
        }
        Command::Reset(code) => {
            let _ = send.reset(wt_to_h3(code));
            drain(recv);
        }
        Command::Stop(code) => {
            recv.stop(wt_to_h3(code));
            let _ = send.finish().await;
        }
        Command::Burst { count, size } => {
            let mut datagram = vec![0u8; size];
            for i in 0..count {
                datagram[..4].copy_from_slice(&i.to_be_bytes());
                let _ = conn.send_datagram(&datagram);
                // Lets the connection send between datagrams, as awaited writes do.
                tokio::task::yield_now().await;
            }
            drain(recv);
            let _ = send.write_all(b"sent").await;
            let _ = send.finish().await;
        }
    }
}

async fn open_bi(conn: &Connection) -> Result<(SendStream, RecvStream), String> {
    conn.open_bi().await.map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())
}

async fn open_uni(conn: &Connection) -> Result<SendStream, String> {
    conn.open_uni().await.map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())
}

/// A client reset (or a lost connection) while reading: recorded, and the send side reset too,
/// as the reference server's pipe does (code 0).
fn read_failed(path: &str, e: StreamReadError, mut send: SendStream) {
    if let StreamReadError::Reset(code) = &e {
        report_stream_error(path, "read", Some(code.into_inner()), e.to_string());
        let _ = send.reset(wt_to_h3(0));
    }
}

async fn echo_bidi(mut send: SendStream, mut recv: RecvStream, mut buf: Vec<u8>, first: usize, path: &str) {
    let mut n = first;
    loop {
        if let Err(e) = send.write_all(&buf[..n]).await {
            if let StreamWriteError::Stopped(code) = &e {
                report_stream_error(path, "write", Some(code.into_inner()), e.to_string());
                recv.stop(wt_to_h3(0));
            }
            return;
        }
        n = match recv.read(&mut buf).await {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => return read_failed(path, e, send),
        };
    }
    let _ = send.finish().await;
}

async fn echo_uni(conn: Connection, mut recv: RecvStream) {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) if data.len() + n <= UNI_LIMIT => data.extend_from_slice(&buf[..n]),
            Ok(Some(_)) => return recv.stop(wt_to_h3(0)),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    if let Ok(mut send) = open_uni(&conn).await {
        let _ = send.write_all(&data).await;
        let _ = send.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_like_the_reference_server() {
        assert_eq!(parse_command(b"open-bidi\n"), Some(Command::OpenBidi));
        assert_eq!(parse_command(b"open-uni\nrest"), Some(Command::OpenUni));
        assert_eq!(parse_command(b"close 42 bye now\n"), Some(Command::Close(42, "bye now".into())));
        assert_eq!(parse_command(b"close 7 \n"), Some(Command::Close(7, String::new())));
        assert_eq!(parse_command(b"reset 4294967295\n"), Some(Command::Reset(u32::MAX)));
        assert_eq!(parse_command(b"stop 0\n"), Some(Command::Stop(0)));
        assert_eq!(parse_command(b"burst-reuse 10 100\n"), Some(Command::Burst { count: 10, size: 100 }));
        assert_eq!(parse_command(b"drain\n"), Some(Command::Drain));
        for echoed in
            [&b"open-bidi"[..], b"reset 4294967296\n", b"reset -1\n", b"stop +1\n", b"burst 1 3\n", b"hello\n"]
        {
            assert_eq!(parse_command(echoed), None, "{:?}", String::from_utf8_lossy(echoed));
        }
    }

    #[test]
    fn protocols_are_picked_from_an_sf_string_list() {
        let ours = vec!["b".to_string(), "c".to_string()];
        assert_eq!(select_protocol(Some(r#""a", "b";q=1, "c""#), &ours), Some("b".into()));
        assert_eq!(select_protocol(Some(r#""c","b""#), &ours), Some("c".into()));
        assert_eq!(select_protocol(Some(r#""a""#), &ours), None);
        assert_eq!(select_protocol(Some("b, c"), &ours), None, "tokens are not strings");
        assert_eq!(select_protocol(Some(r#""b","#), &ours), None);
        assert_eq!(select_protocol(None, &ours), None);
        assert_eq!(parse_string_list(r#""q\"x\\y""#), Some(vec![r#"q"x\y"#.to_string()]));
        assert_eq!(sf_string(r#"q"x\y"#), r#""q\"x\\y""#);
    }

    #[test]
    fn stream_codes_map_like_the_draft() {
        assert_eq!(wt_to_h3(0).into_inner(), WT_CODE_FIRST);
        assert_eq!(wt_to_h3(u32::MAX).into_inner(), WT_CODE_LAST);
        for code in [0, 1, 0x1d, 0x1e, 0x1f, 255, u32::MAX] {
            assert_eq!(h3_to_wt(wt_to_h3(code).into_inner()), Some(code));
        }
        assert_eq!(h3_to_wt(7), None);
    }
}
