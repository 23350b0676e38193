'use strict'
// Construction of the library's WHATWG streams, without Node 20's per-stream transfer copy.
//
// Node 20's ReadableStream and WritableStream constructors end in `makeTransferable(this)`, which
// copies every new stream's fields onto a fresh C++-backed object so that the stream can be
// handed to a worker with postMessage. The copy costs about 4 us and a native object with a weak
// handle per stream, and it leaves every stream with an object layout (V8 "map") of its own, so
// every property access in Node's stream code goes megamorphic. A request/response stream paid
// that for its readable and its writable: bench/README.md, profile 6. Node 22 marks streams
// transferable without a copy, so there it has nothing to skip.
//
// `makeTransferable` returns its argument untouched when it already is `instanceof
// JSTransferable`. So a stream is constructed by Node's own constructor (the same fields, passing
// every brand check) with a `new.target` that extends JSTransferable (found as the parent class of
// `net.BlockList`, a public class), then given its real prototype. What such a stream lacks on
// Node 20 is transferability: postMessage or structuredClone with it in the transfer list throws
// a TypeError, ERR_INVALID_TRANSFER_OBJECT (README: "Streams"). Where the shortcut is not there
// (another Node, or its internals changed), streams are constructed the ordinary way.

const { ReadableStream, WritableStream } = require('node:stream/web')
const { BlockList } = require('node:net')

const JSTransferable = Object.getPrototypeOf(BlockList)
const skipTransferCopy =
  Number(process.versions.node.split('.')[0]) <= 20 && typeof JSTransferable === 'function' && JSTransferable.name === 'JSTransferable'

/** Where a stream made here keeps its underlying source or sink. */
const kUnderlying = Symbol('webtransport-napi.underlying')

/**
 * Returns `create(underlying, strategy)`: a new `Stream` (Node's ReadableStream or WritableStream)
 * over `underlying`, with `prototype` (Stream's own, or a subclass's) and `underlying` kept at
 * `stream[kUnderlying]`.
 *
 * V8 shares one map among all the streams of a factory only if the `new.target` is a class of its
 * own and nothing is added to a stream after its prototype changes, hence one target class per
 * factory and `kUnderlying` set first.
 */
function streamFactory(Stream, prototype) {
  const target = skipTransferCopy ? class AlreadyTransferable extends JSTransferable {} : prototype.constructor
  return (underlying, strategy) => {
    const stream = Reflect.construct(Stream, [underlying, strategy], target)
    stream[kUnderlying] = underlying
    return skipTransferCopy ? Object.setPrototypeOf(stream, prototype) : stream
  }
}

/** `new ReadableStream(source, strategy)`, without the transfer copy. */
const newReadableStream = streamFactory(ReadableStream, ReadableStream.prototype)
/** `new WritableStream(sink, strategy)`, without the transfer copy. */
const newWritableStream = streamFactory(WritableStream, WritableStream.prototype)

module.exports = { streamFactory, newReadableStream, newWritableStream, kUnderlying }
