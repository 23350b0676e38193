//! A request's header section turned into what the server decides on: which method and
//! protocol, to which path, from which origin.

use std::net::SocketAddr;

use super::qpack::Field;

/// What the application sees of a request (`request` in the JS API).
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub method: String,
    /// `:protocol` of an Extended CONNECT, empty otherwise.
    pub protocol: String,
    pub scheme: String,
    pub authority: String,
    /// `:path`, query included.
    pub path: String,
    /// The `origin` header, `None` when absent (non-browser clients).
    pub origin: Option<String>,
    /// Regular header fields in the order received, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered in `wt-available-protocols`, in the client's order.
    pub protocols: Vec<String>,
    pub remote: SocketAddr,
}

impl RequestInfo {
    /// `https://authority/path`, as a browser would have written it.
    pub fn url(&self) -> String {
        format!("{}://{}{}", if self.scheme.is_empty() { "https" } else { &self.scheme }, self.authority, self.path)
    }
}

/// Why a header section is not a well-formed request (RFC 9114 §4.3.1, RFC 9220 §3); answered
/// with H3_MESSAGE_ERROR on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalformedRequest {
    MissingPseudoHeader(&'static str),
    DuplicatePseudoHeader(String),
    UnknownPseudoHeader(String),
    PseudoHeaderAfterRegular(String),
    /// A connection-specific field such as `connection` or `transfer-encoding` (RFC 9114 §4.2).
    ConnectionSpecificHeader(String),
}

impl std::fmt::Display for MalformedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingPseudoHeader(name) => write!(f, "missing {name}"),
            Self::DuplicatePseudoHeader(name) => write!(f, "duplicate {name}"),
            Self::UnknownPseudoHeader(name) => write!(f, "unknown pseudo-header {name}"),
            Self::PseudoHeaderAfterRegular(name) => write!(f, "{name} after a regular header"),
            Self::ConnectionSpecificHeader(name) => write!(f, "connection-specific header {name}"),
        }
    }
}

/// Builds a [`RequestInfo`] from a decoded field section, checking the pseudo-header rules.
pub fn parse_request(fields: Vec<Field>, remote: SocketAddr) -> Result<RequestInfo, MalformedRequest> {
    let mut method = None;
    let mut protocol = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut headers = Vec::new();
    let mut seen_regular = false;
    for Field { name, value } in fields {
        if let Some(pseudo) = name.strip_prefix(':') {
            if seen_regular {
                return Err(MalformedRequest::PseudoHeaderAfterRegular(name));
            }
            let slot = match pseudo {
                "method" => &mut method,
                "protocol" => &mut protocol,
                "scheme" => &mut scheme,
                "authority" => &mut authority,
                "path" => &mut path,
                _ => return Err(MalformedRequest::UnknownPseudoHeader(name)),
            };
            if slot.replace(value).is_some() {
                return Err(MalformedRequest::DuplicatePseudoHeader(name));
            }
            continue;
        }
        seen_regular = true;
        if matches!(name.as_str(), "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade")
            || (name == "te" && value != "trailers")
        {
            return Err(MalformedRequest::ConnectionSpecificHeader(name));
        }
        headers.push((name, value));
    }
    let method = method.ok_or(MalformedRequest::MissingPseudoHeader(":method"))?;
    let extended_connect = method == "CONNECT" && protocol.is_some();
    if protocol.is_some() && method != "CONNECT" {
        return Err(MalformedRequest::UnknownPseudoHeader(":protocol".into()));
    }
    // Plain CONNECT (RFC 9114 §4.4) names only an authority; every other request needs a path and
    // a scheme, and an Extended CONNECT needs all three (RFC 9220 §3).
    if method != "CONNECT" || extended_connect {
        if scheme.is_none() {
            return Err(MalformedRequest::MissingPseudoHeader(":scheme"));
        }
        if path.as_deref().is_none_or(str::is_empty) {
            return Err(MalformedRequest::MissingPseudoHeader(":path"));
        }
    }
    if method == "CONNECT" && authority.as_deref().is_none_or(str::is_empty) {
        return Err(MalformedRequest::MissingPseudoHeader(":authority"));
    }
    // A plain CONNECT names only an authority (RFC 9114 §4.4).
    if method == "CONNECT" && !extended_connect {
        if scheme.is_some() {
            return Err(MalformedRequest::UnknownPseudoHeader(":scheme".into()));
        }
        if path.is_some() {
            return Err(MalformedRequest::UnknownPseudoHeader(":path".into()));
        }
    }
    let authority = match authority {
        Some(a) => a,
        None => headers.iter().find(|(n, _)| n == "host").map(|(_, v)| v.clone()).unwrap_or_default(),
    };
    let origin = headers.iter().find(|(n, _)| n == "origin").map(|(_, v)| v.clone());
    let protocols = headers
        .iter()
        .filter(|(n, _)| n == "wt-available-protocols")
        .flat_map(|(_, v)| parse_sf_string_list(v))
        .collect();
    Ok(RequestInfo {
        method,
        protocol: protocol.unwrap_or_default(),
        scheme: scheme.unwrap_or_default(),
        authority,
        path: path.unwrap_or_default(),
        origin,
        headers,
        protocols,
        remote,
    })
}

