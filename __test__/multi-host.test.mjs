// Two hosts behind a kernel balancer, as a fleet runs: network namespaces for a client, a balancer
// and two hosts (support/netns.mjs), the balancer spreading flows to a virtual address over the
// hosts with an nftables DNAT rule, as kube-proxy's nftables mode does (here by a hash of the source
// address and port). Each host runs one server process (support/multi-host-server.mjs) with a
// serverId of its own and the fleet's secret; the client is our WebTransport client in a process
// of its own (support/multi-host-client.mjs).
//
// What a fleet relies on: sessions through the virtual address reach both hosts and echo whole; a
// host restarted with the same secret (and serverId) answers the packets of a connection its old
// process had with a stateless reset the client accepts, so the client learns at once that the
// session is gone instead of after the idle timeout (30 s), while with another secret the reset
// does not verify (the negative control); and a client whose NAT gives it a new port keeps its
// session if the balancer sends the new port to the same host, and hears nothing (no reset) if it
// sends it to the other.
//
// Needs root (namespaces, nftables), as CI runs; `ip` and `nft` come from iproute2 and nftables
// (scripts/install-test-tools.sh). Namespaces and processes are removed in `after`, on failure too.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateCertificate } from '../index.js'
import { createFleetNetwork, CLIENT_ADDRESS, VIRTUAL_ADDRESS } from './support/netns.mjs'

const PORT = 4433
const SERVER = fileURLToPath(new URL('./support/multi-host-server.mjs', import.meta.url))
const CLIENT = fileURLToPath(new URL('./support/multi-host-client.mjs', import.meta.url))
// Eight bytes each, the size of an AWS NLB target's QuicServerId.
const SERVER_IDS = { a: '0a0a0a0a0a0a0a01', b: '0b0b0b0b0b0b0b02' }
const SECRET = randomBytes(32).toString('hex')
const SESSIONS = 200

let network = null
let dir = null
let hashHex
const servers = {}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'network namespaces and nftables need root (CI runs as root)')
  dir = mkdtempSync(join(tmpdir(), 'wt-multi-host-'))
  const certificate = generateCertificate({ hostnames: [VIRTUAL_ADDRESS], days: 10 })
  hashHex = Buffer.from(certificate.hash.value).toString('hex')
  writeFileSync(join(dir, 'cert.pem'), certificate.cert)
  writeFileSync(join(dir, 'key.pem'), certificate.key)
  network = createFleetNetwork(Object.keys(SERVER_IDS), PORT)
  await Promise.all(Object.keys(SERVER_IDS).map((name) => startHost(name, SECRET)))
})

