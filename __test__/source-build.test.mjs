// A user on a platform with no prebuilt binary, played here by installing the package without its
// optional dependencies (so no platform package): requiring it fails with the library's own error,
// which names the platform and the package that fits it and prints the command that builds the
// addon from the shipped sources; with cargo present, that command builds it and a session runs.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseTriple } from '@napi-rs/cli'
import { nodeLines } from './support/node-lines.mjs'
import { assertClientBuilt } from './support/wt-client.mjs'
import {
  assertServes,
  envWithoutRust,
  makeProject,
  npmInstall,
  packRelease,
  root,
  startProjectServer,
  startRegistry,
} from './support/release-packages.mjs'

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

let dir
let registry

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-source-build-'))
  const release = packRelease(dir)
  registry = await startRegistry([release.rootTarball, ...Object.values(release.platformTarballs)])
})

after(async () => {
  await registry?.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

const PROBE = `try { require('webtransport-napi'); console.log('{}') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`

test('without its platform package, require fails with WT_ERR_ADDON_LOAD, and the command it prints builds the addon from source', { timeout: 900_000 }, async () => {
  assertClientBuilt()
  const node = nodeLines().at(-1)
  const env = envWithoutRust(node.bin, fs.mkdtempSync(path.join(dir, 'no-rust-')))
  const project = makeProject(dir, 'user')
  await npmInstall(project, registry, env, ['--omit=optional', 'webtransport-napi'])
  const installed = path.join(project, 'node_modules', 'webtransport-napi')
  assert.ok(!fs.existsSync(path.join(project, 'node_modules', 'webtransport-napi-linux-x64-gnu')))

  const probe = spawnSync(node.bin, ['-e', PROBE], { cwd: project, env, encoding: 'utf8' })
  const error = JSON.parse(probe.stdout)
  assert.equal(error.code, 'WT_ERR_ADDON_LOAD', probe.stdout + probe.stderr)
  assert.match(error.message, /for this platform, linux-x64-gnu\./)
  assert.match(error.message, /package webtransport-napi-linux-x64-gnu, an optional dependency that is not installed/)
  const prebuilt = pkg.napi.targets.map((triple) => parseTriple(triple).platformArchABI)
  assert.ok(error.message.includes(`Prebuilt binaries exist for: ${prebuilt.join(', ')}.`), error.message)
  const command = error.message
    .split('\n')
    .find((line) => line.startsWith('  npx '))
    ?.trim()
  assert.ok(command?.includes(JSON.stringify(installed)), `the message prints a build command for ${installed}:\n${error.message}`)

  // Now with cargo, as the message asks. The checkout's target dir saves compiling the dependencies
  // again; the crate itself is compiled from the installed package's sources.
  const build = spawnSync('sh', ['-c', command], {
    cwd: project,
    env: {
      ...process.env,
      PATH: `${path.dirname(node.bin)}${path.delimiter}${process.env.PATH}`,
      CARGO_TARGET_DIR: path.join(root, 'target'),
      npm_config_prefer_offline: 'true',
    },
    encoding: 'utf8',
    timeout: 840_000,
  })
  assert.equal(build.status, 0, `${command} failed:\n${`${build.stdout}\n${build.stderr}`.slice(-6000)}`)
  for (const file of ['index.js', 'index.d.ts']) {
    assert.equal(
      fs.readFileSync(path.join(installed, file), 'utf8'),
      fs.readFileSync(path.join(root, file), 'utf8'),
      `the build leaves the hand-written ${file} alone`,
    )
  }
  const addon = path.join(installed, `${pkg.napi.binaryName}.linux-x64-gnu.node`)
  assert.ok(fs.existsSync(addon), 'the build put the addon beside the generated loader')

  const server = await startProjectServer(project, node.bin, [], { env })
  await assertServes(server, () => assert.equal(server.addon, fs.realpathSync(addon), 'the addon is the one built from source'))
})
