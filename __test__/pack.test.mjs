// What a user does: `npm pack`, then `npm install <tarball>` in an empty project, which builds the
// addon from the shipped sources (no prebuilt binary exists), then a two-line script uses it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

test('npm pack + npm install <tarball> builds from source and runs', { timeout: 600_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-pack-'))
  try {
    const packed = execFileSync(npm, ['pack', '--silent', '--pack-destination', dir], { cwd: root, encoding: 'utf8' })
    const tarball = path.join(dir, packed.trim().split('\n').pop())
    const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
    assert.ok(!/\.node$/m.test(listing), 'the tarball ships no prebuilt addon')
    assert.match(listing, /package\/src\/core\/connection\.rs/)

    const project = path.join(dir, 'project')
    fs.mkdirSync(project)
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true }))
    // Sharing the checkout's cargo target dir reuses compiled dependencies; our crate itself is
    // still compiled from the tarball's sources (another path, so cargo cannot reuse it).
    execFileSync(npm, ['install', '--no-audit', '--no-fund', tarball], {
      cwd: project,
      stdio: 'inherit',
      env: { ...process.env, CARGO_TARGET_DIR: path.join(root, 'target') },
    })
    const addon = path.join(project, 'node_modules', 'webtransport-napi', 'build', 'webtransport_napi.node')
    assert.ok(fs.existsSync(addon), 'the install built the addon in the installed package')

    fs.writeFileSync(
      path.join(project, 'two-lines.js'),
      "const { Server, generateCertificate } = require('webtransport-napi'); const { cert, key } = generateCertificate()\n" +
        "new Server({ port: 0, host: '127.0.0.1', cert, key }).on('listening', function () { console.log('port', this.address().port); this.close() })\n",
    )
    const out = execFileSync(process.execPath, ['two-lines.js'], { cwd: project, encoding: 'utf8', timeout: 20_000 })
    assert.match(out, /^port \d+$/m)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
