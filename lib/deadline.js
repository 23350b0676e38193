'use strict'

const { callbackError } = require('./errors')

/**
 * Calls an application callback (`checkOrigin`, `onRequest`, `fetch`) and settles with what it
 * returns or resolves to, or rejects with a callback error: WT_ERR_CALLBACK_FAILED when it throws
 * or rejects, WT_ERR_CALLBACK_TIMEOUT when it has not settled within `timeoutMs`.
 */
function callWithDeadline(fn, args, timeoutMs, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(callbackError('WT_ERR_CALLBACK_TIMEOUT', `${name} did not settle within ${timeoutMs} ms`)),
      timeoutMs,
    )
    const settle = (f) => (v) => {
      clearTimeout(timer)
      f(v)
    }
    try {
      Promise.resolve(fn(...args)).then(
        settle(resolve),
        settle((error) => reject(callbackError('WT_ERR_CALLBACK_FAILED', `${name} rejected: ${error && error.message ? error.message : error}`, error))),
      )
    } catch (error) {
      clearTimeout(timer)
      reject(callbackError('WT_ERR_CALLBACK_FAILED', `${name} threw: ${error && error.message ? error.message : error}`, error))
    }
  })
}

module.exports = { callWithDeadline }
