// bench/js-echo.mjs: the echo of bench/ written in JavaScript on webtransport-napi's public API,
// the way a user would write it with WHATWG streams: `readable.pipeTo(writable)` for every
// bidirectional stream, a read/write loop for datagrams, and unidirectional streams answered on
// a new unidirectional stream (examples/echo.mjs, the same code the demo runs). This is server
// (a) of the benchmark.
//
// `readable.pipeTo(writable)` between two of the library's streams runs natively, so with
// --loop every bidirectional stream is echoed by a reader/writer loop instead: every byte read
// into JS and written back from it, server (a') of the benchmark.
//
// Usage: node bench/js-echo.mjs [--cert cert.pem --key key.pem] [--port N] [--stats] [--loop]
//                               [--workers N]
//
// Listens on 127.0.0.1 only, with the default options (--workers N: the `workers` option, QUIC
// endpoints sharing the port). Without --cert/--key it generates a certificate. Prints one JSON
// line when listening: {"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>"}, then answers
// each line it reads on stdin with one line {"counters":...} of `server.counters()`. Exits when
// stdin reaches its end (so a runner that dies takes its servers with it) or on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import readline from 'node:readline'
import { X509Certificate, createHash } from 'node:crypto'
import { echoSession } from '../examples/echo.mjs'

const require = createRequire(import.meta.url)
const { Server, generateCertificate } = require('..')

function arg(name) {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}

let cert
let key
if (arg('--cert')) {
  cert = readFileSync(arg('--cert'), 'utf8')
  key = readFileSync(arg('--key'), 'utf8')
} else {
  ;({ cert, key } = generateCertificate({ hostnames: ['localhost', '127.0.0.1'], days: 10 }))
}
const certHash = createHash('sha256').update(new X509Certificate(cert).raw).digest('hex')

const workers = arg('--workers') === undefined ? {} : { workers: Number(arg('--workers')) }
const server = new Server({ host: '127.0.0.1', port: Number(arg('--port') ?? 0), cert, key, ...workers })

// --stats: print each session's getStats() to stderr every second while it is open (diagnosis
// only; off in the benchmark).
const stats = process.argv.includes('--stats')

const loop = process.argv.includes('--loop')

server.on('session', async (session) => {
  if (stats) printStats(session)
  await echoSession(session, loop ? { bidi: echoThroughJs } : undefined)
})

/** Echoes one bidirectional stream chunk by chunk in JS. */
async function echoThroughJs({ readable, writable }) {
  const writer = writable.getWriter()
  for await (const chunk of readable) await writer.write(chunk)
  await writer.close()
}

function printStats(session) {
  const timer = setInterval(async () => {
    try {
      process.stderr.write(JSON.stringify({ path: session.request.path, ...(await session.getStats()) }) + '\n')
    } catch {}
  }, 1000)
  session.closed.catch(() => {}).finally(() => clearInterval(timer))
}


server.on('error', (error) => {
  console.error(`js-echo: ${error.message}`)
  process.exit(1)
})

await server.ready
process.stdout.write(
  JSON.stringify({ ready: true, port: server.address().port, pid: process.pid, certHash }) + '\n',
)
readline
  .createInterface({ input: process.stdin })
  .on('line', () => process.stdout.write(JSON.stringify({ counters: server.counters() }) + '\n'))
  .on('close', () => process.exit(0))
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(0))
