'use strict'

const { newReadableStream, newWritableStream } = require('./webstreams')
const { WebTransportError, fromNative, invalidOption } = require('./errors')
const { readableFrom, writableFrom, bidirectionalFrom, checkSendOrder } = require('./streams')

const DATAGRAM_BATCH = 256
const STREAM_BATCH = 64
const OUTGOING_BATCH = 256
const MAX_REASON_BYTES = 1024
// draft-ietf-webtrans-http3 §4.8 gives the label and context one-byte lengths; 4096 is what
// Chromium and Firefox allow (the W3C API asks at least that much of an implementation).
const MAX_EXPORTER_INPUT = 255
const MAX_EXPORTER_OUTPUT = 4096
const DEFAULT_EXPORTER_LENGTH = 32

/** A handled promise: awaiting it still sees the rejection, but nobody is forced to. */
function quiet(promise) {
  promise.catch(() => {})
  return promise
}

/** `sendOrder` of W3C WebTransportSendStreamOptions (`undefined` and `null` mean `{}`); default 0. */
function sendOrderOption(options) {
  if (options === undefined || options === null) return 0
  if (typeof options !== 'object') throw invalidOption('stream options must be an object such as { sendOrder }')
  return options.sendOrder === undefined ? 0 : checkSendOrder(options.sendOrder)
}

/** An exporter label or context: a BufferSource (ArrayBuffer or view) of at most 255 bytes, as a Uint8Array. */
function exporterInput(value, name) {
  let bytes
  if (ArrayBuffer.isView(value)) bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  else if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) bytes = new Uint8Array(value)
  else throw invalidOption(`${name} must be a Uint8Array, another ArrayBuffer view or an ArrayBuffer`)
  if (bytes.byteLength > MAX_EXPORTER_INPUT) {
    throw invalidOption(`${name} must be at most ${MAX_EXPORTER_INPUT} bytes, got ${bytes.byteLength}`, RangeError)
  }
  return bytes
}

/**
 * What a session's JS object holds of its native side: the hub that settles its waits, and the
 * native session. A server's sessions have it from the start; a client's `WebTransport` only once
 * its `ready` resolves, until when `opened` is the promise of it (rejecting with why it never
 * came) and `cancel(error)` gives up waiting.
 */
class SessionLink {
  constructor(hub, native, opened = Promise.resolve(native), cancel = () => {}) {
    this.hub = hub
    this.native = native
    this.protocol = native ? native.protocol() : ''
    this.opened = opened
    this.cancel = cancel
  }

  /** Sets the native session once it is open. */
  open(native) {
    this.native = native
    this.protocol = native.protocol()
  }

  /** The native session, or a promise of it while connecting. */
  get() {
    return this.native ?? this.opened
  }
}

/**
 * A stream of the peer's new streams: each pull waits for streams to arrive, then takes every one
 * waiting (up to STREAM_BATCH) in one crossing; an empty batch means the session ended.
 */
function incoming(link, begin, take, wrap) {
  return newReadableStream(
    {
      async pull(controller) {
        const native = link.native ?? (await link.opened)
        await link.hub.wait((id) => begin(native, id))
        const batch = take(native)
        if (batch.length === 0) controller.close()
        for (const stream of batch) controller.enqueue(wrap(stream, link.hub))
      },
    },
    { highWaterMark: 0 },
  )
}

/**
 * Outgoing datagrams, sent in batches: writes made in one turn of the microtask queue go to QUIC
 * in one native call at its end (or as soon as OUTGOING_BATCH are pending), so a burst costs one
 * wake of the connection's thread instead of one per datagram. A write resolves once queued, as
 * datagrams are unreliable anyway; one that cannot fit (too large, or the peer takes none) still
 * rejects at once, and a failure of the session errors the stream. Writes made while a client is
 * still connecting wait for the session.
 */
function outgoingDatagrams(link) {
  let pending = []
  let streamController
  function flush() {
    if (pending.length === 0) return
    const batch = pending
    pending = []
    try {
      link.native.sendDatagrams(batch)
    } catch (error) {
      streamController.error(fromNative(error))
    }
  }
  return newWritableStream({
    start(controller) {
      streamController = controller
    },
    async write(chunk) {
      if (!(chunk instanceof Uint8Array)) throw invalidOption('datagrams must be Uint8Array or Buffer')
      const native = link.native ?? (await link.opened)
      if (chunk.byteLength > native.maxDatagramSize()) {
        // Let the native side say why (too large, or the peer takes no datagrams).
        try {
          native.sendDatagram(chunk)
        } catch (error) {
          throw fromNative(error)
        }
        return
      }
      // A copy, as the W3C algorithm takes: the write resolves before the flush, and a caller
      // may refill the same buffer for its next datagram.
      if (pending.push(new Uint8Array(chunk)) === 1) process.nextTick(flush)
      else if (pending.length >= OUTGOING_BATCH) flush()
    },
    close: flush,
  })
}

