// What a user without Rust gets from a release: the root package and the platform packages, packed
// as the release packs them (support/release-packages.mjs) and served by a registry on 127.0.0.1,
// so that `npm install webtransport-napi` in an empty project, where cargo and rustc cannot be
// found, lets npm choose the platform package as it does for a user. Then real sessions with the
// independent client (tools/wt-client) on every supported Node line; the arm64 package doing the
// same under qemu; and the linkage each Linux binary promises (glibc 2.17 at most, or musl's libc).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { nodeArm64, nodeLines } from './support/node-lines.mjs'
import { assertClientBuilt } from './support/wt-client.mjs'
import {
  LINUX_TARGETS,
  assertServes,
  envWithoutRust,
  makeProject,
  npmInstall,
  packRelease,
  startProjectServer,
  startRegistry,
  tarballFiles,
} from './support/release-packages.mjs'

const QEMU = 'qemu-aarch64-static'
// Debian's libc6-arm64-cross & co. (scripts/install-test-tools.sh): the arm64 Node is a glibc
// program, and qemu-user needs the arm64 dynamic loader and libraries under this prefix.
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu'

let dir
let release
let registry

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-prebuilt-'))
  release = packRelease(dir)
  registry = await startRegistry([release.rootTarball, ...Object.values(release.platformTarballs)])
})

