'use strict'

const { EventEmitter } = require('node:events')
const { isIP } = require('node:net')
const native = require('./native')
const { fromNative, invalidOption, callbackError, internalError } = require('./errors')
const { WebTransportSession } = require('./session')
const { ReadyHub } = require('./hub')
const { callWithDeadline } = require('./deadline')
const { serveFetch } = require('./fetch')

const DEFAULT_CALLBACK_TIMEOUT = 10_000
const DEFAULT_CLOSE_GRACE = 2_000

function integerOption(options, name, { min, max, fallback }) {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidOption(`${name} must be an integer`)
  if (value < min || value > max) throw invalidOption(`${name} must be from ${min} to ${max}`, RangeError)
  return value
}

function pemOption(options, name) {
  const value = options[name]
  if (typeof value === 'string') return Buffer.from(value)
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  throw invalidOption(`${name} must be a PEM string or Buffer`)
}

function hostOption(options) {
  const host = options.host === undefined ? '::' : options.host
  if (typeof host !== 'string') throw invalidOption('host must be a string')
  // The native side binds IP addresses only; the one name everyone uses is mapped here.
  if (host === 'localhost') return '127.0.0.1'
  if (!isIP(host.replace(/^\[(.*)\]$/, '$1'))) throw invalidOption(`host must be an IP address or 'localhost', got ${JSON.stringify(host)}`)
  return host
}

/** Turns the native request fields into the `request` object given to callbacks and sessions. */
function requestFrom(fields) {
  const headers = {}
  for (let i = 0; i + 1 < fields.headers.length; i += 2) {
    const name = fields.headers[i]
    headers[name] = name in headers ? `${headers[name]}, ${fields.headers[i + 1]}` : fields.headers[i + 1]
  }
  return {
    url: fields.url,
    method: fields.method,
    protocol: fields.protocol,
    path: fields.path,
    authority: fields.authority,
    origin: fields.origin ?? null,
    headers,
    protocols: fields.protocols,
    remoteAddress: fields.remoteAddress,
    remotePort: fields.remotePort,
  }
}

function incomingStreamsOption(options) {
  const value = options.maxIncomingStreams
  const range = { min: 0, max: 1_000_000, fallback: undefined }
  if (value !== null && typeof value === 'object') {
    return {
      maxIncomingBidiStreams: integerOption(value, 'bidi', range),
      maxIncomingUniStreams: integerOption(value, 'uni', range),
    }
  }
  const both = integerOption(options, 'maxIncomingStreams', range)
  return { maxIncomingBidiStreams: both, maxIncomingUniStreams: both }
}

function datagramsOption(options) {
  const value = options.datagrams
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') throw invalidOption('datagrams must be { incomingHighWaterMark, outgoingHighWaterMark }')
  const range = { min: 1, max: 1_000_000, fallback: undefined }
  return {
    datagramQueue: integerOption(value, 'incomingHighWaterMark', range),
    outgoingDatagramQueue: integerOption(value, 'outgoingHighWaterMark', range),
  }
}

/** `flowControl: { maxData, maxStreamsBidi, maxStreamsUni }`, each optional. */
function flowControlOption(options) {
  const value = options.flowControl
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') throw invalidOption('flowControl must be { maxData, maxStreamsBidi, maxStreamsUni }')
  return {
    flowMaxData: integerOption(value, 'maxData', { min: 1, max: Number.MAX_SAFE_INTEGER, fallback: undefined }),
    flowMaxStreamsBidi: integerOption(value, 'maxStreamsBidi', { min: 1, max: 1_000_000, fallback: undefined }),
    flowMaxStreamsUni: integerOption(value, 'maxStreamsUni', { min: 1, max: 1_000_000, fallback: undefined }),
  }
}

function booleanOption(options, name) {
  const value = options[name]
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw invalidOption(`${name} must be a boolean`)
  return value
}

const CONGESTION = ['cubic', 'bbr', 'newreno']

function congestionOption(options) {
  const value = options.congestionControl
  if (value === undefined) return undefined
  if (!CONGESTION.includes(value)) throw invalidOption(`congestionControl must be one of ${CONGESTION.join(', ')}`)
  return value
}

/** `serverId`: a Uint8Array or a hex string, 1 to 14 bytes. */
function serverIdOption(options) {
  const value = options.serverId
  if (value === undefined) return undefined
  let bytes
  if (typeof value === 'string' && /^(?:[0-9a-fA-F]{2})+$/.test(value)) bytes = Buffer.from(value, 'hex')
  else if (value instanceof Uint8Array) bytes = Buffer.from(value)
  else throw invalidOption('serverId must be a Uint8Array or a hex string')
  if (bytes.length < 1 || bytes.length > 14) throw invalidOption(`serverId must be 1 to 14 bytes, got ${bytes.length}`, RangeError)
  return bytes
}

