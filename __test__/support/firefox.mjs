// Launches a headless Firefox ESR (through puppeteer-core over WebDriver BiDi) for the browser env of
// browser.mjs: startFirefoxEnv() is createBrowserEnv(launchFirefox), so env.run('same' | 'cross', fn, arg,
// { timeout, label }) and env.close() behave as for Chromium, and the page server and the page helpers
// (`window.T`) are the same, so page functions run unchanged in both browsers.
//
// Only the launch is Firefox's: a fresh profile in a temp dir (removed after close), and a close that is
// bounded and kills the process if Firefox hangs.
import puppeteer from 'puppeteer-core'
import { createBrowserEnv, launchWithProfile, openTestPage, withTimeout } from './browser.mjs'

export const FIREFOX_PATH = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr'

/** Launches headless Firefox with a fresh profile. Returns { browser, userDataDir, newPage(url), close() }. */
export function launchFirefox({ executablePath = FIREFOX_PATH, args = [], extraPrefsFirefox = {}, env, launchTimeout = 60_000 } = {}) {
  return launchWithProfile('wt-firefox-', async (userDataDir) => {
    const browser = await puppeteer.launch({
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
    return {
      browser,
      newPage: (url) =>
        openTestPage(() => withTimeout(browser.newPage(), 15_000, 'opening a Firefox page'), url, (page) =>
          page.waitForFunction(() => typeof window.T === 'object', { timeout: 5_000 }),
        ),
      async stop() {
        const child = browser.process()
        try {
          await withTimeout(browser.close(), 15_000, 'closing Firefox')
        } catch (err) {
          process.emitWarning(`firefox.mjs: ${err.message}; killing it`)
          await killProcess(child)
        }
        // browser.close() resolves once the process exited, but be sure before its profile is removed.
        await killProcess(child)
      },
    }
  })
}

/** One Firefox and one page server for a test file (browser.mjs's createBrowserEnv with launchFirefox). */
export function startFirefoxEnv(options = {}) {
  return createBrowserEnv(launchFirefox, options)
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
