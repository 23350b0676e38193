//! Helpers shared by the fuzz targets in `fuzz_targets/`: the invariants a decoded value must keep,
//! written once, independently of the code under test.

pub use webtransport_napi::core::h3::{proto, qpack, request, varint};
pub use webtransport_napi::core::webtransport::{connect_stream, flow, wire};
pub use webtransport_napi::core::FlowLimits;

/// A field name as `qpack::decode_field_section` promises it: a non-empty lower-case HTTP token,
/// optionally behind one leading `:` (a pseudo-header).
pub fn is_valid_name(name: &str) -> bool {
    let token = name.strip_prefix(':').unwrap_or(name);
    !token.is_empty()
        && token.bytes().all(|b| {
            matches!(b,
                b'a'..=b'z' | b'0'..=b'9'
                | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
                | b'^' | b'_' | b'`' | b'|' | b'~')
        })
}

/// A field value as the decoder promises it: no NUL, CR or LF, no leading or trailing SP / HTAB.
pub fn is_valid_value(value: &str) -> bool {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    !value.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n'))
        && !value.as_bytes().first().is_some_and(ws)
        && !value.as_bytes().last().is_some_and(ws)
}

/// What a field section costs against SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2).
pub fn section_size<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    fields.into_iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

/// Splits fuzz input into a small header of `N` bytes (zero-filled when short) and the rest.
pub fn split_header<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    let n = data.len().min(N);
    head[..n].copy_from_slice(&data[..n]);
    (head, &data[n..])
}

/// Cuts `data` into chunks whose lengths come from `lengths` (cycled; 0 taken as 1), as a stream
/// would deliver it.
pub fn chunks<'a>(data: &'a [u8], lengths: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let want = lengths.get(i % lengths.len().max(1)).map_or(rest.len(), |&l| usize::from(l).max(1));
        let (chunk, tail) = rest.split_at(want.min(rest.len()));
        out.push(chunk);
        rest = tail;
        i += 1;
    }
    out
}

/// `reason` cut as `proto::close_capsule_frame` documents: at most 1024 bytes, on a char boundary,
/// computed here without the implementation's loop.
pub fn cut_reason(reason: &str) -> &str {
    let mut end = 0;
    for (i, c) in reason.char_indices() {
        if i + c.len_utf8() > wire::MAX_CLOSE_REASON {
            break;
        }
        end = i + c.len_utf8();
    }
    &reason[..end]
}
