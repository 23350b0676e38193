#!/usr/bin/env python3
"""Transport-level WebTransport test client built on aioquic.

It drives cases a browser cannot produce against the project's echo server
(__test__/support/echo-server.mjs):

  stream4          a plain GET / on stream 0 (expects 404), then the
                   WebTransport Extended CONNECT on stream 4 (expects 200),
                   then bidi, uni and datagram echo on that session.
  late-settings    the client's HTTP/3 SETTINGS reach the server 300 ms after
                   its CONNECT; expects 200 and working bidi + datagram echo.
  no-webtransport  the client's SETTINGS carry neither the WebTransport nor
                   the H3_DATAGRAM setting; expects the CONNECT to be refused
                   with a 4xx, and a GET / on the same connection to still be
                   answered 404.
  http             one plain HTTP/3 request (--method, --path, --header,
                   --body-bytes, --reset-after ...), reported with the same
                   fields as tools/h3-client's `request` mode (see there), so a
                   test can run one case through both clients. The body is the
                   same pattern: byte i is byte i % 32 of
                   SHA-256("h3-body:" + decimal(i // 32)). --body TEXT sends
                   those UTF-8 bytes instead (an application's own request,
                   e.g. JSON), and `bodyText` reports a response body of up to
                   64 KiB as text (else null); tools/h3-client has neither.

Usage:
  python3 aioquic_client.py --port P --cert-pem FILE --cert-hash HEX SCENARIO
      [http options: --method M --path P --header NAME:VALUE... --body-bytes N --body TEXT
       --chunk-bytes N --reset-after BYTES --reset-code CODE --reset-delay-ms MS
       --after-reset-ms MS]

The server certificate is pinned: the SHA-256 of the DER certificate the
server presents must equal --cert-hash (checked inside the TLS handshake, so
nothing is sent to a server that fails it), and the certificate must also pass
aioquic's own check (validity dates, 127.0.0.1 in its subjectAltName, chain to
--cert-pem used as the only trust anchor).

The last line on stdout is always one JSON object; exit status 0 when the
scenario passed, 1 otherwise. An overall timeout (--timeout, 15 s) bounds the
run, and a watchdog kills the process if even that does not fire.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aioquic
import aioquic.tls
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection, Setting
from aioquic.h3.events import (
    DataReceived,
    DatagramReceived,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from cryptography.hazmat.primitives.serialization import Encoding

HOST = "127.0.0.1"
SETTINGS_DELAY_S = 0.3
STEP_TIMEOUT_S = 5.0


class ScenarioError(Exception):
    pass


# --------------------------------------------------------------------------
# certificate pinning


PIN: dict[str, Any] = {"expected": None, "presented": None, "matched": False, "verified": False}
_original_verify_certificate = aioquic.tls.verify_certificate


def _pinned_verify_certificate(certificate, chain=[], server_name=None, cadata=None, cafile=None, capath=None):
    """Replaces aioquic.tls.verify_certificate (the hook aioquic's TLS client
    calls on the server's Certificate): enforce the SHA-256 pin first, then run
    aioquic's own verification (dates, subjectAltName, chain to --cert-pem)."""
    presented = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    PIN["presented"] = presented
    if presented != PIN["expected"]:
        raise aioquic.tls.AlertBadCertificate(
            f"certificate SHA-256 {presented} does not match pinned {PIN['expected']}"
        )
    PIN["matched"] = True
    _original_verify_certificate(
        certificate, chain, server_name=server_name, cadata=cadata, cafile=cafile, capath=capath
    )
    PIN["verified"] = True


aioquic.tls.verify_certificate = _pinned_verify_certificate


# --------------------------------------------------------------------------
# HTTP/3 connection with an optionally deferred control stream


class DeferrableH3Connection(H3Connection):
    """H3Connection whose control stream (and so its SETTINGS frame) can be
    held back. The QPACK encoder/decoder streams are opened at once, as the
    encoder and decoder need them to exist; they carry no settings."""

    def __init__(self, quic, enable_webtransport: bool, defer_settings: bool, settings: dict[int, int | None]) -> None:
        self._defer_settings = defer_settings
        self._settings_changes = settings
        super().__init__(quic, enable_webtransport=enable_webtransport)

    def _get_local_settings(self) -> dict[int, int]:
        # A value of None removes a setting aioquic would send.
        settings = super()._get_local_settings()
        for key, value in self._settings_changes.items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        return settings

    def _init_connection(self) -> None:
        if not self._defer_settings:
            super()._init_connection()
            return
        from aioquic.h3.connection import StreamType

        self._local_encoder_stream_id = self._create_uni_stream(StreamType.QPACK_ENCODER)
        self._local_decoder_stream_id = self._create_uni_stream(StreamType.QPACK_DECODER)

    def send_deferred_settings(self) -> int:
        """Open the control stream now and send SETTINGS (+ MAX_PUSH_ID) on it,
        exactly as H3Connection._init_connection would have at construction."""
        from aioquic.h3.connection import FrameType, StreamType, encode_frame, encode_settings
        from aioquic.buffer import encode_uint_var

        assert self._defer_settings and self._local_control_stream_id is None
        self._defer_settings = False
        self._local_control_stream_id = self._create_uni_stream(StreamType.CONTROL)
        self._sent_settings = self._get_local_settings()
        self._quic.send_stream_data(
            self._local_control_stream_id,
            encode_frame(FrameType.SETTINGS, encode_settings(self._sent_settings)),
        )
        if self._is_client and self._max_push_id is not None:
            self._quic.send_stream_data(
                self._local_control_stream_id,
                encode_frame(FrameType.MAX_PUSH_ID, encode_uint_var(self._max_push_id)),
            )
        return self._local_control_stream_id


# --------------------------------------------------------------------------
# client protocol


@dataclass
class Request:
    stream_id: int
    headers: list[tuple[bytes, bytes]] | None = None
    headers_at: float | None = None
    trailers: list[tuple[bytes, bytes]] | None = None
    # bytearray: appending to bytes copies the whole body for every DATA frame.
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset_code: int | None = None
    stop_sending_code: int | None = None


@dataclass
class RawStream:
    stream_id: int
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset_code: int | None = None
    stop_sending_code: int | None = None
    session_id: int | None = None


class Client(QuicConnectionProtocol):
    enable_webtransport = True
    defer_settings = False
    settings: dict[int, int | None] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.t0 = time.monotonic()
        self.h3 = DeferrableH3Connection(
            self._quic,
            enable_webtransport=self.enable_webtransport,
            defer_settings=self.defer_settings,
            settings=self.settings,
        )
        self.requests: dict[int, Request] = {}
        self.raw_streams: dict[int, RawStream] = {}  # client-opened WT bidi streams (bypass H3)
        self.incoming_wt: dict[int, RawStream] = {}  # server-opened WT streams
        self.datagrams: list[tuple[int, bytes, float]] = []
        self.terminated: dict[str, Any] | None = None
        self.handshake_alpn: str | None = None
        self.unexpected: list[str] = []
        self._changed = asyncio.Event()

    def now_ms(self) -> float:
        return round((time.monotonic() - self.t0) * 1000, 1)

    # -- events

    def quic_event_received(self, event: QuicEvent) -> None:
        try:
            self._dispatch(event)
        finally:
            self._changed.set()

    def _dispatch(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.handshake_alpn = event.alpn_protocol
        elif isinstance(event, ConnectionTerminated):
            self.terminated = {
                "errorCode": event.error_code,
                "frameType": event.frame_type,
                "reason": event.reason_phrase,
                "atMs": self.now_ms(),
            }
        sid = getattr(event, "stream_id", None)
        # WebTransport bidi streams opened by this client: aioquic's H3Connection
        # keeps no state for them and would parse the echoed bytes as HTTP/3
        # frames, so their QUIC events are handled here and never reach it.
        if sid is not None and sid in self.raw_streams:
            raw = self.raw_streams[sid]
            if isinstance(event, StreamDataReceived):
                raw.data += event.data
                raw.ended = raw.ended or event.end_stream
            elif isinstance(event, StreamReset):
                raw.reset_code = event.error_code
            elif isinstance(event, StopSendingReceived):
                raw.stop_sending_code = event.error_code
            return
        if sid is not None and sid in self.requests:
            if isinstance(event, StreamReset):
                self.requests[sid].reset_code = event.error_code
            elif isinstance(event, StopSendingReceived):
                self.requests[sid].stop_sending_code = event.error_code
        if sid is not None and sid in self.incoming_wt:
            if isinstance(event, StreamReset):
                self.incoming_wt[sid].reset_code = event.error_code
        for h3_event in self.h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event) -> None:
        if isinstance(event, HeadersReceived):
            req = self.requests.get(event.stream_id)
            if req is None:
                self.unexpected.append(f"headers on untracked stream {event.stream_id}")
                return
            if req.headers is None:
                req.headers = list(event.headers)
                req.headers_at = self.now_ms()
            else:
                req.trailers = list(event.headers)
            req.ended = req.ended or event.stream_ended
        elif isinstance(event, DataReceived):
            req = self.requests.get(event.stream_id)
            if req is None:
                self.unexpected.append(f"data on untracked stream {event.stream_id}")
                return
            req.body += event.data
            req.ended = req.ended or event.stream_ended
        elif isinstance(event, WebTransportStreamDataReceived):
            raw = self.incoming_wt.setdefault(event.stream_id, RawStream(event.stream_id))
            raw.session_id = event.session_id
            raw.data += event.data
            raw.ended = raw.ended or event.stream_ended
        elif isinstance(event, DatagramReceived):
            self.datagrams.append((event.stream_id, event.data, time.monotonic()))

    # -- waiting

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if self.terminated is not None:
                raise ScenarioError(f"connection closed while waiting for {what}: {self.terminated}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise ScenarioError(f"timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    # -- actions

    def send_request(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        self.requests[stream_id] = Request(stream_id)
        self.h3.send_headers(stream_id, headers, end_stream=end_stream)
        self.transmit()
        return stream_id

    async def response(self, stream_id: int, what: str, need_end: bool = False) -> Request:
        req = self.requests[stream_id]
        await self.wait_until(
            lambda: (req.headers is not None and (req.ended or not need_end))
            or req.reset_code is not None,
            STEP_TIMEOUT_S,
            what,
        )
        return req

    def open_wt_bidi(self, session_id: int) -> int:
        stream_id = self.h3.create_webtransport_stream(session_id, is_unidirectional=False)
        self.raw_streams[stream_id] = RawStream(stream_id, session_id=session_id)
        return stream_id

    def open_wt_uni(self, session_id: int) -> int:
        return self.h3.create_webtransport_stream(session_id, is_unidirectional=True)


def make_client_class(enable_webtransport: bool, defer_settings: bool, settings: dict[int, int | None]):
    return type(
        "ScenarioClient",
        (Client,),
        {"enable_webtransport": enable_webtransport, "defer_settings": defer_settings, "settings": settings},
    )


# --------------------------------------------------------------------------
# helpers


def status_of(req: Request) -> int | None:
    for k, v in req.headers or []:
        if k == b":status":
            return int(v)
    return None


def headers_json(req: Request) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in (req.headers or [])}


def digest(data: bytes) -> dict[str, Any]:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def settings_json(settings: dict[int, int] | None) -> dict[str, int] | None:
    if settings is None:
        return None
    out = {}
    for k, v in settings.items():
        try:
            name = Setting(k).name
        except ValueError:
            name = hex(k)
        out[name] = v
    return out


def connect_headers(port: int, path: str = "/echo") -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"webtransport"),
        (b":scheme", b"https"),
        (b":authority", f"{HOST}:{port}".encode()),
        (b":path", path.encode()),
        (b"sec-webtransport-http3-draft02", b"1"),
        (b"origin", f"https://{HOST}:{port}".encode()),
    ]