/** `secret`: a Uint8Array or a string (its UTF-8 bytes), at least 32 bytes. */
function secretOption(options) {
  const value = options.secret
  if (value === undefined) return undefined
  let bytes
  if (typeof value === 'string') bytes = Buffer.from(value, 'utf8')
  else if (value instanceof Uint8Array) bytes = Buffer.from(value)
  else throw invalidOption('secret must be a Uint8Array or a string')
  if (bytes.length < 32) throw invalidOption(`secret must be at least 32 bytes, got ${bytes.length}`, RangeError)
  return bytes
}

function protocolsOption(options) {
  const value = options.protocols
  if (value === undefined) return []
  if (!Array.isArray(value) || !value.every((p) => typeof p === 'string' && p.length > 0)) {
    throw invalidOption('protocols must be an array of non-empty strings')
  }
  return [...value]
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const FORBIDDEN_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'content-length'])

/**
 * Normalises what `onRequest` returned: undefined (accept), a status number, or
 * `{ status, headers, protocol }`. Throws a callback error for anything else.
 */
function decisionFrom(answer, request) {
  const invalid = (why) => callbackError('WT_ERR_CALLBACK_INVALID_RESULT', `onRequest returned ${why}`)
  if (answer === undefined || answer === null) return { status: 200, headers: [] }
  if (typeof answer === 'number') answer = { status: answer }
  if (typeof answer !== 'object') throw invalid(`a ${typeof answer}; expected undefined, a status or { status, headers, protocol }`)
  const status = answer.status === undefined ? 200 : answer.status
  if (!Number.isInteger(status) || status < 200 || status > 599) throw invalid(`status ${status}; expected an integer from 200 to 599`)
  const headers = []
  for (const [name, value] of Object.entries(answer.headers ?? {})) {
    const lower = name.toLowerCase()
    if (!TOKEN.test(name) || FORBIDDEN_RESPONSE_HEADERS.has(lower)) throw invalid(`an invalid header name ${JSON.stringify(name)}`)
    const text = String(value)
    if (/[\r\n\0]/.test(text)) throw invalid(`a header value with CR, LF or NUL for ${name}`)
    headers.push(lower, text)
  }
  let protocol
  if (answer.protocol !== undefined) {
    if (typeof answer.protocol !== 'string') throw invalid('a protocol that is not a string')
    if (answer.protocol !== '' && !request.protocols.includes(answer.protocol)) {
      throw invalid(`protocol ${JSON.stringify(answer.protocol)}, which the client did not offer`)
    }
    protocol = answer.protocol
  }
  return { status, headers, protocol }
}

/** Runs a user callback with a deadline; a throw, a rejection and a timeout all reject. */
/**
 * An HTTP/3 WebTransport server. Events: 'listening', 'session', 'requestError', 'fault', 'error',
 * 'close'.
 */
class Server extends EventEmitter {
  #native = null
  #checkOrigin
  #onRequestCallback
  #fetch
  #protocols
  #callbackTimeout
  #closeGrace
  #closing = null
  #sessions = new Set()
  #hub = new ReadyHub()

