'use strict'

// WHATWG streams over native stream handles. Bytes cross the boundary in chunks of up to
// READ_CHUNK bytes per call, and QUIC flow control is the backpressure: `write` resolves only
// when the native side has taken the chunk. Each operation first tries the synchronous native
// call (about 0.1 us) and only falls back to the awaited one (5-10 us) when it would have to
// wait: data usually has arrived already, and writes usually fit the flow-control window.

const { ReadableStream, WritableStream } = require('node:stream/web')
const { fromNative } = require('./errors')

const READ_CHUNK = 256 * 1024

/** The application error code carried by a cancel/abort reason (W3C: streamErrorCode), else 0. */
function streamErrorCodeOf(reason) {
  const code = reason && typeof reason === 'object' ? reason.streamErrorCode : undefined
  return Number.isInteger(code) && code >= 0 && code <= 0xffffffff ? code : 0
}

function readableFrom(native) {
  return new ReadableStream(
    {
      pull(controller) {
        let now
        try {
          now = native.readNow(READ_CHUNK)
        } catch (error) {
          controller.error(fromNative(error))
          return
        }
        if (now === null) return controller.close()
        if (now !== undefined) return controller.enqueue(now)
        return native.read(READ_CHUNK).then(
          (chunk) => (chunk === null ? controller.close() : controller.enqueue(chunk)),
          (error) => controller.error(fromNative(error)),
        )
      },
      cancel(reason) {
        native.stop(streamErrorCodeOf(reason))
      },
    },
    { highWaterMark: 1 },
  )
}

function writableFrom(native) {
  return new WritableStream(
    {
      write(chunk) {
        if (chunk instanceof ArrayBuffer) chunk = new Uint8Array(chunk)
        if (!(chunk instanceof Uint8Array)) {
          const error = new TypeError('stream chunks must be Uint8Array, Buffer or ArrayBuffer')
          error.code = 'WT_ERR_INVALID_OPTION'
          throw error
        }
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
      },
      close() {
        try {
          if (native.finishNow()) return
        } catch (error) {
          throw fromNative(error)
        }
        return native.finish().catch((error) => {
          throw fromNative(error)
        })
      },
      abort(reason) {
        native.reset(streamErrorCodeOf(reason))
      },
    },
    { highWaterMark: 4 },
  )
}

function bidirectionalFrom(native) {
  return { readable: readableFrom(native), writable: writableFrom(native) }
}

module.exports = { readableFrom, writableFrom, bidirectionalFrom, streamErrorCodeOf }
