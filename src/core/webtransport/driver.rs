//! A WebTransport session's life on its CONNECT stream: the request's checks and the
//! application's decision, the 200, then the capsules both ways until the session ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::connect_stream::{ConnectStreamError, ConnectStreamParser};
use super::flow::{self, FlowControl, Violation};
use super::incoming::{Decision, IncomingRequest};
use super::layer::WebTransport;
use super::routing::Router;
use super::session::{Session, SessionEnd, SessionShared};
use super::wire::{self, code, Capsule};
use crate::core::config::OriginPolicy;
use crate::core::h3::connection::{reject_bidi, respond_and_end, response_frame, varint_code, FrameReader, Request};
use crate::core::h3::proto::code as h3_code;
use crate::core::h3::request;

/// How long a local close waits for the client to acknowledge the data of streams the
/// application already finished, before the close capsule goes out regardless.
pub(crate) const FINISHED_DATA_WAIT: Duration = Duration::from_secs(2);

/// Decides a WebTransport CONNECT and, once accepted, drives its session to the end.
pub(crate) async fn serve_connect(wt: &Arc<WebTransport>, router: &Router, request: Request) {
    let Request { id, info, mut send, body: reader } = request;
    if wt.closing.is_cancelled() {
        return respond_and_end(send, reader.recv, 503, &[]).await;
    }
    // A client's SETTINGS may trail its first request; the decision needs them.
    let mut settings_rx = router.h3.peer_settings();
    let settings = tokio::select! {
        s = tokio::time::timeout(wt.config.settings_timeout, settings_rx.wait_for(Option::is_some)) => {
            match s { Ok(Ok(s)) => s.clone(), _ => None }
        }
        _ = send.stopped() => return,
    };
    let Some(settings) = settings else {
        return respond_and_end(send, reader.recv, 400, &[("wt-error".into(), "settings-timeout".into())]).await;
    };
    if !wire::supports_webtransport(&settings) || !settings.supports_datagrams() {
        let headers = vec![("wt-error".to_string(), "webtransport-not-enabled".to_string())];
        return respond_and_end(send, reader.recv, 400, &headers).await;
    }
    // This server always declares flow control (it sends non-zero initial limits), so the
    // client's SETTINGS decide.
    let flow_enabled = flow::declares_flow_control(&settings);
    // Without flow control nothing bounds what one session takes of a shared connection, so the
    // draft allows one session per connection; the draft-02/-07 browsers (Chromium, Firefox)
    // predate that rule and pool sessions, and keep working as they always have.
    if !flow_enabled && !wire::speaks_legacy_webtransport(&settings) && !router.claim_sole_session(id) {
        return reject_bidi(send, reader.recv, h3_code::H3_REQUEST_REJECTED);
    }
    if wt.session_count() >= wt.config.max_sessions as usize {
        return respond_and_end(send, reader.recv, 429, &[]).await;
    }
    if wt.config.origin_policy == OriginPolicy::SameHost && !request::same_host_origin(&info) {
        return respond_and_end(send, reader.recv, 403, &[]).await;
    }

    let info = Arc::new(info);
    let (reply_tx, reply_rx) = oneshot::channel();
    wt.handler.on_request(IncomingRequest { info: info.clone(), reply: reply_tx });
    let answer = tokio::select! {
        answer = tokio::time::timeout(wt.config.decision_timeout, reply_rx) => answer,
        _ = send.stopped() => return,
    };
    let (decision, session_tx) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => return respond_and_end(send, reader.recv, 500, &[]).await,
        Err(_) => return respond_and_end(send, reader.recv, 503, &[]).await,
    };
    let (mut headers, protocol) = match decision {
        Decision::Reject { status, headers } => {
            let status = if (200..300).contains(&status) || !(100..=999).contains(&status) { 500 } else { status };
            let (status, headers) = wire::refusal(&info, status, headers);
            return respond_and_end(send, reader.recv, status, &headers).await;
        }
        Decision::Accept { headers, protocol } => (headers, protocol),
    };
    let flow = flow_enabled.then(|| FlowControl::new(wt.config.flow_control, flow::initial_limits(&settings)));
    let (session, close_rx) =
        SessionShared::new(id, router.h3.conn.clone(), info, protocol.clone(), wt.config.datagram_queue, flow);
    let Some(registration) = wt.register(session.clone()) else {
        return respond_and_end(send, reader.recv, 429, &[]).await;
    };
    headers.push(("sec-webtransport-http3-draft".into(), "draft02".into()));
    if !protocol.is_empty() {
        headers.push(("wt-protocol".into(), sf_string(&protocol)));
    }
    router.attach(&session);
    let written = send.write_all(&response_frame(200, &headers)).await.is_ok();
    if let Some(tx) = session_tx {
        let _ = tx.send(Session { shared: session.clone() });
    }
    if written {
        drive_session(&wt.closing, router, &session, send, reader, close_rx).await;
    } else {
        session.finish(SessionEnd::Aborted {
            message: "the client went away before the session opened".into(),
            connection_lost: false,
        });
    }
    drop(registration);
}

