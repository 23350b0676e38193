// The packages a release publishes, made from this checkout the way .github/workflows/release.yml
// makes them: the root package as `npm pack` packs it, and the platform packages of npm/ with the
// addons `npm test` built ('addon build' steps) put in by `napi artifacts`, after `napi prepublish`
// has written the root's optionalDependencies. Only the four Linux targets can be built here, so the
// napi config given to those two commands lists only them; the release adds darwin and win32 alike.
//
// Also: a registry on 127.0.0.1 that serves those tarballs as npm's registry would, so that npm
// itself chooses the platform package from the root's optionalDependencies, as it does for a user;
// a project directory a user would have; an environment in which cargo and rustc cannot be found;
// and the echo server a user would write, run on any Node binary (or under qemu).
import assert from 'node:assert/strict'
import { execFile, execFileSync, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseTriple } from '@napi-rs/cli'
import { assertClientOk, runWtClient } from './wt-client.mjs'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const napiCli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')

/** The Linux platforms of package.json's napi targets, built and checked here: napi-rs's name → Rust target. */
export const LINUX_TARGETS = Object.fromEntries(
  pkg.napi.targets
    .map(parseTriple)
    .filter(({ platform }) => platform === 'linux')
    .map(({ platformArchABI, triple }) => [platformArchABI, triple]),
)

/** The addon `napi build --platform` wrote into the checkout for a platform. */
export function builtAddon(platform) {
  const file = path.join(root, `${pkg.napi.binaryName}.${platform}.node`)
  assert.ok(
    fs.existsSync(file),
    `${file} is missing: \`npm test -- 'addon build'\` builds it (napi build --platform --release --target ${LINUX_TARGETS[platform]} -x)`,
  )
  return file
}

function packInto(dir, destination) {
  const [{ filename }] = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', destination], { cwd: dir, encoding: 'utf8' }),
  )
  return path.join(destination, filename)
}

/**
 * Stages a release in `dir` and packs it: `{ rootTarball, platformTarballs, platformAddons,
 * manifest }`: tarball and staged binary by platform, and the root package.json as published.
 */
export function packRelease(dir) {
  const stage = path.join(dir, 'stage')
  fs.mkdirSync(stage)
  // What npm packs from the checkout is the root package's content; the release runs from a
  // checkout with npm/ and the downloaded artifacts beside it.
  execFileSync('tar', ['xzf', packInto(root, dir), '-C', stage])
  const packageDir = path.join(stage, 'package')
  fs.cpSync(path.join(root, 'npm'), path.join(packageDir, 'npm'), { recursive: true })
  const artifacts = path.join(packageDir, 'artifacts')
  fs.mkdirSync(artifacts)
  for (const platform of Object.keys(LINUX_TARGETS)) {
    fs.copyFileSync(builtAddon(platform), path.join(artifacts, path.basename(builtAddon(platform))))
  }
  const config = path.join(stage, 'napi-linux.json')
  fs.writeFileSync(config, JSON.stringify({ ...pkg.napi, targets: Object.values(LINUX_TARGETS) }))
  const napi = (...args) => execFileSync(process.execPath, [napiCli, ...args, '-c', config], { cwd: packageDir, stdio: 'pipe' })
  napi('artifacts')
  napi('prepublish', '-t', 'npm', '--skip-optional-publish', '--no-gh-release')

  const rootTarball = packInto(packageDir, dir)
  const platformTarballs = {}
  for (const platform of Object.keys(LINUX_TARGETS)) {
    platformTarballs[platform] = packInto(path.join(packageDir, 'npm', platform), dir)
  }
  const platformAddons = Object.fromEntries(
    Object.keys(LINUX_TARGETS).map((platform) => [platform, path.join(packageDir, 'npm', platform, `${pkg.napi.binaryName}.${platform}.node`)]),
  )
  const manifest = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'))
  return { rootTarball, platformTarballs, platformAddons, manifest }
}

