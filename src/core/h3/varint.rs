//! QUIC variable-length integers (RFC 9000 §16), the unit of every HTTP/3 and WebTransport header.

use bytes::{Buf, BufMut};

/// Largest value a QUIC varint can carry (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Reads a varint from the front of `buf`, or `None` when `buf` does not yet hold all of it.
/// On `None` nothing is consumed, so a caller can wait for more bytes and try again.
pub fn decode(buf: &mut impl Buf) -> Option<u64> {
    let first = *buf.chunk().first()?;
    let len = 1usize << (first >> 6);
    if buf.remaining() < len {
        return None;
    }
    let mut value = u64::from(buf.get_u8() & 0x3f);
    for _ in 1..len {
        value = (value << 8) | u64::from(buf.get_u8());
    }
    Some(value)
}

/// Reads a varint from the start of a byte slice, returning the value and how many bytes it took.
pub fn decode_slice(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut cursor = bytes;
    let value = decode(&mut cursor)?;
    Some((value, bytes.len() - cursor.len()))
}

/// Number of bytes `value` takes on the wire.
pub fn size(value: u64) -> usize {
    match value {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `value` in the shortest encoding. Values above [`MAX`] are clamped: every caller passes
/// protocol constants, lengths or stream ids, all of which QUIC already bounds below 2^62.
pub fn encode(value: u64, out: &mut impl BufMut) {
    let value = value.min(MAX);
    match size(value) {
        1 => out.put_u8(value as u8),
        2 => out.put_u16(0x4000 | value as u16),
        4 => out.put_u32(0x8000_0000 | value as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_class() {
        for value in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, MAX] {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out.len(), size(value));
            assert_eq!(decode_slice(&out), Some((value, out.len())));
        }
    }

    #[test]
    fn rfc9000_examples() {
        assert_eq!(decode_slice(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]), Some((151_288_809_941_952_652, 8)));
        assert_eq!(decode_slice(&[0x9d, 0x7f, 0x3e, 0x7d]), Some((494_878_333, 4)));
        assert_eq!(decode_slice(&[0x7b, 0xbd]), Some((15_293, 2)));
        assert_eq!(decode_slice(&[0x25]), Some((37, 1)));
    }

    #[test]
    fn truncated_input_consumes_nothing() {
        let mut buf: &[u8] = &[0x9d, 0x7f];
        assert_eq!(decode(&mut buf), None);
        assert_eq!(buf.len(), 2);
        assert_eq!(decode_slice(&[]), None);
    }
}