/** A session's datagrams: `{ readable, writable, maxDatagramSize }`, as the W3C API has them. */
class DatagramDuplexStream {
  #link

  constructor(link) {
    this.#link = link
    links.set(this, link)
    const waitDatagrams = (id) => link.native.waitDatagrams(id)
    /** Received datagrams, read in batches of up to DATAGRAM_BATCH per crossing. */
    this.readable = newReadableStream(
      {
        async pull(controller) {
          const native = link.native ?? (await link.opened)
          for (;;) {
            const queued = native.takeDatagrams(DATAGRAM_BATCH)
            if (queued.length > 0) {
              for (const datagram of queued) controller.enqueue(datagram)
              return
            }
            if (native.end() !== null) return controller.close()
            await link.hub.wait(waitDatagrams)
          }
        },
      },
      { highWaterMark: 0 },
    )
    this.writable = outgoingDatagrams(link)
  }

  /** Largest payload that fits one packet now; 0 when the peer takes no datagrams (or before a client's session is ready). */
  get maxDatagramSize() {
    return this.#link.native?.maxDatagramSize() ?? 0
  }
}

/** How a native session ended, as `closed` settles: `{ closeCode, reason }`, or a WebTransportError. */
function closedOf(native, hub) {
  return hub.wait((id) => native.waitClosed(id)).then(() => {
    const end = native.end() ?? { aborted: 'the session ended', abortedCode: 'WT_ERR_SESSION_CLOSED' }
    if (end.aborted) throw new WebTransportError(end.aborted, { source: 'session', code: end.abortedCode })
    return { closeCode: end.closeCode, reason: end.reason }
  })
}

/** Checks W3C WebTransportCloseInfo; returns `{ closeCode, reason }`. */
function closeInfoOption(closeInfo) {
  if (closeInfo === null || typeof closeInfo !== 'object') throw invalidOption('close() takes { closeCode, reason }')
  const { closeCode = 0, reason = '' } = closeInfo
  if (!Number.isInteger(closeCode) || closeCode < 0 || closeCode > 0xffffffff) {
    throw invalidOption('closeCode must be an integer from 0 to 4294967295', RangeError)
  }
  if (typeof reason !== 'string') throw invalidOption('reason must be a string')
  if (Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    throw invalidOption(`reason must be at most ${MAX_REASON_BYTES} bytes of UTF-8`, RangeError)
  }
  return { closeCode, reason }
}

/** Each session's link, for its subclasses (private fields are not inherited), never exported by the package. */
const links = new WeakMap()

/**
 * The W3C WebTransport interface over a native session, whichever end opened the connection: the
 * server's `WebTransportSession` and the client's `WebTransport` are this with their own
 * beginnings (a request answered, a URL connected to).
 */
class SessionBase {
  #link
  #incomingBidi
  #incomingUni
  #datagrams
  #draining

  constructor(link) {
    this.#link = link
    links.set(this, link)
    /** Resolves with `{ closeCode, reason }` when the session closes; rejects with a WebTransportError when it is lost (or never opened). */
    this.closed = quiet(link.native ? closedOf(link.native, link.hub) : link.opened.then((native) => closedOf(native, link.hub)))
  }

  /** The negotiated subprotocol, or '' when none (or before a client's session is ready). */
  get protocol() {
    return this.#link.protocol
  }

