#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/seed-* (committed). Standard library only.

`python3 fuzz/seeds.py` rewrites every seed-* file and leaves other corpus files (inputs a long run
merged in with `fuzz/run.sh --merge`) alone.

Where the bytes come from (see fuzz/README.md):
- CHROMIUM_*: captured from Chromium 156.0.8078.79 (headless, Debian 12) opening WebTransport
  sessions to a throwaway aioquic server on 127.0.0.1 that advertised the same SETTINGS as this
  server (QPACK table capacity 0) and logged every byte received: three CONNECT streams (HEADERS
  block, then grease and close capsules in DATA frames), the control stream, a bidirectional and a
  unidirectional WebTransport stream, and three datagrams.
- AIOQUIC_*: produced by aioquic 1.7.2 / pylsqpack (the project's Python test client's stack).
- The rest is built here from the RFCs, each input named for the case it exercises.
"""

import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def h(s):
    return bytes.fromhex("".join(s.split()))


# --- captured from Chromium 156 ------------------------------------------------------------------

# Request stream of session 1: HEADERS (CONNECT, origin, wt-available-protocols), then DATA frames:
# a grease capsule and CLOSE_WEBTRANSPORT_SESSION(4001, "bye from client").
CHROMIUM_STREAM_1 = h("""
01407c0000d7cf508a089d5c0b8170dc69a7df518760a49cffe798032f00b95d8749c87a3f89f058d360ea4567b13f
2f0e4148b782c69b07522b3d895a74a6b65692c1ca900b01315f4b909d29aee30c044eae05c0b86e32f004ef2f09f0
9587dc66a071d055abb0e9390f423f91fe4938d2b7717f3f4a7f249c695bb87f9f
0015c4c79c73f39d6ff00ce391a98f4141fb69c314b077
001668431300000fa16279652066726f6d20636c69656e74
""")
# Session 2: a grease capsule, then a close with code 0xffffffff and a 1200-byte reason ("é" * 600
# + "x") that Chromium cut to 1024 bytes.
CHROMIUM_STREAM_2 = h("""
01405d0000d7cf508a089d5c0b8170dc69a7df518c60a49cffe79803f08290f5492f00b95d8749c87a3f89f058d360
ea4567b13f2f0e4148b782c69b07522b3d895a74a6b65692c1ca900b01315f4b909d29aee30c044eae05c0b86e32f0
04ef
001ec18442b94682c2bf1559ef169ea58961615dec340dd34eab1b21ee65d6a1
00440868434404ffffffff""") + "é".encode() * 512
# Session 3: wt.close() with no code or reason.
CHROMIUM_STREAM_3 = h("""
01405d0000d7cf508a089d5c0b8170dc69a7df518c60a49cffe79803f099cd649f2f00b95d8749c87a3f89f058d360
ea4567b13f2f0e4148b782c69b07522b3d895a74a6b65692c1ca900b01315f4b909d29aee30c044eae05c0b86e32f0
04ef
002acc5169de6b87f76121c19aca371831c722455f3ef56365f7df4b1e0606035ad1e18e950349e5bcf16953
000768430400000000
""")
# Control stream: type 0, SETTINGS (QPACK capacity 65536, MAX_FIELD_SECTION_SIZE 16384, blocked
# 100, H3_DATAGRAM, its draft-04 id, ENABLE_WEBTRANSPORT draft-02, a grease setting), a grease frame.
CHROMIUM_CONTROL = h("""
00 04 25 01800100000680004000074064330180ffd27701ab60374201c000001d7fe82030aa7e70ea
c00000140f051f4b 02 a963
""")
CHROMIUM_BIDI = h("4041 00") + b"hello bidi"  # WEBTRANSPORT_STREAM, session 0, payload
CHROMIUM_UNI = h("4054 00") + b"hello uni"  # WebTransport uni stream, session 0, payload
CHROMIUM_DATAGRAMS = [
    h("00") + b"hello datagram",
    h("00"),
    h("00 69a8dadb546d360022d3c0516db4ffb6d4da49"),  # first 20 bytes of a 1000-byte datagram
]

# --- aioquic 1.7.2 / pylsqpack -------------------------------------------------------------------

AIOQUIC_CONNECT_BLOCK = h("""
0000cf2f00b95d8749c87a3f89f058d360ea4567b13fd7508a089d5c0b8170dc69a659518460a49cff2f0e4148b782
c69b07522b3d895a74a6b65692c1ca900b01315f4b909d29ad1718602275702e05c371a69967
""")
AIOQUIC_GET_BLOCK = h("0000d1d7508a089d5c0b8170dc69a659518860d5485f2bce9a685f5089198fdad31180aeeae2")
AIOQUIC_SETTINGS = h("0150000710080121013301ab60374201")

# --- encoders written from the RFCs --------------------------------------------------------------


def varint(v, size=None):
    """RFC 9000 §16; `size` forces a (possibly non-minimal) length."""
    if size is None:
        size = 1 if v < 64 else 2 if v < 16384 else 4 if v < 2**30 else 8
    prefix = {1: 0, 2: 1, 4: 2, 8: 3}[size]
    raw = v.to_bytes(size, "big")
    return bytes([raw[0] | (prefix << 6)]) + raw[1:]


def frame(kind, payload):
    return varint(kind) + varint(len(payload)) + payload


def capsule(kind, payload):
    return varint(kind) + varint(len(payload)) + payload


def close_capsule(code, reason):
    return capsule(0x2843, struct.pack(">I", code) + reason)


def prefix_int(flags, bits, value):
    """RFC 7541 §5.1."""
    top = (1 << bits) - 1
    if value < top:
        return bytes([flags | value])
    out = [flags | top]
    value -= top
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_block(fields):
    """A QPACK field section of Literal Field Lines With Literal Name only (RFC 9204 §4.5.6)."""
    out = b"\x00\x00"
    for name, value in fields:
        name, value = name.encode(), value.encode()
        out += prefix_int(0x20, 3, len(name)) + name + prefix_int(0x00, 7, len(value)) + value
    return out


def settings(pairs):
    return b"".join(varint(i) + varint(v) for i, v in pairs)


CONNECT = [
    (":method", "CONNECT"),
    (":protocol", "webtransport"),
    (":scheme", "https"),
    (":authority", "localhost:4433"),
    (":path", "/echo?x=1"),
]


def request_blocks():
    """Raw QPACK blocks for the request target."""
    cases = {
        "chromium-connect-protocols": CHROMIUM_STREAM_1[3 : 3 + 0x7C],
        "chromium-connect": CHROMIUM_STREAM_3[3 : 3 + 0x5D],
        "aioquic-connect": AIOQUIC_CONNECT_BLOCK,
        "aioquic-get": AIOQUIC_GET_BLOCK,
        "literal-connect-same-origin": literal_block(CONNECT + [("origin", "http://localhost:8080")]),
        "literal-connect-cross-origin": literal_block(CONNECT + [("origin", "https://evil.example")]),
        "literal-connect-null-origin": literal_block(CONNECT + [("origin", "null")]),
        "literal-connect-ipv6": literal_block(
            CONNECT[:3] + [(":authority", "[::1]:4433"), (":path", "/"), ("origin", "http://[::1]:3000")]
        ),
        "literal-connect-userinfo": literal_block(
            CONNECT[:3] + [(":authority", "user@host:1"), (":path", "/"), ("origin", "https://a@HOST")]
        ),
        "literal-connect-h3-token": literal_block(
            [(n, "webtransport-h3" if n == ":protocol" else v) for n, v in CONNECT]
            + [("wt-available-protocols", '"a\\"b", tok, "c";q=1, "unterminated')]
        ),
        "literal-connect-host-header": literal_block(
            [(":method", "CONNECT"), (":protocol", "webtransport"), (":scheme", "https"), (":path", "/")]
            + [("host", "localhost:4433")]
        ),
        "literal-plain-connect": literal_block([(":method", "CONNECT"), (":authority", "proxy:443")]),
        "literal-plain-connect-with-scheme": literal_block(
            [(":method", "CONNECT"), (":scheme", "https"), (":authority", "proxy:443")]
        ),
        "literal-plain-connect-with-path": literal_block(
            [(":method", "CONNECT"), (":authority", "proxy:443"), (":path", "/")]
        ),
        "literal-plain-connect-no-authority": literal_block([(":method", "CONNECT"), ("host", "proxy:443")]),
        "literal-get-no-path": literal_block([(":method", "GET"), (":scheme", "https")]),
        "literal-pseudo-after-regular": literal_block([(":method", "GET"), ("a", "b"), (":path", "/")]),
        "literal-duplicate-method": literal_block([(":method", "GET"), (":method", "GET")]),
        "literal-unknown-pseudo": literal_block([(":status", "200")]),
        "literal-protocol-on-get": literal_block(
            [(":method", "GET"), (":protocol", "webtransport"), (":scheme", "https"), (":path", "/")]
        ),
        "literal-connection-header": literal_block(CONNECT + [("connection", "close")]),
        "literal-te-trailers": literal_block(CONNECT + [("te", "trailers")]),
        "literal-te-gzip": literal_block(CONNECT + [("te", "gzip")]),
    }
    return cases


def write(target, name, data):
    path = os.path.join(ROOT, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    # Start from a clean slate of seed-* files (merged inputs have hash names and stay).
    if os.path.isdir(ROOT):
        for target in os.listdir(ROOT):
            for name in os.listdir(os.path.join(ROOT, target)):
                if name.startswith("seed-"):
                    os.remove(os.path.join(ROOT, target, name))

    headers_len = {CHROMIUM_STREAM_1: 0x7C, CHROMIUM_STREAM_2: 0x5D, CHROMIUM_STREAM_3: 0x5D}
    after_headers = {s: s[3 + n :] for s, n in headers_len.items()}

    # varint: raw bytes.
    for name, data in {
        "rfc9000-8byte": h("c2197c5eff14e88c"),
        "rfc9000-4byte": h("9d7f3e7d"),
        "rfc9000-2byte": h("7bbd"),
        "rfc9000-1byte": h("25"),
        "non-minimal-37": h("4025"),
        "non-minimal-8byte-0": h("c000000000000000"),
        "max": h("ffffffffffffffff"),
        "truncated": h("9d7f"),
        "chromium-grease-type": h("c00000140f051f4b02a963"),
    }.items():
        write("varint", name, data)

    # stream_header: the first bytes of a stream (byte 0 of round-trip half picks uni/bidi).
    for name, data in {
        "chromium-bidi-session0": CHROMIUM_BIDI,
        "chromium-uni-session0": CHROMIUM_UNI,
        "server-uni-session4": varint(0x54) + varint(4) + b"payload",
        "bidi-session-8byte": varint(0x41) + varint(2**62 - 4, 8) + b"x",
        "bidi-truncated-session": varint(0x41) + h("80"),
        "control-type": h("00 04 00"),
        "qpack-encoder-type": h("02"),
    }.items():
        write("stream_header", name, data)

    # datagram: received datagrams.
    for i, d in enumerate(CHROMIUM_DATAGRAMS):
        write("datagram", f"chromium-{i}", d)
    for name, data in {
        "session-4": varint(1) + b"ping",
        "quarter-id-2pow60": varint(2**60, 8) + b"x",  # one past RFC 9297's largest valid value
        "quarter-id-max": h("ffffffffffffffff") + b"x",
        "truncated-prefix": h("40"),
    }.items():
        write("datagram", name, data)

    # settings: SETTINGS frame payloads.
    chromium_payload = CHROMIUM_CONTROL[3 : 3 + 0x25]
    for name, data in {
        "chromium": chromium_payload,
        "aioquic": AIOQUIC_SETTINGS,
        "server": settings([(0x06, 16384), (0x08, 1), (0x33, 1), (0x2B603742, 1), (0x2C7CF000, 1), (0x14E9CD29, 16)]),
        "draft07-max-sessions": settings([(0x33, 1), (0xC671706A, 4)]),
        "empty": b"",
        "duplicate": settings([(0x33, 1), (0x08, 1), (0x33, 0)]),
        "http2-id": settings([(0x33, 1), (0x04, 65535)]),
        "truncated-value": varint(0x33) + h("80"),
        "non-minimal": varint(0x33, 8) + varint(1, 4),
    }.items():
        write("settings", name, data)

    # capsule: 2 bytes pick max_len (00 00 = 64 KiB, as the CONNECT stream uses), then capsules.
    def data_payloads(stream):
        out, i = b"", 0
        while i < len(stream):
            kind, n = stream[i], None
            # every captured frame here is DATA with a 1- or 2-byte length
            assert kind == 0
            l = 1 << (stream[i + 1] >> 6)
            n = int.from_bytes(bytes([stream[i + 1] & 0x3F]) + stream[i + 2 : i + 1 + l], "big")
            out += stream[i + 1 + l : i + 1 + l + n]
            i += 1 + l + n
        return out

    for name, data in {
        "chromium-grease-then-close": data_payloads(after_headers[CHROMIUM_STREAM_1]),
        "chromium-long-reason": data_payloads(after_headers[CHROMIUM_STREAM_2]),
        "chromium-empty-close": data_payloads(after_headers[CHROMIUM_STREAM_3]),
        "drain": capsule(0x78AE, b""),
        "close-too-short": capsule(0x2843, b"\x00\x01"),
        "reason-too-long": close_capsule(1, b"a" * 1025),
        "reason-not-utf8": close_capsule(1, b"\xc3"),
        "unknown-then-drain": capsule(0x17, b"abc") + capsule(0x78AE, b""),
        "header-only": h("6843 44"),
    }.items():
        write("capsule", name, b"\x00\x00" + data)
    write("capsule", "too-large-for-max-1025", h("01 04") + capsule(0x17, b"x" * 1026))

    # close_capsule: u32 code (LE), a chunk length, then the reason's bytes.
    def cc(code, chunk, reason):
        return struct.pack("<I", code) + bytes([chunk]) + reason

    for name, data in {
        "chromium-4001": cc(4001, 7, b"bye from client"),
        "chromium-long-unicode": cc(0xFFFFFFFF, 64, "é".encode() * 600 + b"x"),
        "empty": cc(0, 1, b""),
        "cut-inside-char": cc(7, 255, b"a" * 1023 + "é".encode()),
        "exactly-1024": cc(7, 3, b"b" * 1024),
        "four-byte-chars": cc(42, 5, "𝄞".encode() * 300),
        "invalid-utf8": cc(1, 2, b"\xff\xfe" * 600),
    }.items():
        write("close_capsule", name, data)

    # connect_stream: 4 bytes pick chunking (byte 0 % 4 lengths from bytes 1..), then the stream.
    for name, data in {
        "chromium-session1": after_headers[CHROMIUM_STREAM_1],
        "chromium-session2": after_headers[CHROMIUM_STREAM_2],
        "chromium-session3": after_headers[CHROMIUM_STREAM_3],
        "grease-frame-then-close": h("21 02 aabb") + frame(0, close_capsule(4001, b"bye from server")),
        "capsule-across-data-frames": frame(0, close_capsule(7, b"ab")[:3]) + frame(0, close_capsule(7, b"ab")[3:]),
        "trailers-then-drain": frame(1, h("0000d9")) + frame(0, capsule(0x78AE, b"")),
        "settings-frame": frame(4, b""),
        "stream-signal-after-data": frame(0, b"") + varint(0x41) + varint(0),
        "http2-frame": frame(2, b""),
        "goaway-frame": frame(7, varint(0)),
        "close-too-short": frame(0, capsule(0x2843, b"\x00")),
        "unknown-capsule-too-large": frame(0, varint(0x17) + varint(65 * 1024)),
        "data-truncated": frame(0, close_capsule(1, b"xyz"))[:-2],
    }.items():
        write("connect_stream", name, b"\x03\x05\x07\x0b" + data)

    # qpack_decode: 2 bytes pick max_size (00 00 = 16 KiB), then the block.
    blocks = request_blocks()
    our_response = (
        b"\x00\x00" + prefix_int(0xC0, 6, 25)  # :status 200, static 25
        + prefix_int(0x20, 3, 28) + b"sec-webtransport-http3-draft" + prefix_int(0, 7, 7) + b"draft02"
    )
    for name, data in {
        "chromium-connect-protocols": blocks["chromium-connect-protocols"],
        "chromium-connect": blocks["chromium-connect"],
        "aioquic-connect": AIOQUIC_CONNECT_BLOCK,
        "aioquic-get": AIOQUIC_GET_BLOCK,
        "server-response-200": our_response,
        "literal-connect": blocks["literal-connect-same-origin"],
        "dynamic-insert-count": h("0100 d1"),
        "post-base-index": h("0000 10"),
        "static-index-past-table": h("0000 ff24"),  # index 99
        "integer-overflow": h("0000 ff ffffffffffffffffffff01"),
        "huffman-eos": h("0000 5f1d 84 ffffffff"),  # value of 4 bytes of all-ones (EOS)
        "huffman-bad-padding": h("0000 51 81 00"),
        "upper-case-name": h("0000 23 414243 01 78"),
        "value-with-lf": h("0000 5f1d 03 610a62"),
    }.items():
        write("qpack_decode", name, b"\x00\x00" + data)
    write("qpack_decode", "max-size-100", h("02 64") + blocks["literal-connect-same-origin"])

    # qpack_roundtrip: "name:value" lines.
    for name, data in {
        "connect": "\n".join(f"{n}:{v}" for n, v in CONNECT + [("origin", "http://localhost:8080")]),
        "response": ':status:200\nsec-webtransport-http3-draft:draft02\nwt-protocol:"chat-v2"',
        "upper-case-and-static": "Content-Type:text/plain\nACCEPT:*/*\n:method:GET\nvary:origin",
        "empty-values": "cookie:\nx-empty:\n:authority:",
        "long-value": "x-long:" + "v" * 300,
    }.items():
        write("qpack_roundtrip", name, data.encode())

    # request: raw QPACK blocks.
    for name, data in blocks.items():
        write("request", name, data)

    # flow: six bytes of windows and the client's limits, then operations of three bytes each
    # (kind % 9, then a little-endian u16 argument), as fuzz_targets/flow.rs reads them.
    def ops(*steps):
        return b"".join(bytes([kind]) + struct.pack("<H", arg) for kind, arg in steps)

    write("capsule", "flow-max-data", b"\x00\x00" + capsule(0x190B4D3D, varint(5000)))
    write("capsule", "flow-max-streams-bad-body", b"\x00\x00" + capsule(0x190B4D3F, varint(3) + b"x"))
    write("capsule", "flow-max-stream-data", b"\x00\x00" + capsule(0x190B4D3E, varint(4) + varint(9)))
    for name, data in {
        # Read past half the window, credit owed, capsule taken; a violation after it.
        "consume-replenish": h("0a 04 04 02 02 02") + ops((0, 500), (8, 0), (0, 600), (8, 0), (0, 60000)),
        # Streams opened to the limit, two done, credit capsule; one too many.
        "streams-done": h("01 03 01 00 00 00") + ops((1, 0), (1, 0), (1, 0), (1, 0), (2, 0), (2, 0), (8, 0), (1, 0)),
        # Our sends blocked on the client's zero limits, then capsules from the client.
        "blocked-then-credit": h("05 01 01 00 00 00") + ops((3, 100), (5, 1), (8, 0), (6, 300), (7, 1), (3, 100), (5, 1), (8, 0)),
        # Limits that do not grow.
        "not-increasing": h("05 01 01 10 02 02") + ops((6, 10), (7, 0), (7, 2)),
    }.items():
        write("flow", name, data)


if __name__ == "__main__":
    main()