/// Reads the strings of a structured-field List (RFC 8941) such as `"chat-v2", "chat-v1";q=1`.
/// Members that are not strings are skipped, as are their parameters.
fn parse_sf_string_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        match chars.peek() {
            None => break,
            Some('"') => {
                chars.next();
                let mut s = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                s.push(escaped);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => s.push(c),
                    }
                }
                if closed {
                    out.push(s);
                }
            }
            Some(_) => {}
        }
        // Skip parameters and anything up to the next member.
        for c in chars.by_ref() {
            if c == ',' {
                break;
            }
        }
    }
    out
}

/// The host part of an authority or an origin's host: without scheme, port and brackets,
/// lower-cased.
fn host_of(authority: &str) -> String {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.to_ascii_lowercase()
}

/// The default origin policy: a request with no `Origin` (not from a browser) passes; otherwise
/// the origin's host must equal the request's host. Ports are not compared: a page is commonly
/// served over TCP on another port than the WebTransport server's UDP one, and the port does not
/// change which site the page belongs to for this check's purpose (cross-site request forgery).
pub fn same_host_origin(info: &RequestInfo) -> bool {
    let Some(origin) = info.origin.as_deref() else {
        return true;
    };
    let Some((_, rest)) = origin.split_once("://") else {
        // `null` (opaque origins) and junk never match.
        return false;
    };
    let origin_authority = rest.split('/').next().unwrap_or(rest);
    !origin_authority.is_empty() && host_of(origin_authority) == host_of(&info.authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter().map(|(n, v)| Field { name: n.to_string(), value: v.to_string() }).collect()
    }

    fn remote() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn connect(extra: &[(&str, &str)]) -> Vec<Field> {
        let mut list = vec![
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", "localhost:4433"),
            (":path", "/echo?x=1"),
        ];
        list.extend_from_slice(extra);
        fields(&list)
    }

    #[test]
    fn parses_a_browser_connect() {
        let info = parse_request(
            connect(&[
                ("origin", "http://localhost:8080"),
                ("wt-available-protocols", "\"chat-v2\", \"chat-v1\";q=1, tok"),
            ]),
            remote(),
        )
        .unwrap();
        assert_eq!((info.method.as_str(), info.protocol.as_str()), ("CONNECT", "webtransport"));
        assert_eq!(info.url(), "https://localhost:4433/echo?x=1");
        assert_eq!(info.protocols, vec!["chat-v2", "chat-v1"]);
        assert_eq!(info.origin.as_deref(), Some("http://localhost:8080"));
        assert!(same_host_origin(&info));
    }

    #[test]
    fn refuses_malformed_sections() {
        let missing_path =
            fields(&[(":method", "CONNECT"), (":protocol", "webtransport"), (":scheme", "https"), (":authority", "a")]);
        assert_eq!(parse_request(missing_path, remote()).unwrap_err(), MalformedRequest::MissingPseudoHeader(":path"));
        let missing_authority =
            fields(&[(":method", "CONNECT"), (":protocol", "webtransport"), (":scheme", "https"), (":path", "/")]);
        assert_eq!(
            parse_request(missing_authority, remote()).unwrap_err(),
            MalformedRequest::MissingPseudoHeader(":authority")
        );
        let no_method = fields(&[(":path", "/")]);
        assert_eq!(parse_request(no_method, remote()).unwrap_err(), MalformedRequest::MissingPseudoHeader(":method"));
        let late = fields(&[(":method", "GET"), ("a", "b"), (":path", "/")]);
        assert!(matches!(parse_request(late, remote()), Err(MalformedRequest::PseudoHeaderAfterRegular(_))));
        let dup = fields(&[(":method", "GET"), (":method", "GET")]);
        assert!(matches!(parse_request(dup, remote()), Err(MalformedRequest::DuplicatePseudoHeader(_))));
        let conn = connect(&[("connection", "close")]);
        assert!(matches!(parse_request(conn, remote()), Err(MalformedRequest::ConnectionSpecificHeader(_))));
        let proto_on_get =
            fields(&[(":method", "GET"), (":protocol", "webtransport"), (":scheme", "https"), (":path", "/")]);
        assert!(parse_request(proto_on_get, remote()).is_err());
    }

    #[test]
    fn origin_policy() {
        let check = |origin: Option<&str>, authority: &str| {
            let mut info = parse_request(connect(&[]), remote()).unwrap();
            info.origin = origin.map(str::to_string);
            info.authority = authority.to_string();
            same_host_origin(&info)
        };
        assert!(check(None, "example.com"));
        assert!(check(Some("https://Example.com"), "example.com:443"));
        assert!(check(Some("http://localhost:3000"), "localhost:4433"));
        assert!(check(Some("http://[::1]:3000"), "[::1]:4433"));
        assert!(!check(Some("http://127.0.0.1:3000"), "localhost:4433"));
        assert!(!check(Some("https://evil.example"), "example.com"));
        assert!(!check(Some("null"), "example.com"));
        assert!(!check(Some("https://"), "example.com"));
    }
}
