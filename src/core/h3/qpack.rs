//! QPACK (RFC 9204) field-section coding for an endpoint that never uses a dynamic table.
//!
//! The server advertises SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0, so a conforming peer can only
//! reference the static table or send literals; anything that needs dynamic state is the peer's
//! error, and rejecting it here keeps the encoder and decoder streams irrelevant to us. The same
//! holds in the other direction: the encoder never inserts, so its output can always be decoded
//! without waiting on the encoder stream.

use std::fmt;

/// One decoded field line: a validated lower-case name and a UTF-8 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name, lower-case as RFC 9114 §4.2 demands; pseudo-headers keep their leading `:`.
    pub name: String,
    /// The field value.
    pub value: String,
}

/// Why a field section could not be decoded. Every variant maps to QPACK_DECOMPRESSION_FAILED
/// (or, for [`QpackError::InvalidName`] / [`QpackError::InvalidValue`], a malformed message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QpackError {
    /// The block ended in the middle of a representation.
    Truncated,
    /// A prefix integer does not fit in 64 bits (or in `usize`).
    IntegerOverflow,
    /// The block needs a dynamic table entry (a non-zero Required Insert Count, a dynamic or
    /// post-base reference), or names a static index past the end of the static table.
    DynamicTableReference,
    /// A Huffman-coded string contains EOS or has invalid padding.
    InvalidHuffman,
    /// A field name is empty, has upper-case letters or characters outside an HTTP token.
    InvalidName,
    /// A field value is not UTF-8, contains NUL, CR or LF, or starts or ends with whitespace.
    InvalidValue,
    /// The decoded section exceeds the caller's `max_size`.
    TooLarge,
}

impl fmt::Display for QpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "truncated qpack field section",
            Self::IntegerOverflow => "qpack integer overflow",
            Self::DynamicTableReference => "qpack field section references an entry outside the static table",
            Self::InvalidHuffman => "invalid huffman-coded string in qpack field section",
            Self::InvalidName => "invalid field name",
            Self::InvalidValue => "invalid field value",
            Self::TooLarge => "field section exceeds the maximum size",
        })
    }
}

impl std::error::Error for QpackError {}

/// Per-field overhead that HTTP/3 adds when sizing a field section (RFC 9114 §4.2.2), so that a
/// flood of empty fields still counts against SETTINGS_MAX_FIELD_SECTION_SIZE.
const FIELD_OVERHEAD: usize = 32;

/// Decodes one encoded field section (the payload of a HEADERS frame).
///
/// `max_size` bounds the decoded section as SETTINGS_MAX_FIELD_SECTION_SIZE counts it: the sum of
/// `name.len() + value.len() + 32` over all fields. Every malformed, hostile or dynamic-table
/// input yields an error; nothing here panics on input.
pub fn decode_field_section(block: &[u8], max_size: usize) -> Result<Vec<Field>, QpackError> {
    let mut input = Reader { rest: block };

    // With a zero-capacity table the only valid encoded Required Insert Count is 0 (RFC 9204
    // §4.5.1.1: any other value exceeds MaxEntries * 2 = 0).
    if input.integer(8)? != 0 {
        return Err(QpackError::DynamicTableReference);
    }
    // Base only matters for dynamic references, which are rejected below anyway.
    input.integer(7)?;

    let mut budget = max_size;
    let mut fields = Vec::new();
    while let Some(&first) = input.rest.first() {
        let (name, value) = if first & 0x80 != 0 {
            // Indexed Field Line: 1 T index(6).
            if first & 0x40 == 0 {
                return Err(QpackError::DynamicTableReference);
            }
            let (name, value) = static_entry(input.integer(6)?)?;
            charge(&mut budget, name.len(), value.len())?;
            (name.to_owned(), value.to_owned())
        } else if first & 0x40 != 0 {
            // Literal Field Line With Name Reference: 0 1 N T index(4). N only matters to
            // intermediaries re-encoding the field, which we never do.
            if first & 0x10 == 0 {
                return Err(QpackError::DynamicTableReference);
            }
            let (name, _) = static_entry(input.integer(4)?)?;
            let limit = budget.saturating_sub(FIELD_OVERHEAD + name.len());
            let value = input.string(7, limit)?;
            charge(&mut budget, name.len(), value.len())?;
            (name.to_owned(), into_value(value)?)
        } else if first & 0x20 != 0 {
            // Literal Field Line With Literal Name: 0 0 1 N H name-length(3).
            let name = input.string(3, budget.saturating_sub(FIELD_OVERHEAD))?;
            let limit = budget.saturating_sub(FIELD_OVERHEAD.saturating_add(name.len()));
            let value = input.string(7, limit)?;
            charge(&mut budget, name.len(), value.len())?;
            (into_name(name)?, into_value(value)?)
        } else {
            // 0001xxxx is an Indexed Field Line With Post-Base Index and 0000xxxx a Literal Field
            // Line With Post-Base Name Reference: both address the dynamic table.
            return Err(QpackError::DynamicTableReference);
        };
        fields.push(Field { name, value });
    }
    Ok(fields)
}

