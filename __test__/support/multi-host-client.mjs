// The client of __test__/multi-host.test.mjs, run inside the client's network namespace: our
// WebTransport client against the hosts of multi-host-server.mjs, which answer each stream with
// their name and a newline before the echo.
//
//   node multi-host-client.mjs spread --url U --hash H --local-address A --first-port P --sessions N --concurrency C
//     N sessions, C at a time, each echoing one stream of random bytes; prints the local ports
//     whose session each host answered, { ports: { <name>: [<port>, ...] }, failures: [<the
//     first few errors>], failed, ms }.
//     A process's sessions share one UDP socket per local address and port, so each session here
//     binds a port of its own (P, P+1, ...): the balancer hashes the source port, and one socket
//     would land every session on the same host.
//   node multi-host-client.mjs hold --url U --hash H --local-address A --first-port P --watch-ms W
//     One session; prints { host }, and how it ended whenever it does, { closed: { name, source,
//     code, message } | { closeCode, reason }, ms } (ms since the "send" below; null before it).
//     Lines on stdin:
//       echo   one more stream echo: { host } or, after W ms without an answer, { error }
//       send   writes 4000 bytes on a new stream (packets a restarted server can answer with a
//              stateless reset), then prints { open: true } if the session is still open W ms later
//
// Every wait is bounded; the process exits when its stdin closes.
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { WebTransport } from '../../index.js'

const { positionals, values: args } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    hash: { type: 'string' },
    'local-address': { type: 'string' },
    'first-port': { type: 'string' },
    sessions: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '1' },
    'watch-ms': { type: 'string', default: '5000' },
  },
})
const STEP_TIMEOUT = 10_000

function within(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer))
}

function open(localPort) {
  return new WebTransport(args.url, {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(args.hash, 'hex') }],
    localAddress: args['local-address'],
    localPort,
  })
}

/** Writes `payload` on a new stream and reads the answer: the host's name, a newline, the echo. */
async function exchange(wt, payload) {
  const { readable, writable } = await wt.createBidirectionalStream()
  const writer = writable.getWriter()
  const written = writer.write(payload).then(() => writer.close())
  const chunks = []
  for await (const chunk of readable) chunks.push(Buffer.from(chunk))
  await written
  const answer = Buffer.concat(chunks)
  const newline = answer.indexOf(10)
  if (newline < 0) throw new Error(`an answer without the host's name: ${answer.length} bytes`)
  if (!answer.subarray(newline + 1).equals(payload)) {
    throw new Error(`the echo differs: sent ${payload.length} bytes, got ${answer.length - newline - 1}`)
  }
  return answer.subarray(0, newline).toString()
}

async function spread() {
  process.stdin.on('end', () => process.exit(1)).resume()
  const started = Date.now()
  const total = Number(args.sessions)
  const ports = {}
  const failures = []
  let next = 0
  const worker = async () => {
    while (next < total) {
      const i = next++
      const port = Number(args['first-port']) + i
      const wt = open(port)
      try {
        await within(wt.ready, STEP_TIMEOUT, `session ${i} ready`)
        const host = await within(exchange(wt, randomBytes(3000)), STEP_TIMEOUT, `session ${i} echo`)
        ports[host] ??= []
        ports[host].push(port)
        wt.close()
        await within(wt.closed, STEP_TIMEOUT, `session ${i} closed`)
      } catch (error) {
        failures.push(`session ${i}: ${error.message}`)
        wt.close()
      }
    }
  }
  await Promise.all(Array.from({ length: Number(args.concurrency) }, worker))
  console.log(JSON.stringify({ ports, failures: failures.slice(0, 5), failed: failures.length, ms: Date.now() - started }))
  process.exit(0)
}

async function hold() {
  const wt = open(Number(args['first-port']))
  await within(wt.ready, STEP_TIMEOUT, 'ready')
  const host = await within(exchange(wt, randomBytes(100)), STEP_TIMEOUT, 'echo')
  let sentAt = null
  const report = (closed) => {
    console.log(JSON.stringify({ closed, ms: sentAt === null ? null : Date.now() - sentAt }))
    process.exit(0)
  }
  wt.closed.then(report, (e) => report({ name: e.name, source: e.source, code: e.code, message: e.message }))
  console.log(JSON.stringify({ host }))
  const watch = Number(args['watch-ms'])
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'echo') {
      const answer = await within(exchange(wt, randomBytes(2000)), watch, 'echo').then(
        (host) => ({ host }),
        (error) => ({ error: error.message }),
      )
      console.log(JSON.stringify(answer))
    } else if (line === 'send' && sentAt === null) {
      sentAt = Date.now()
      setTimeout(() => {
        console.log(JSON.stringify({ open: true }))
        process.exit(0)
      }, watch)
      // A session that ended meanwhile has reported already; its stream is not needed.
      const stream = await wt.createBidirectionalStream().catch(() => null)
      stream?.writable.getWriter().write(randomBytes(4000)).catch(() => {})
    }
  }
  process.exit(1)
}

if (positionals[0] === 'spread') await spread()
else if (positionals[0] === 'hold') await hold()
else throw new Error(`unknown command ${positionals[0]}: spread or hold`)
