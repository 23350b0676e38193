'use strict'

// The one place native failures become JS errors. Native messages start with a bracketed tag,
// `[WT_ERR_CODE(:streamErrorCode)(:EOSNAME)] message`, written by src/binding/error.rs.

/** W3C WebTransportError: a session or stream failure, with the peer's application code. */
class WebTransportError extends Error {
  // Both the W3C form (message, init) and Chromium's (init with an optional message) are taken,
  // so the same code runs in either place.
  constructor(message = '', init = {}) {
    if (message !== null && typeof message === 'object') {
      init = message
      message = typeof init.message === 'string' ? init.message : ''
    }
    init = init ?? {}
    super(String(message))
    this.name = 'WebTransportError'
    this.source = init.source === 'session' ? 'session' : 'stream'
    this.streamErrorCode = Number.isInteger(init.streamErrorCode) ? init.streamErrorCode : null
    if (init.code) this.code = init.code
  }
}

const TYPE_ERROR_CODES = new Set(['WT_ERR_INVALID_CERT', 'WT_ERR_INVALID_KEY', 'WT_ERR_KEY_MISMATCH'])
const STREAM_CODES = new Set(['WT_ERR_STREAM_RESET', 'WT_ERR_STREAM_STOPPED'])
const SESSION_CODES = new Set(['WT_ERR_SESSION_CLOSED', 'WT_ERR_CONNECTION_LOST', 'WT_ERR_HANDSHAKE_FAILED', 'WT_ERR_SESSION_REFUSED'])
const TAG = /^\[(WT_ERR_[A-Z_]+)((?::[A-Z0-9_]+)*)\] ([\s\S]*)$/

/** Turns an error thrown by the native binding into the library's error with `code`. */
function fromNative(error) {
  const match = TAG.exec(error && error.message)
  if (!match) return internalError(error && error.message ? error.message : String(error))
  const [, code, extra, message] = match
  let streamErrorCode = null
  let systemError = null
  let status = null
  for (const part of extra.split(':').filter(Boolean)) {
    if (/^\d+$/.test(part)) streamErrorCode = Number(part)
    else if (/^HTTP\d{3}$/.test(part)) status = Number(part.slice(4))
    else systemError = part
  }
  let result
  if (STREAM_CODES.has(code) || SESSION_CODES.has(code)) {
    result = new WebTransportError(message, { source: SESSION_CODES.has(code) ? 'session' : 'stream', streamErrorCode })
  } else if (TYPE_ERROR_CODES.has(code)) {
    result = new TypeError(message)
  } else if (code === 'WT_ERR_INVALID_OPTION' || code === 'WT_ERR_DATAGRAM_TOO_LARGE') {
    result = /must be|at least|range|too large|exceeds/.test(message) ? new RangeError(message) : new TypeError(message)
  } else {
    result = new Error(message)
  }
  result.code = code
  if (status !== null) result.status = status
  if (systemError) {
    result.syscall = 'bind'
    result.systemError = systemError
  }
  return result
}

/** An unexpected native failure (WT_ERR_INTERNAL): a bug to report, contained by the library. */
function internalError(message) {
  const error = new Error(message)
  error.code = 'WT_ERR_INTERNAL'
  return error
}

/** A TypeError or RangeError for a bad option or argument, with code WT_ERR_INVALID_OPTION. */
function invalidOption(message, Kind = TypeError) {
  const error = new Kind(message)
  error.code = 'WT_ERR_INVALID_OPTION'
  return error
}

/** An error for a JS callback (checkOrigin, onRequest) that failed; reported on 'requestError'. */
function callbackError(code, message, cause) {
  const error = new Error(message, cause === undefined ? undefined : { cause })
  error.code = code
  return error
}

module.exports = { WebTransportError, fromNative, invalidOption, callbackError, internalError }
