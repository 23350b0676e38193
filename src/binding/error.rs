//! The one place core errors become JS errors. The message carries the `WT_ERR_*` code (and a
//! stream error code or OS error name) in a bracketed prefix that `lib/errors.js` turns into
//! `err.code`, `err.streamErrorCode` and `err.syscall`-style fields on a proper error class.

use crate::core::Error;

pub(crate) fn to_js(error: Error) -> napi::Error {
    let mut tag = error.code.as_str().to_string();
    if let Some(code) = error.stream_error_code {
        tag.push_str(&format!(":{code}"));
    }
    if let Some(status) = error.status {
        tag.push_str(&format!(":HTTP{status}"));
    }
    if let Some(os) = error.os_code {
        tag.push_str(&format!(":{os}"));
    }
    napi::Error::new(napi::Status::GenericFailure, format!("[{tag}] {}", error.message))
}

pub(crate) fn invalid_option(message: impl Into<String>) -> napi::Error {
    to_js(Error::new(crate::core::ErrorCode::InvalidOption, message))
}