def get_headers(port: int, path: str = "/") -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", f"{HOST}:{port}".encode()),
        (b":path", path.encode()),
    ]


def pattern(n: int, seed: int) -> bytes:
    """Deterministic, non-repeating-looking payload."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


# --------------------------------------------------------------------------
# checks


async def do_get(client: Client, port: int, result: dict, key: str, errors: list[str]) -> None:
    sid = client.send_request(get_headers(port), end_stream=True)
    req = await client.response(sid, f"response to GET / ({key})", need_end=True)
    status = status_of(req)
    result[key] = {
        "streamId": sid,
        "status": status,
        "bodyLength": len(req.body),
        "ended": req.ended,
        "resetCode": req.reset_code,
    }
    if status != 404:
        errors.append(f"{key}: expected :status 404, got {status} (reset {req.reset_code})")


async def check_bidi(client: Client, session_id: int, result: dict, errors: list[str], size: int = 65536) -> None:
    payload = pattern(size, 1)
    sid = client.open_wt_bidi(session_id)
    client._quic.send_stream_data(sid, payload, end_stream=True)
    client.transmit()
    raw = client.raw_streams[sid]
    entry: dict[str, Any] = {"streamId": sid, "sent": digest(payload)}
    result["bidi"] = entry
    try:
        await client.wait_until(
            lambda: raw.ended or raw.reset_code is not None, STEP_TIMEOUT_S, "bidi echo"
        )
    finally:
        echoed = bytes(raw.data)
        entry.update(
            echoed=digest(echoed),
            finReceived=raw.ended,
            resetCode=raw.reset_code,
            equal=echoed == payload,
        )
    if not entry["equal"]:
        errors.append(
            f"bidi: echoed {len(echoed)} bytes (fin {raw.ended}, reset {raw.reset_code}) != sent {len(payload)}"
        )


async def check_uni(client: Client, session_id: int, result: dict, errors: list[str], size: int = 16384) -> None:
    payload = pattern(size, 2)
    already = set(client.incoming_wt)
    sid = client.open_wt_uni(session_id)
    client._quic.send_stream_data(sid, payload, end_stream=True)
    client.transmit()
    entry: dict[str, Any] = {"sentStreamId": sid, "sent": digest(payload)}
    result["uni"] = entry

    def echo_stream() -> RawStream | None:
        for stream_id, raw in client.incoming_wt.items():
            if stream_id not in already and stream_id % 4 == 3:
                return raw
        return None

    try:
        await client.wait_until(
            lambda: (s := echo_stream()) is not None and (s.ended or s.reset_code is not None),
            STEP_TIMEOUT_S,
            "uni echo on a server-opened uni stream",
        )
    finally:
        raw = echo_stream()
        echoed = bytes(raw.data) if raw else b""
        entry.update(
            echoStreamId=raw.stream_id if raw else None,
            echoSessionId=raw.session_id if raw else None,
            echoed=digest(echoed),
            finReceived=raw.ended if raw else False,
            equal=echoed == payload,
        )
    if not entry["equal"] or entry["echoSessionId"] != session_id:
        errors.append(
            f"uni: echo stream {entry['echoStreamId']} session {entry['echoSessionId']} "
            f"carried {len(echoed)} bytes, sent {len(payload)} on session {session_id}"
        )


async def check_datagrams(
    client: Client, session_id: int, result: dict, errors: list[str], count: int, min_back: int
) -> None:
    sent: dict[bytes, int] = {}
    start = len(client.datagrams)
    for i in range(count):
        payload = f"dgram-{i:03d}-".encode() + pattern(100, 1000 + i)
        sent[payload] = i
        client.h3.send_datagram(session_id, payload)
        client.transmit()
        await asyncio.sleep(0.02)
    try:
        await client.wait_until(lambda: len(client.datagrams) - start >= count, 2.0, "datagram echoes")
    except ScenarioError:
        pass  # datagrams are unreliable: judge what came back
    got = client.datagrams[start:]
    tags = sorted({sid for sid, _, _ in got})
    intact = [d for sid, d, _ in got if sid == session_id and d in sent]
    result["datagrams"] = {
        "sent": count,
        "received": len(got),
        "intact": len(intact),
        "distinct": len(set(intact)),
        "sessionIdsTagged": tags,
        "allTaggedForSession": all(sid == session_id for sid, _, _ in got),
        "allIntact": all(d in sent for _, d, _ in got),
        "sessionId": session_id,
    }
    if len(intact) < min_back:
        errors.append(f"datagrams: only {len(intact)} of {count} came back intact (need {min_back})")
    if got and not result["datagrams"]["allTaggedForSession"]:
        errors.append(f"datagrams: echoes tagged for streams {tags}, expected {session_id}")
    if got and not result["datagrams"]["allIntact"]:
        errors.append("datagrams: some echoed datagrams differ from every sent payload")


def record_connect(client: Client, req: Request, result: dict, sent_at: float) -> int | None:
    status = status_of(req)
    result["connect"] = {
        "streamId": req.stream_id,
        "status": status,
        "headers": headers_json(req),
        "sentAtMs": sent_at,
        "responseAtMs": req.headers_at,
        "resetCode": req.reset_code,
        "stopSendingCode": req.stop_sending_code,
        "ended": req.ended,
    }
    return status


# --------------------------------------------------------------------------
# scenarios


async def scenario_stream4(client: Client, args, result: dict, errors: list[str]) -> None:
    await do_get(client, args.port, result, "get", errors)
    if result["get"]["streamId"] != 0:
        errors.append(f"GET went out on stream {result['get']['streamId']}, not 0")

    sent_at = client.now_ms()
    sid = client.send_request(connect_headers(args.port), end_stream=False)
    req = await client.response(sid, "CONNECT response")
    status = record_connect(client, req, result, sent_at)
    if sid != 4:
        errors.append(f"CONNECT went out on stream {sid}, not 4")
    if status != 200:
        raise ScenarioError(f"CONNECT on stream {sid}: expected :status 200, got {status} (reset {req.reset_code})")

    await check_bidi(client, sid, result, errors)
    await check_uni(client, sid, result, errors)
    await check_datagrams(client, sid, result, errors, args.datagrams, args.min_datagrams)


async def scenario_late_settings(client: Client, args, result: dict, errors: list[str]) -> None:
    sent_at = client.now_ms()
    sid = client.send_request(connect_headers(args.port), end_stream=False)
    # The CONNECT is on the wire; our SETTINGS are not.
    await asyncio.sleep(SETTINGS_DELAY_S)
    req = client.requests[sid]
    answered_early = req.headers is not None or req.reset_code is not None
    control_id = client.h3.send_deferred_settings()
    client.transmit()
    settings_at = client.now_ms()
    result["settings"] = {
        "controlStreamId": control_id,
        "connectSentAtMs": sent_at,
        "settingsSentAtMs": settings_at,
        "delayMs": round(settings_at - sent_at, 1),
        "responseBeforeSettings": answered_early,
    }

    req = await client.response(sid, "CONNECT response")
    status = record_connect(client, req, result, sent_at)
    if status != 200:
        raise ScenarioError(f"CONNECT with late SETTINGS: expected :status 200, got {status} (reset {req.reset_code})")

    await check_bidi(client, sid, result, errors)
    await check_datagrams(client, sid, result, errors, args.datagrams, args.min_datagrams)


async def scenario_no_webtransport(client: Client, args, result: dict, errors: list[str]) -> None:
    sent_at = client.now_ms()
    sid = client.send_request(connect_headers(args.port), end_stream=False)
    req = await client.response(sid, "CONNECT response")
    status = record_connect(client, req, result, sent_at)
    result["refused"] = status is not None and 400 <= status < 500
    if not result["refused"]:
        errors.append(f"CONNECT without WebTransport settings: expected a 4xx, got {status} (reset {req.reset_code})")
    await do_get(client, args.port, result, "getAfter", errors)


async def open_session(client: Client, args, result: dict, what: str) -> int:
    """Sends the CONNECT and records its answer; the session id, or a ScenarioError unless 200."""
    sent_at = client.now_ms()
    sid = client.send_request(connect_headers(args.port), end_stream=False)
    req = await client.response(sid, "CONNECT response")
    status = record_connect(client, req, result, sent_at)
    if status != 200:
        raise ScenarioError(f"CONNECT {what}: expected :status 200, got {status} (reset {req.reset_code})")
    return sid


async def scenario_safari_settings(client: Client, args, result: dict, errors: list[str]) -> None:
    sid = await open_session(client, args, result, "with Safari's SETTINGS")
    await check_bidi(client, sid, result, errors)


def capsule_types(body: bytes) -> list[int] | None:
    """The types of the whole capsules in `body` (the CONNECT stream's DATA payloads), or None
    if it is not a capsule sequence."""
    from aioquic.buffer import Buffer, BufferReadError

    types = []
    buf = Buffer(data=bytes(body))
    try:
        while not buf.eof():
            kind = buf.pull_uint_var()
            length = buf.pull_uint_var()
            buf.pull_bytes(length)
            types.append(kind)
    except BufferReadError:
        return types
    return types


DRAIN_WEBTRANSPORT_SESSION = 0x78AE


async def scenario_drain(client: Client, args, result: dict, errors: list[str]) -> None:
    sid = await open_session(client, args, result, "before the drain")
    req = client.requests[sid]
    # The echo server's "drain" command makes it call session.drain() on this session.
    command = client.open_wt_bidi(sid)
    client._quic.send_stream_data(command, b"drain\n", end_stream=True)
    client.transmit()
    answer = client.raw_streams[command]
    await client.wait_until(lambda: answer.ended or answer.reset_code is not None, STEP_TIMEOUT_S, "the drain command's answer")
    await client.wait_until(
        lambda: DRAIN_WEBTRANSPORT_SESSION in (capsule_types(req.body) or []),
        STEP_TIMEOUT_S,
        "a DRAIN_WEBTRANSPORT_SESSION capsule on the CONNECT stream",
    )
    result["drain"] = {
        "answer": bytes(answer.data).decode("utf-8", "replace"),
        "capsules": [hex(t) for t in capsule_types(req.body) or []],
        "sessionStreamEnded": req.ended,
    }
    # Draining is a request: a stream opened after it still echoes.
    await check_bidi(client, sid, result, errors)


# What Safari 26.4+ sends as reported (quic-go/webtransport-go #261, #355; hyperium/h3 #347): H3
# datagrams and SETTINGS_WT_MAX_SESSIONS above 1, which declares WebTransport flow control
# (draft-14), and not the draft-02 ENABLE_WEBTRANSPORT. The initial limits it gives the server are
# this test's choice (1 MiB, 10 streams each), enough for the echo.
SAFARI_SETTINGS: dict[int, int | None] = {
    0x2B603742: None,
    0x14E9CD29: 100,
    0x2B61: 1 << 20,
    0x2B64: 10,
    0x2B65: 10,
}

def body_pattern(offset: int, length: int) -> bytes:
    """Bytes [offset, offset + length) of tools/h3-client's body pattern."""
    first, last = offset // 32, (offset + length + 31) // 32
    blob = b"".join(hashlib.sha256(b"h3-body:%d" % k).digest() for k in range(first, last))
    start = offset - first * 32
    return blob[start : start + length]


def fields_json(fields: list[tuple[bytes, bytes]] | None) -> dict[str, str] | None:
    """Regular fields (no pseudo-headers), repeated names joined with ", ", as h3-client does."""
    if fields is None:
        return None
    out: dict[str, str] = {}
    for k, v in fields:
        name, value = k.decode("latin-1"), v.decode("latin-1")
        if name.startswith(":"):
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


# aioquic buffers whatever it is given; the body is written only while less than this is unacked,
# so a 10 MB body is streamed under the server's flow control rather than queued at once.
SEND_BUFFER_LIMIT = 1 << 20
# How long a request body may still be writing once the response has completed (a server may
# answer without reading it, RFC 9114 section 4.1, and grant no more credit).
SEND_GRACE_S = 2.0
# The largest response body reported as `bodyText`: enough for an application's answers, while a
# 10 MB download stays out of the JSON line.
BODY_TEXT_LIMIT = 64 * 1024


async def scenario_http(client: Client, args, result: dict, errors: list[str]) -> None:
    method = args.method.upper()
    headers = [
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", f"{HOST}:{args.port}".encode()),
        (b":path", args.path.encode()),
    ]
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep:
            raise ScenarioError(f"--header wants NAME:VALUE, got {line!r}")
        headers.append((name.strip().lower().encode(), value.strip().encode()))
    text = args.body.encode() if args.body is not None else None
    if text is not None and args.body_bytes is not None:
        raise ScenarioError("--body and --body-bytes exclude each other")

    def body_at(offset: int, length: int) -> bytes:
        return text[offset : offset + length] if text is not None else body_pattern(offset, length)

    # A reset needs a body to interrupt: without --body-bytes it is the reset point.
    if text is not None:
        total = len(text)
    else:
        total = args.body_bytes if args.body_bytes is not None else (args.reset_after or 0)
    if args.reset_after is not None and args.reset_after > total:
        raise ScenarioError(f"--reset-after {args.reset_after} is beyond --body-bytes {total}")
    until = args.reset_after if args.reset_after is not None else total
    loop = asyncio.get_running_loop()
    started = client.now_ms()
    sid = client.send_request(headers, end_stream=total == 0 and args.reset_after is None)
    req = client.requests[sid]
    sent, sha = 0, hashlib.sha256()
    finished = total == 0 and args.reset_after is None
    reset_sent = send_error = None
    abandoned = wait_timed_out = False
    ended_at: float | None = None

    def response_over() -> bool:
        return req.ended or req.reset_code is not None

    async def room() -> bool:
        """Waits until the stream's unacked bytes are under SEND_BUFFER_LIMIT; False when the
        server stopped the stream or the response is over and the grace has run out. ACKs raise
        no event, so this polls."""
        nonlocal ended_at, abandoned
        while True:
            if req.stop_sending_code is not None:
                return False
            if client.terminated is not None:
                raise ScenarioError(f"connection closed while sending the body: {client.terminated}")
            if response_over():
                ended_at = ended_at or loop.time()
                if loop.time() - ended_at > SEND_GRACE_S:
                    abandoned = True
                    return False
            stream = client._quic._streams.get(sid)
            if stream is None:  # aioquic discards a stream once both of its sides are over
                raise RuntimeError("the stream is gone")
            if len(stream.sender._buffer) < SEND_BUFFER_LIMIT:
                return True
            await asyncio.sleep(0.005)

    try:
        while sent < until and await room():
            chunk = body_at(sent, min(args.chunk_bytes, until - sent))
            client.h3.send_data(sid, chunk, end_stream=False)
            client.transmit()
            sha.update(chunk)
            sent += len(chunk)
        if req.stop_sending_code is None and not abandoned and sent == until and not finished:
            if args.reset_after is not None:
                await asyncio.sleep(args.reset_delay_ms / 1000)
                # A STOP_SENDING in the pause has made aioquic reset the stream already, with the
                # stop's code (RFC 9000 section 3.5): then this reset would not go out.
                if req.stop_sending_code is None:
                    client._quic.reset_stream(sid, args.reset_code)
                    client.transmit()
                    reset_sent = args.reset_code
            else:
                client.h3.send_data(sid, b"", end_stream=True)
                client.transmit()
                finished = True
    except RuntimeError as exc:  # aioquic refuses writes once the stream is reset or finished
        send_error = f"body write at offset {sent}: {exc}"

    if reset_sent is not None:
        try:
            await client.wait_until(response_over, args.after_reset_ms / 1000, "a response after the reset")
        except ScenarioError:
            if client.terminated is not None:
                raise
            wait_timed_out = True
    else:
        await client.wait_until(response_over, args.timeout, "the response")

    body = bytes(req.body)
    complete = req.ended and req.reset_code is None
    result.update(
        method=method,
        path=args.path,
        status=status_of(req),
        headers=fields_json(req.headers),
        trailers=fields_json(req.trailers),
        bodyLength=len(body),
        bodySha256=hashlib.sha256(body).hexdigest(),
        bodyEqualsSent=(finished and body == body_at(0, sent)) if args.body_bytes is not None or text is not None else None,
        bodyText=body.decode("utf-8", "replace") if len(body) <= BODY_TEXT_LIMIT else None,
        responseComplete=complete,
        responseResetCode=req.reset_code,
        recvError=None,
        sentBytes=sent,
        sentSha256=sha.hexdigest(),
        requestFinished=finished,
        resetSent=reset_sent,
        stopSendingCode=req.stop_sending_code,
        sendError=send_error,
        sendAbandoned=abandoned,
        responseWaitTimedOut=wait_timed_out,
        headersMs=round(req.headers_at - started, 1) if req.headers_at is not None else None,
        totalMs=round(client.now_ms() - started, 1),
    )
    if args.reset_after is not None:
        if reset_sent is None and not complete:
            errors.append(send_error or f"the body stopped at {sent} bytes without a reset or a complete response")
    elif not complete:
        errors.append(f"no complete response (status {result['status']}, reset {req.reset_code})")


SCENARIOS = {
    "stream4": (scenario_stream4, True, False, {}),
    "late-settings": (scenario_late_settings, True, True, {}),
    "no-webtransport": (scenario_no_webtransport, False, False, {}),
    "safari-settings": (scenario_safari_settings, True, False, SAFARI_SETTINGS),
    "drain": (scenario_drain, True, False, {}),
    # A plain HTTP/3 client: no WebTransport or datagram settings.
    "http": (scenario_http, False, False, {}),
}


# --------------------------------------------------------------------------
# main


async def run(args, result: dict, errors: list[str]) -> None:
    scenario, enable_wt, defer, settings = SCENARIOS[args.scenario]
    with open(args.cert_pem, "rb") as f:
        cadata = f.read()
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        server_name=HOST,
        verify_mode=ssl.CERT_REQUIRED,
        cadata=cadata,
        # H3 datagrams need the QUIC DATAGRAM extension; the no-WebTransport
        # client advertises neither.
        max_datagram_frame_size=65536 if enable_wt else None,
    )
    client_class = make_client_class(enable_wt, defer, settings)
    async with connect(HOST, args.port, configuration=configuration, create_protocol=client_class) as client:
        client: Client
        result["handshake"] = {"alpn": client.handshake_alpn, "certificate": dict(PIN)}
        if client.handshake_alpn != "h3":
            raise ScenarioError(f"negotiated ALPN {client.handshake_alpn!r}, expected 'h3'")
        if not PIN["verified"]:
            raise ScenarioError("certificate pin was not checked")
        try:
            await scenario(client, args, result, errors)
        finally:
            result["localSettings"] = settings_json(client.h3.sent_settings)
            result["serverSettings"] = settings_json(client.h3.received_settings)
            result["connectionTerminated"] = client.terminated
            if client.unexpected:
                result["unexpected"] = client.unexpected
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-pem", required=True, help="server certificate (PEM), the only trust anchor")
    parser.add_argument("--cert-hash", required=True, help="hex SHA-256 of the server certificate's DER")
    parser.add_argument("--timeout", type=float, default=15.0, help="overall timeout in seconds")
    parser.add_argument("--datagrams", type=int, default=20, help="datagrams to send")
    parser.add_argument("--min-datagrams", type=int, default=10, help="intact echoes required")
    http = parser.add_argument_group("http scenario")
    http.add_argument("--method", default="GET")
    http.add_argument("--path", default="/")
    http.add_argument("--header", action="append", default=[], help="NAME:VALUE, repeatable")
    http.add_argument("--body-bytes", type=int, default=None, help="request body of N pattern bytes")
    http.add_argument("--body", default=None, help="request body: this text, UTF-8 (instead of --body-bytes)")
    http.add_argument("--chunk-bytes", type=int, default=64 * 1024, help="body DATA frame size")
    http.add_argument("--reset-after", type=int, default=None, help="reset the request after this many body bytes")
    http.add_argument("--reset-code", type=lambda v: int(v, 0), default=0x10C, help="RESET_STREAM code (H3_REQUEST_CANCELLED)")
    http.add_argument("--reset-delay-ms", type=int, default=0, help="pause between the last body byte and the reset")
    http.add_argument("--after-reset-ms", type=int, default=1000, help="how long to wait for a response after the reset")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()

    PIN["expected"] = args.cert_hash.lower().replace(":", "")
    result: dict[str, Any] = {"scenario": args.scenario, "ok": False, "aioquic": aioquic.__version__, "port": args.port}
    errors: list[str] = []
    started = time.monotonic()

    def emit_and_exit(code: int) -> None:
        result["errors"] = errors
        result["elapsedMs"] = round((time.monotonic() - started) * 1000, 1)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(code)

    # Last resort: if the event loop itself wedges, still answer and exit.
    def watchdog() -> None:
        errors.append(f"watchdog: no result after {args.timeout + 3}s")
        emit_and_exit(1)

    timer = threading.Timer(args.timeout + 3, watchdog)
    timer.daemon = True
    timer.start()

    try:
        asyncio.run(asyncio.wait_for(run(args, result, errors), args.timeout))
    except asyncio.TimeoutError:
        errors.append(f"overall timeout of {args.timeout}s expired")
    except ScenarioError as exc:
        errors.append(str(exc))
    except ConnectionError as exc:
        errors.append(f"connection failed: {exc!r} (certificate: {PIN})")
    except Exception as exc:  # report, never hang or traceback without JSON
        errors.append(f"{type(exc).__name__}: {exc}")
    timer.cancel()
    result["ok"] = not errors
    emit_and_exit(0 if result["ok"] else 1)
    return 0


if __name__ == "__main__":
    main()