/// A structured-field String (RFC 8941 §3.3.3): quoted, with `"` and `\` escaped.
fn sf_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Owns the CONNECT stream of an open session until the session ends, on either end of the
/// connection; `closing` drains the session when cancelled (the server closing, or the client).
pub(crate) async fn drive_session(
    closing: &CancellationToken,
    state: &Router,
    session: &Arc<SessionShared>,
    mut send: quinn::SendStream,
    reader: FrameReader,
    mut close_rx: oneshot::Receiver<(u32, String)>,
) {
    let FrameReader { mut recv, buf } = reader;
    let mut parser = ConnectStreamParser::default();
    let mut pending_bytes = Some(buf);
    let mut drain_sent = false;
    // After the client's close capsule, the stream must end with nothing more (draft §6).
    let mut expect_fin_after_close = false;
    let end = loop {
        let chunk = match pending_bytes.take() {
            Some(early) => Ok(Some(early.freeze())),
            None => tokio::select! {
                chunk = recv.read_chunk(16 * 1024, true) => chunk.map(|c| c.map(|c| c.bytes)),
                request = &mut close_rx => {
                    let (error_code, reason) = request.unwrap_or((0, String::new()));
                    // The capsule makes the client abandon every stream of the session, so what
                    // the application wrote and finished before closing must be delivered first.
                    session.unacknowledged.wait(tokio::time::Instant::now() + FINISHED_DATA_WAIT).await;
                    close_locally(&mut send, &mut recv, error_code, &reason).await;
                    break SessionEnd::Closed { code: error_code, reason };
                }
                () = flow_signalled(session.flow.as_deref()) => {
                    let Some(flow) = &session.flow else { continue };
                    let (capsules, violation) = flow.take_signal();
                    if let Some(violation) = violation {
                        break flow_error(&mut send, &mut recv, &violation);
                    }
                    // Capsules are a few bytes; a client that stops granting QUIC credit on its
                    // own session's stream is cut off rather than holding the driver.
                    let written = tokio::time::timeout(Duration::from_secs(5), send.write_all(&capsules)).await;
                    if !matches!(written, Ok(Ok(()))) {
                        let _ = send.reset(varint_code(code::WT_SESSION_GONE));
                        break aborted("the client stopped reading the session stream");
                    }
                    continue;
                }
                () = closing.cancelled(), if !drain_sent => {
                    drain_sent = true;
                    session.draining.send_replace(true);
                    let _ = tokio::time::timeout(Duration::from_secs(1), send.write_all(&wire::drain_capsule_frame())).await;
                    continue;
                }
                // Session::drain: the same capsule for this one session.
                () = session.drain_request.notified(), if !drain_sent => {
                    drain_sent = true;
                    let _ = tokio::time::timeout(Duration::from_secs(1), send.write_all(&wire::drain_capsule_frame())).await;
                    continue;
                }
            },
        };
        match chunk {
            Ok(Some(bytes)) => match parser.push(&bytes) {
                Ok(capsules) => {
                    let mut capsules = capsules.into_iter();
                    let end = match apply_capsules(session, &mut capsules) {
                        Some(Stop::FlowError(violation)) => break flow_error(&mut send, &mut recv, &violation),
                        Some(Stop::Closed(end)) => Some(end),
                        None => None,
                    };
                    if let Some(end) = end {
                        if capsules.next().is_some() || !parser.at_frame_boundary() || !parser.at_capsule_boundary() {
                            reject_bidi(send, recv, h3_code::H3_MESSAGE_ERROR);
                            state.end_session(session.id);
                            return session.finish(end);
                        }
                        expect_fin_after_close = true;
                        state.end_session(session.id);
                        session.finish(end.clone());
                        break end;
                    }
                }
                Err(ConnectStreamError::Capsule(_)) => break protocol_error(&mut send, &mut recv),
                Err(ConnectStreamError::UnexpectedFrame(_)) => {
                    state.h3.fail(h3_code::H3_FRAME_UNEXPECTED, "control frame on a session's CONNECT stream");
                    break aborted("the client sent a control frame on the session stream");
                }
                Err(ConnectStreamError::MisplacedStreamSignal) => {
                    state.h3.fail(h3_code::H3_FRAME_ERROR, "webtransport stream signal inside a CONNECT stream");
                    break aborted("the client sent a misplaced stream signal on the session stream");
                }
            },
            // A FIN without a close capsule is a close with code 0 and no reason, if the stream
            // did not end inside a frame or a capsule.
            Ok(None) => {
                if !parser.at_frame_boundary() {
                    state.h3.fail(h3_code::H3_FRAME_ERROR, "CONNECT stream ended inside a frame");
                    break aborted("the session stream ended inside a frame");
                }
                if !parser.at_capsule_boundary() {
                    break protocol_error(&mut send, &mut recv);
                }
                let _ = send.finish();
                break SessionEnd::Closed { code: 0, reason: String::new() };
            }
            // A peer that closes its whole connection with H3_NO_ERROR closed cleanly, if
            // without a capsule: the same as a FIN.
            Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(close)))
                if close.error_code.into_inner() == h3_code::H3_NO_ERROR =>
            {
                break SessionEnd::Closed { code: 0, reason: String::new() };
            }
            Err(e) => {
                let _ = send.reset(varint_code(code::WT_SESSION_GONE));
                let (detail, connection_lost) = match e {
                    quinn::ReadError::ConnectionLost(lost) => (format!("connection lost: {lost}"), true),
                    other => (other.to_string(), false),
                };
                break SessionEnd::Aborted {
                    message: format!("the session ended without a close: {detail}"),
                    connection_lost,
                };
            }
        }
    };
    state.end_session(session.id);
    session.finish(end);
    if expect_fin_after_close {
        // The session is over for the application; what is left is checking that the client
        // ends its side cleanly, bounded so a silent client cannot hold the task.
        match tokio::time::timeout(Duration::from_secs(1), recv.read_chunk(1, true)).await {
            Ok(Ok(None)) => {
                let _ = send.finish();
            }
            Ok(Ok(Some(_))) => reject_bidi(send, recv, h3_code::H3_MESSAGE_ERROR),
            Ok(Err(_)) => {}
            Err(_) => {
                let _ = send.finish();
                let _ = recv.stop(varint_code(code::WT_SESSION_GONE));
            }
        }
    }
}

