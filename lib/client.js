'use strict'

// The client: the W3C `WebTransport` interface browsers have, over the same native sessions and
// the same JS session and stream classes as the server's, so that browser code runs unchanged.

const dns = require('node:dns')
const tls = require('node:tls')
const { isIP } = require('node:net')
const native = require('./native')
const { ReadyHub } = require('./hub')
const { WebTransportError, fromNative, invalidOption } = require('./errors')
const { SessionBase, SessionLink, quiet } = require('./session')

const CONGESTION = { default: 'cubic', throughput: 'cubic', 'low-latency': 'bbr' }
// Request headers the HTTP/3 layer or the session owns (RFC 9114 §4.2 and the CONNECT itself).
const FORBIDDEN_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'host',
  'content-length',
  'wt-available-protocols',
])
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** One connector per JS environment (a worker has its own), made with the first client. */
let shared = null

/** The roots trusted unless hashes are pinned: Node's own (with NODE_EXTRA_CA_CERTS) and the system's. */
function defaultRoots() {
  const roots = new Set()
  for (const type of ['default', 'system']) {
    try {
      for (const pem of tls.getCACertificates(type)) roots.add(pem)
    } catch {
      // A Node without the system store still has its bundled roots.
    }
  }
  if (roots.size === 0) for (const pem of tls.rootCertificates) roots.add(pem)
  return [...roots]
}

function connector() {
  if (shared === null) {
    const hub = new ReadyHub()
    shared = { hub, native: new native.NativeConnector((events) => hub.deliver(events)) }
  }
  return shared
}

function syntaxError(message) {
  return new DOMException(message, 'SyntaxError')
}

/** The W3C constructor's URL rules: absolute, https, no fragment. */
function urlOption(url) {
  let parsed
  try {
    parsed = new URL(String(url))
  } catch {
    throw syntaxError(`invalid URL ${JSON.stringify(String(url))}`)
  }
  if (parsed.protocol !== 'https:') throw syntaxError(`a WebTransport URL must be https:, got ${parsed.protocol}`)
  if (parsed.hash !== '') throw syntaxError('a WebTransport URL must not have a fragment')
  return parsed
}

function bufferSourceBytes(value, name) {
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value)
  throw invalidOption(`${name} must be an ArrayBuffer or a view of one`)
}

/** `serverCertificateHashes`: each `{ algorithm, value }` is required; only sha-256 ones count (W3C). */
function hashesOption(value) {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw invalidOption('serverCertificateHashes must be an array of { algorithm, value }')
  const hashes = []
  for (const hash of value) {
    if (hash === null || typeof hash !== 'object' || typeof hash.algorithm !== 'string' || hash.value === undefined) {
      throw invalidOption('each serverCertificateHashes entry needs an algorithm and a value')
    }
    const bytes = bufferSourceBytes(hash.value, 'serverCertificateHashes value')
    if (hash.algorithm.toLowerCase() === 'sha-256' && bytes.byteLength === 32) hashes.push(Buffer.from(bytes).toString('hex'))
  }
  // Hashes given but none usable: nothing can match, as in a browser, rather than falling back to roots.
  if (value.length > 0 && hashes.length === 0) hashes.push('0'.repeat(64))
  return hashes
}

/** W3C: unique, non-empty, and each a valid sf-string (printable ASCII). */
function protocolsOption(value) {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw invalidOption('protocols must be an array of strings')
  const seen = new Set()
  for (const protocol of value) {
    if (typeof protocol !== 'string' || protocol.length === 0 || !/^[\x20-\x7e]+$/.test(protocol) || seen.has(protocol)) {
      throw syntaxError(`protocols must be unique, non-empty strings of printable ASCII, got ${JSON.stringify(protocol)}`)
    }
    seen.add(protocol)
  }
  return [...value]
}

/** `headers`: a Headers, an object or [name, value] pairs; flattened `[name, value, ...]`. */
function headersOption(value) {
  if (value === undefined) return []
  let entries
  if (value instanceof Headers) entries = [...value]
  else if (Array.isArray(value)) entries = value
  else if (value !== null && typeof value === 'object') entries = Object.entries(value)
  else throw invalidOption('headers must be a Headers, an object or an array of [name, value]')
  const flat = []
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length !== 2) throw invalidOption('headers entries must be [name, value]')
    const name = String(entry[0]).toLowerCase()
    const text = String(entry[1])
    if (!TOKEN.test(name) || FORBIDDEN_HEADERS.has(name)) throw invalidOption(`headers cannot carry ${JSON.stringify(entry[0])}`)
    if (/[\r\n\0]/.test(text)) throw invalidOption(`the value of header ${name} has CR, LF or NUL`)
    flat.push(name, text)
  }
  return flat
}

/** Node's `ca`: PEM text or Buffers, one or an array (as `tls.connect` takes it). */
function caOption(value) {
  if (value === undefined) return []
  const list = Array.isArray(value) ? value : [value]
  return list.map((pem) => {
    if (typeof pem === 'string') return pem
    if (pem instanceof Uint8Array) return Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength).toString()
    throw invalidOption('ca must be PEM text or a Buffer, or an array of them')
  })
}

