'use strict'
// Construction of the library's WHATWG streams: Node's own ReadableStream and WritableStream
// constructors, so the streams pass every brand check and are transferable like any other.

const { ReadableStream, WritableStream } = require('node:stream/web')

/** Where a stream made here keeps its underlying source or sink. */
const kUnderlying = Symbol('webtransport-napi.underlying')

/**
 * Returns `create(underlying, strategy)`: a new `Stream` (Node's ReadableStream or WritableStream)
 * over `underlying`, an instance of `Class` (`Stream` itself, or a subclass whose own constructor
 * throws, as the W3C classes' do: the stream is built by `Stream`'s constructor with `Class` as
 * `new.target`), with `underlying` kept at `stream[kUnderlying]`.
 *
 * Every stream of a factory has the same `new.target` and gets `kUnderlying` right after it is
 * built, so V8 gives them all one map and Node's stream code stays monomorphic on them.
 */
function streamFactory(Stream, Class = Stream) {
  return (underlying, strategy) => {
    const stream = Reflect.construct(Stream, [underlying, strategy], Class)
    stream[kUnderlying] = underlying
    return stream
  }
}

/** `new ReadableStream(source, strategy)`. */
const newReadableStream = streamFactory(ReadableStream)
/** `new WritableStream(sink, strategy)`. */
const newWritableStream = streamFactory(WritableStream)

module.exports = { streamFactory, newReadableStream, newWritableStream, kUnderlying }
