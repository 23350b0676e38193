'use strict'

// `npm test`: every check the project keeps, in order, with one summary line at the end.
// Cheap static checks first so a formatting slip fails in seconds, not after a build.
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')

// What the suites need beyond npm packages (browsers, aioquic, zig, qemu, the Node binaries of
// every supported line) comes from one script, the one .ci/run uses. It installs what is missing
// or, where it cannot (not root, not Debian/Ubuntu), says what to install: then nothing runs,
// since a suite without its tools would only fail later, and none is skipped.
const tools = path.join(root, 'scripts', 'install-test-tools.sh')
if (spawnSync('bash', [tools, '--check'], { cwd: root, stdio: 'ignore' }).status !== 0) {
  console.log('=== test tools missing: bash scripts/install-test-tools.sh')
  spawnSync('bash', [tools, '--check'], { cwd: root, stdio: 'inherit' })
  const installed = spawnSync('bash', [tools], { cwd: root, stdio: 'inherit' })
  if (installed.status !== 0) {
    console.log('\nchecks: 0 passed, 1 failed (test tools missing: see above)')
    process.exit(1)
  }
}
// The venv's python3 (aioquic) and cargo-zigbuild come first.
const env = { ...process.env, PATH: `${path.join(root, '.tools', 'venv', 'bin')}${path.delimiter}${process.env.PATH}` }
const steps = [
  ['cargo fmt', 'cargo', ['fmt', '--all', '--check']],
  ['clippy (binding + core)', 'cargo', ['clippy', '-p', 'webtransport-napi', '--all-targets', '--locked', '--', '-D', 'warnings']],
  ['clippy (core alone)', 'cargo', ['clippy', '-p', 'webtransport-napi', '--no-default-features', '--features', 'fault-injection', '--all-targets', '--locked', '--', '-D', 'warnings']],
  ['clippy (wt-client)', 'cargo', ['clippy', '-p', 'wt-client', '--locked', '--', '-D', 'warnings']],
  ['cargo test (core)', 'cargo', ['test', '-p', 'webtransport-napi', '--no-default-features', '--features', 'fault-injection', '--locked']],
  ['fuzz (5 s per target)', 'bash', ['fuzz/run.sh', '--seconds', '5']],
  ['typings (tsc --noEmit)', process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '__test__/types']],
  ['addon build (release)', process.execPath, [path.join(root, 'scripts', 'build.js')]],
  ['wt-client build (release)', 'cargo', ['build', '--release', '-p', 'wt-client', '--locked']],
  ['addon build (fault-injection, debug)', process.execPath, [path.join(root, 'scripts', 'build.js'), '--fault-injection']],
  ['node --test', process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=180000', '__test__/*.test.mjs']],
  ['bench smoke (content-checked, a few s per mode)', process.execPath, [path.join(root, 'bench', 'run.mjs'), '--smoke']],
]

const only = process.argv.slice(2)
const failed = []
let passed = 0
for (const [name, cmd, args] of steps) {
  if (only.length && !only.some((o) => name.includes(o))) continue
  console.log(`\n=== ${name}: ${path.basename(cmd)} ${args.join(' ')}`)
  const started = Date.now()
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (result.status === 0) {
    passed++
    console.log(`=== ${name}: ok (${seconds}s)`)
  } else {
    failed.push(name)
    console.log(`=== ${name}: FAILED (${seconds}s)${result.error ? ` ${result.error.message}` : ''}`)
  }
}
console.log(`\nchecks: ${passed} passed, ${failed.length} failed${failed.length ? ` (${failed.join(', ')})` : ''}`)
process.exit(failed.length ? 1 : 0)
