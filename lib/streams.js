'use strict'

// WHATWG streams over native stream handles. Bytes cross the boundary in chunks of up to
// READ_CHUNK bytes per call, and QUIC flow control is the backpressure: `write` resolves only
// when the native side has taken the chunk.

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
      async pull(controller) {
        let chunk
        try {
          chunk = await native.read(READ_CHUNK)
        } catch (error) {
          controller.error(fromNative(error))
          return
        }
        if (chunk === null) controller.close()
        else controller.enqueue(chunk)
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
      async write(chunk) {
        if (!(chunk instanceof Uint8Array) && !(chunk instanceof ArrayBuffer)) {
          const error = new TypeError('stream chunks must be Uint8Array, Buffer or ArrayBuffer')
          error.code = 'WT_ERR_INVALID_OPTION'
          throw error
        }
        try {
          await native.write(chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : chunk)
        } catch (error) {
          throw fromNative(error)
        }
      },
      async close() {
        try {
          await native.finish()
        } catch (error) {
          throw fromNative(error)
        }
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