after(() => {
  network?.destroy()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/**
 * Starts host `name`'s server (its address, its serverId, `secret`) and waits until it listens.
 * Two endpoints (`workers`), as a host with cores to spare runs: each packet, a dead connection's
 * too, then goes through the kernel's steering by the worker byte of its connection ID.
 */
async function startHost(name, secret) {
  const host = network.hosts[name]
  const server = network.spawn(host.ns, [
    process.execPath,
    SERVER,
    ...['--name', name, '--host', host.address, '--port', String(PORT)],
    ...['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')],
    ...['--server-id', SERVER_IDS[name], '--secret', secret, '--workers', '2'],
  ])
  servers[name] = server
  assert.deepEqual(await server.next(15_000), { listening: PORT }, `host ${name}`)
}

/** Host `name`'s `server.counters().workers`: per endpoint, packets, misrouted, connections. */
async function workerCounters(name) {
  servers[name].send('counters')
  const { counters } = await servers[name].next(5000)
  return counters.workers
}

const packetsReceived = async (name) => (await workerCounters(name)).reduce((sum, worker) => sum + worker.packets, 0)

function startClient(args) {
  return network.spawn(network.client, [
    process.execPath,
    CLIENT,
    ...args,
    ...['--url', `https://${VIRTUAL_ADDRESS}:${PORT}/`, '--hash', hashHex, '--local-address', CLIENT_ADDRESS],
  ])
}

test(`${SESSIONS} sessions through the virtual address: every echo whole, both hosts used`, { timeout: 150_000 }, async (t) => {
  const client = startClient(['spread', '--sessions', String(SESSIONS), '--concurrency', '8', '--first-port', '20000'])
  const result = await client.next(120_000)
  assert.deepEqual({ failed: result.failed, failures: result.failures }, { failed: 0, failures: [] })
  const sessions = Object.fromEntries(Object.entries(result.ports).map(([name, ports]) => [name, ports.length]))
  t.diagnostic(`sessions per host ${JSON.stringify(sessions)} in ${result.ms} ms`)
  assert.deepEqual(Object.keys(sessions).sort(), Object.keys(SERVER_IDS))
  assert.equal(sessions.a + sessions.b, SESSIONS)
  // The hash is over 200 source ports with a random seed: a fair share is near 100 each, and
  // under 50 would be a balancer (or a client port) that does not spread.
  for (const name of Object.keys(SERVER_IDS)) assert.ok(sessions[name] >= 50, `host ${name} got too few: ${JSON.stringify(sessions)}`)
  for (const name of Object.keys(SERVER_IDS)) {
    const workers = await workerCounters(name)
    t.diagnostic(`host ${name} endpoints ${JSON.stringify(workers)}`)
    assert.deepEqual(workers.map((w) => w.misrouted), [0, 0], `host ${name}: packets steered to the wrong endpoint`)
  }
})

/**
 * Opens a session from local port `port` and lets it settle on whichever host the hash picks; kills
 * that host's server (SIGKILL: no CONNECTION_CLOSE, as in a crash), starts it again with `secret`,
 * then has the client send on the dead connection. Resolves with the host and how the session
 * stood `watchMs` after the send.
 */
async function restartUnderSession(port, secret, watchMs) {
  const client = startClient(['hold', '--first-port', String(port), '--watch-ms', String(watchMs)])
  const { host } = await client.next(20_000)
  await servers[host].kill()
  await startHost(host, secret)
  client.send('send')
  return { host, outcome: await client.next(watchMs + 10_000) }
}

test('a host restarted with the same secret resets the dead connection: the session closes at once', { timeout: 60_000 }, async (t) => {
  const { host, outcome } = await restartUnderSession(30000, SECRET, 8000)
  t.diagnostic(`host ${host}: ${JSON.stringify(outcome)}`)
  assert.ok(outcome.closed, `the session on host ${host} is still open 8 s after its restart and a send`)
  // A stateless reset is quinn's ConnectionError::Reset ("reset by peer"); the idle timeout
  // would say "timed out", and only after 30 s.
  const { message, ...rest } = outcome.closed
  assert.deepEqual(rest, { name: 'WebTransportError', source: 'session', code: 'WT_ERR_CONNECTION_LOST' }, message)
  assert.match(message, /connection lost: reset by peer$/)
  // null: a keep-alive the client sent after the restart drew the reset before the send did.
  assert.ok(outcome.ms === null || outcome.ms < 3000, `closed ${outcome.ms} ms after the send`)
})

test('a host restarted with another secret cannot reset: its reset does not verify and the session stays', { timeout: 60_000 }, async () => {
  const { host, outcome } = await restartUnderSession(30001, randomBytes(32).toString('hex'), 5000)
  // The fleet's secret back, for what follows.
  await servers[host].kill()
  await startHost(host, SECRET)
  assert.deepEqual(outcome, { open: true }, `the session on host ${host}`)
})

test('NAT rebinding behind a hash of the source: on its own host the session goes on; on the other, nothing answers', { timeout: 60_000 }, async () => {
  // Which host a few source ports hash to.
  const probe = await startClient(['spread', '--sessions', '24', '--concurrency', '4', '--first-port', '31000']).next(30_000)
  assert.deepEqual({ failed: probe.failed, failures: probe.failures }, { failed: 0, failures: [] })
  const client = startClient(['hold', '--first-port', '30002', '--watch-ms', '5000'])
  const { host } = await client.next(20_000)
  const other = Object.keys(SERVER_IDS).find((name) => name !== host)
  assert.ok(probe.ports[host] && probe.ports[other], `24 ports all hashed to one host: ${JSON.stringify(probe.ports)}`)

  // A new port that hashes to the same host: the server sees the client's address change,
  // validates the new path, and the session goes on.
  network.rebindClient(30002, probe.ports[host][0])
  client.send('echo')
  assert.deepEqual(await client.next(15_000), { host }, 'rebound onto its own host')

  // One that hashes to the other host, which has no such connection and drops its packets: their
  // connection ID carries another server's ID. Answering with a stateless reset would be worse, as
  // the hosts share the secret: the reset would verify, and anyone could have a connection reset
  // by sending its ID from another port (RFC 9000 §21.11). So the client hears nothing and waits
  // for its idle timeout; a reset would have failed the echo at once, with the connection's error.
  const before = await packetsReceived(other)
  network.rebindClient(30002, probe.ports[other][0])
  client.send('echo')
  assert.deepEqual(await client.next(15_000), { error: 'echo: no answer within 5000 ms' }, 'rebound onto the other host')
  assert.ok((await packetsReceived(other)) > before, `host ${other} received none of the rebound packets`)
})
