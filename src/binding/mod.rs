//! Every `#[napi]` item: JS-facing handles over the core, with errors turned into JS errors in one
//! place (`error.rs`). The public API is the hand-written JS layer in `lib/`, which wraps these.

pub mod cert;
pub mod error;
pub mod request;
pub mod runtime;
pub mod server;
pub mod session;
pub mod stream;
