//! Request validation: a HEADERS block decoded by `qpack::decode_field_section`, then
//! `request::parse_request` (pseudo-header rules of RFC 9114 §4.3.1 and RFC 9220 §3) and the
//! default origin policy `request::same_host_origin`, exactly as connection.rs chains them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use request::MalformedRequest;
use webtransport_napi_fuzz::{qpack, request, wire};

const PSEUDO: [&str; 5] = [":method", ":protocol", ":scheme", ":authority", ":path"];

fuzz_target!(|data: &[u8]| {
    // The server's default SETTINGS_MAX_FIELD_SECTION_SIZE is far above what a fuzz input holds.
    let Ok(fields) = qpack::decode_field_section(data, usize::MAX) else { return };
    let remote = "[::1]:4433".parse().unwrap();
    let get = |name: &str| fields.iter().find(|f| f.name == name).map(|f| f.value.as_str());
    match request::parse_request(fields.clone(), remote) {
        Ok(info) => {
            // Pseudo-headers: known, unique, first.
            let first_regular = fields.iter().position(|f| !f.name.starts_with(':')).unwrap_or(fields.len());
            assert!(fields[first_regular..].iter().all(|f| !f.name.starts_with(':')));
            for name in PSEUDO {
                assert!(fields.iter().filter(|f| f.name == name).count() <= 1, "duplicate {name} accepted");
            }
            assert!(fields[..first_regular].iter().all(|f| PSEUDO.contains(&f.name.as_str())));
            assert_eq!(Some(info.method.as_str()), get(":method"));
            assert_eq!(info.protocol, get(":protocol").unwrap_or(""));
            assert_eq!(info.scheme, get(":scheme").unwrap_or(""));
            assert_eq!(info.path, get(":path").unwrap_or(""));
            if !info.protocol.is_empty() || get(":protocol").is_some() {
                assert_eq!(info.method, "CONNECT", ":protocol accepted on {}", info.method);
            }
            if info.method != "CONNECT" || get(":protocol").is_some() {
                assert!(get(":scheme").is_some() && !info.path.is_empty());
            }
            if info.method == "CONNECT" {
                // RFC 9114 §4.4, RFC 9220 §3: every CONNECT names an authority...
                assert!(get(":authority").is_some_and(|a| !a.is_empty()));
                assert_eq!(Some(info.authority.as_str()), get(":authority"));
                // ...and a plain one nothing else.
                if get(":protocol").is_none() {
                    assert!(get(":scheme").is_none() && get(":path").is_none());
                }
            }
            if wire::is_session_request(&info) {
                assert!(!info.authority.is_empty() && !info.path.is_empty() && get(":scheme").is_some());
            }
            // Regular headers: all of them, in order, none connection-specific.
            let regular: Vec<(String, String)> =
                fields[first_regular..].iter().map(|f| (f.name.clone(), f.value.clone())).collect();
            assert_eq!(info.headers, regular);
            for (name, value) in &info.headers {
                assert!(!matches!(
                    name.as_str(),
                    "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
                ));
                assert!(name != "te" || value == "trailers");
            }
            assert_eq!(
                info.origin.as_deref(),
                info.headers.iter().find(|(n, _)| n == "origin").map(|(_, v)| v.as_str())
            );
            // Offered subprotocols: each is a quoted string of a wt-available-protocols value.
            let offers: Vec<&str> =
                info.headers.iter().filter(|(n, _)| n == "wt-available-protocols").map(|(_, v)| v.as_str()).collect();
            if offers.is_empty() {
                assert!(info.protocols.is_empty());
            }
            for p in &info.protocols {
                assert!(offers.iter().any(|v| v.contains('"')), "protocol {p:?} from no quoted string");
                assert!(p.chars().count() <= offers.iter().map(|v| v.chars().count()).sum::<usize>());
            }
            let _ = info.url();

            // Origin policy: no origin passes; junk fails; the request's own authority passes.
            let policy = request::same_host_origin(&info);
            if info.origin.is_none() {
                assert!(policy);
            }
            if let Some(origin) = &info.origin {
                if !origin.contains("://") {
                    assert!(!policy, "origin {origin:?} without a scheme accepted");
                }
            }
            let mut own = info.clone();
            if !own.authority.is_empty() && !own.authority.contains('/') {
                own.origin = Some(format!("https://{}", own.authority));
                assert!(request::same_host_origin(&own), "own authority {:?} refused", own.authority);
            }
            own.origin = Some("null".into());
            assert!(!request::same_host_origin(&own));
        }
        Err(MalformedRequest::MissingPseudoHeader(name)) => {
            assert!(PSEUDO.contains(&name));
        }
        Err(MalformedRequest::DuplicatePseudoHeader(name)) => {
            assert!(fields.iter().filter(|f| f.name == name).count() >= 2);
        }
        Err(MalformedRequest::UnknownPseudoHeader(name)) => {
            assert!(name.starts_with(':'));
            let method = get(":method");
            match name.as_str() {
                // :protocol belongs to CONNECT only; :scheme and :path not to a plain CONNECT.
                ":protocol" => assert!(method.is_some_and(|m| m != "CONNECT")),
                ":scheme" | ":path" => assert!(method == Some("CONNECT") && get(":protocol").is_none()),
                other => assert!(!PSEUDO.contains(&other), "{other} called unknown"),
            }
        }
        Err(MalformedRequest::PseudoHeaderAfterRegular(name)) => {
            assert!(name.starts_with(':'));
            let first_regular = fields.iter().position(|f| !f.name.starts_with(':')).unwrap();
            assert!(fields[first_regular..].iter().any(|f| f.name == name));
        }
        Err(MalformedRequest::ConnectionSpecificHeader(name)) => {
            assert!(fields.iter().any(|f| f.name == name));
        }
    }
});