  constructor(options) {
    super()
    if (options === null || typeof options !== 'object') throw invalidOption('new Server(options) needs an options object')
    const port = integerOption(options, 'port', { min: 0, max: 65535, fallback: 4433 })
    const host = hostOption(options)
    const cert = pemOption(options, 'cert')
    const key = pemOption(options, 'key')
    if (options.checkOrigin !== undefined && typeof options.checkOrigin !== 'function') {
      throw invalidOption('checkOrigin must be a function')
    }
    this.#checkOrigin = options.checkOrigin
    if (options.onRequest !== undefined && typeof options.onRequest !== 'function') {
      throw invalidOption('onRequest must be a function')
    }
    this.#onRequestCallback = options.onRequest
    if (options.fetch !== undefined && typeof options.fetch !== 'function') {
      throw invalidOption('fetch must be a function (request, info) => Response | Promise<Response>')
    }
    this.#fetch = options.fetch
    this.#protocols = protocolsOption(options)
    this.#callbackTimeout = integerOption(options, 'callbackTimeout', { min: 1, max: 600_000, fallback: DEFAULT_CALLBACK_TIMEOUT })
    this.#closeGrace = integerOption(options, 'closeGrace', { min: 0, max: 600_000, fallback: DEFAULT_CLOSE_GRACE })
    const nativeOptions = {
      host,
      port,
      cert,
      key,
      customOriginCheck: this.#checkOrigin !== undefined,
      maxSessions: integerOption(options, 'maxSessions', { min: 1, max: 1_000_000, fallback: undefined }),
      ...incomingStreamsOption(options),
      idleTimeout: integerOption(options, 'idleTimeout', { min: 1, max: 600_000, fallback: undefined }),
      keepAliveInterval: integerOption(options, 'keepAliveInterval', { min: 0, max: 600_000, fallback: undefined }),
      // The native side refuses a request itself if JS never answers: a backstop a little after
      // the JS deadline, so a stuck event loop cannot hold clients forever.
      decisionTimeout: this.#callbackTimeout + 5_000,
      ...datagramsOption(options),
      congestionControl: congestionOption(options),
      keyLog: booleanOption(options, 'keyLog'),
      ...flowControlOption(options),
      maxRequestBodySize: integerOption(options, 'maxRequestBodySize', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: undefined }),
      workers: integerOption(options, 'workers', { min: 1, max: 64, fallback: undefined }),
      serverId: serverIdOption(options),
      secret: secretOption(options),
    }
    let bindError = null
    const hub = this.#hub
    try {
      this.#native = new native.NativeServer(
        nativeOptions,
        (request) => this.#onRequest(request),
        (message) => this.#onFault(message),
        (events) => hub.deliver(events),
        this.#fetch ? (exchange) => this.#onExchange(exchange) : undefined,
      )
    } catch (error) {
      const converted = fromNative(error)
      // Bad certificates and options are the caller's mistake: throw now. Failing to bind is
      // an environment problem that Node servers report as an 'error' event.
      if (converted.code !== 'WT_ERR_BIND') throw converted
      bindError = converted
    }
    /** Resolves once listening (the 'listening' moment); rejects with the bind error. */
    this.ready = bindError ? Promise.reject(bindError) : Promise.resolve()
    this.ready.catch(() => {})
    process.nextTick(() => {
      if (bindError) {
        if (this.listenerCount('error') > 0) this.emit('error', bindError)
        else process.emitWarning(`webtransport-napi: ${bindError.message}`, { code: bindError.code })
      } else {
        this.emit('listening')
      }
    })
  }

  /** `{ address, family, port }` while listening, else null. */
  address() {
    if (!this.#native || this.#closing) return null
    return this.#native.address()
  }

  /**
   * Live counts for tests and operators: `{ connections, sessions, faults, tasks, streamHalves,
   * nativeRequests, nativeSessions, nativeStreams }` (faults: internal errors contained by closing
   * one connection; streamHalves: stream sides alive in the process; native*: native objects JS
   * still holds, process-wide, freed by GC). All zeros once closed.
   */
  counters() {
    if (!this.#native) {
      return { connections: 0, sessions: 0, faults: 0, tasks: 0, streamHalves: 0, nativeRequests: 0, nativeSessions: 0, nativeStreams: 0 }
    }
    return this.#native.counters()
  }

  /** Whether the server is bound and not closing. */
  get listening() {
    return this.#native !== null && this.#closing === null
  }

  /**
   * The Alt-Svc header value that tells browsers this origin speaks HTTP/3 here
   * (`h3=":4433"; ma=86400`), for a TCP (HTTPS) server of the same host to send; null when not
   * listening.
   */
  get altSvc() {
    const address = this.address()
    return address ? `h3=":${address.port}"; ma=86400` : null
  }

  #onExchange(nativeExchange) {
    serveFetch(nativeExchange, this.#fetch, {
      timeoutMs: this.#callbackTimeout,
      onError: (error, request) => this.#emitSafely('requestError', error, request),
    }).catch((error) => this.#onFault(`fetch handling failed: ${error && error.message ? error.message : error}`))
  }

  async #onRequest(nativeRequest) {
    const fields = nativeRequest.fields()
    if (!fields) return
    const request = requestFrom(fields)
    if (this.#checkOrigin) {
      let allowed
      try {
        allowed = await callWithDeadline(this.#checkOrigin, [request.origin, request], this.#callbackTimeout, 'checkOrigin')
        if (typeof allowed !== 'boolean') {
          throw callbackError('WT_ERR_CALLBACK_INVALID_RESULT', `checkOrigin must return a boolean or a Promise of one, got ${typeof allowed}`)
        }
      } catch (error) {
        nativeRequest.reject(error.code === 'WT_ERR_CALLBACK_TIMEOUT' ? 503 : 500, [])
        this.#emitSafely('requestError', error, request)
        return
      }
      if (!allowed) {
        nativeRequest.reject(403, [])
        return
      }
    }
    // The server's preference order wins among what the client offered (draft: WT-Protocol).
    let protocol = this.#protocols.find((p) => request.protocols.includes(p)) ?? ''
    let headers = []
    if (this.#onRequestCallback) {
      let answer
      try {
        answer = decisionFrom(
          await callWithDeadline(this.#onRequestCallback, [request], this.#callbackTimeout, 'onRequest'),
          request,
        )
      } catch (error) {
        nativeRequest.reject(error.code === 'WT_ERR_CALLBACK_TIMEOUT' ? 503 : 500, [])
        this.#emitSafely('requestError', error, request)
        return
      }
      if (answer.status < 200 || answer.status > 299) {
        nativeRequest.reject(answer.status, answer.headers)
        return
      }
      headers = answer.headers
      if (answer.protocol !== undefined) protocol = answer.protocol
    }
    let nativeSession
    try {
      nativeSession = await nativeRequest.accept(headers, protocol)
    } catch (error) {
      this.#emitSafely('requestError', fromNative(error), request)
      return
    }
    if (!nativeSession) return
    const session = new WebTransportSession(nativeSession, request, this.#hub)
    this.#sessions.add(session)
    session.closed.finally(() => this.#sessions.delete(session)).catch(() => {})
    this.#emitSafely('session', session)
  }

  /**
   * A contained internal fault (a bug: a panic in a connection's task closed that one connection
   * with H3_INTERNAL_ERROR; the server goes on). Reported on 'fault', never on 'error' (which is
   * for the server itself), or as a process warning when nobody listens.
   */
  #onFault(message) {
    if (this.listenerCount('fault') > 0) this.#emitSafely('fault', internalError(message))
    else process.emitWarning(`webtransport-napi: ${message}`, { code: 'WT_ERR_INTERNAL' })
  }

  /**
   * Emits to every listener on its own: one that throws (or, being async, rejects) neither stops
   * the others nor escapes into the native callback or an unhandled rejection; it is reported
   * on 'error' (WT_ERR_LISTENER_FAILED), or as a process warning when nobody listens there.
   */
  #emitSafely(event, ...args) {
    for (const listener of this.rawListeners(event)) {
      try {
        const result = listener.apply(this, args)
        if (result && typeof result.then === 'function') {
          result.then(undefined, (error) => this.#reportListenerError(event, error))
        }
      } catch (error) {
        this.#reportListenerError(event, error)
      }
    }
  }

  #reportListenerError(event, error) {
    process.nextTick(() => {
      const message = `a '${event}' listener threw: ${error && error.message ? error.message : error}`
      if (this.listenerCount('error') > 0) {
        this.emit('error', callbackError('WT_ERR_LISTENER_FAILED', message, error))
      } else {
        process.emitWarning(`webtransport-napi: ${message}`, { code: 'WT_ERR_LISTENER_FAILED' })
      }
    })
  }

  /**
   * Stops accepting, closes every session with `closeCode` and `reason`, and resolves when all
   * are gone ('close' fires then). Idempotent.
   */
  close(closeInfo = {}) {
    if (this.#closing) return this.#closing
    const { closeCode = 0, reason = '' } = closeInfo ?? {}
    if (!Number.isInteger(closeCode) || closeCode < 0 || closeCode > 0xffffffff) {
      return Promise.reject(invalidOption('closeCode must be an integer from 0 to 4294967295', RangeError))
    }
    if (typeof reason !== 'string') return Promise.reject(invalidOption('reason must be a string'))
    const nativeServer = this.#native
    this.#closing = (async () => {
      if (nativeServer) await nativeServer.close(closeCode, reason, this.#closeGrace)
      await Promise.allSettled([...this.#sessions].map((s) => s.closed))
      this.#native = null
      process.nextTick(() => this.emit('close'))
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')]() {
    await this.close()
  }
}

/**
 * A development certificate browsers accept through `serverCertificateHashes`: ECDSA P-256,
 * valid at most 14 days.
 */
function generateCertificate(options = {}) {
  if (options === null || typeof options !== 'object') throw invalidOption('generateCertificate(options) takes an object')
  const hostnames = options.hostnames === undefined ? ['localhost', '127.0.0.1', '::1'] : options.hostnames
  if (!Array.isArray(hostnames) || hostnames.length === 0 || !hostnames.every((h) => typeof h === 'string')) {
    throw invalidOption('hostnames must be a non-empty array of strings')
  }
  const days = integerOption(options, 'days', { min: 1, max: 14, fallback: 14 })
  let generated
  try {
    generated = native.generateCertificate(hostnames, days)
  } catch (error) {
    throw fromNative(error)
  }
  return {
    cert: generated.cert,
    key: generated.key,
    hash: { algorithm: 'sha-256', value: new Uint8Array(generated.sha256) },
  }
}

module.exports = { Server, generateCertificate }