after(async () => {
  await registry?.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** The tarballs npm downloaded since `from` (an index into registry.requests). */
const tarballsFetched = (from) => registry.requests.slice(from).filter((url) => url.includes('/-/')).map((url) => path.basename(url)).sort()

test('the release packs: a root package with no binary, one package per platform with its binary', () => {
  const rootFiles = tarballFiles(release.rootTarball)
  assert.deepEqual(
    rootFiles.filter((file) => file.endsWith('.node')),
    [],
    'the root package ships no binary',
  )
  for (const file of ['index.js', 'index.d.ts', 'binding.js', 'lib/native.js']) assert.ok(rootFiles.includes(file), `${file} is shipped`)
  const { name, version, scripts = {}, optionalDependencies } = release.manifest
  assert.deepEqual(
    optionalDependencies,
    Object.fromEntries(Object.keys(LINUX_TARGETS).map((platform) => [`${name}-${platform}`, version])),
    'napi prepublish lists every platform package as an optional dependency, at this version',
  )
  // npm 11 flags (and with strict-allow-scripts refuses) a dependency's install scripts; `prepare`
  // never runs for a package installed from the registry.
  for (const script of ['preinstall', 'install', 'postinstall']) assert.equal(scripts[script], undefined, `no ${script} script`)

  for (const [platform, tarball] of Object.entries(release.platformTarballs)) {
    assert.deepEqual(tarballFiles(tarball).sort(), ['README.md', 'package.json', `${name}.${platform}.node`], platform)
  }
})

let userProject
let userEnv

test('without Rust, `npm install webtransport-napi` fetches the root and linux-x64-gnu packages, and builds or flags nothing', async () => {
  userEnv = envWithoutRust(nodeLines().at(-1).bin, fs.mkdtempSync(path.join(dir, 'no-rust-')))
  for (const tool of ['cargo', 'rustc']) {
    assert.notEqual(spawnSync('which', [tool], { env: userEnv }).status, 0, `${tool} must not be found in the user's environment`)
  }
  userProject = makeProject(dir, 'user')
  const from = registry.requests.length
  const output = await npmInstall(userProject, registry, userEnv, ['webtransport-napi'])
  // npm 11 would list here any dependency script it ran or skipped without an allowScripts entry.
  assert.match(output.trim(), /^added 2 packages in [\d.]+m?s$/, 'npm prints nothing but its summary')
  assert.deepEqual(tarballsFetched(from), [path.basename(release.rootTarball), path.basename(release.platformTarballs['linux-x64-gnu'])])
  const modules = path.join(userProject, 'node_modules')
  assert.deepEqual(fs.readdirSync(modules).filter((name) => name.startsWith('webtransport-napi')).sort(), [
    'webtransport-napi',
    'webtransport-napi-linux-x64-gnu',
  ])
  assert.deepEqual(
    fs.readdirSync(path.join(modules, 'webtransport-napi')).filter((file) => file.endsWith('.node')),
    [],
    'nothing was built into the installed package',
  )
})

test('the installed prebuilt package serves bidi, uni and datagram echo on every Node line', { timeout: 300_000 }, async (t) => {
  assertClientBuilt()
  assert.ok(userProject, 'needs the install of the previous test')
  const addon = fs.realpathSync(
    path.join(userProject, 'node_modules', 'webtransport-napi-linux-x64-gnu', 'webtransport-napi.linux-x64-gnu.node'),
  )
  for (const { version, line, bin } of nodeLines()) {
    await t.test(`Node ${line}`, async () => {
      const server = await startProjectServer(userProject, bin, [], { env: userEnv })
      await assertServes(server, () => {
        assert.equal(server.version, `v${version}`)
        assert.equal(server.addon, addon, 'the addon is the platform package’s')
      })
    })
  }
})

test('the linux-arm64-gnu package serves the same echo on arm64 Node under qemu', { timeout: 300_000 }, async () => {
  assertClientBuilt()
  const arm64 = nodeArm64()
  assert.equal(spawnSync('which', [QEMU]).status, 0, `${QEMU} is missing: run scripts/install-test-tools.sh (Debian: qemu-user-static)`)
  assert.ok(
    fs.existsSync(path.join(ARM64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1')),
    `${ARM64_SYSROOT} has no arm64 loader: run scripts/install-test-tools.sh (Debian: libc6-arm64-cross, libstdc++6-arm64-cross, libatomic1-arm64-cross)`,
  )
  const env = envWithoutRust(nodeLines().at(-1).bin, fs.mkdtempSync(path.join(dir, 'no-rust-')))
  const project = makeProject(dir, 'arm64-user')
  // npm chooses platform packages for the machine it runs on; --cpu and --libc make it choose as an
  // arm64 glibc machine would.
  const from = registry.requests.length
  await npmInstall(project, registry, env, ['--cpu=arm64', '--libc=glibc', 'webtransport-napi'])
  assert.deepEqual(tarballsFetched(from), [path.basename(release.rootTarball), path.basename(release.platformTarballs['linux-arm64-gnu'])])
  const addon = fs.realpathSync(
    path.join(project, 'node_modules', 'webtransport-napi-linux-arm64-gnu', 'webtransport-napi.linux-arm64-gnu.node'),
  )
  const server = await startProjectServer(project, QEMU, ['-L', ARM64_SYSROOT, arm64.bin], { env, startTimeoutMs: 120_000 })
  await assertServes(server, () => {
    assert.equal(server.arch, 'arm64')
    assert.equal(server.version, `v${arm64.version}`)
    assert.equal(server.addon, addon, 'the addon is the arm64 platform package’s')
  })
})

/** Every symbol version the binary's dynamic symbols refer to, e.g. `GLIBC_2.17` (objdump -T's column before the name). */
function symbolVersions(file) {
  const table = execFileSync('objdump', ['-T', file], { encoding: 'utf8' })
  return [...new Set([...table.matchAll(/\(?\b([A-Z][A-Z0-9]*_[0-9][0-9.]*)\)?\s+\S+$/gm)].map((m) => m[1]))]
}

function needed(file) {
  return [...execFileSync('readelf', ['-d', file], { encoding: 'utf8' }).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1])
}

function machine(file) {
  return /Machine:\s+(.+)/.exec(execFileSync('readelf', ['-h', file], { encoding: 'utf8' }))[1].trim()
}

const versionNumber = (version) => version.split('.').map(Number)
const newer = (a, b) => {
  const [x, y] = [versionNumber(a), versionNumber(b)]
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0)
  return false
}

test('the glibc binaries need glibc 2.17 at most; the musl binaries link musl libc alone', () => {
  const machines = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' }
  for (const [platform, addon] of Object.entries(release.platformAddons)) {
    const [, arch, libc] = platform.split('-')
    assert.equal(machine(addon), machines[arch], `${platform} is built for ${arch}`)
    const versions = symbolVersions(addon)
    if (libc === 'gnu') {
      const glibc = versions.filter((v) => v.startsWith('GLIBC_')).map((v) => v.slice('GLIBC_'.length))
      assert.ok(glibc.length > 0, `${platform}: objdump -T shows glibc's symbol versions`)
      const highest = glibc.reduce((a, b) => (newer(b, a) ? b : a))
      assert.ok(!newer(highest, '2.17'), `${platform} needs GLIBC_${highest}, more than 2.17`)
      assert.deepEqual(
        versions.filter((v) => !v.startsWith('GLIBC_')),
        [],
        `${platform}: no versioned symbols from other libraries (libgcc_s, libstdc++)`,
      )
    } else {
      // musl's loader takes a NEEDED libc.so (what zig links against) as itself, like libc.musl-*.
      const libs = needed(addon)
      assert.ok(libs.length > 0, `${platform} is linked dynamically against musl's libc`)
      for (const lib of libs) assert.match(lib, /^libc\.(so|musl-(x86_64|aarch64)\.so\.1)$/, `${platform} needs ${lib}`)
      assert.deepEqual(versions, [], `${platform}: no glibc or libgcc symbol versions`)
    }
  }
})

// Debian's musl package (scripts/install-test-tools.sh): the loader Alpine uses, at version 1.2.3.
const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1'

test("musl's own loader finds every symbol of the linux-x64-musl binary except Node-API's", () => {
  assert.ok(fs.existsSync(MUSL_LOADER), `${MUSL_LOADER} is missing: run scripts/install-test-tools.sh (Debian: musl)`)
  // In ldd mode the loader maps the binary and its libraries and reports each symbol it cannot
  // bind; only Node itself provides the napi_* ones.
  const listed = spawnSync(MUSL_LOADER, ['--list', release.platformAddons['linux-x64-musl']], { encoding: 'utf8' })
  const output = `${listed.stdout}${listed.stderr}`
  assert.match(output, /^\s*libc\.so => \/lib\/ld-musl-x86_64\.so\.1 /m, output)
  const unbound = [...output.matchAll(/Error relocating [^:]+: (\S+): symbol not found/g)].map((m) => m[1])
  assert.ok(unbound.length > 0, `the Node-API symbols are reported unbound:\n${output}`)
  assert.deepEqual(
    unbound.filter((name) => !name.startsWith('napi_')),
    [],
    'symbols musl does not have',
  )
})