/// Sends our close capsule and ends our side of the CONNECT stream.
async fn close_locally(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, error_code: u32, reason: &str) {
    let capsule = wire::close_capsule_frame(error_code, reason);
    // A peer that stopped granting flow control must not hold the close forever.
    let sent = tokio::time::timeout(Duration::from_secs(2), send.write_all(&capsule)).await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = send.finish();
        // Until the capsule is acknowledged the connection must not be closed under it, or the
        // client sees a lost connection instead of this close.
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
    } else {
        let _ = send.reset(varint_code(code::WT_SESSION_GONE));
    }
    let _ = recv.stop(varint_code(code::WT_SESSION_GONE));
}

fn aborted(message: &str) -> SessionEnd {
    SessionEnd::Aborted { message: message.to_string(), connection_lost: false }
}

/// Why capsules stopped a session.
enum Stop {
    Closed(SessionEnd),
    FlowError(Violation),
}

/// Applies capsules in order up to a close or a flow-control violation, which it returns; the
/// iterator keeps what follows.
fn apply_capsules(session: &SessionShared, capsules: &mut impl Iterator<Item = Capsule>) -> Option<Stop> {
    for capsule in capsules.by_ref() {
        match capsule {
            Capsule::Close { code, reason } => return Some(Stop::Closed(SessionEnd::Closed { code, reason })),
            Capsule::Drain => {
                session.draining.send_replace(true);
            }
            // Without flow control these are ignored: the client may have sent them before it
            // saw our SETTINGS (draft §5.1).
            Capsule::Flow { kind, value } => {
                if let Some(Err(violation)) = session.flow.as_ref().map(|f| f.apply_capsule(kind, value)) {
                    return Some(Stop::FlowError(violation));
                }
            }
            Capsule::Unknown(_) => {}
        }
    }
    None
}

/// Resolves when the session's flow control owes capsules or met a violation; never without it.
async fn flow_signalled(flow: Option<&FlowControl>) {
    match flow {
        Some(flow) => flow.signalled().await,
        None => std::future::pending().await,
    }
}

/// Ends a session whose client broke flow control: its CONNECT stream is reset both ways with
/// WT_FLOW_CONTROL_ERROR (a session error, draft §5).
fn flow_error(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, violation: &Violation) -> SessionEnd {
    let _ = send.reset(varint_code(code::WT_FLOW_CONTROL_ERROR));
    let _ = recv.stop(varint_code(code::WT_FLOW_CONTROL_ERROR));
    SessionEnd::Aborted { message: format!("webtransport flow control error: {violation}"), connection_lost: false }
}

fn protocol_error(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream) -> SessionEnd {
    let _ = send.reset(varint_code(h3_code::H3_MESSAGE_ERROR));
    let _ = recv.stop(varint_code(h3_code::H3_MESSAGE_ERROR));
    SessionEnd::Aborted {
        message: "the client sent a malformed capsule or frame on the session stream".into(),
        connection_lost: false,
    }
}
