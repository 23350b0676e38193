// Runs the independent HTTP/3 client (tools/h3-client, on hyperium's h3 + h3-quinn) against a
// server. `npm test` builds it (cargo build --release -p h3-client) before the node suites. Its
// modes (`request`, `load`) and JSON fields are documented at the top of tools/h3-client/src/main.rs.
import assert from 'node:assert/strict'
import { runJsonTool, assertToolOk } from './json-tool.mjs'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const H3_CLIENT_BIN = process.env.H3_CLIENT_BIN || path.join(repo, 'target', 'release', 'h3-client')

/** Fails with the build hint when the client binary is missing. */
export function assertH3ClientBuilt() {
  assert.ok(
    existsSync(H3_CLIENT_BIN),
    `h3-client binary not found at ${H3_CLIENT_BIN}: run \`cargo build --release -p h3-client\` or set H3_CLIENT_BIN`,
  )
}

/**
 * Runs one mode against `server` (an echo-server handle: url(), hashHex), e.g.
 * runH3Client(echo, ['request', '--method', 'GET', '--path', '/']); the certificate is pinned by
 * its hash unless `trust` gives other options (['--ca', pemFile]). Resolves with the exit code, the
 * parsed last JSON line and the raw output. Never rejects; bounded by timeoutMs.
 */
export function runH3Client(server, args, { timeoutMs = 20_000, trust } = {}) {
  const argv = [
    '--url',
    server.url(''),
    ...(trust ?? ['--cert-hash', server.hashHex]),
    '--timeout-ms',
    String(timeoutMs),
    ...args,
  ]
  return runJsonTool(H3_CLIENT_BIN, argv, timeoutMs)
}

/** Asserts the client reported success (its whole output in the message when not); the JSON. */
export const assertH3ClientOk = assertToolOk
