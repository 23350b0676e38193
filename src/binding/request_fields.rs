//! A request's fields as JS sees them, for a request waiting for its decision and for the
//! session it became.

use napi_derive::napi;

use crate::core::RequestInfo;

/// What JS sees of a request.
#[napi(object)]
pub struct RequestFields {
    pub url: String,
    pub method: String,
    /// `:protocol`: `webtransport` (draft-02 clients: browsers) or `webtransport-h3` (draft-15
    /// on).
    pub protocol: String,
    pub path: String,
    pub authority: String,
    pub origin: Option<String>,
    /// Flattened `[name, value, name, value, ...]`, names lower-case, in received order.
    pub headers: Vec<String>,
    pub protocols: Vec<String>,
    pub remote_address: String,
    pub remote_port: u32,
}

pub(crate) fn request_fields(info: &RequestInfo) -> RequestFields {
    RequestFields {
        url: info.url(),
        method: info.method.clone(),
        protocol: info.protocol.clone(),
        path: info.path.clone(),
        authority: info.authority.clone(),
        origin: info.origin.clone(),
        headers: info.headers.iter().flat_map(|(n, v)| [n.clone(), v.clone()]).collect(),
        protocols: info.protocols.clone(),
        remote_address: info.remote.ip().to_canonical().to_string(),
        remote_port: u32::from(info.remote.port()),
    }
}

/// Header pairs from JS's flattened `[name, value, ...]`, names lower-cased.
pub(crate) fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        out.push((name.to_ascii_lowercase(), value));
    }
    out
}
