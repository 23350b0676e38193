//! Every `#[napi]` item: JS-facing handles over the core, with errors turned into JS errors in one
//! place (`error.rs`). The public API is the hand-written JS layer in `lib/`, which wraps these.
//!
//! Panics never cross into Node: synchronous entry points are `catch_unwind` (a panic becomes a
//! thrown error instead of aborting the process at the FFI edge), napi-rs contains panics in
//! async ones (the promise rejects), and the core contains panics in its own tasks.

pub mod cert;
pub mod client;
pub mod error;
pub mod exchange;
pub mod hub;
pub(crate) mod live;
pub mod request;
pub mod request_fields;
pub mod runtime;
pub mod server;
pub mod session;
pub mod stream;
