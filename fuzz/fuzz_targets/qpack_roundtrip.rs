//! `qpack::encode_field_section` (what the server answers with) then `decode_field_section`: any list
//! of valid fields comes back unchanged, names folded to lower case, and the section size is
//! accounted exactly against max_size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::{is_valid_name, is_valid_value, qpack, section_size};

/// Splits the input into fields: `\n` ends a field, the first `:` after position 0 ends a name (so
/// `:path:/x` is the pseudo-header `:path` with value `/x`).
fn fields(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .split('\n')
        .filter_map(|line| {
            let cut = line.get(1..)?.find(':')? + 1;
            Some((line[..cut].to_owned(), line[cut + 1..].to_owned()))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let all = fields(data);
    // The encoder leaves validity to its caller; keep what an HTTP/3 peer may send.
    let valid: Vec<(&str, &str)> = all
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .filter(|(n, v)| is_valid_name(&n.to_ascii_lowercase()) && is_valid_value(v))
        .collect();
    let mut block = Vec::new();
    qpack::encode_field_section(&valid, &mut block);
    let size = section_size(valid.iter().copied());
    let decoded = qpack::decode_field_section(&block, size).expect("our own field section refused");
    assert_eq!(decoded.len(), valid.len());
    for (field, &(name, value)) in decoded.iter().zip(&valid) {
        assert_eq!(field.name, name.to_ascii_lowercase());
        assert_eq!(field.value, value);
    }
    if size > 0 {
        assert_eq!(qpack::decode_field_section(&block, size - 1), Err(qpack::QpackError::TooLarge));
    }
    // Encoding appends: a second section after the first leaves the first intact.
    let first = block.clone();
    qpack::encode_field_section(&valid, &mut block);
    assert_eq!(&block[..first.len()], &first[..]);
});
