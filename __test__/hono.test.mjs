// A Hono app served as `fetch: app.fetch`, the way Hono apps plug into Bun.serve and Deno.serve,
// driven over HTTP/3 by aioquic's `http` scenario (an independent client): a route with a
// parameter, a POST whose JSON body is parsed and echoed, and Hono's own notFound. Hono's
// `fetch(request, env)` gets our `info` as its env. Then examples/hono.mjs as a person runs it:
// the Chromium command it prints loads its JSON over HTTP/3.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Hono } from 'hono'
import { startEchoServer } from './support/echo-server.mjs'
import { runAioquic } from './support/aioquic-client.mjs'
import { launchBrowser, runInPage, withTimeout } from './support/browser.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const app = new Hono()
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), sort: c.req.query('sort') ?? null, client: c.env.remoteAddress }))
app.post('/echo', async (c) => c.json({ method: c.req.method, type: c.req.header('content-type'), received: await c.req.json() }, 201))
app.notFound((c) => c.text(`hono: no route for ${c.req.method} ${c.req.path}`, 404))

let server
let tmp
let pem

before(async () => {
  server = await startEchoServer({ fetch: app.fetch })
  tmp = await mkdtemp(join(tmpdir(), 'wt-hono-'))
  pem = join(tmp, 'cert.pem')
  await writeFile(pem, server.certificate.cert)
})

after(async () => {
  if (server) await server.closeWithin()
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

/** One request through aioquic; the parsed response, the whole run in assertion messages. */
async function request(args) {
  const { result, code, context } = await runAioquic(server, 'http', { pem, args })
  assert.equal(result.ok, true, context)
  assert.equal(code, 0, context)
  assert.equal(result.responseComplete, true, context)
  return { status: result.status, headers: result.headers, text: result.bodyText, context }
}

test('GET with a route parameter and a query: Hono answers JSON, with our info as its env', { timeout: 30_000 }, async () => {
  const { status, headers, text, context } = await request(['--method', 'GET', '--path', '/users/42?sort=desc'])
  assert.equal(status, 200, context)
  assert.match(headers['content-type'], /^application\/json/, context)
  assert.deepEqual(JSON.parse(text), { id: '42', sort: 'desc', client: '127.0.0.1' })
})

test('POST JSON: the body streamed from QUIC is parsed by Hono and echoed with its status', { timeout: 30_000 }, async () => {
  const sent = { name: 'hono', list: [1, 2, 3], nested: { ok: true, text: 'über ✓' } }
  const body = JSON.stringify(sent)
  const { status, text, context } = await request([
    '--method',
    'POST',
    '--path',
    '/echo',
    '--header',
    'content-type: application/json',
    '--header',
    `content-length: ${Buffer.byteLength(body)}`,
    '--body',
    body,
  ])
  assert.equal(status, 201, context)
  assert.deepEqual(JSON.parse(text), { method: 'POST', type: 'application/json', received: sent })
})

test("a path without a route gets Hono's notFound, not the server's empty 404", { timeout: 30_000 }, async () => {
  const { status, headers, text, context } = await request(['--method', 'GET', '--path', '/nowhere'])
  assert.equal(status, 404, context)
  assert.match(headers['content-type'], /^text\/plain/, context)
  assert.equal(text, 'hono: no route for GET /nowhere')
})

test('examples/hono.mjs: the Chromium command it prints gets its JSON over HTTP/3', { timeout: 90_000 }, async () => {
  const example = spawn(process.execPath, ['examples/hono.mjs'], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise((done) => example.on('exit', (code, signal) => done({ code, signal })))
  let browser
  try {
    let out = ''
    const command = await withTimeout(
      new Promise((done) => {
        example.stdout.on('data', (d) => {
          out += d
          const match = /^chromium .*--origin-to-force-quic-on=(\S+) --ignore-certificate-errors-spki-list=(\S+) (https:\/\/\S+)$/m.exec(out)
          if (match) done({ origin: match[1], spki: match[2], url: match[3] })
        })
      }),
      30_000,
      'the example printing its Chromium command',
    )
    browser = await launchBrowser({
      args: [`--origin-to-force-quic-on=${command.origin}`, `--ignore-certificate-errors-spki-list=${command.spki}`],
    })
    const page = await browser.newPage()
    const response = await page.goto(command.url, { timeout: 15_000 })
    assert.equal(response.status(), 200)
    assert.deepEqual(await response.json(), { hello: 'you', from: '127.0.0.1' })
    assert.equal(await runInPage(page, () => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h3')
  } finally {
    await browser?.close()
    example.kill('SIGINT')
  }
  const { code, signal } = await withTimeout(exited, 15_000, 'the example exiting on SIGINT')
  assert.deepEqual({ code, signal }, { code: 0, signal: null })
})
