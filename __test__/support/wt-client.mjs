// Runs the independent Rust client (tools/wt-client, on the wtransport crate) against a server.
// `npm test` builds it (cargo build --release -p wt-client) before the node suites.
import assert from 'node:assert/strict'
import { runJsonTool, assertToolOk } from './json-tool.mjs'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const WT_CLIENT_BIN = process.env.WT_CLIENT_BIN || path.join(repo, 'target', 'release', 'wt-client')

/** Fails with the build hint when the client binary is missing. */
export function assertClientBuilt() {
  assert.ok(
    existsSync(WT_CLIENT_BIN),
    `wt-client binary not found at ${WT_CLIENT_BIN}: run \`cargo build --release -p wt-client\` or set WT_CLIENT_BIN`,
  )
}

/**
 * Runs one scenario against `server` (an echo-server handle: url(), hashHex); resolves with the
 * exit code, the parsed last JSON line and the raw output. Never rejects; bounded by timeoutMs.
 * `bin` runs another client with the same command line and output (the webtransport-go peers).
 */
export function runWtClient(server, args, { path: urlPath = '/echo', timeoutMs = 20_000, extra = [], bin = WT_CLIENT_BIN } = {}) {
  const argv = ['--url', server.url(urlPath), '--cert-hash', server.hashHex, '--timeout-ms', String(timeoutMs), ...extra, ...args]
  return runJsonTool(bin, argv, timeoutMs)
}

/** Asserts the client reported success (its whole output in the message when not); the JSON. */
export const assertClientOk = assertToolOk