/// Appends an encoded field section for `fields` to `out`, referencing only the static table.
///
/// Each field becomes an Indexed Field Line when the static table holds the exact pair, a Literal
/// Field Line With Name Reference when it holds the name, and otherwise a Literal Field Line With
/// Literal Name. Strings are sent raw (no Huffman) and N is never set. Names are folded to ASCII
/// lower case, because HTTP/3 peers must reject a response with an upper-case name; nothing else
/// is checked, so keeping CR, LF and NUL out of names and values is the caller's job.
pub fn encode_field_section(fields: &[(&str, &str)], out: &mut Vec<u8>) {
    // Required Insert Count 0, Base 0: the section depends on no dynamic state.
    out.extend_from_slice(&[0x00, 0x00]);
    for &(name, value) in fields {
        match static_lookup(name, value) {
            StaticMatch::Exact(index) => encode_integer(out, 0xc0, 6, index),
            StaticMatch::Name(index) => {
                encode_integer(out, 0x50, 4, index);
                encode_integer(out, 0x00, 7, value.len());
                out.extend_from_slice(value.as_bytes());
            }
            StaticMatch::None => {
                encode_integer(out, 0x20, 3, name.len());
                out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
                encode_integer(out, 0x00, 7, value.len());
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
}

/// Deducts one field's cost from the remaining section budget.
fn charge(budget: &mut usize, name_len: usize, value_len: usize) -> Result<(), QpackError> {
    let cost =
        name_len.checked_add(value_len).and_then(|n| n.checked_add(FIELD_OVERHEAD)).ok_or(QpackError::TooLarge)?;
    *budget = budget.checked_sub(cost).ok_or(QpackError::TooLarge)?;
    Ok(())
}

fn static_entry(index: u64) -> Result<(&'static str, &'static str), QpackError> {
    usize::try_from(index).ok().and_then(|i| STATIC_TABLE.get(i)).copied().ok_or(QpackError::DynamicTableReference)
}

enum StaticMatch {
    Exact(usize),
    Name(usize),
    None,
}

fn static_lookup(name: &str, value: &str) -> StaticMatch {
    let mut name_match = None;
    for (index, &(entry_name, entry_value)) in STATIC_TABLE.iter().enumerate() {
        if entry_name.eq_ignore_ascii_case(name) {
            if entry_value == value {
                return StaticMatch::Exact(index);
            }
            name_match.get_or_insert(index);
        }
    }
    name_match.map_or(StaticMatch::None, StaticMatch::Name)
}

/// Writes an RFC 7541 §5.1 prefix integer whose first byte carries `flags` above the prefix.
fn encode_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// RFC 9114 §4.2 makes upper case malformed; RFC 9110 §5.1 makes a name a token. Pseudo-header
/// names are a token behind a single leading colon.
fn into_name(bytes: Vec<u8>) -> Result<String, QpackError> {
    let token = bytes.strip_prefix(b":").unwrap_or(&bytes);
    let is_tchar = |b: &u8| {
        matches!(b,
            b'a'..=b'z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
            | b'^' | b'_' | b'`' | b'|' | b'~')
    };
    if token.is_empty() || !token.iter().all(is_tchar) {
        return Err(QpackError::InvalidName);
    }
    String::from_utf8(bytes).map_err(|_| QpackError::InvalidName)
}

/// Applies the HTTP/2 and HTTP/3 value rules (RFC 9113 §8.2.1, RFC 9114 §10.3): NUL, CR and LF
/// would let a value smuggle extra fields into an HTTP/1 hop, and surrounding whitespace is not
/// part of any field value. Non-UTF-8 is refused because callers hand values to JavaScript.
fn into_value(bytes: Vec<u8>) -> Result<String, QpackError> {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    if bytes.iter().any(|b| matches!(b, b'\0' | b'\r' | b'\n'))
        || bytes.first().is_some_and(is_ws)
        || bytes.last().is_some_and(is_ws)
    {
        return Err(QpackError::InvalidValue);
    }
    String::from_utf8(bytes).map_err(|_| QpackError::InvalidValue)
}

/// A cursor over the unread part of a field section.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, QpackError> {
        let (&first, rest) = self.rest.split_first().ok_or(QpackError::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], QpackError> {
        if len > self.rest.len() {
            return Err(QpackError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// Reads an RFC 7541 §5.1 prefix integer from the low `prefix_bits` of the next byte on.
    fn integer(&mut self, prefix_bits: u32) -> Result<u64, QpackError> {
        let max_prefix = (1u64 << prefix_bits) - 1;
        let mut value = u64::from(self.byte()?) & max_prefix;
        if value < max_prefix {
            return Ok(value);
        }
        let mut shift = 0u32;
        loop {
            let byte = self.byte()?;
            let chunk = u64::from(byte & 0x7f);
            // Zero-valued continuation bytes are legal but cannot go on forever: stop once the
            // shift alone would leave 64 bits.
            if shift >= 64 || (chunk << shift) >> shift != chunk {
                return Err(QpackError::IntegerOverflow);
            }
            value = value.checked_add(chunk << shift).ok_or(QpackError::IntegerOverflow)?;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// Reads a string literal whose H flag sits just above a `prefix_bits` length. `limit` is how
    /// many decoded bytes the caller can still afford; more is [`QpackError::TooLarge`].
    fn string(&mut self, prefix_bits: u32, limit: usize) -> Result<Vec<u8>, QpackError> {
        let huffman = self.rest.first().is_some_and(|b| b & (1 << prefix_bits) != 0);
        let len = usize::try_from(self.integer(prefix_bits)?).map_err(|_| QpackError::IntegerOverflow)?;
        let raw = self.take(len)?;
        if huffman {
            huffman_decode(raw, limit)
        } else if raw.len() > limit {
            Err(QpackError::TooLarge)
        } else {
            Ok(raw.to_vec())
        }
    }
}

/// Marks a Huffman tree slot as a leaf; the low bits are then the symbol (256 is EOS).
const LEAF: u16 = 0x8000;

/// The HPACK code as a binary tree: node `n`'s children for bits 0 and 1 are `HUFFMAN_TREE[n]`.
/// A complete prefix code over 257 symbols has exactly 256 internal nodes, with 0 the root.
static HUFFMAN_TREE: [[u16; 2]; 256] = build_huffman_tree();

/// Builds the tree at compile time; a mistyped code that breaks the prefix property or leaves a
/// gap in the code space fails the build instead of mis-decoding at run time. (Indexing and
/// asserts here run in the compiler only, so they cannot panic the server.)
#[allow(clippy::indexing_slicing)]
const fn build_huffman_tree() -> [[u16; 2]; 256] {
    let mut tree = [[0u16; 2]; 256];
    let mut next_node = 1;
    let mut symbol = 0;
    while symbol < HUFFMAN_CODES.len() {
        let (code, len) = HUFFMAN_CODES[symbol];
        let mut node = 0;
        let mut bit_pos = len;
        while bit_pos > 0 {
            bit_pos -= 1;
            let bit = ((code >> bit_pos) & 1) as usize;
            let child = tree[node][bit];
            if bit_pos == 0 {
                assert!(child == 0, "huffman code collides with another code");
                tree[node][bit] = LEAF | symbol as u16;
            } else if child == 0 {
                assert!(next_node < 256, "huffman code is not a complete prefix code");
                tree[node][bit] = next_node as u16;
                node = next_node;
                next_node += 1;
            } else {
                assert!(child & LEAF == 0, "huffman code extends another code");
                node = child as usize;
            }
        }
        symbol += 1;
    }
    let mut node = 0;
    while node < 256 {
        assert!(tree[node][0] != 0 && tree[node][1] != 0, "huffman code has gaps");
        node += 1;
    }
    tree
}

/// Decodes an HPACK Huffman string (RFC 7541 §5.2), refusing to produce more than `limit` bytes.
fn huffman_decode(src: &[u8], limit: usize) -> Result<Vec<u8>, QpackError> {
    let mut out = Vec::with_capacity(src.len().saturating_mul(2).min(limit));
    let mut node = 0usize;
    // Bits read since the last complete symbol: at the end they are padding, which must be a
    // prefix of EOS (all ones) no longer than 7 bits.
    let mut pending_bits = 0u32;
    let mut pending_all_ones = true;
    for &byte in src {
        for shift in (0..8).rev() {
            let bit = (byte >> shift) & 1;
            let child = HUFFMAN_TREE
                .get(node)
                .and_then(|children| children.get(usize::from(bit)))
                .copied()
                .ok_or(QpackError::InvalidHuffman)?;
            if child & LEAF == 0 {
                node = usize::from(child);
                pending_bits += 1;
                pending_all_ones &= bit == 1;
                continue;
            }
            // EOS (256) is the one symbol that does not fit in a byte, and it must never appear.
            let symbol = u8::try_from(child & !LEAF).map_err(|_| QpackError::InvalidHuffman)?;
            if out.len() >= limit {
                return Err(QpackError::TooLarge);
            }
            out.push(symbol);
            node = 0;
            pending_bits = 0;
            pending_all_ones = true;
        }
    }
    if pending_bits > 7 || !pending_all_ones {
        return Err(QpackError::InvalidHuffman);
    }
    Ok(out)
}

/// The HPACK Huffman code, RFC 7541 Appendix B: `(code, length in bits)` for symbols 0..=255,
/// then EOS (256). Codes are right-aligned, as in the RFC's hex column.
#[rustfmt::skip]
const HUFFMAN_CODES: [(u32, u8); 257] = [
    // 0..=31: control characters.
    (0x1ff8, 13), (0x7f_ffd8, 23), (0xfff_ffe2, 28), (0xfff_ffe3, 28),
    (0xfff_ffe4, 28), (0xfff_ffe5, 28), (0xfff_ffe6, 28), (0xfff_ffe7, 28),
    (0xfff_ffe8, 28), (0xff_ffea, 24), (0x3fff_fffc, 30), (0xfff_ffe9, 28),
    (0xfff_ffea, 28), (0x3fff_fffd, 30), (0xfff_ffeb, 28), (0xfff_ffec, 28),
    (0xfff_ffed, 28), (0xfff_ffee, 28), (0xfff_ffef, 28), (0xfff_fff0, 28),
    (0xfff_fff1, 28), (0xfff_fff2, 28), (0x3fff_fffe, 30), (0xfff_fff3, 28),
    (0xfff_fff4, 28), (0xfff_fff5, 28), (0xfff_fff6, 28), (0xfff_fff7, 28),
    (0xfff_fff8, 28), (0xfff_fff9, 28), (0xfff_fffa, 28), (0xfff_fffb, 28),
    // 32..=63: ' ' ! " # $ % & ' ( ) * + , - . / 0-9 : ; < = > ?
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    // 64..=95: @ A-Z [ \ ] ^ _
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7_fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    // 96..=127: ` a-z { | } ~ DEL
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xfff_fffc, 28),
    // 128..=159
    (0xf_ffe6, 20), (0x3f_ffd2, 22), (0xf_ffe7, 20), (0xf_ffe8, 20),
    (0x3f_ffd3, 22), (0x3f_ffd4, 22), (0x3f_ffd5, 22), (0x7f_ffd9, 23),
    (0x3f_ffd6, 22), (0x7f_ffda, 23), (0x7f_ffdb, 23), (0x7f_ffdc, 23),
    (0x7f_ffdd, 23), (0x7f_ffde, 23), (0xff_ffeb, 24), (0x7f_ffdf, 23),
    (0xff_ffec, 24), (0xff_ffed, 24), (0x3f_ffd7, 22), (0x7f_ffe0, 23),
    (0xff_ffee, 24), (0x7f_ffe1, 23), (0x7f_ffe2, 23), (0x7f_ffe3, 23),
    (0x7f_ffe4, 23), (0x1f_ffdc, 21), (0x3f_ffd8, 22), (0x7f_ffe5, 23),
    (0x3f_ffd9, 22), (0x7f_ffe6, 23), (0x7f_ffe7, 23), (0xff_ffef, 24),
    // 160..=191
    (0x3f_ffda, 22), (0x1f_ffdd, 21), (0xf_ffe9, 20), (0x3f_ffdb, 22),
    (0x3f_ffdc, 22), (0x7f_ffe8, 23), (0x7f_ffe9, 23), (0x1f_ffde, 21),
    (0x7f_ffea, 23), (0x3f_ffdd, 22), (0x3f_ffde, 22), (0xff_fff0, 24),
    (0x1f_ffdf, 21), (0x3f_ffdf, 22), (0x7f_ffeb, 23), (0x7f_ffec, 23),
    (0x1f_ffe0, 21), (0x1f_ffe1, 21), (0x3f_ffe0, 22), (0x1f_ffe2, 21),
    (0x7f_ffed, 23), (0x3f_ffe1, 22), (0x7f_ffee, 23), (0x7f_ffef, 23),
    (0xf_ffea, 20), (0x3f_ffe2, 22), (0x3f_ffe3, 22), (0x3f_ffe4, 22),
    (0x7f_fff0, 23), (0x3f_ffe5, 22), (0x3f_ffe6, 22), (0x7f_fff1, 23),
    // 192..=223
    (0x3ff_ffe0, 26), (0x3ff_ffe1, 26), (0xf_ffeb, 20), (0x7_fff1, 19),
    (0x3f_ffe7, 22), (0x7f_fff2, 23), (0x3f_ffe8, 22), (0x1ff_ffec, 25),
    (0x3ff_ffe2, 26), (0x3ff_ffe3, 26), (0x3ff_ffe4, 26), (0x7ff_ffde, 27),
    (0x7ff_ffdf, 27), (0x3ff_ffe5, 26), (0xff_fff1, 24), (0x1ff_ffed, 25),
    (0x7_fff2, 19), (0x1f_ffe3, 21), (0x3ff_ffe6, 26), (0x7ff_ffe0, 27),
    (0x7ff_ffe1, 27), (0x3ff_ffe7, 26), (0x7ff_ffe2, 27), (0xff_fff2, 24),
    (0x1f_ffe4, 21), (0x1f_ffe5, 21), (0x3ff_ffe8, 26), (0x3ff_ffe9, 26),
    (0xfff_fffd, 28), (0x7ff_ffe3, 27), (0x7ff_ffe4, 27), (0x7ff_ffe5, 27),
    // 224..=255
    (0xf_ffec, 20), (0xff_fff3, 24), (0xf_ffed, 20), (0x1f_ffe6, 21),
    (0x3f_ffe9, 22), (0x1f_ffe7, 21), (0x1f_ffe8, 21), (0x7f_fff3, 23),
    (0x3f_ffea, 22), (0x3f_ffeb, 22), (0x1ff_ffee, 25), (0x1ff_ffef, 25),
    (0xff_fff4, 24), (0xff_fff5, 24), (0x3ff_ffea, 26), (0x7f_fff4, 23),
    (0x3ff_ffeb, 26), (0x7ff_ffe6, 27), (0x3ff_ffec, 26), (0x3ff_ffed, 26),
    (0x7ff_ffe7, 27), (0x7ff_ffe8, 27), (0x7ff_ffe9, 27), (0x7ff_ffea, 27),
    (0x7ff_ffeb, 27), (0xfff_fffe, 28), (0x7ff_ffec, 27), (0x7ff_ffed, 27),
    (0x7ff_ffee, 27), (0x7ff_ffef, 27), (0x7ff_fff0, 27), (0x3ff_ffee, 26),
    // EOS
    (0x3fff_ffff, 30),
];

/// The QPACK static table, RFC 9204 Appendix A.
static STATIC_TABLE: [(&str, &str); 99] = [
    (":authority", ""),
    (":path", "/"),
    ("age", "0"),
    ("content-disposition", ""),
    ("content-length", "0"),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("referer", ""),
    ("set-cookie", ""),
    (":method", "CONNECT"),
    (":method", "DELETE"),
    (":method", "GET"),
    (":method", "HEAD"),
    (":method", "OPTIONS"),
    (":method", "POST"),
    (":method", "PUT"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "103"),
    (":status", "200"),
    (":status", "304"),
    (":status", "404"),
    (":status", "503"),
    ("accept", "*/*"),
    ("accept", "application/dns-message"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-ranges", "bytes"),
    ("access-control-allow-headers", "cache-control"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "max-age=0"),
    ("cache-control", "max-age=2592000"),
    ("cache-control", "max-age=604800"),
    ("cache-control", "no-cache"),
    ("cache-control", "no-store"),
    ("cache-control", "public, max-age=31536000"),
    ("content-encoding", "br"),
    ("content-encoding", "gzip"),
    ("content-type", "application/dns-message"),
    ("content-type", "application/javascript"),
    ("content-type", "application/json"),
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-type", "image/gif"),
    ("content-type", "image/jpeg"),
    ("content-type", "image/png"),
    ("content-type", "text/css"),
    ("content-type", "text/html; charset=utf-8"),
    ("content-type", "text/plain"),
    ("content-type", "text/plain;charset=utf-8"),
    ("range", "bytes=0-"),
    ("strict-transport-security", "max-age=31536000"),
    ("strict-transport-security", "max-age=31536000; includesubdomains"),
    ("strict-transport-security", "max-age=31536000; includesubdomains; preload"),
    ("vary", "accept-encoding"),
    ("vary", "origin"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    (":status", "100"),
    (":status", "204"),
    (":status", "206"),
    (":status", "302"),
    (":status", "400"),
    (":status", "403"),
    (":status", "421"),
    (":status", "425"),
    (":status", "500"),
    ("accept-language", ""),
    ("access-control-allow-credentials", "FALSE"),
    ("access-control-allow-credentials", "TRUE"),
    ("access-control-allow-headers", "*"),
    ("access-control-allow-methods", "get"),
    ("access-control-allow-methods", "get, post, options"),
    ("access-control-allow-methods", "options"),
    ("access-control-expose-headers", "content-length"),
    ("access-control-request-headers", "content-type"),
    ("access-control-request-method", "get"),
    ("access-control-request-method", "post"),
    ("alt-svc", "clear"),
    ("authorization", ""),
    ("content-security-policy", "script-src 'none'; object-src 'none'; base-uri 'none'"),
    ("early-data", "1"),
    ("expect-ct", ""),
    ("forwarded", ""),
    ("if-range", ""),
    ("origin", ""),
    ("purpose", "prefetch"),
    ("server", ""),
    ("timing-allow-origin", "*"),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", ""),
    ("x-forwarded-for", ""),
    ("x-frame-options", "deny"),
    ("x-frame-options", "sameorigin"),
];

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMIT: usize = usize::MAX;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    /// Reference encoder for tests only: the server never Huffman-codes, but peers do.
    fn huffman_encode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc = 0u64;
        let mut bits = 0u32;
        for &b in bytes {
            let (code, len) = HUFFMAN_CODES[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
            acc &= (1 << bits) - 1;
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
        }
        out
    }

    /// Appends a string literal whose H flag sits above a `prefix_bits` length.
    fn push_string(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, s: &[u8], huffman: bool) {
        if huffman {
            let coded = huffman_encode(s);
            encode_integer(out, flags | (1 << prefix_bits), prefix_bits, coded.len());
            out.extend_from_slice(&coded);
        } else {
            encode_integer(out, flags, prefix_bits, s.len());
            out.extend_from_slice(s);
        }
    }

    fn block(body: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00, 0x00];
        out.extend_from_slice(body);
        out
    }

    fn pairs(fields: &[Field]) -> Vec<(&str, &str)> {
        fields.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect()
    }

    fn decode_pairs(block: &[u8]) -> Vec<(String, String)> {
        decode_field_section(block, NO_LIMIT).unwrap().into_iter().map(|f| (f.name, f.value)).collect()
    }

    fn decode_err(block: &[u8]) -> QpackError {
        decode_field_section(block, NO_LIMIT).unwrap_err()
    }

    fn read_integer(bytes: &[u8], prefix_bits: u32) -> Result<u64, QpackError> {
        Reader { rest: bytes }.integer(prefix_bits)
    }

    // --- static table -----------------------------------------------------------------------

    #[test]
    fn static_table_matches_rfc9204_appendix_a() {
        assert_eq!(STATIC_TABLE.len(), 99);
        let expected = [
            (0, ":authority", ""),
            (1, ":path", "/"),
            (2, "age", "0"),
            (15, ":method", "CONNECT"),
            (17, ":method", "GET"),
            (21, ":method", "PUT"),
            (22, ":scheme", "http"),
            (23, ":scheme", "https"),
            (24, ":status", "103"),
            (25, ":status", "200"),
            (27, ":status", "404"),
            (28, ":status", "503"),
            (29, "accept", "*/*"),
            (31, "accept-encoding", "gzip, deflate, br"),
            (52, "content-type", "text/html; charset=utf-8"),
            (58, "strict-transport-security", "max-age=31536000; includesubdomains; preload"),
            (62, "x-xss-protection", "1; mode=block"),
            (63, ":status", "100"),
            (71, ":status", "500"),
            (72, "accept-language", ""),
            (85, "content-security-policy", "script-src 'none'; object-src 'none'; base-uri 'none'"),
            (90, "origin", ""),
            (95, "user-agent", ""),
            (98, "x-frame-options", "sameorigin"),
        ];
        for (index, name, value) in expected {
            assert_eq!(STATIC_TABLE[index], (name, value), "static index {index}");
        }
    }

    #[test]
    fn static_table_names_pass_our_own_name_rules() {
        for (name, _) in STATIC_TABLE {
            assert_eq!(into_name(name.as_bytes().to_vec()).as_deref(), Ok(name));
        }
    }

    // --- prefix integers --------------------------------------------------------------------

    #[test]
    fn integers_match_rfc7541_c1_examples() {
        // C.1.1: 10 on a 5-bit prefix; the three flag bits must not leak into the value.
        assert_eq!(read_integer(&[0xea], 5), Ok(10));
        // C.1.2: 1337 on a 5-bit prefix.
        assert_eq!(read_integer(&[0x1f, 0x9a, 0x0a], 5), Ok(1337));
        // C.1.3: 42 on an 8-bit prefix.
        assert_eq!(read_integer(&[0x2a], 8), Ok(42));

        let mut out = Vec::new();
        encode_integer(&mut out, 0xe0, 5, 10);
        encode_integer(&mut out, 0x00, 5, 1337);
        assert_eq!(out, [0xea, 0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn integers_round_trip_at_prefix_boundaries() {
        for prefix_bits in 1..=7 {
            let max_prefix = (1usize << prefix_bits) - 1;
            for value in [0, max_prefix - 1, max_prefix, max_prefix + 1, 127 + max_prefix, 128 + max_prefix, 1 << 20] {
                let mut out = Vec::new();
                encode_integer(&mut out, 0, prefix_bits, value);
                assert_eq!(read_integer(&out, prefix_bits), Ok(value as u64), "{value} on {prefix_bits} bits");
            }
        }
    }

    #[test]
    fn integer_u64_max_decodes_and_one_more_overflows() {
        let mut max = Vec::new();
        encode_integer(&mut max, 0, 8, u64::MAX as usize);
        assert_eq!(read_integer(&max, 8), Ok(u64::MAX));

        // The tenth group starts at bit 63, so a group value of 2 needs bit 64.
        let mut too_big = vec![0xff];
        too_big.extend_from_slice(&[0x80; 9]);
        too_big.push(0x02);
        assert_eq!(read_integer(&too_big, 8), Err(QpackError::IntegerOverflow));

        // u64::MAX - 254 fits in the continuation bytes but adding the 255 prefix wraps.
        let mut wrap_bytes = vec![0xff];
        let mut rest = u64::MAX - 254;
        while rest >= 0x80 {
            wrap_bytes.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        wrap_bytes.push(rest as u8);
        assert_eq!(read_integer(&wrap_bytes, 8), Err(QpackError::IntegerOverflow));
    }

    #[test]
    fn integer_with_endless_zero_continuations_overflows_instead_of_looping() {
        let mut zeros = vec![0xff];
        zeros.extend_from_slice(&[0x80; 20]);
        zeros.push(0x00);
        assert_eq!(read_integer(&zeros, 8), Err(QpackError::IntegerOverflow));
        // Nine zero groups still fit (shift reaches 63), so redundant padding alone is legal.
        let mut nine = vec![0xff];
        nine.extend_from_slice(&[0x80; 9]);
        nine.push(0x00);
        assert_eq!(read_integer(&nine, 8), Ok(255));
    }

    #[test]
    fn truncated_integer_is_truncated() {
        assert_eq!(read_integer(&[], 8), Err(QpackError::Truncated));
        assert_eq!(read_integer(&[0xff], 8), Err(QpackError::Truncated));
        assert_eq!(read_integer(&[0x1f, 0x9a], 5), Err(QpackError::Truncated));
    }

    // --- Huffman ----------------------------------------------------------------------------

    const RFC_HUFFMAN_VECTORS: &[(&str, &str)] = &[
        // RFC 7541 C.4 (requests).
        ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
        ("a8eb 1064 9cbf", "no-cache"),
        ("25a8 49e9 5ba9 7d7f", "custom-key"),
        ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
        // RFC 7541 C.6 (responses): digits, upper case and punctuation.
        ("6402", "302"),
        ("aec3 771a 4b", "private"),
        ("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3", "https://www.example.com"),
        ("640e ff", "307"),
        ("d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("9bd9 ab", "gzip"),
        (
            "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 \
             3160 65c0 03ed 4ee5 b106 3d50 07",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        ),
    ];

    #[test]
    fn huffman_decodes_rfc7541_examples() {
        for &(coded, plain) in RFC_HUFFMAN_VECTORS {
            assert_eq!(huffman_decode(&hex(coded), NO_LIMIT).as_deref(), Ok(plain.as_bytes()), "{plain}");
        }
    }

    #[test]
    fn test_encoder_reproduces_rfc7541_examples() {
        // Other tests lean on the reference encoder, so it must agree with the RFC too.
        for &(coded, plain) in RFC_HUFFMAN_VECTORS {
            assert_eq!(huffman_encode(plain.as_bytes()), hex(coded), "{plain}");
        }
    }

    #[test]
    fn huffman_round_trips_every_byte_value() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all), NO_LIMIT), Ok(all.clone()));
        for b in all {
            assert_eq!(huffman_decode(&huffman_encode(&[b]), NO_LIMIT), Ok(vec![b]), "byte {b}");
            assert_eq!(huffman_decode(&huffman_encode(&[b, b, b]), NO_LIMIT), Ok(vec![b; 3]));
        }
    }

    #[test]
    fn huffman_code_lengths_fill_the_code_space_exactly() {
        // Kraft equality: a complete prefix code, which the RFC's canonical code is.
        let total: u64 = HUFFMAN_CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(total, 1 << 30);
        assert_eq!(HUFFMAN_CODES[256], (0x3fff_ffff, 30));
    }

    #[test]
    fn huffman_empty_string_is_empty() {
        assert_eq!(huffman_decode(&[], NO_LIMIT), Ok(Vec::new()));
    }

    #[test]
    fn huffman_rejects_eos() {
        // EOS is 30 ones; two more ones pad it to 32 bits.
        assert_eq!(huffman_decode(&[0xff; 4], NO_LIMIT), Err(QpackError::InvalidHuffman));
        // 'a' (00011) then EOS, then 5 bits of padding.
        let mut coded = 0b00011u64 << 35 | 0x3fff_ffffu64 << 5 | 0b11111;
        coded <<= 24;
        let bytes = coded.to_be_bytes()[..5].to_vec();
        assert_eq!(huffman_decode(&bytes, NO_LIMIT), Err(QpackError::InvalidHuffman));
    }

    #[test]
    fn huffman_rejects_padding_longer_than_seven_bits() {
        assert_eq!(huffman_decode(&[0xff], NO_LIMIT), Err(QpackError::InvalidHuffman));
        // 'a' leaves 3 padding bits in the first byte, then a whole byte of ones follows.
        assert_eq!(huffman_decode(&[0x1f, 0xff], NO_LIMIT), Err(QpackError::InvalidHuffman));
    }

    #[test]
    fn huffman_rejects_padding_that_is_not_all_ones() {
        // 'a' then 000.
        assert_eq!(huffman_decode(&[0x18], NO_LIMIT), Err(QpackError::InvalidHuffman));
        // 'a' then 101.
        assert_eq!(huffman_decode(&[0x1d], NO_LIMIT), Err(QpackError::InvalidHuffman));
        assert_eq!(huffman_decode(&[0x1f], NO_LIMIT), Ok(b"a".to_vec()));
    }

    #[test]
    fn huffman_stops_at_the_limit() {
        let coded = huffman_encode(b"aaaaaaaa");
        assert_eq!(huffman_decode(&coded, 8), Ok(b"aaaaaaaa".to_vec()));
        assert_eq!(huffman_decode(&coded, 7), Err(QpackError::TooLarge));
    }

    // --- field section prefix ---------------------------------------------------------------

    #[test]
    fn empty_section_after_prefix_is_no_fields() {
        assert_eq!(decode_field_section(&[0x00, 0x00], 0), Ok(Vec::new()));
    }

    #[test]
    fn missing_prefix_is_truncated() {
        assert_eq!(decode_err(&[]), QpackError::Truncated);
        assert_eq!(decode_err(&[0x00]), QpackError::Truncated);
        assert_eq!(decode_err(&[0x00, 0x7f]), QpackError::Truncated);
    }

    #[test]
    fn nonzero_required_insert_count_is_a_dynamic_reference() {
        assert_eq!(decode_err(&[0x01, 0x00]), QpackError::DynamicTableReference);
        assert_eq!(decode_err(&[0x03, 0x81, 0x10]), QpackError::DynamicTableReference);
        let mut huge = vec![0xff];
        huge.extend_from_slice(&[0xff; 10]);
        huge.push(0x01);
        assert_eq!(decode_err(&huge), QpackError::IntegerOverflow);
    }

    #[test]
    fn sign_and_delta_base_are_ignored() {
        assert_eq!(decode_pairs(&[0x00, 0x85, 0xd1]), [(":method".into(), "GET".into())]);
        assert_eq!(decode_pairs(&[0x00, 0x7f, 0x10, 0xd1]), [(":method".into(), "GET".into())]);
    }

    // --- representations --------------------------------------------------------------------

    #[test]
    fn indexed_static_field_lines() {
        // 0xd1 = 11 010001: static index 17; 0xff 0x23 = 63 + 35 = 98 needs a continuation byte.
        let fields = decode_field_section(&block(&[0xd1, 0xc0, 0xff, 0x23]), NO_LIMIT).unwrap();
        assert_eq!(pairs(&fields), [(":method", "GET"), (":authority", ""), ("x-frame-options", "sameorigin")]);
    }

    #[test]
    fn indexed_dynamic_field_line_is_rejected() {
        assert_eq!(decode_err(&block(&[0x80])), QpackError::DynamicTableReference);
        assert_eq!(decode_err(&block(&[0xd1, 0xbf, 0x05])), QpackError::DynamicTableReference);
    }

    #[test]
    fn post_base_representations_are_rejected() {
        // Indexed Field Line With Post-Base Index.
        assert_eq!(decode_err(&block(&[0x10])), QpackError::DynamicTableReference);
        assert_eq!(decode_err(&block(&[0x1f, 0x05])), QpackError::DynamicTableReference);
        // Literal Field Line With Post-Base Name Reference (with and without N).
        assert_eq!(decode_err(&block(&[0x00, 0x01, b'x'])), QpackError::DynamicTableReference);
        assert_eq!(decode_err(&block(&[0x08, 0x01, b'x'])), QpackError::DynamicTableReference);
    }

    #[test]
    fn static_index_past_the_table_is_rejected() {
        // Indexed: 63 + 36 = 99.
        assert_eq!(decode_err(&block(&[0xff, 0x24])), QpackError::DynamicTableReference);
        // Name reference: 15 + 84 = 99.
        assert_eq!(decode_err(&block(&[0x5f, 0x54, 0x00])), QpackError::DynamicTableReference);
        // An index that does not even fit in usize on 32-bit targets.
        let mut huge = block(&[0xff]);
        huge.extend_from_slice(&[0xff; 8]);
        huge.push(0x7f);
        assert_eq!(decode_err(&huge), QpackError::DynamicTableReference);
    }

    #[test]
    fn rfc9204_literal_with_name_reference_example() {
        // RFC 9204 B.1: ":path" from the static table with a literal "/index.html".
        let block = hex("0000 510b 2f69 6e64 6578 2e68 746d 6c");
        assert_eq!(decode_pairs(&block), [(":path".into(), "/index.html".into())]);
    }

    #[test]
    fn literal_with_name_reference_variants() {
        let mut body = Vec::new();
        // N set: only an intermediary cares.
        body.extend_from_slice(&[0x71, 0x03]);
        body.extend_from_slice(b"/ab");
        // Huffman value on :authority (index 0).
        body.push(0x50);
        push_string(&mut body, 0x00, 7, b"www.example.com", true);
        // user-agent is index 95, which overflows the 4-bit prefix.
        body.extend_from_slice(&[0x5f, 0x50]);
        push_string(&mut body, 0x00, 7, b"test", false);
        // Empty value.
        body.extend_from_slice(&[0x55, 0x00]);
        // A value long enough to need a continuation byte for its length.
        let long = "x".repeat(300);
        body.push(0x5c);
        push_string(&mut body, 0x00, 7, long.as_bytes(), false);

        let fields = decode_field_section(&block(&body), NO_LIMIT).unwrap();
        assert_eq!(
            pairs(&fields),
            [
                (":path", "/ab"),
                (":authority", "www.example.com"),
                ("user-agent", "test"),
                ("cookie", ""),
                ("location", long.as_str()),
            ]
        );
    }

    #[test]
    fn literal_with_dynamic_name_reference_is_rejected() {
        assert_eq!(decode_err(&block(&[0x41, 0x00])), QpackError::DynamicTableReference);
        assert_eq!(decode_err(&block(&[0x61, 0x00])), QpackError::DynamicTableReference);
    }

    #[test]
    fn literal_with_literal_name_variants() {
        let mut body = Vec::new();
        // Raw name of 10 bytes: 7 fills the 3-bit prefix, 3 follows.
        body.extend_from_slice(&[0x27, 0x03]);
        body.extend_from_slice(b"custom-key");
        push_string(&mut body, 0x00, 7, b"custom-value", false);
        // Huffman name and value, RFC 7541 C.4.3's bytes.
        body.extend_from_slice(&[0x2f, 0x01]);
        body.extend_from_slice(&hex("25a8 49e9 5ba9 7d7f"));
        body.push(0x89);
        body.extend_from_slice(&hex("25a8 49e9 5bb8 e8b4 bf"));
        // N set, short raw name, empty value.
        body.extend_from_slice(&[0x31, b'x', 0x00]);
        // A pseudo-header name sent literally.
        push_string(&mut body, 0x20, 3, b":protocol", true);
        push_string(&mut body, 0x00, 7, b"webtransport", true);

        let fields = decode_field_section(&block(&body), NO_LIMIT).unwrap();
        assert_eq!(
            pairs(&fields),
            [("custom-key", "custom-value"), ("custom-key", "custom-value"), ("x", ""), (":protocol", "webtransport"),]
        );
    }

    #[test]
    fn invalid_huffman_inside_a_section_is_reported() {
        // :authority with a Huffman value that is one byte of all-ones padding.
        assert_eq!(decode_err(&block(&[0x50, 0x81, 0xff])), QpackError::InvalidHuffman);
        // Literal name whose Huffman name ends in zero padding.
        assert_eq!(decode_err(&block(&[0x29, 0x18, 0x00])), QpackError::InvalidHuffman);
    }

    // --- names and values -------------------------------------------------------------------

    fn literal(name: &[u8], name_huffman: bool, value: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        push_string(&mut body, 0x20, 3, name, name_huffman);
        push_string(&mut body, 0x00, 7, value, false);
        block(&body)
    }

    #[test]
    fn invalid_names_are_rejected() {
        let bad: &[&[u8]] = &[
            b"Host",
            b"content-Type",
            b"",
            b":",
            b"::path",
            b"a:b",
            b"a b",
            b"a\tb",
            b"a\x00b",
            b"a\"b",
            b"a(b",
            b"a,b",
            b"a\x7fb",
            "caf\u{e9}".as_bytes(),
            b"\xff",
        ];
        for name in bad {
            for huffman in [false, true] {
                assert_eq!(
                    decode_err(&literal(name, huffman, b"v")),
                    QpackError::InvalidName,
                    "{:?} huffman={huffman}",
                    String::from_utf8_lossy(name)
                );
            }
        }
    }

    #[test]
    fn unusual_but_valid_names_are_accepted() {
        for name in ["x", ":path", "sec-webtransport-http3-draft02", "a!#$%&'*+-.^_`|~0"] {
            assert_eq!(decode_pairs(&literal(name.as_bytes(), true, b"v")), [(name.into(), "v".into())]);
        }
    }

    #[test]
    fn invalid_values_are_rejected() {
        let bad: &[&[u8]] = &[
            b"\xff",
            b"a\xc3",
            b"a\x00b",
            b"a\rb",
            b"a\nb",
            b" leading",
            b"trailing ",
            b"\tleading",
            b"trailing\t",
            b" ",
        ];
        for value in bad {
            assert_eq!(decode_err(&literal(b"x", false, value)), QpackError::InvalidValue, "{value:?}");
            let mut by_ref = vec![0x50];
            push_string(&mut by_ref, 0x00, 7, value, true);
            assert_eq!(decode_err(&block(&by_ref)), QpackError::InvalidValue, "{value:?}");
        }
    }

    #[test]
    fn valid_values_keep_their_bytes() {
        for value in ["", "a b", "a\tb", "\"quoted\";v=\"1\"", "caf\u{e9}", "%00"] {
            assert_eq!(decode_pairs(&literal(b"x", false, value.as_bytes())), [("x".into(), value.into())]);
        }
    }

    // --- size limit -------------------------------------------------------------------------

    #[test]
    fn max_size_counts_name_value_and_32() {
        // :method GET costs 7 + 3 + 32 = 42.
        let section = block(&[0xd1]);
        assert!(decode_field_section(&section, 42).is_ok());
        assert_eq!(decode_field_section(&section, 41), Err(QpackError::TooLarge));

        // Empty fields still cost 32 each, so a flood of tiny lines is bounded.
        let flood = block(&[0x20, 0x00].repeat(1000));
        assert_eq!(decode_field_section(&flood, 31), Err(QpackError::TooLarge));
        let many = block(&[0xd1].repeat(100));
        assert_eq!(decode_field_section(&many, 4200).map(|f| f.len()), Ok(100));
        assert_eq!(decode_field_section(&many, 4199), Err(QpackError::TooLarge));
    }

    #[test]
    fn max_size_applies_to_literals_before_and_after_huffman() {
        // x: 12345 costs 1 + 5 + 32 = 38 whether raw or Huffman-coded.
        let raw = literal(b"x", false, b"12345");
        let mut coded = Vec::new();
        push_string(&mut coded, 0x20, 3, b"x", true);
        push_string(&mut coded, 0x00, 7, b"12345", true);
        let coded = block(&coded);
        for section in [&raw, &coded] {
            assert!(decode_field_section(section, 38).is_ok());
            assert_eq!(decode_field_section(section, 37), Err(QpackError::TooLarge));
        }
        // A name alone can blow the budget.
        assert_eq!(decode_field_section(&literal(&[b'a'; 100], true, b""), 100), Err(QpackError::TooLarge));
        // And so can a value after a static name reference.
        let mut by_ref = vec![0x50];
        push_string(&mut by_ref, 0x00, 7, &[b'a'; 100], true);
        assert_eq!(decode_field_section(&block(&by_ref), 100), Err(QpackError::TooLarge));
    }

    // --- truncation and garbage -------------------------------------------------------------

    #[test]
    fn every_truncation_is_an_error_or_a_clean_prefix() {
        let mut body = vec![0xd1, 0xff, 0x23, 0x5f, 0x50];
        push_string(&mut body, 0x00, 7, b"Mozilla/5.0 (X11; Linux x86_64)", true);
        push_string(&mut body, 0x28, 3, b"sec-webtransport-http3-draft02", true);
        push_string(&mut body, 0x00, 7, &[b'x'; 200], false);
        let full_block = block(&body);
        let full = decode_field_section(&full_block, NO_LIMIT).unwrap();
        assert_eq!(full.len(), 4);
        for cut in 0..full_block.len() {
            match decode_field_section(&full_block[..cut], NO_LIMIT) {
                Ok(fields) => assert_eq!(fields[..], full[..fields.len()], "cut at {cut}"),
                Err(e) => assert_eq!(e, QpackError::Truncated, "cut at {cut}"),
            }
        }
    }

    #[test]
    fn declared_length_past_the_end_is_truncated() {
        assert_eq!(decode_err(&block(&[0x50, 0x05, b'a'])), QpackError::Truncated);
        assert_eq!(decode_err(&block(&[0x23, b'a', b'b'])), QpackError::Truncated);
        // A length near u64::MAX must not be trusted for an allocation.
        let mut huge = block(&[0x50, 0x7f]);
        huge.extend_from_slice(&[0xff; 8]);
        huge.push(0x7f);
        assert!(matches!(decode_err(&huge), QpackError::Truncated | QpackError::IntegerOverflow));
    }

    #[test]
    fn random_input_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let len = (next() % 48) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the inputs get a valid prefix so the field-line parser sees them too.
            if round % 2 == 0 {
                input.splice(0..0, [0x00, 0x00]);
            }
            let _ = decode_field_section(&input, 1024);
            let _ = huffman_decode(&input, 64);
        }
    }

    // --- encoder ----------------------------------------------------------------------------

    #[test]
    fn encoder_uses_indexed_line_for_exact_static_pairs() {
        let mut out = Vec::new();
        encode_field_section(&[(":status", "200"), ("x-frame-options", "sameorigin")], &mut out);
        assert_eq!(out, [0x00, 0x00, 0xd9, 0xff, 0x23]);
    }

    #[test]
    fn encoder_uses_name_reference_for_static_names() {
        let mut out = Vec::new();
        // :status first appears at 24 = 15 + 9; the value stays raw.
        encode_field_section(&[(":status", "418")], &mut out);
        assert_eq!(out, [0x00, 0x00, 0x5f, 0x09, 0x03, b'4', b'1', b'8']);

        let mut out = Vec::new();
        encode_field_section(&[("server", "wt")], &mut out);
        // server is 92 = 15 + 77.
        assert_eq!(out, [0x00, 0x00, 0x5f, 0x4d, 0x02, b'w', b't']);
    }

    #[test]
    fn encoder_uses_literal_names_otherwise() {
        let mut out = Vec::new();
        encode_field_section(&[("sec-webtransport-http3-draft", "draft02")], &mut out);
        let mut expected = vec![0x00, 0x00, 0x27, 28 - 7];
        expected.extend_from_slice(b"sec-webtransport-http3-draft");
        expected.push(0x07);
        expected.extend_from_slice(b"draft02");
        assert_eq!(out, expected);
    }

    #[test]
    fn encoder_folds_names_to_lower_case() {
        let mut out = Vec::new();
        encode_field_section(&[("Content-Type", "text/css"), ("X-Custom", "V")], &mut out);
        // content-type: text/css is static index 51 = 0x33.
        // "x-custom" is 8 bytes: the 3-bit prefix saturates at 7 and one more follows.
        let mut expected = vec![0x00, 0x00, 0xf3, 0x27, 0x01];
        expected.extend_from_slice(b"x-custom");
        expected.extend_from_slice(&[0x01, b'V']);
        assert_eq!(out, expected);
        assert_eq!(decode_pairs(&out), [("content-type".into(), "text/css".into()), ("x-custom".into(), "V".into())]);
    }

    #[test]
    fn encoder_writes_long_lengths_with_continuations() {
        let value = "v".repeat(200);
        let mut out = Vec::new();
        encode_field_section(&[("location", &value)], &mut out);
        // location is 12; 200 = 127 + 73.
        assert_eq!(out[..5], [0x00, 0x00, 0x5c, 0x7f, 0x49]);
        assert_eq!(out.len(), 5 + 200);
    }

    #[test]
    fn encoder_appends_without_clearing() {
        let mut out = vec![0xaa];
        encode_field_section(&[], &mut out);
        assert_eq!(out, [0xaa, 0x00, 0x00]);
    }

    #[test]
    fn encoded_responses_round_trip() {
        let long = "k".repeat(1000);
        let fields: Vec<(&str, &str)> = vec![
            (":status", "200"),
            (":status", "599"),
            ("sec-webtransport-http3-draft", "draft02"),
            ("content-type", "application/json"),
            ("content-type", "application/wasm"),
            ("server", ""),
            ("x-long", &long),
            ("x-utf8", "caf\u{e9}"),
        ];
        let mut out = Vec::new();
        encode_field_section(&fields, &mut out);
        let decoded = decode_field_section(&out, NO_LIMIT).unwrap();
        assert_eq!(pairs(&decoded), fields);
    }

    #[test]
    fn every_static_entry_round_trips_as_one_byte_or_two() {
        for (index, &(name, value)) in STATIC_TABLE.iter().enumerate() {
            let mut out = Vec::new();
            encode_field_section(&[(name, value)], &mut out);
            let decoded = decode_field_section(&out, NO_LIMIT).unwrap();
            assert_eq!(pairs(&decoded), [(name, value)], "index {index}");
            assert!(out.len() <= 4, "index {index} not indexed: {out:?}");
        }
    }

    // --- a realistic request ----------------------------------------------------------------

    #[test]
    fn decodes_a_chromium_style_webtransport_connect() {
        // Shaped like Chromium's QPACK output with no dynamic table: static pairs indexed, static
        // names referenced, everything else a literal name, strings Huffman-coded.
        let user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                          Chrome/124.0.0.0 Safari/537.36";
        let mut body = vec![0xcf, 0xd7]; // :method CONNECT (15), :scheme https (23)
        body.push(0x50); // :authority (0)
        push_string(&mut body, 0x00, 7, b"localhost:4433", true);
        body.push(0x51); // :path (1)
        push_string(&mut body, 0x00, 7, b"/echo?room=1", true);
        push_string(&mut body, 0x20, 3, b":protocol", true);
        push_string(&mut body, 0x00, 7, b"webtransport", true);
        push_string(&mut body, 0x20, 3, b"sec-webtransport-http3-draft02", true);
        push_string(&mut body, 0x00, 7, b"1", false);
        body.extend_from_slice(&[0x5f, 0x4b]); // origin (90 = 15 + 75)
        push_string(&mut body, 0x00, 7, b"https://example.com", true);
        body.extend_from_slice(&[0x5f, 0x50]); // user-agent (95)
        push_string(&mut body, 0x00, 7, user_agent.as_bytes(), true);
        push_string(&mut body, 0x20, 3, b"sec-ch-ua", true);
        push_string(&mut body, 0x00, 7, b"\"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\"", true);
        body.push(0xdf); // accept-encoding: gzip, deflate, br (31)
        body.extend_from_slice(&[0x5f, 0x39]); // accept-language (72)
        push_string(&mut body, 0x00, 7, b"en-US,en;q=0.9", true);
        let section = block(&body);

        assert_eq!(section[..5], [0x00, 0x00, 0xcf, 0xd7, 0x50]);
        let fields = decode_field_section(&section, 16 * 1024).unwrap();
        assert_eq!(
            pairs(&fields),
            [
                (":method", "CONNECT"),
                (":scheme", "https"),
                (":authority", "localhost:4433"),
                (":path", "/echo?room=1"),
                (":protocol", "webtransport"),
                ("sec-webtransport-http3-draft02", "1"),
                ("origin", "https://example.com"),
                ("user-agent", user_agent),
                ("sec-ch-ua", "\"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\""),
                ("accept-encoding", "gzip, deflate, br"),
                ("accept-language", "en-US,en;q=0.9"),
            ]
        );
    }

    // --- errors -----------------------------------------------------------------------------

    #[test]
    fn error_messages_are_lower_case_and_distinct() {
        let all = [
            QpackError::Truncated,
            QpackError::IntegerOverflow,
            QpackError::DynamicTableReference,
            QpackError::InvalidHuffman,
            QpackError::InvalidName,
            QpackError::InvalidValue,
            QpackError::TooLarge,
        ];
        let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
        for message in &messages {
            assert!(!message.is_empty());
            assert_eq!(*message, message.to_lowercase());
        }
        let mut unique = messages.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        let boxed: Box<dyn std::error::Error> = Box::new(QpackError::TooLarge);
        assert_eq!(boxed.to_string(), "field section exceeds the maximum size");
    }
}