  /** Resolves when the session starts draining (`drain()`, the peer sent DRAIN_WEBTRANSPORT_SESSION, or the server is closing), or ends. */
  get draining() {
    const link = this.#link
    this.#draining ??= quiet(
      link.native ? link.native.draining() : link.opened.then((native) => native.draining(), () => undefined),
    )
    return this.#draining
  }

  // The session's streams are made on first access, not with the session: each WHATWG stream
  // costs about 1-2 kB of heap and a few us, and a session that never reads datagrams (say)
  // should not pay for them. Nothing is lost meanwhile: what arrives waits natively, as it does
  // between reads.

  /** `ReadableStream` of the peer's bidirectional streams, `{ readable, writable }` each. */
  get incomingBidirectionalStreams() {
    this.#incomingBidi ??= incoming(
      this.#link,
      (native, id) => native.waitBidi(id, STREAM_BATCH),
      (native) => native.takeBidi(),
      bidirectionalFrom,
    )
    return this.#incomingBidi
  }

  /** `ReadableStream` of the peer's unidirectional streams. */
  get incomingUnidirectionalStreams() {
    this.#incomingUni ??= incoming(
      this.#link,
      (native, id) => native.waitUni(id, STREAM_BATCH),
      (native) => native.takeUni(),
      readableFrom,
    )
    return this.#incomingUni
  }

  /** `{ readable, writable, maxDatagramSize }`: unreliable datagrams both ways. */
  get datagrams() {
    this.#datagrams ??= new DatagramDuplexStream(this.#link)
    return this.#datagrams
  }

  /** Opens a bidirectional stream to the peer; `options.sendOrder` as the writable's. */
  async createBidirectionalStream(options) {
    const sendOrder = sendOrderOption(options)
    const session = this.#link.native ?? (await this.#link.opened)
    let native
    try {
      native = await session.openBidi()
    } catch (error) {
      throw fromNative(error)
    }
    if (sendOrder !== 0) native.setSendOrder(sendOrder)
    return bidirectionalFrom(native, this.#link.hub, sendOrder)
  }

  /** Opens a unidirectional stream to the peer; resolves with its WritableStream. */
  async createUnidirectionalStream(options) {
    const sendOrder = sendOrderOption(options)
    const session = this.#link.native ?? (await this.#link.opened)
    let native
    try {
      native = await session.openUni()
    } catch (error) {
      throw fromNative(error)
    }
    if (sendOrder !== 0) native.setSendOrder(sendOrder)
    return writableFrom(native, this.#link.hub, sendOrder)
  }

  /**
   * W3C `exportKeyingMaterial`: `length` bytes (default 32, 1 to 4096) from the TLS exporter
   * for this session (draft-ietf-webtrans-http3 §4.8), the same the peer derives from the same
   * `label` and `context` (each a BufferSource of at most 255 bytes; context default empty).
   */
  async exportKeyingMaterial(label, context, length = DEFAULT_EXPORTER_LENGTH) {
    const labelBytes = exporterInput(label, 'label')
    const contextBytes = context === undefined ? new Uint8Array(0) : exporterInput(context, 'context')
    if (!Number.isInteger(length)) throw invalidOption('length must be an integer')
    if (length < 1 || length > MAX_EXPORTER_OUTPUT) {
      throw invalidOption(`length must be from 1 to ${MAX_EXPORTER_OUTPUT}, got ${length}`, RangeError)
    }
    const native = this.#link.native ?? (await this.#link.opened)
    try {
      return native.exportKeyingMaterial(labelBytes, contextBytes, length)
    } catch (error) {
      throw fromNative(error)
    }
  }

  /**
   * Closes the session with CLOSE_WEBTRANSPORT_SESSION (code u32, reason at most 1024 bytes); a
   * client still connecting gives up instead. Does nothing once the session has ended.
   */
  close(closeInfo = {}) {
    const { closeCode, reason } = closeInfoOption(closeInfo)
    if (this.#link.native) this.#link.native.close(closeCode, reason)
    else this.#link.cancel({ closeCode, reason })
  }

  /** Connection and datagram statistics. */
  async getStats() {
    const native = this.#link.native ?? (await this.#link.opened)
    const s = native.stats()
    return {
      rtt: s.rtt,
      // The W3C WebTransportConnectionStats name of the same figure, for browser code.
      smoothedRtt: s.rtt,
      minRtt: s.minRtt,
      congestionWindow: s.congestionWindow,
      bytesSent: s.bytesSent,
      bytesReceived: s.bytesReceived,
      packetsSent: s.packetsSent,
      packetsReceived: s.packetsReceived,
      packetsLost: s.packetsLost,
      datagrams: {
        sent: s.datagramsSent,
        received: s.datagramsReceived,
        droppedIncoming: s.datagramsDroppedIncoming,
      },
      flowControl: s.flowControl ?? null,
    }
  }

}

/** The server's side of a WebTransport session, in the W3C WebTransport shape. */
class WebTransportSession extends SessionBase {
  constructor(native, request, hub) {
    super(new SessionLink(hub, native))
    /** The request that opened the session. */
    this.request = request
    this.ready = Promise.resolve()
  }

  /**
   * Asks the client to end the session soon (DRAIN_WEBTRANSPORT_SESSION) and resolves this side's
   * `draining`. The session keeps working until one side closes it. Idempotent; does nothing once
   * the session has ended, as `close()` does.
   */
  drain() {
    links.get(this).native.drain()
  }
}

module.exports = { WebTransportSession, SessionBase, SessionLink, links, quiet }
