// The Node.js binaries of every supported line (scripts/node-lines), as installed into .tools/ by
// scripts/install-test-tools.sh (which `npm test` runs when they are missing). A missing binary
// throws with the command that installs it: a test that needs every line never passes on fewer.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The pinned versions, oldest line first. */
export function nodeVersions() {
  return fs
    .readFileSync(path.join(root, 'scripts', 'node-lines'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
}

function binary(dir, version) {
  const bin = path.join(root, '.tools', dir, version, 'bin', 'node')
  if (!fs.existsSync(bin)) throw new Error(`Node ${version} is not installed at ${bin}: run scripts/install-test-tools.sh`)
  return bin
}

/** `[{ version, line, bin }]` for linux-x64, one per supported line. */
export function nodeLines() {
  return nodeVersions().map((version) => ({ version, line: Number(version.split('.')[0]), bin: binary('node', version) }))
}

/** The arm64 build of the newest line, run under qemu-user-static by the emulation test. */
export function nodeArm64() {
  const version = nodeVersions().at(-1)
  return { version, bin: binary('node-arm64', version) }
}
