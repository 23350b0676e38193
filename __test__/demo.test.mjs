// `npm start`'s demo as a person uses it: start it, open the printed address in Chromium, press
// the three echo buttons and see the echoes on the page; Ctrl+C stops it cleanly.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchBrowser, withTimeout } from './support/browser.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

test('the demo page shows bidi, uni and datagram echoes', { timeout: 90_000 }, async () => {
  const demo = spawn(process.execPath, ['examples/echo-server.mjs'], {
    cwd: root,
    env: { ...process.env, WT_PORT: '0', HTTP_PORT: '0', HOST: '127.0.0.1', HTTP_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise((resolve) => demo.on('exit', (code, signal) => resolve({ code, signal })))
  let browser
  try {
    let out = ''
    const address = await withTimeout(
      new Promise((resolve) => {
        demo.stdout.on('data', (d) => {
          out += d
          const match = /open (http:\/\/\S+) in a browser/.exec(out)
          if (match) resolve(match[1])
        })
      }),
      30_000,
      'the demo printing its address',
    )
    browser = await launchBrowser()
    const page = await browser.newPage()
    await page.goto(address, { timeout: 15_000 })
    const log = () => page.textContent('#log')
    await page.waitForFunction(() => document.getElementById('log').textContent.includes('connected to'), null, { timeout: 15_000 })
    await page.fill('#msg', 'hello demo')
    await page.click('#bidi')
    await page.click('#uni')
    await page.click('#dgram')
    await page.waitForFunction(() => (document.getElementById('log').textContent.match(/echo: hello demo/g) || []).length >= 3, null, {
      timeout: 15_000,
    })
    const text = await log()
    assert.match(text, /bidi echo: hello demo/)
    assert.match(text, /uni echo: hello demo/)
    assert.match(text, /datagram echo: hello demo/)
  } finally {
    await browser?.close()
    demo.kill('SIGINT')
  }
  const { code, signal } = await withTimeout(exited, 15_000, 'the demo exiting on SIGINT')
  assert.equal(signal, null)
  assert.equal(code, 0, 'the demo shuts down cleanly on Ctrl+C')
})