function localOption(options) {
  const { localAddress, localPort } = options
  if (localAddress === undefined) {
    if (localPort !== undefined) throw invalidOption('localPort needs localAddress')
    return {}
  }
  if (typeof localAddress !== 'string' || !isIP(localAddress)) throw invalidOption(`localAddress must be an IP address, got ${JSON.stringify(localAddress)}`)
  if (localPort !== undefined && (!Number.isInteger(localPort) || localPort < 0 || localPort > 65535)) {
    throw invalidOption('localPort must be an integer from 0 to 65535', RangeError)
  }
  return { localAddress, localPort }
}

function congestionOption(value) {
  if (value === undefined) return 'default'
  if (!Object.hasOwn(CONGESTION, value)) throw invalidOption(`congestionControl must be one of ${Object.keys(CONGESTION).join(', ')}`)
  return value
}

function booleanOption(options, name) {
  if (options[name] !== undefined && typeof options[name] !== 'boolean') throw invalidOption(`${name} must be a boolean`)
}

/** The server's IP address for a URL host (names resolved the way Node's sockets resolve them, IPv4 first). */
async function resolve(hostname) {
  if (isIP(hostname)) return hostname
  try {
    const { address } = await dns.promises.lookup(hostname, { order: 'ipv4first' })
    return address
  } catch (error) {
    const failure = new WebTransportError(`cannot resolve ${hostname}: ${error.message}`, { source: 'session', code: 'WT_ERR_HANDSHAKE_FAILED' })
    failure.cause = error
    throw failure
  }
}

/** A failure before the session opened, as `ready` and `closed` reject with it: a WebTransportError from the session. */
function openingError(error) {
  if (error instanceof WebTransportError) return error
  const failure = fromNative(error)
  if (failure instanceof WebTransportError) return failure
  const wrapped = new WebTransportError(failure.message, { source: 'session', code: failure.code })
  wrapped.cause = error
  return wrapped
}

/**
 * A WebTransport session to a server, opened by this process: the W3C `WebTransport` interface.
 * Every session has a QUIC connection of its own; all of them share one UDP socket per local
 * address, which closes with the last session, so a process with no sessions left can exit.
 */
class WebTransport extends SessionBase {
  #congestionControl
  #reliability = 'pending'

  /** Whether sessions over HTTP/2 (reliable only) are possible: never here, as in browsers without them. */
  static get supportsReliableOnly() {
    return false
  }

  /**
   * Starts opening a session to `url` (https, no fragment); `ready` resolves once the server
   * accepted it. Bad options throw here (TypeError, RangeError, or a SyntaxError DOMException for
   * the URL and protocols); failures to connect reject `ready` and `closed`.
   */
  constructor(url, options = {}) {
    const parsed = urlOption(url)
    if (options === null || typeof options !== 'object') throw invalidOption('options must be an object')
    booleanOption(options, 'allowPooling')
    booleanOption(options, 'requireUnreliable')
    const certificateHashes = hashesOption(options.serverCertificateHashes)
    if (options.allowPooling && certificateHashes.length > 0) {
      throw new DOMException('serverCertificateHashes cannot be used with allowPooling', 'NotSupportedError')
    }
    const protocols = protocolsOption(options.protocols)
    const headers = headersOption(options.headers)
    const ca = caOption(options.ca)
    const local = localOption(options)
    const congestionControl = congestionOption(options.congestionControl)

    const { hub, native: nativeConnector } = connector()
    // The roots are read on first need: a process that only pins hashes never pays the ~100 ms.
    if (certificateHashes.length === 0 && !nativeConnector.hasRoots()) nativeConnector.loadRoots(defaultRoots())
    let settle
    const opened = quiet(
      new Promise((resolve, reject) => {
        settle = { resolve, reject }
      }),
    )
    // The close info of a close() made before the session was ready. Set at once, not in a later
    // microtask, so that a connection finishing in between still sees it.
    let gaveUp = null
    const link = new SessionLink(hub, null, opened, (closeInfo) => {
      gaveUp = closeInfo
      settle.reject(new WebTransportError('close() was called before the session was ready', { source: 'session' }))
    })
    super(link)
    this.#congestionControl = congestionControl
    /** Resolves once the server accepted the session; rejects with a WebTransportError saying why it did not. */
    this.ready = quiet(opened.then(() => undefined))

    const hostname = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
    const connecting = resolve(hostname).then((address) =>
      nativeConnector.connect({
        address,
        port: parsed.port === '' ? 443 : Number(parsed.port),
        serverName: hostname,
        authority: parsed.host,
        path: `${parsed.pathname}${parsed.search}`,
        protocols,
        headers,
        certificateHashes,
        ca,
        localAddress: local.localAddress,
        localPort: local.localPort,
        congestionControl: CONGESTION[congestionControl],
      }),
    )
    connecting.then(
      (session) => {
        if (gaveUp) {
          // The caller has moved on: end the session it no longer wants, with its close info.
          session.close(gaveUp.closeCode, gaveUp.reason)
          return
        }
        link.open(session)
        this.#reliability = 'supports-unreliable'
        settle.resolve(session)
      },
      (error) => settle.reject(openingError(error)),
    )
  }

  /** 'pending' until `ready`, then 'supports-unreliable' (HTTP/3, datagrams). */
  get reliability() {
    return this.#reliability
  }

  /** The `congestionControl` asked for: 'default', 'throughput' or 'low-latency'. */
  get congestionControl() {
    return this.#congestionControl
  }
}

module.exports = { WebTransport }
