//! The peer's SETTINGS payload: `proto::PeerSettings::parse`, and `proto::control_stream_preamble`
//! (what the server sends) parsed back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::{PeerSettings, SettingsError};
use webtransport_napi_fuzz::{proto, varint, wire, FlowLimits};

/// The (id, value) pairs of a payload, read independently of `parse`: `None` when truncated.
fn pairs(mut payload: &[u8]) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let (id, n) = varint::decode_slice(payload)?;
        payload = &payload[n..];
        let (value, n) = varint::decode_slice(payload)?;
        payload = &payload[n..];
        out.push((id, value));
    }
    Some(out)
}

fn encode(values: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(id, value) in values {
        varint::encode(id, &mut out);
        varint::encode(value, &mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let all = pairs(data);
    match PeerSettings::parse(data) {
        Ok(parsed) => {
            let values = all.expect("parse accepted a truncated payload");
            assert_eq!(parsed.values(), &values[..]);
            for (i, &(id, value)) in values.iter().enumerate() {
                assert!(!(0x02..=0x05).contains(&id), "HTTP/2 setting {id:#x} accepted");
                assert!(values[..i].iter().all(|&(seen, _)| seen != id), "duplicate {id:#x} accepted");
                assert_eq!(parsed.get(id), Some(value));
            }
            // Derived answers follow the values.
            let get = |id| values.iter().find(|&&(s, _)| s == id).map(|&(_, v)| v);
            use proto::setting::*;
            use wire::setting::*;
            assert_eq!(parsed.supports_datagrams(), get(H3_DATAGRAM) == Some(1) || get(H3_DATAGRAM_DRAFT04) == Some(1));
            if wire::supports_webtransport(&parsed) {
                assert!(
                    get(ENABLE_WEBTRANSPORT_DRAFT02) == Some(1)
                        || get(WT_ENABLED) == Some(1)
                        || get(WEBTRANSPORT_MAX_SESSIONS_DRAFT07).is_some_and(|n| n > 0)
                        || get(WT_MAX_SESSIONS).is_some_and(|n| n > 0)
                );
            }
            // Re-encoding (shortest varints) parses to the same settings.
            let again = PeerSettings::parse(&encode(&values)).expect("re-encoded settings refused");
            assert_eq!(again.values(), parsed.values());
        }
        Err(SettingsError::Truncated) => {
            // Truncated is only right when some prefix of well-formed pairs ends mid-pair; an
            // earlier pair may not have been a duplicate or an HTTP/2 id (those are reported first).
            assert!(all.is_none(), "complete payload reported as truncated");
        }
        Err(SettingsError::Duplicate(id)) => {
            let mut rest = data;
            let mut seen = Vec::new();
            loop {
                let (i, n) = varint::decode_slice(rest).unwrap();
                rest = &rest[n..];
                let (_, n) = varint::decode_slice(rest).unwrap();
                rest = &rest[n..];
                assert!(!(0x02..=0x05).contains(&i));
                if seen.contains(&i) {
                    assert_eq!(i, id, "reported duplicate is not the first one");
                    break;
                }
                seen.push(i);
            }
        }
        Err(SettingsError::Http2Setting(id)) => {
            assert!((0x02..=0x05).contains(&id));
        }
    }

    // What the server sends: stream type CONTROL, a SETTINGS frame, its payload parsing back.
    let values: Vec<(u64, u64)> = {
        let mut v: Vec<(u64, u64)> = pairs(data).unwrap_or_default();
        v.retain(|&(id, _)| !(0x02..=0x05).contains(&id));
        let mut seen = Vec::new();
        v.retain(|&(id, _)| {
            let fresh = !seen.contains(&id);
            seen.push(id);
            fresh
        });
        v
    };
    let max_sessions = values.first().map_or(1, |&(_, v)| v);
    let field_section = values.get(1).map_or(16_384, |&(_, v)| v);
    let flow = FlowLimits {
        max_data: values.get(2).map_or(1, |&(_, v)| v),
        max_streams_bidi: values.get(3).map_or(1, |&(_, v)| v),
        max_streams_uni: values.get(4).map_or(1, |&(_, v)| v),
    };
    for settings in [values.clone(), proto::server_settings(field_section, &wire::server_settings(max_sessions, &flow))]
    {
        let preamble = proto::control_stream_preamble(&settings);
        let mut rest = &preamble[..];
        let (kind, n) = varint::decode_slice(rest).unwrap();
        rest = &rest[n..];
        assert_eq!(kind, proto::stream_type::CONTROL);
        let (frame, n) = varint::decode_slice(rest).unwrap();
        rest = &rest[n..];
        assert_eq!(frame, proto::frame::SETTINGS);
        let (len, n) = varint::decode_slice(rest).unwrap();
        rest = &rest[n..];
        assert_eq!(len as usize, rest.len());
        let parsed = PeerSettings::parse(rest).expect("our own SETTINGS refused");
        assert_eq!(parsed.values(), &settings[..]);
    }
});