/** The files in a tarball, without the leading `package/`. */
export function tarballFiles(tarball) {
  return execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((file) => file.replace(/^package\//, ''))
}

/**
 * Serves `tarballs` on 127.0.0.1 as the npm registry does (a packument per name, the tarball under
 * it); `{ url, requests, close() }`, where `requests` lists every path npm asked for. Names it does
 * not have get 404, so nothing can come from anywhere else.
 */
export async function startRegistry(tarballs) {
  const packages = new Map()
  for (const file of tarballs) {
    const manifest = JSON.parse(execFileSync('tar', ['xzOf', file, 'package/package.json'], { encoding: 'utf8' }))
    const bytes = fs.readFileSync(file)
    packages.set(manifest.name, { manifest, bytes, file: path.basename(file) })
  }
  const requests = []
  const server = http.createServer((request, response) => {
    const url = decodeURIComponent(new URL(request.url, 'http://registry').pathname)
    requests.push(url)
    const [, name, dash, file] = url.split('/')
    const entry = packages.get(name)
    if (entry && !dash) {
      const { manifest } = entry
      const dist = {
        tarball: `${base}/${name}/-/${entry.file}`,
        integrity: `sha512-${crypto.createHash('sha512').update(entry.bytes).digest('base64')}`,
        shasum: crypto.createHash('sha1').update(entry.bytes).digest('hex'),
      }
      const version = { ...manifest, _id: `${name}@${manifest.version}`, dist }
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ name, 'dist-tags': { latest: manifest.version }, versions: { [manifest.version]: version } }))
    } else if (entry && dash === '-' && file === entry.file) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      response.end(entry.bytes)
    } else {
      response.writeHead(404, { 'content-type': 'application/json' })
      response.end('{"error":"not found"}')
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}`
  return { url: `${base}/`, requests, close: () => new Promise((resolve) => server.close(resolve)) }
}

/**
 * `npm install <args>` in `project` from `registry` only (with a cache of its own, so that nothing
 * of this run outlives it); resolves with npm's stdout and stderr, or rejects with them.
 */
export function npmInstall(project, registry, env, args) {
  const argv = ['install', `--registry=${registry.url}`, `--cache=${path.join(project, '.npm-cache')}`, '--no-audit', '--no-fund', ...args]
  return new Promise((resolve, reject) => {
    execFile('npm', argv, { cwd: project, env, timeout: 120_000 }, (error, stdout, stderr) => {
      const output = `${stdout}\n${stderr}`
      if (error) reject(new Error(`npm ${argv.join(' ')} failed:\n${output}`))
      else resolve(output)
    })
  })
}

/**
 * The environment of a machine without Rust: PATH without any directory holding cargo, rustc or
 * rustup, the given Node first, and CARGO_HOME / RUSTUP_HOME pointing at an empty directory.
 */
export function envWithoutRust(nodeBin, emptyDir) {
  const rustTools = ['cargo', 'rustc', 'rustup']
  const dirs = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => dir && !rustTools.some((tool) => fs.existsSync(path.join(dir, tool))))
  const env = { ...process.env, PATH: [path.dirname(nodeBin), ...dirs].join(path.delimiter), CARGO_HOME: emptyDir, RUSTUP_HOME: emptyDir }
  for (const name of ['CARGO', 'RUSTC', 'CARGO_TARGET_DIR', 'NAPI_RS_NATIVE_LIBRARY_PATH']) delete env[name]
  return env
}

/** An empty npm project in `dir/name`, with the echo a user would write beside its server. */
export function makeProject(dir, name) {
  const project = path.join(dir, name)
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  fs.copyFileSync(path.join(root, 'examples', 'echo.mjs'), path.join(project, 'echo.mjs'))
  fs.writeFileSync(path.join(project, 'server.mjs'), SERVER)
  return project
}

// Echoes bidi and uni streams and datagrams on the installed package, prints one JSON line (port,
// certificate hash, the addon file the process loaded) and closes when its stdin ends.
const SERVER = `import { Server, generateCertificate } from 'webtransport-napi'
import { echoSession } from './echo.mjs'

const { cert, key, hash } = generateCertificate({ hostnames: ['127.0.0.1'], days: 10 })
const server = new Server({ port: 0, host: '127.0.0.1', cert, key })
server.on('session', (session) => echoSession(session))
await server.ready
const addon = process.report.getReport().sharedObjects.find((file) => file.endsWith('.node'))
const hashHex = Buffer.from(hash.value).toString('hex')
console.log(JSON.stringify({ port: server.address().port, hashHex, addon, version: process.version, arch: process.arch }))
process.stdin.on('end', () => server.close())
process.stdin.resume()
`

/**
 * Starts the project's server with `command` (a Node binary, or qemu with one in `args`), resolves
 * with `{ url(path), hashHex, addon, version, arch, stop() }` once it listens. `stop()` ends its
 * stdin and resolves with its exit code; it is killed if it has not exited 10 s later.
 */
export async function startProjectServer(project, command, args, { env, startTimeoutMs = 60_000 } = {}) {
  const child = spawn(command, [...args, 'server.mjs'], { cwd: project, env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)))
  const lines = readline.createInterface({ input: child.stdout })
  let timer
  let first
  try {
    first = await Promise.race([
      new Promise((resolve) => lines.once('line', resolve)),
      exited.then((code) => Promise.reject(new Error(`the server exited (${code}) before listening: ${stderr}`))),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the server did not listen within ${startTimeoutMs} ms: ${stderr}`)), startTimeoutMs)
      }),
    ])
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  } finally {
    clearTimeout(timer)
  }
  const info = JSON.parse(first)
  return {
    ...info,
    url: (urlPath = '/echo') => `https://127.0.0.1:${info.port}${urlPath}`,
    async stop() {
      child.stdin.end()
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      const code = await exited
      clearTimeout(killer)
      return code
    },
  }
}

/**
 * Runs `checks(server)`, then bidi, uni and datagram echo through the independent client. The
 * server is stopped whatever happens, and must then exit by itself.
 */
export async function assertServes(server, checks) {
  try {
    checks(server)
    assertClientOk(await runWtClient(server, ['bidi-echo', '100000'], { timeoutMs: 30_000 }))
    assertClientOk(await runWtClient(server, ['uni-echo', '100000'], { timeoutMs: 30_000 }))
    assertClientOk(await runWtClient(server, ['datagrams', '20'], { timeoutMs: 30_000 }))
  } catch (error) {
    await server.stop()
    throw error
  }
  assert.equal(await server.stop(), 0, 'the server exits by itself once closed')
}
