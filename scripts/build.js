'use strict'

// Builds the native addon from source with cargo and puts it where lib/native.js loads it.
// Runs as the package's `install` script, in a checkout and in a user's node_modules alike.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
// `--fault-injection` (tests only): a debug build with the test-only panic route, written beside
// the real addon (build/fault-injection/) for __test__/fault-event.test.mjs; never installed.
const faultInjection = process.argv.includes('--fault-injection')
const profile = process.argv.includes('--debug') || faultInjection ? 'debug' : 'release'
// Installed as a dependency, the ~200 MB of build intermediates are of no use afterwards.
const inNodeModules = root.split(path.sep).includes('node_modules')
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
const removeTargetAfter = inNodeModules && !process.env.CARGO_TARGET_DIR
const args = ['build', '--lib', '-p', 'webtransport-napi']
if (profile === 'release') args.push('--release')
if (faultInjection) args.push('--features', 'fault-injection')
if (fs.existsSync(path.join(root, 'Cargo.lock'))) args.push('--locked')

const cargo = process.env.CARGO || 'cargo'
const result = spawnSync(cargo, args, { cwd: root, stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: targetDir } })
if (result.error) {
  console.error(`webtransport-napi: could not run ${cargo} (${result.error.message}). Install Rust (https://rustup.rs) to build this package.`)
  process.exit(1)
}
if (result.status !== 0) process.exit(result.status ?? 1)

const names = { linux: 'libwebtransport_napi.so', darwin: 'libwebtransport_napi.dylib', win32: 'webtransport_napi.dll' }
const built = path.join(targetDir, profile, names[process.platform] ?? names.linux)
const out = path.join(root, 'build', ...(faultInjection ? ['fault-injection'] : []), 'webtransport_napi.node')
fs.mkdirSync(path.dirname(out), { recursive: true })
// Copy to a temp name and rename: replacing a loaded library in place can crash running processes.
const tmp = `${out}.${process.pid}.tmp`
fs.copyFileSync(built, tmp)
fs.renameSync(tmp, out)
if (removeTargetAfter) fs.rmSync(targetDir, { recursive: true, force: true })
console.log(`webtransport-napi: built ${path.relative(root, out)} (${profile})`)
