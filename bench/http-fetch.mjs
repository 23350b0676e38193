// bench/http-fetch.mjs: ONE fetch-style handler (WHATWG Request in, Response out) served two ways,
// the servers of the bench's `http` mode (HTTP/3 against HTTP/2):
//   --h3  by webtransport-napi's `Server` `fetch` option (HTTP/3 over QUIC; lib/fetch.js)
//   --h2  by node:http2's createSecureServer (HTTP/2 over TLS on TCP, ALPN h2, the same
//         certificate), through the small adapter below that builds the same WHATWG Request from
//         the HTTP/2 stream, calls the same handler and writes its Response the way lib/fetch.js
//         does (status and headers, then the body chunk by chunk with backpressure, then the end).
// So what differs is the protocol stack and its server implementation, not the application.
//
// Usage: node bench/http-fetch.mjs (--h3 | --h2) [--cert cert.pem --key key.pem] [--port N]
//
// Listens on 127.0.0.1 only, with default options. Without --cert/--key it generates a
// certificate. Prints one JSON line when listening:
// {"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>","protocol":"h3"|"h2"}. Exits when stdin
// reaches its end (so a runner that dies takes its servers with it) or on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import { createRequire } from 'node:module'
import { X509Certificate, createHash } from 'node:crypto'

const require = createRequire(import.meta.url)
const { Server, generateCertificate } = require('..')

function arg(name) {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}

/** The application: a small fixed-size text body that names the path (`hello /` for GET /). */
export function handler(request) {
  return new Response(`hello ${new URL(request.url).pathname}`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  })
}

const protocol = process.argv.includes('--h2') ? 'h2' : process.argv.includes('--h3') ? 'h3' : null
if (!protocol) {
  console.error('usage: node bench/http-fetch.mjs (--h3 | --h2) [--cert cert.pem --key key.pem] [--port N]')
  process.exit(2)
}

let cert
let key
if (arg('--cert')) {
  cert = readFileSync(arg('--cert'), 'utf8')
  key = readFileSync(arg('--key'), 'utf8')
} else {
  ;({ cert, key } = generateCertificate({ hostnames: ['localhost', '127.0.0.1'], days: 10 }))
}
const certHash = createHash('sha256').update(new X509Certificate(cert).raw).digest('hex')
const host = '127.0.0.1'
const port = Number(arg('--port') ?? 0)

function fail(error) {
  console.error(`http-fetch (${protocol}): ${error.message}`)
  process.exit(1)
}

let listening
if (protocol === 'h3') {
  const server = new Server({ host, port, cert, key, fetch: handler })
  server.on('error', fail)
  await server.ready
  listening = server.address().port
} else {
  const server = http2.createSecureServer({ cert, key, allowHTTP1: false })
  server.on('stream', (stream, headers) => {
    serveH2(stream, headers).catch((error) => {
      // What lib/fetch.js does with a handler that fails before answering: 500.
      if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 500 }, { endStream: true })
      else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
      console.error(`http-fetch (h2): ${error.message}`)
    })
  })
  // A client that goes away mid-request is no server error.
  server.on('sessionError', () => {})
  server.on('error', fail)
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  listening = server.address().port
}

// GET and HEAD have no request body (the Fetch standard), as in lib/fetch.js.
const NO_REQUEST_BODY = new Set(['GET', 'HEAD'])
// Connection-specific fields are not valid in HTTP/2 either (RFC 9113 §8.2.2).
const CONNECTION_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])

/** The adapter: an HTTP/2 stream as a WHATWG Request, the handler's Response written back. */
async function serveH2(stream, fields) {
  const method = fields[':method']
  const headers = new Headers()
  for (const [name, value] of Object.entries(fields)) {
    if (name.startsWith(':')) continue
    if (Array.isArray(value)) for (const v of value) headers.append(name, v)
    else headers.append(name, value)
  }
  // Like the h3 side, the request's signal aborts when the client resets the request.
  const controller = new AbortController()
  stream.once('aborted', () => controller.abort(new Error('the client reset the request')))
  const init = { method, headers, signal: controller.signal }
  if (!NO_REQUEST_BODY.has(method)) {
    init.body = Readable.toWeb(stream)
    init.duplex = 'half'
  }
  const socket = stream.session?.socket
  const request = new Request(`https://${fields[':authority']}${fields[':path']}`, init)
  const response = await handler(request, { remoteAddress: socket?.remoteAddress, remotePort: socket?.remotePort })
  const head = { ':status': response.status }
  for (const [name, value] of response.headers) {
    if (!CONNECTION_FIELDS.has(name)) head[name] = value
  }
  if (method === 'HEAD' || response.status === 204 || response.status === 304 || response.body === null) {
    if (response.body) await response.body.cancel().catch(() => {})
    stream.respond(head, { endStream: true })
    return
  }
  stream.respond(head)
  const reader = response.body.getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    if (value.byteLength > 0 && !stream.write(value)) await waitForDrain(stream)
  }
  stream.end()
}

function waitForDrain(stream) {
  return new Promise((resolve, reject) => {
    const done = (error) => {
      stream.off('drain', done)
      stream.off('close', closed)
      error ? reject(error) : resolve()
    }
    const closed = () => done(new Error('the stream closed while the body was being written'))
    stream.once('drain', done)
    stream.once('close', closed)
  })
}

process.stdout.write(JSON.stringify({ ready: true, port: listening, pid: process.pid, certHash, protocol }) + '\n')
process.stdin.on('data', () => {})
process.stdin.on('end', () => process.exit(0))
