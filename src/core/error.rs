//! The errors the core reports to its embedder, each with the stable `WT_ERR_*` code that the JS
//! layer exposes as `err.code`.

use std::fmt;

/// A stable, documented error code. The README's error table lists every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// An option has the wrong type or is out of range.
    InvalidOption,
    /// The certificate PEM has no certificate or cannot be parsed.
    InvalidCert,
    /// The private key PEM has no key, an unsupported key type, or cannot be parsed.
    InvalidKey,
    /// The key does not belong to the certificate.
    KeyMismatch,
    /// The UDP socket could not be bound (address in use, no permission, bad address).
    Bind,
    /// A certificate could not be generated.
    CertGeneration,
    /// The server is closed.
    ServerClosed,
    /// The session is closed.
    SessionClosed,
    /// The peer reset the stream (RESET_STREAM).
    StreamReset,
    /// The peer asked us to stop sending (STOP_SENDING).
    StreamStopped,
    /// The QUIC connection carrying the session was lost.
    ConnectionLost,
    /// A datagram is larger than `maxDatagramSize`.
    DatagramTooLarge,
    /// The peer does not support datagrams.
    DatagramsUnsupported,
    /// No more streams can be opened right now (the peer's limit).
    StreamLimit,
    /// A request body is larger than `maxRequestBodySize` (the client got 413).
    BodyTooLarge,
    /// A response body does not match the `content-length` it declared (the stream was reset).
    ContentLengthMismatch,
    /// A client's QUIC or TLS handshake failed: no answer, or a certificate it does not trust.
    HandshakeFailed,
    /// The server answered a client's session request with a status other than 2xx.
    SessionRefused,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidOption => "WT_ERR_INVALID_OPTION",
            Self::InvalidCert => "WT_ERR_INVALID_CERT",
            Self::InvalidKey => "WT_ERR_INVALID_KEY",
            Self::KeyMismatch => "WT_ERR_KEY_MISMATCH",
            Self::Bind => "WT_ERR_BIND",
            Self::CertGeneration => "WT_ERR_CERT_GENERATION",
            Self::ServerClosed => "WT_ERR_SERVER_CLOSED",
            Self::SessionClosed => "WT_ERR_SESSION_CLOSED",
            Self::StreamReset => "WT_ERR_STREAM_RESET",
            Self::StreamStopped => "WT_ERR_STREAM_STOPPED",
            Self::ConnectionLost => "WT_ERR_CONNECTION_LOST",
            Self::DatagramTooLarge => "WT_ERR_DATAGRAM_TOO_LARGE",
            Self::DatagramsUnsupported => "WT_ERR_DATAGRAMS_UNSUPPORTED",
            Self::StreamLimit => "WT_ERR_STREAM_LIMIT",
            Self::BodyTooLarge => "WT_ERR_BODY_TOO_LARGE",
            Self::ContentLengthMismatch => "WT_ERR_CONTENT_LENGTH_MISMATCH",
            Self::HandshakeFailed => "WT_ERR_HANDSHAKE_FAILED",
            Self::SessionRefused => "WT_ERR_SESSION_REFUSED",
        }
    }
}

/// An error with its code and a lower-case message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// The application error code a peer sent with RESET_STREAM or STOP_SENDING, when it was in
    /// the WebTransport range; `None` for codes outside it.
    pub stream_error_code: Option<u32>,
    /// The OS error name for bind failures (`EADDRINUSE`, ...), as Node reports them.
    pub os_code: Option<&'static str>,
    /// The HTTP status of a refused session request.
    pub status: Option<u16>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), stream_error_code: None, os_code: None, status: None }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
