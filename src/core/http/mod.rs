//! Regular HTTP/3 requests (everything that is not a WebTransport CONNECT): the second client of
//! the HTTP/3 layer. Each request reaches the application as an [`Exchange`], whose body streams
//! from QUIC and whose response is written as it comes, both with backpressure.

pub mod exchange;
pub(crate) mod service;

pub use exchange::{Exchange, RequestBody, ResponseWriter};
pub use service::HttpHandler;
