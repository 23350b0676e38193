'use strict'

const { newReadableStream, newWritableStream } = require('./webstreams')
const { WebTransportError, fromNative, invalidOption } = require('./errors')
const { readableFrom, writableFrom, bidirectionalFrom } = require('./streams')

const DATAGRAM_BATCH = 256
const STREAM_BATCH = 64
const OUTGOING_BATCH = 256
const MAX_REASON_BYTES = 1024

/** A handled promise: awaiting it still sees the rejection, but nobody is forced to. */
function quiet(promise) {
  promise.catch(() => {})
  return promise
}

/**
 * A stream of the peer's new streams: each pull waits for streams to arrive, then takes every one
 * waiting (up to STREAM_BATCH) in one crossing; an empty batch means the session ended.
 */
function incoming(hub, begin, take, wrap) {
  return newReadableStream(
    {
      async pull(controller) {
        await hub.wait(begin)
        const batch = take()
        if (batch.length === 0) controller.close()
        for (const stream of batch) controller.enqueue(wrap(stream, hub))
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
 * rejects at once, and a failure of the session errors the stream.
 */
function outgoingDatagrams(native) {
  let pending = []
  let streamController
  function flush() {
    if (pending.length === 0) return
    const batch = pending
    pending = []
    try {
      native.sendDatagrams(batch)
    } catch (error) {
      streamController.error(fromNative(error))
    }
  }
  return newWritableStream({
    start(controller) {
      streamController = controller
    },
    write(chunk) {
      if (!(chunk instanceof Uint8Array)) throw invalidOption('datagrams must be Uint8Array or Buffer')
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
  #native

  constructor(native, hub) {
    this.#native = native
    const waitDatagrams = (id) => native.waitDatagrams(id)
    /** Received datagrams, read in batches of up to DATAGRAM_BATCH per crossing. */
    this.readable = newReadableStream(
      {
        async pull(controller) {
          for (;;) {
            const queued = native.takeDatagrams(DATAGRAM_BATCH)
            if (queued.length > 0) {
              for (const datagram of queued) controller.enqueue(datagram)
              return
            }
            if (native.end() !== null) return controller.close()
            await hub.wait(waitDatagrams)
          }
        },
      },
      { highWaterMark: 0 },
    )
    this.writable = outgoingDatagrams(native)
  }

  /** Largest payload that fits one packet now; 0 when the client takes no datagrams. */
  get maxDatagramSize() {
    return this.#native.maxDatagramSize()
  }
}

/** The server's side of a WebTransport session, in the W3C WebTransport shape. */
class WebTransportSession {
  #native
  #hub
  #incomingBidi
  #incomingUni
  #datagrams
  #draining

  constructor(native, request, hub) {
    this.#native = native
    this.#hub = hub
    /** The request that opened the session. */
    this.request = request
    /** The negotiated subprotocol, or '' when none. */
    this.protocol = native.protocol()
    this.ready = Promise.resolve()
    this.closed = quiet(
      hub.wait((id) => native.waitClosed(id)).then(() => {
        const end = native.end() ?? { aborted: 'the session ended', abortedCode: 'WT_ERR_SESSION_CLOSED' }
        if (end.aborted) throw new WebTransportError(end.aborted, { source: 'session', code: end.abortedCode })
        return { closeCode: end.closeCode, reason: end.reason }
      }),
    )
  }

  /** Resolves when the session starts draining (`drain()`, the client sent DRAIN_WEBTRANSPORT_SESSION, or the server is closing). */
  get draining() {
    this.#draining ??= quiet(this.#native.draining())
    return this.#draining
  }

  // The session's streams are made on first access, not with the session: each WHATWG stream
  // costs about 1-2 kB of heap and a few us, and a session that never reads datagrams (say)
  // should not pay for them. Nothing is lost meanwhile: what arrives waits natively, as it does
  // between reads.

  /** `ReadableStream` of the client's bidirectional streams, `{ readable, writable }` each. */
  get incomingBidirectionalStreams() {
    const native = this.#native
    this.#incomingBidi ??= incoming(
      this.#hub,
      (id) => native.waitBidi(id, STREAM_BATCH),
      () => native.takeBidi(),
      bidirectionalFrom,
    )
    return this.#incomingBidi
  }

  /** `ReadableStream` of the client's unidirectional streams. */
  get incomingUnidirectionalStreams() {
    const native = this.#native
    this.#incomingUni ??= incoming(
      this.#hub,
      (id) => native.waitUni(id, STREAM_BATCH),
      () => native.takeUni(),
      readableFrom,
    )
    return this.#incomingUni
  }

  /** `{ readable, writable, maxDatagramSize }`: unreliable datagrams both ways. */
  get datagrams() {
    this.#datagrams ??= new DatagramDuplexStream(this.#native, this.#hub)
    return this.#datagrams
  }

  /** Opens a bidirectional stream to the client. */
  async createBidirectionalStream() {
    try {
      return bidirectionalFrom(await this.#native.openBidi(), this.#hub)
    } catch (error) {
      throw fromNative(error)
    }
  }

  /** Opens a unidirectional stream to the client; resolves with its WritableStream. */
  async createUnidirectionalStream() {
    try {
      return writableFrom(await this.#native.openUni())
    } catch (error) {
      throw fromNative(error)
    }
  }

  /** Closes the session with CLOSE_WEBTRANSPORT_SESSION (code u32, reason at most 1024 bytes). */
  close(closeInfo = {}) {
    if (closeInfo === null || typeof closeInfo !== 'object') throw invalidOption('close() takes { closeCode, reason }')
    const { closeCode = 0, reason = '' } = closeInfo
    if (!Number.isInteger(closeCode) || closeCode < 0 || closeCode > 0xffffffff) {
      throw invalidOption('closeCode must be an integer from 0 to 4294967295', RangeError)
    }
    if (typeof reason !== 'string') throw invalidOption('reason must be a string')
    if (Buffer.byteLength(reason) > MAX_REASON_BYTES) {
      throw invalidOption(`reason must be at most ${MAX_REASON_BYTES} bytes of UTF-8`, RangeError)
    }
    this.#native.close(closeCode, reason)
  }

  /**
   * Asks the client to end the session soon (DRAIN_WEBTRANSPORT_SESSION) and resolves this side's
   * `draining`. The session keeps working until one side closes it. Idempotent; does nothing once
   * the session has ended, as `close()` does.
   */
  drain() {
    this.#native.drain()
  }

  /** Connection and datagram statistics. */
  async getStats() {
    const s = this.#native.stats()
    return {
      rtt: s.rtt,
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
    }
  }
}

module.exports = { WebTransportSession }
