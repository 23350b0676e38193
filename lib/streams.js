'use strict'

// WHATWG streams over native stream handles, as the W3C API's WebTransportReceiveStream and
// WebTransportSendStream (subclasses of ReadableStream and WritableStream). Bytes cross the
// boundary in chunks of up to READ_CHUNK bytes per call, and QUIC flow control is the
// backpressure: `write` resolves only when the native side has taken the chunk. Each operation
// first tries the synchronous native call (about 0.1 us) and only falls back to the awaited one
// (5-10 us) when it would have to wait: data usually has arrived already, and writes usually fit
// the flow-control window.
//
// `receive.pipeTo(send)` between two of our streams, with default options, runs natively: the
// bytes never cross into JS, and the whole stream costs one crossing instead of several per chunk.

const { ReadableStream, WritableStream } = require('node:stream/web')
const { streamFactory, kUnderlying } = require('./webstreams')
const { WebTransportError, fromNative, invalidOption } = require('./errors')

const READ_CHUNK = 256 * 1024
const WRITE_HIGH_WATER_MARK = 4

/** The application error code carried by a cancel/abort reason (W3C: streamErrorCode), else 0. */
function streamErrorCodeOf(reason) {
  const code = reason && typeof reason === 'object' ? reason.streamErrorCode : undefined
  return Number.isInteger(code) && code >= 0 && code <= 0xffffffff ? code : 0
}

/**
 * The underlying source of a receive stream. The high-water mark is 0, so nothing is read ahead
 * into the JS queue: what has not been read is still native, where a pipe can take it.
 */
class ReceiveSource {
  constructor(native, hub) {
    this.native = native
    this.hub = hub
    this.controller = undefined
    this.reading = false
    /** Closed, errored, cancelled or handed to a native pipe: JS reads nothing more. */
    this.done = false
  }

  start(controller) {
    this.controller = controller
  }

  pull(controller) {
    let now
    try {
      now = this.native.readNow(READ_CHUNK)
    } catch (error) {
      this.done = true
      controller.error(fromNative(error))
      return
    }
    if (now === null) {
      this.done = true
      return controller.close()
    }
    if (now !== undefined) return controller.enqueue(now)
    this.reading = true
    return this.native.read(READ_CHUNK).then(
      (chunk) => {
        this.reading = false
        if (chunk !== null) return controller.enqueue(chunk)
        this.done = true
        controller.close()
      },
      (error) => {
        this.reading = false
        this.done = true
        controller.error(fromNative(error))
      },
    )
  }

  cancel(reason) {
    if (this.done) return
    this.done = true
    this.native.stop(streamErrorCodeOf(reason))
  }
}

/**
 * A valid `sendOrder`: any integer Number (W3C: a `long long`, higher goes first). Natively it
 * becomes quinn's i32 stream priority, values beyond the i32 range saturating at its ends.
 */
function checkSendOrder(value) {
  if (!Number.isInteger(value)) throw invalidOption(`sendOrder must be an integer, got ${typeof value === 'number' ? value : typeof value}`)
  return value
}

/** The underlying sink of a send stream. */
class SendSink {
  constructor(native, sendOrder, hub) {
    this.native = native
    this.hub = hub
    /** The peer's STOP_SENDING is being watched for (from the first writer on). */
    this.watching = false
    /** As set (W3C keeps the value given, not what it maps to). */
    this.sendOrder = sendOrder
    this.controller = undefined
    /** Finished, reset or handed to a native pipe that ended it: nothing more goes native. */
    this.done = false
    /** A writer was handed out, so writes may be queued in JS (`pipeTo` must look). */
    this.writerTaken = false
  }

  start(controller) {
    this.controller = controller
  }

  write(chunk) {
    if (chunk instanceof ArrayBuffer) chunk = new Uint8Array(chunk)
    if (!(chunk instanceof Uint8Array)) throw invalidOption('stream chunks must be Uint8Array, Buffer or ArrayBuffer')
    const native = this.native
    let taken
    try {
      taken = native.writeNow(chunk)
    } catch (error) {
      throw fromNative(error)
    }
    if (taken === chunk.byteLength) return
    return native.write(chunk.subarray(taken)).catch((error) => {
      throw fromNative(error)
    })
  }

  close() {
    if (this.done) return
    this.done = true
    const native = this.native
    try {
      if (native.finishNow()) return
    } catch (error) {
      throw fromNative(error)
    }
    return native.finish().catch((error) => {
      throw fromNative(error)
    })
  }

  abort(reason) {
    if (this.done) return
    this.done = true
    this.native.reset(streamErrorCodeOf(reason))
  }

  /**
   * Errors the writable as soon as the peer sends STOP_SENDING, with its code, as the W3C API
   * does (`writer.closed` rejects without a write to find it). Begun with the first writer: a
   * stream that is only piped natively never pays for the wait.
   */
  watchStop() {
    if (this.watching || this.hub === undefined) return
    this.watching = true
    const native = this.native
    this.hub
      .wait((id) => native.waitStopped(id))
      .then(() => {
        const { stopped, code } = native.stoppedCode()
        if (!stopped || this.done) return
        this.done = true
        this.controller.error(
          new WebTransportError('the peer stopped the stream (STOP_SENDING)', { source: 'stream', streamErrorCode: code ?? null, code: 'WT_ERR_STREAM_STOPPED' }),
        )
      })
      .catch(() => {})
  }
}

/**
 * The W3C WebTransportSendStream: a WritableStream of bytes to the peer. Made by the library
 * only (as in browsers, the constructor throws).
 */
class WebTransportSendStream extends WritableStream {
  constructor() {
    throw new TypeError('Illegal constructor: WebTransportSendStream comes from a session')
  }

