// session.exportKeyingMaterial (W3C) gives what the client derives: tools/wt-client (on the
// wtransport crate, which offers only the raw TLS exporter) writes the WebTransport Exporter
// Context of draft-ietf-webtrans-http3 §4.8 itself and exports with "EXPORTER-WebTransport".
//
// Build the client first: cargo build --release -p wt-client (or set WT_CLIENT_BIN).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { Server, generateCertificate } from '../index.js'
import { assertClientBuilt, assertClientOk, runWtClient } from './support/wt-client.mjs'

const text = (s) => new TextEncoder().encode(s)
const hex = (bytes) => Buffer.from(bytes).toString('hex')

// Each request: what the server passes to exportKeyingMaterial, and the client's argument.
const LABEL = text('webtransport-napi test')
const REQUESTS = [
  { args: [LABEL, text('context 1'), 32] },
  { args: [LABEL, text('context 2'), 32] },
  { args: [text('another label'), text('context 1'), 32] },
  // Context and length omitted: an empty context (as the draft says) and 32 bytes.
  { args: [LABEL], client: `${hex(LABEL)},-,32` },
  // An ArrayBuffer label; the largest label, context and length.
  { args: [text('buffer').buffer, new Uint8Array(255).fill(7), 4096] },
  { args: [new Uint8Array(0), new Uint8Array(0), 1] },
].map(({ args, client }) => ({
  args,
  client: client ?? `${hex(new Uint8Array(args[0]))},${hex(args[1])},${args[2]}`,
}))

let server
let handle
/** Per session (in arrival order): the server's materials, or the error it got. */
const exported = []

before(async () => {
  assertClientBuilt()
  const certificate = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
  server = new Server({ port: 0, host: '127.0.0.1', cert: certificate.cert, key: certificate.key })
  server.on('session', (session) => {
    session.closed.catch(() => {})
    if (session.request.path !== '/export') return
    // The client waits for this close, so the session is still there to export from.
    const materials = Promise.all(REQUESTS.map(({ args }) => session.exportKeyingMaterial(...args)))
    materials.finally(() => session.close()).catch(() => {})
    exported.push(materials)
  })
  await server.ready
  const { port } = server.address()
  handle = { url: (path) => `https://127.0.0.1:${port}${path}`, hashHex: Buffer.from(certificate.hash.value).toString('hex') }
})

after(() => server?.close())

async function exportBoth() {
  const index = exported.length
  const args = ['export-keying-material', ...REQUESTS.map((r) => r.client)]
  const out = assertClientOk(await runWtClient(handle, args, { path: '/export' }))
  assert.equal(out.serverClosed, true, 'the server closed the session after exporting')
  const materials = await exported[index]
  return { client: out.materials, server: materials }
}

test('the server exports what the client exports, for each label, context and length', async () => {
  const { client, server: materials } = await exportBoth()
  for (const material of materials) assert.ok(material instanceof Uint8Array)
  assert.deepEqual(materials.map(hex), client)
  assert.deepEqual(
    materials.map((m) => m.byteLength),
    [32, 32, 32, 32, 4096, 1],
  )
})

test('a different label, context or session gives different bytes', async () => {
  const first = (await exportBoth()).server.map(hex)
  assert.notEqual(first[0], first[1], 'different context')
  assert.notEqual(first[0], first[2], 'different label')
  assert.notEqual(first[0], first[3], 'context omitted (empty)')
  const second = (await exportBoth()).server.map(hex)
  assert.notEqual(first[0], second[0], 'another session (and connection)')
})

test('exportKeyingMaterial validates its arguments and fails once the session has ended', async () => {
  const checked = new Promise((resolve, reject) => {
    server.once('session', async (session) => {
      try {
        const invalid = (name) => ({ name, code: 'WT_ERR_INVALID_OPTION' })
        await assert.rejects(session.exportKeyingMaterial(new Uint8Array(256)), invalid('RangeError'))
        await assert.rejects(session.exportKeyingMaterial(LABEL, new Uint8Array(256)), invalid('RangeError'))
        await assert.rejects(session.exportKeyingMaterial(LABEL, undefined, 0), invalid('RangeError'))
        await assert.rejects(session.exportKeyingMaterial(LABEL, undefined, 4097), invalid('RangeError'))
        await assert.rejects(session.exportKeyingMaterial(LABEL, undefined, 1.5), invalid('TypeError'))
        await assert.rejects(session.exportKeyingMaterial('label'), invalid('TypeError'))
        await assert.rejects(session.exportKeyingMaterial(), invalid('TypeError'))
        await assert.rejects(session.exportKeyingMaterial(LABEL, 'context'), invalid('TypeError'))
        session.close()
        await session.closed
        await assert.rejects(session.exportKeyingMaterial(LABEL), { code: 'WT_ERR_SESSION_CLOSED' })
        resolve()
      } catch (error) {
        reject(error)
      }
    })
  })
  // The session only needs to open; the client's scenario fails once the server closes it.
  const run = runWtClient(handle, ['server-streams'], { path: '/validate' })
  await checked
  await run
})
