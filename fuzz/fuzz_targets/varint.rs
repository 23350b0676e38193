//! QUIC varints (RFC 9000 §16): `varint::decode_slice`, `varint::decode` on any `Buf`, `encode`,
//! `size`. Every frame, capsule, stream header and datagram prefix starts here.
#![no_main]

use bytes::Buf;
use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::varint;

fuzz_target!(|data: &[u8]| {
    let announced = data.first().map(|&b| 1usize << (b >> 6));
    match varint::decode_slice(data) {
        None => {
            // Only an empty input or one shorter than its first byte announces is incomplete.
            assert!(announced.is_none_or(|len| data.len() < len));
            let mut buf = data;
            assert_eq!(varint::decode(&mut buf), None);
            assert_eq!(buf.len(), data.len(), "an incomplete varint must consume nothing");
        }
        Some((value, len)) => {
            assert_eq!(Some(len), announced);
            assert!(value <= varint::MAX);
            assert!(value < 1u64 << (8 * len - 2), "value wider than its length class");
            assert!(varint::size(value) <= len);
            // The `Buf` reader agrees and consumes exactly `len` bytes.
            let mut buf = data;
            assert_eq!(varint::decode(&mut buf), Some(value));
            assert_eq!(buf.len(), data.len() - len);
            // Shortest re-encoding round-trips, and is the input itself when that was shortest.
            let mut out = Vec::new();
            varint::encode(value, &mut out);
            assert_eq!(out.len(), varint::size(value));
            assert_eq!(varint::decode_slice(&out), Some((value, out.len())));
            if varint::size(value) == len {
                assert_eq!(&out[..], &data[..len]);
            }
        }
    }
    // A buffer in two pieces (as `Bytes` chains or ring buffers present it) decodes the same.
    if let Some(&cut) = data.first() {
        let cut = usize::from(cut) % (data.len() + 1);
        let mut chained = (&data[..cut]).chain(&data[cut..]);
        let expect = varint::decode_slice(data);
        let got = varint::decode(&mut chained);
        assert_eq!(got, expect.map(|(v, _)| v));
        assert_eq!(chained.remaining(), data.len() - expect.map_or(0, |(_, n)| n));
    }
    // Encoding any u64 clamps to MAX and round-trips.
    if let Some(bytes) = data.get(..8) {
        let value = u64::from_le_bytes(bytes.try_into().unwrap());
        let mut out = Vec::new();
        varint::encode(value, &mut out);
        let clamped = value.min(varint::MAX);
        assert_eq!(varint::decode_slice(&out), Some((clamped, varint::size(clamped))));
    }
});
