//! QPACK field sections (RFC 9204) as a client sends them in HEADERS: `qpack::decode_field_section`
//! on hostile bytes. Whatever it accepts must be a well-formed section within `max_size`, and must
//! survive `qpack::encode_field_section` → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qpack::QpackError;
use webtransport_napi_fuzz::{is_valid_name, is_valid_value, qpack, section_size, split_header};

fuzz_target!(|data: &[u8]| {
    // Two header bytes pick max_size (SETTINGS_MAX_FIELD_SECTION_SIZE); the rest is the block.
    let (head, block) = split_header::<2>(data);
    let max_size = match head[0] % 4 {
        0 => 16 * 1024,
        1 => usize::from(u16::from_le_bytes(head)) % 4096,
        2 => usize::from(head[1]),
        _ => usize::MAX,
    };
    match qpack::decode_field_section(block, max_size) {
        Ok(fields) => {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
            for &(name, value) in &pairs {
                assert!(is_valid_name(name), "invalid name {name:?} accepted");
                assert!(is_valid_value(value), "invalid value {value:?} accepted");
            }
            let size = section_size(pairs.iter().copied());
            assert!(size <= max_size, "section of {size} bytes accepted under max_size {max_size}");
            // Re-encode and decode: the same fields, within the same budget, and exactly at it.
            let mut again = Vec::new();
            qpack::encode_field_section(&pairs, &mut again);
            assert_eq!(qpack::decode_field_section(&again, max_size).as_ref(), Ok(&fields));
            assert_eq!(qpack::decode_field_section(&again, size).as_ref(), Ok(&fields));
            if size > 0 {
                assert_eq!(qpack::decode_field_section(&again, size - 1), Err(QpackError::TooLarge));
            }
            // A larger budget never turns an accepted block into an error.
            assert_eq!(qpack::decode_field_section(block, usize::MAX).as_ref(), Ok(&fields));
        }
        Err(QpackError::TooLarge) => {
            // Only the budget was in the way: with no limit the block is either fine and bigger
            // than max_size, or fails for a reason found later in the block.
            if let Ok(fields) = qpack::decode_field_section(block, usize::MAX) {
                let size = section_size(fields.iter().map(|f| (f.name.as_str(), f.value.as_str())));
                assert!(size > max_size, "TooLarge for a section of {size} bytes under max_size {max_size}");
            }
        }
        Err(_) => {}
    }
});
