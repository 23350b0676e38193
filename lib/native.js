'use strict'

// The addon is loaded by binding.js, the loader `napi build --platform` generates (never edited by
// hand). It takes the file named by NAPI_RS_NATIVE_LIBRARY_PATH if that is set, else
// webtransport-napi.<platform>.node beside it (a build from source), else the prebuilt package
// webtransport-napi-<platform> that npm installed as an optional dependency. When nothing loads,
// its error blames an npm bug; ours names this platform, the package that would have fitted and
// what to do, so that a user can act on it without reading napi-rs's loader.
const path = require('node:path')
const pkg = require('../package.json')

/** The platform as napi-rs names binaries and packages: linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc. */
function platformName() {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform !== 'linux') return `${platform}-${arch}`
  // Node's report names the glibc it runs on; on musl there is none.
  const musl = !process.report?.getReport()?.header?.glibcVersionRuntime
  if (arch === 'arm') return `linux-arm-${musl ? 'musleabihf' : 'gnueabihf'}`
  return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
}

const ARCH = { x86_64: 'x64', aarch64: 'arm64' }
const SYSTEM = { linux: 'linux', darwin: 'darwin', windows: 'win32' }

/** napi-rs's platform name of a Rust target triple in package.json's `napi.targets`. */
function platformOfTarget(triple) {
  const [arch, , system, abi] = triple.split('-')
  return [SYSTEM[system] ?? system, ARCH[arch] ?? arch, abi].filter(Boolean).join('-')
}

function isInstalled(name) {
  try {
    require.resolve(`${name}/package.json`)
    return true
  } catch {
    return false
  }
}

/**
 * Why a binary that exists did not load: the earliest failure in the loader's chain of attempts
 * (its error's `cause`, newest first) that is not a plain "not found".
 */
function loadFailure(error) {
  let reason = null
  for (let e = error.cause; e; e = e.cause) {
    if (typeof e.message === 'string' && !e.message.startsWith('Cannot find module')) reason = e.message
  }
  return reason
}

function addonLoadError(cause) {
  const platform = platformName()
  const prebuilt = pkg.napi.targets.map(platformOfTarget)
  const fitting = `${pkg.name}-${platform}`
  const packageDir = path.resolve(__dirname, '..')
  const reason = loadFailure(cause)
  const lines = [`${pkg.name}: no native addon could be loaded for this platform, ${platform}.`]
  if (process.env.NAPI_RS_NATIVE_LIBRARY_PATH) {
    lines.push(`NAPI_RS_NATIVE_LIBRARY_PATH=${process.env.NAPI_RS_NATIVE_LIBRARY_PATH} did not load${reason ? `: ${reason}` : ''}.`)
  } else if (!prebuilt.includes(platform)) {
    lines.push(`There is no prebuilt binary for ${platform}; build one from source (below).`)
  } else if (isInstalled(fitting)) {
    lines.push(`${fitting} is installed but its binary did not load${reason ? `: ${reason}` : ''}.`)
  } else {
    lines.push(
      `Its prebuilt binary comes in the package ${fitting}, an optional dependency that is not installed ` +
        '(optional dependencies omitted, or a lockfile made on another platform): install again with optional ' +
        `dependencies, or add ${fitting} to your dependencies.`,
    )
  }
  lines.push(
    `Prebuilt binaries exist for: ${prebuilt.join(', ')}.`,
    'To build the addon from source (needs Rust: https://rustup.rs), run:',
    `  npx --yes -p @napi-rs/cli@3 napi build --platform --release --js binding.js --dts binding.d.ts --cwd ${JSON.stringify(packageDir)}`,
  )
  const error = new Error(lines.join('\n'), { cause })
  error.code = 'WT_ERR_ADDON_LOAD'
  return error
}

try {
  module.exports = require('../binding.js')
} catch (error) {
  throw addonLoadError(error)
}
