// Drives a headless Firefox ESR (through puppeteer-core over WebDriver BiDi) against a WebTransport server
// under test. The page server and the page helpers (`window.T`) are browser.mjs's, so page functions written
// for the Chromium suite run unchanged here.
//
// - launchFirefox(): one Firefox per test file, with a fresh profile in a temp dir (removed after close).
// - startFirefoxEnv(): the page server plus Firefox, with the same shape as browser.mjs's startBrowserEnv():
//   env.run('same' | 'cross', fn, arg, { timeout, label }) opens a fresh page, runs fn(arg) in it and always
//   closes the page; env.close() closes Firefox (bounded, killed if it hangs) and the page server.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import puppeteer from 'puppeteer-core'
import { startPageServer, runInPage, closePage, withTimeout } from './browser.mjs'

export const FIREFOX_PATH = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr'

/** Launches headless Firefox with a fresh profile. Returns { browser, userDataDir, newPage(url), close() }. */
export async function launchFirefox({ executablePath = FIREFOX_PATH, args = [], extraPrefsFirefox = {}, env, launchTimeout = 60_000 } = {}) {
  const userDataDir = await mkdtemp(join(tmpdir(), 'wt-firefox-'))
  let browser
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      protocol: 'webDriverBiDi',
      executablePath,
      headless: true,
      userDataDir,
      timeout: launchTimeout,
      args,
      extraPrefsFirefox,
      // e.g. { ...process.env, MOZ_LOG: 'neqo_transport::*:5', MOZ_LOG_FILE: '/tmp/moz.log' } to see frames.
      ...(env ? { env } : {}),
      // The test runner owns the process lifetime; don't let puppeteer install signal handlers.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    })
  } catch (err) {
    await removeDir(userDataDir)
    throw err
  }
  let closing
  return {
    browser,
    userDataDir,
    async newPage(url) {
      const page = await withTimeout(browser.newPage(), 15_000, 'opening a Firefox page')
      page.logs = []
      page.on('console', (msg) => page.logs.push(`[console.${msg.type()}] ${msg.text()}`))
      page.on('pageerror', (err) => page.logs.push(`[pageerror] ${err?.stack || err}`))
      if (url) {
        try {
          await page.goto(url, { timeout: 15_000 })
          await page.waitForFunction(() => typeof window.T === 'object', { timeout: 5_000 })
        } catch (err) {
          await closePage(page)
          throw err
        }
      }
      return page
    },
    close() {
      closing ??= (async () => {
        const child = browser.process()
        try {
          await withTimeout(browser.close(), 15_000, 'closing Firefox')
        } catch (err) {
          process.emitWarning(`firefox.mjs: ${err.message}; killing it`)
          await killProcess(child)
        }
        // browser.close() resolves once the process exited, but be sure before removing its profile.
        await killProcess(child)
        await removeDir(userDataDir)
      })()
      return closing
    },
  }
}

/** One Firefox and one page server for a test file; same shape as browser.mjs's startBrowserEnv(). */
export async function startFirefoxEnv(options = {}) {
  const pages = await startPageServer()
  let browser
  try {
    browser = await launchFirefox(options)
  } catch (err) {
    await pages.close()
    throw err
  }
  let closing
  return {
    browser,
    pages,
    sameOriginUrl: pages.sameOriginUrl,
    crossOriginUrl: pages.crossOriginUrl,
    async run(origin, fn, arg, runOptions = {}) {
      const url = origin === 'cross' ? pages.crossOriginUrl() : pages.sameOriginUrl()
      const page = await browser.newPage(url)
      try {
        // runInPage calls page.evaluate(fn, arg): puppeteer passes arg as fn's first (only) argument.
        return await runInPage(page, fn, arg, runOptions)
      } finally {
        await closePage(page)
      }
    },
    close() {
      closing ??= (async () => {
        await browser.close()
        await pages.close()
      })()
      return closing
    },
  }
}

async function killProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    child.kill('SIGKILL')
  } catch {
    return
  }
  await withTimeout(exited, 5_000, 'Firefox exit after SIGKILL').catch((err) => process.emitWarning(`firefox.mjs: ${err.message}`))
}

async function removeDir(dir) {
  for (let attempt = 0; ; attempt++) {
    try {
      await rm(dir, { recursive: true, force: true })
      return
    } catch (err) {
      if (attempt >= 5) {
        process.emitWarning(`firefox.mjs: could not remove ${dir}: ${err.message}`)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}
