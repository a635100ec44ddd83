// Harness for the browser tests: headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) opens a test page on the gateway's own origin.
// The page is not served by the gateway: page.route() answers it (and hls.js
// from node_modules) inside the browser, so the gateway needs no CORS setup
// and nothing reaches the network (no CDN).
import { chromium } from 'playwright-core';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const CHROMIUM = '/usr/bin/chromium';
const TEST_PREFIX = '/__camgate_browser_test__/';

export function args() {
  const [base, stream, ...rest] = process.argv.slice(2);
  if (!base || !stream) {
    console.error(`usage: node ${process.argv[1]} <gateway base URL> <stream> [--timeout-secs N]`);
    process.exit(2);
  }
  const i = rest.indexOf('--timeout-secs');
  const timeoutMs = (i >= 0 ? Number(rest[i + 1]) : 60) * 1000;
  return { base: base.replace(/\/$/, ''), stream, timeoutMs };
}

/** hls.js's browser build, to serve to the page. */
export function hlsJs() {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve('hls.js/dist/hls.min.js'));
}

/** Headless Chromium with the flags every browser test uses. */
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} missing: apt-get install -y chromium`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // The gateway's only candidate in the tests is 127.0.0.1.
      '--allow-loopback-in-peer-connection',
    ],
    timeout: 30000,
  });
}

/**
 * Opens `html` at a URL on the gateway's origin (extra files from `files`:
 * name → body), runs `fn(arg)` in the page and returns its result.
 * Prints the browser console on failure.
 */
export async function runInPage({ base, html, files = {}, fn, arg, timeoutMs }) {
  const browser = await launch();
  const log = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    await page.route(`${base}${TEST_PREFIX}**`, async (route) => {
      const name = new URL(route.request().url()).pathname.slice(TEST_PREFIX.length);
      if (name === 'index.html') {
        return route.fulfill({ status: 200, contentType: 'text/html', body: html });
      }
      if (files[name]) {
        return route.fulfill({ status: 200, contentType: 'text/javascript', body: files[name] });
      }
      return route.fulfill({ status: 404, body: 'not found' });
    });
    await page.goto(`${base}${TEST_PREFIX}index.html`);
    page.setDefaultTimeout(timeoutMs + 10000);
    const result = await page.evaluate(fn, { ...arg, timeoutMs });
    return { ...result, console: result.ok ? undefined : log };
  } finally {
    await browser.close();
  }
}

/** Prints the result as one JSON line and exits 0 on success, 1 otherwise. */
export function finish(promise) {
  promise.then(
    (r) => {
      console.log(JSON.stringify(r));
      process.exit(r.ok ? 0 : 1);
    },
    (e) => {
      console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
      process.exit(1);
    },
  );
}