  getWriter() {
    const writer = super.getWriter()
    const sink = this[kUnderlying]
    sink.writerTaken = true
    sink.watchStop()
    return writer
  }

  /**
   * W3C `sendOrder`: among the session's streams with data waiting to be sent, a higher one is
   * sent first (equal ones share). Settable at any time, also while writes wait; an integer,
   * else a TypeError (`WT_ERR_INVALID_OPTION`). Default 0. quinn re-sorts a queued stream only
   * when it sends from it, so a raised order may wait behind streams already ahead (README).
   */
  get sendOrder() {
    return this[kUnderlying].sendOrder
  }

  set sendOrder(value) {
    const sink = this[kUnderlying]
    sink.sendOrder = checkSendOrder(value)
    sink.native.setSendOrder(value)
  }
}

const newSendStream = streamFactory(WritableStream, WebTransportSendStream)

/** Options that the native pipe honours exactly: the defaults. Anything else takes Node's pipe. */
function defaultPipeOptions(options) {
  if (options === undefined) return true
  if (options === null || typeof options !== 'object') return false
  return !options.preventClose && !options.preventAbort && !options.preventCancel && options.signal === undefined
}

/**
 * The W3C WebTransportReceiveStream: a ReadableStream of the bytes the peer sent. Made by the
 * library only (as in browsers, the constructor throws).
 */
class WebTransportReceiveStream extends ReadableStream {
  constructor() {
    throw new TypeError('Illegal constructor: WebTransportReceiveStream comes from a session')
  }

  /**
   * WHATWG `pipeTo`. Into another WebTransportSendStream with default options it runs natively
   * (same results: the destination finished, or aborted or cancelling with the failure's code);
   * otherwise it is ReadableStream's own.
   */
  pipeTo(destination, options) {
    const source = this[kUnderlying]
    const sink = destination instanceof WebTransportSendStream ? destination[kUnderlying] : undefined
    if (
      sink === undefined ||
      !defaultPipeOptions(options) ||
      this.locked ||
      destination.locked ||
      source.done ||
      source.reading ||
      sink.done
    ) {
      return super.pipeTo(destination, options)
    }
    // Chunks still queued in JS on either side (an earlier reader's read that was released, or
    // writes of a released writer still in flight) must keep their order, which only Node's pipe
    // sees. A writer's queue is visible only through a writer, so it is looked at only when one
    // was ever handed out.
    if (source.controller.desiredSize !== 0) return super.pipeTo(destination, options)
    let writer
    if (sink.writerTaken) {
      writer = destination.getWriter()
      if (writer.desiredSize !== WRITE_HIGH_WATER_MARK) {
        writer.releaseLock()
        return super.pipeTo(destination, options)
      }
    }
    source.done = true
    sink.done = true
    let now
    try {
      now = source.hub.begin((id) => source.native.pipeTo(sink.native, id))
    } catch (error) {
      // Nothing reached the native side: let the abort and cancel below reach it.
      source.done = false
      sink.done = false
      writer?.releaseLock()
      return finishPipe(this, destination, source, sink, { side: 'source', error })
    }
    if (!(now instanceof Promise)) {
      // The pipe ended within the call (all of the stream had arrived): there is no moment left
      // in which the streams could be seen piping, so they are settled at once without locks.
      writer?.releaseLock()
      return finishPipe(this, destination, source, sink, pipeFailure(now))
    }
    // Locked for as long as the pipe runs, as Node's pipe would lock them.
    const reader = this.getReader()
    writer ??= destination.getWriter()
    return now.then((event) => finishPipe(reader, writer, source, sink, pipeFailure(event), true))
  }
}

/** The failure a native pipe's end event reports, or null when the pipe finished. */
function pipeFailure(event) {
  return event.side ? { side: event.side, error: fromNative({ message: event.message }) } : null
}

/**
 * Brings the JS streams to where the native pipe left the native ones, as Node's pipe would
 * have: both closed; or the failed side errored and the other aborted or cancelled with the same
 * error (natively that already happened, so the sink and source do nothing more). `readSide` and
 * `writeSide` are the streams themselves, or the reader and writer that lock them; those locks
 * are released (`locked`) before it settles like `pipeTo`.
 */
async function finishPipe(readSide, writeSide, source, sink, failure, locked = false) {
  if (failure === null) {
    source.controller.close()
    await writeSide.close()
  } else if (failure.side === 'source') {
    source.controller.error(failure.error)
    await writeSide.abort(failure.error)
  } else {
    sink.controller.error(failure.error)
    await readSide.cancel(failure.error)
  }
  if (locked) {
    readSide.releaseLock()
    writeSide.releaseLock()
  }
  if (failure !== null) throw failure.error
}

const newReceiveStream = streamFactory(ReadableStream, WebTransportReceiveStream)

function readableFrom(native, hub) {
  return newReceiveStream(new ReceiveSource(native, hub), { highWaterMark: 0 })
}

/** A send stream over `native`, whose `sendOrder` has been set natively already when not 0. */
function writableFrom(native, hub, sendOrder = 0) {
  return newSendStream(new SendSink(native, sendOrder, hub), { highWaterMark: WRITE_HIGH_WATER_MARK })
}

function bidirectionalFrom(native, hub, sendOrder = 0) {
  return { readable: readableFrom(native, hub), writable: writableFrom(native, hub, sendOrder) }
}

module.exports = {
  readableFrom,
  writableFrom,
  bidirectionalFrom,
  streamErrorCodeOf,
  checkSendOrder,
  WebTransportReceiveStream,
  WebTransportSendStream,
}
