// One host of __test__/multi-host.test.mjs, run inside the host's network namespace: a Server
// that answers every bidirectional stream with its name and a newline, then echoes the stream, so a
// client sees both which host it reached and that the bytes came back whole.
//
//   node multi-host-server.mjs --name a --host 198.18.2.2 --port 4433 --cert c.pem --key k.pem \
//     [--server-id <hex>] [--secret <hex>] [--workers <n>]
//
// Prints { listening: <port> } once ready, and { counters: server.counters() } for each line
// "counters" on stdin. Exits when its stdin closes: the test holds the other end, so a runner that
// dies takes its hosts along.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Server } from '../../index.js'

const { values: args } = parseArgs({
  options: {
    name: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'server-id': { type: 'string' },
    secret: { type: 'string' },
    workers: { type: 'string' },
  },
})

const options = { host: args.host, port: Number(args.port), cert: readFileSync(args.cert), key: readFileSync(args.key) }
if (args['server-id'] !== undefined) options.serverId = Buffer.from(args['server-id'], 'hex')
if (args.secret !== undefined) options.secret = Buffer.from(args.secret, 'hex')
if (args.workers !== undefined) options.workers = Number(args.workers)
const server = new Server(options)
const greeting = new TextEncoder().encode(`${args.name}\n`)

server.on('session', async (session) => {
  session.closed.catch(() => {})
  try {
    for await (const { readable, writable } of session.incomingBidirectionalStreams) {
      const writer = writable.getWriter()
      void writer
        .write(greeting)
        .then(() => {
          writer.releaseLock()
          return readable.pipeTo(writable)
        })
        .catch(() => {})
    }
  } catch {
    // The session ended under the loop.
  }
})

await server.ready
console.log(JSON.stringify({ listening: server.address().port }))
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line === 'counters') console.log(JSON.stringify({ counters: server.counters() }))
  })
  .on('close', () => {
    server.close().finally(() => process.exit(0))
  })
