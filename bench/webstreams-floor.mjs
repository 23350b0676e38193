// bench/webstreams-floor.mjs: what Node's own WHATWG streams cost per request/response stream,
// with no native code and no network: a fresh ReadableStream (one 64-byte chunk, then close) is
// piped into a fresh WritableStream, 10 at a time, as bench/js-echo.mjs does for every stream.
// This is the floor under server (a)'s rr figure on this Node version.
//
// Usage: node bench/webstreams-floor.mjs [--streams N]   (prints one line per round)
import { ReadableStream, WritableStream } from 'node:stream/web'

const i = process.argv.indexOf('--streams')
const N = i === -1 ? 20000 : Number(process.argv[i + 1])

async function oneStream() {
  let sent = false
  const readable = new ReadableStream(
    {
      pull(controller) {
        if (sent) return controller.close()
        sent = true
        controller.enqueue(new Uint8Array(64))
      },
    },
    { highWaterMark: 1 },
  )
  const writable = new WritableStream({ write() {}, close() {} }, { highWaterMark: 4 })
  await readable.pipeTo(writable)
}

function cpuMicros(since) {
  const used = process.cpuUsage(since)
  return used.user + used.system
}

for (let round = 1; round <= 3; round++) {
  const start = process.cpuUsage()
  let next = 0
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (next++ < N) await oneStream()
    }),
  )
  const pipeUs = cpuMicros(start) / N
  const construct = process.cpuUsage()
  for (let k = 0; k < N; k++) {
    new ReadableStream({ pull() {} })
    new WritableStream({ write() {} })
  }
  const constructUs = cpuMicros(construct) / N
  console.log(
    `round ${round}: pipeTo of one chunk ${pipeUs.toFixed(1)} us CPU per stream; constructing a ReadableStream + WritableStream alone ${constructUs.toFixed(1)} us (node ${process.version})`,
  )
}
