'use strict'

// Regular HTTP/3 requests for a `fetch` handler, the convention of Bun.serve, Deno.serve,
// Cloudflare Workers and Hono (`fetch: app.fetch`): each request is a WHATWG `Request` whose body
// streams from QUIC, and the handler's `Response` streams back, both with backpressure.

const { fromNative, callbackError } = require('./errors')
const { callWithDeadline } = require('./deadline')

// A GET or HEAD `Request` may not have a body (the Fetch standard); what a client sends with one
// is not read.
const NO_REQUEST_BODY = new Set(['GET', 'HEAD'])
// Methods the Fetch standard forbids in a Request: answered 405 without the handler.
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK'])
// Connection-specific fields HTTP/3 forbids (RFC 9114 §4.2): a Response's are not sent.
const CONNECTION_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])

/** The WHATWG Request for a native exchange, and the controller of its `signal`. */
function requestOf(native, fields) {
  const controller = new AbortController()
  const headers = new Headers()
  for (let i = 0; i + 1 < fields.headers.length; i += 2) headers.append(fields.headers[i], fields.headers[i + 1])
  let body = null
  if (!NO_REQUEST_BODY.has(fields.method)) {
    body = new ReadableStream(
      {
        async pull(stream) {
          let chunk
          try {
            chunk = await native.read()
          } catch (error) {
            // A client that resets its request (or goes away) aborts the request's signal too.
            const converted = fromNative(error)
            controller.abort(converted)
            stream.error(converted)
            return
          }
          if (chunk === null) stream.close()
          else stream.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        },
        cancel() {
          return native.stopBody()
        },
      },
      // Nothing is read ahead of the handler: QUIC flow control is the backpressure.
      { highWaterMark: 0 },
    )
  }
  const init = { method: fields.method, headers, signal: controller.signal }
  if (body) {
    init.body = body
    init.duplex = 'half'
  }
  return { request: new Request(fields.url, init), controller }
}

/** Sends a Response: head, then its body as it comes (none for HEAD, 204 and 304). */
async function writeResponse(native, response, method) {
  const headers = []
  for (const [name, value] of response.headers) {
    if (!CONNECTION_FIELDS.has(name)) headers.push(name, value)
  }
  await native.respond(response.status, headers)
  if (method === 'HEAD' || response.status === 204 || response.status === 304 || response.body === null) {
    if (response.body) await response.body.cancel().catch(() => {})
    await native.finish()
    return
  }
  const reader = response.body.getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      if (value.byteLength > 0) await native.write(value)
    }
  } catch (error) {
    reader.cancel(error).catch(() => {})
    throw error
  }
  await native.finish()
}

/**
 * Answers one regular request with `handler(request, info)`. A handler that throws, rejects or
 * returns something other than a Response gets 500, one that does not answer within `timeoutMs`
 * 503; both are reported through `onError(error, request)`. A response body that fails midway
 * resets the stream (the client must not take a cut body for a whole one).
 */
async function serveFetch(native, handler, options) {
  try {
    await answer(native, handler, options)
  } finally {
    // The exchange is over: let go of the request stream's receiving side too (a body nobody read
    // is stopped with H3_NO_ERROR, RFC 9114 §4.1.2). Until then QUIC counts the stream against
    // the client's concurrent-stream limit (100), and a GET's body is never read: its stream was
    // released only when GC collected the native exchange, so a client on one connection stalled
    // after ~100 answered requests until the next collection.
    native.stopBody().catch(() => {})
  }
}

async function answer(native, handler, { timeoutMs, onError }) {
  const fields = native.takeFields()
  if (!fields) return
  if (FORBIDDEN_METHODS.has(fields.method.toUpperCase())) {
    await native.fail(405)
    return
  }
  let request
  let controller
  try {
    ;({ request, controller } = requestOf(native, fields))
  } catch (error) {
    // Fields the WHATWG Request refuses (a header value undici will not take, say).
    await native.fail(400)
    // What can be said of the request without the fields that failed.
    const bare = new Request(fields.url, { method: fields.method })
    onError(callbackError('WT_ERR_CALLBACK_FAILED', `the request could not be built: ${error.message}`, error), bare)
    return
  }
  native.cancelled().then((cancelled) => {
    if (cancelled && !controller.signal.aborted) {
      controller.abort(new DOMException('the client went away', 'AbortError'))
    }
  }, () => {})
  const info = { remoteAddress: fields.remoteAddress, remotePort: fields.remotePort }
  let response
  try {
    response = await callWithDeadline(handler, [request, info], timeoutMs, 'fetch')
    if (!(response instanceof Response)) {
      throw callbackError('WT_ERR_CALLBACK_INVALID_RESULT', `fetch must return a Response or a Promise of one, got ${response === null ? 'null' : typeof response}`)
    }
  } catch (error) {
    await native.fail(error.code === 'WT_ERR_CALLBACK_TIMEOUT' ? 503 : 500)
    onError(error, request)
    return
  }
  try {
    await writeResponse(native, response, fields.method)
  } catch (error) {
    await native.fail(500)
    // A client that went away mid-response is not the application's error.
    if (!controller.signal.aborted) onError(error.code ? error : callbackError('WT_ERR_CALLBACK_FAILED', `the response body failed: ${error.message}`, error), request)
  }
}

module.exports = { serveFetch }
