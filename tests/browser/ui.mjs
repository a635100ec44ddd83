// The admin web UI end to end in headless Chromium (playwright-core), against
// a running gateway that serves web-ui/ at `/` (run by tests/it/ui.rs).
//
// Usage: node ui.mjs <gateway base URL> <phase> '<config JSON>'
//   phase `main`: sign in, dashboard, devices (a `camgate sim` device),
//     channel tree, a GB28181 channel playing in a tile over WebRTC, an RTSP
//     source added through the form, tested and played over WebRTC, HTTP-FLV
//     and LL-HLS, users and tokens, a webhook added in the UI delivering a
//     signed event to a local receiver, a setting changed, events, zh,
//     tablet size, and a viewer who is kept out of admin pages and APIs.
//   phase `after-restart`: the changed setting is still there.
// Config: {user, password, token, device, camera_url, grace, screenshots, timeout_secs}.
// Every page is saved as a full-page PNG in `screenshots`. Prints one JSON
// line: {ok, steps, screenshots, …} and exits 0 on success.
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { finish, launch } from './lib.mjs';

const [baseArg, phase, configJson] = process.argv.slice(2);
if (!baseArg || !phase || !configJson) {
  console.error(`usage: node ${process.argv[1]} <gateway base URL> <main|after-restart> '<config JSON>'`);
  process.exit(2);
}
const base = baseArg.replace(/\/$/, '');
const cfg = JSON.parse(configJson);
const TIMEOUT = (cfg.timeout_secs || 60) * 1000;
const DESKTOP = { width: 1280, height: 720 };
const TABLET = { width: 800, height: 1280 };

mkdirSync(cfg.screenshots, { recursive: true });
const steps = [];
const screenshots = [];
const consoleLog = [];
const measured = {};

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    steps.push({ name, ok: true, ms: Date.now() - started });
  } catch (e) {
    steps.push({ name, ok: false, error: String(e && e.message || e) });
    throw Object.assign(new Error(`step "${name}" failed: ${e && e.message || e}`), { step: name });
  }
}

async function shot(page, name) {
  // Let pending fetches settle so the picture shows data, not "Loading…".
  await page.waitForLoadState('networkidle', { timeout: 2000 }).catch(() => {});
  // Toasts of earlier steps would cover the page: the picture is of the page.
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((el) => el.remove()));
  const file = join(cfg.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
}

function watch(page, who) {
  page.on('console', (m) => consoleLog.push(`${who} ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`${who} pageerror: ${e.message}`));
}

/** The page never scrolls sideways at its current viewport. */
async function noHorizontalScroll(page, what) {
  const r = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  if (r.scroll > r.client) throw new Error(`${what}: page is ${r.scroll} px wide in a ${r.client} px viewport`);
}

async function openNav(page, name) {
  const toggle = page.locator('.menu-toggle');
  if (await toggle.isVisible()) await toggle.click();
  await page.click(`[data-nav="${name}"]`);
  await page.waitForFunction((n) => location.hash === `#/${n}`, name);
}

async function login(page, user, password) {
  await page.goto(`${base}/`);
  await page.waitForSelector('[data-testid=login-form]');
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('[data-testid=login-form] button[type=submit]');
  await page.waitForSelector(`[data-testid=who]:has-text("${user}")`);
}

/** The tile playing `stream` over `transport`, with its frame count growing. */
async function tilePlays(page, stream, transport) {
  const sel = `.tile[data-stream="${stream}"][data-transport="${transport}"][data-state=playing]`;
  await page.waitForSelector(sel);
  const tile = page.locator(sel).first();
  const index = await tile.getAttribute('data-tile');
  const frames = () => page.evaluate((i) => document.querySelector(`.tile[data-tile="${i}"] video`).getVideoPlaybackQuality().totalVideoFrames, index);
  const first = await frames();
  // Decoding goes on: 25 more frames than when it was first seen playing.
  await page.waitForFunction(
    ({ i, n }) => document.querySelector(`.tile[data-tile="${i}"] video`).getVideoPlaybackQuality().totalVideoFrames > n + 25,
    { i: index, n: first },
  );
  const video = await page.evaluate((i) => {
    const v = document.querySelector(`.tile[data-tile="${i}"] video`);
    return { width: v.videoWidth, height: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames };
  }, index);
  // The tile's info line shows codec and resolution once stream info came in.
  await page.waitForFunction((i) => /H26[45].*\d+×\d+/.test(document.querySelector(`.tile[data-tile="${i}"] [data-testid=tile-info]`).textContent), index);
  const info = await tile.locator('[data-testid=tile-info]').textContent();
  measured[`${stream}/${transport}`] = { ...video, info };
  return index;
}

/** fetch() from the page with its cookie (and the CSRF token for writes). */
function pageFetch(page, method, path, body, csrf = true) {
  return page.evaluate(async ({ method, path, body, csrf }) => {
    const s = await (await fetch('/api/v1/auth/session', { credentials: 'same-origin' })).json();
    const headers = { 'Content-Type': 'application/json' };
    if (csrf && method !== 'GET') headers['X-CSRF-Token'] = s.csrf_token;
    const r = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    let json = null;
    try {
      json = await r.json();
    } catch {
      // 204 or not JSON.
    }
    return { status: r.status, body: json };
  }, { method, path, body, csrf });
}

async function mainPhase(browser) {
  const ctx = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
  ctx.setDefaultTimeout(TIMEOUT);
  const page = await ctx.newPage();
  watch(page, 'admin');
  const stream = `${cfg.device}_`;

  await step('login page', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('[data-testid=login-form]');
    await noHorizontalScroll(page, 'login');
    await shot(page, '01-login');
    // A wrong password is refused with a message, not a crash.
    await page.fill('input[name=username]', cfg.user);
    await page.fill('input[name=password]', `${cfg.password}-wrong`);
    await page.click('[data-testid=login-form] button[type=submit]');
    await page.waitForSelector('.form-error:not(:empty)');
  });

  await step('login with username and password', async () => {
    await page.fill('input[name=password]', cfg.password);
    await page.click('[data-testid=login-form] button[type=submit]');
    await page.waitForSelector(`[data-testid=who]:has-text("${cfg.user}")`);
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === 'camgate_session');
    if (!session || !session.httpOnly) throw new Error(`no HttpOnly session cookie: ${JSON.stringify(cookies)}`);
    // A write without the CSRF header is refused even with the cookie.
    const r = await pageFetch(page, 'PUT', '/api/v1/settings/media', { on_demand_grace_secs: 1, start_timeout_secs: 10 }, false);
    if (r.status !== 403) throw new Error(`write without CSRF token answered ${r.status}`);
  });

  await step('dashboard', async () => {
    await page.waitForFunction(() => location.hash === '#/dashboard');
    // The simulated device is counted online; CPU and memory are shown.
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-testid=stat-online] .stat-value');
      return v && Number(v.textContent) >= 1;
    });
    await page.waitForSelector('[data-testid=stat-cpu] .stat-value');
    await page.waitForSelector('[data-testid=stat-mem] .stat-value');
    await noHorizontalScroll(page, 'dashboard');
    await shot(page, '02-dashboard');
  });

  await step('devices list and search', async () => {
    await openNav(page, 'devices');
    await page.waitForSelector(`tr[data-device="${cfg.device}"][data-online=true]`);
    await page.fill('[data-testid=device-search]', 'no-such-device-xyz');
    await page.waitForSelector(`tr[data-device="${cfg.device}"]`, { state: 'detached' });
    await page.fill('[data-testid=device-search]', cfg.device.slice(-6));
    await page.waitForSelector(`tr[data-device="${cfg.device}"][data-online=true]`);
    await noHorizontalScroll(page, 'devices');
    await shot(page, '03-devices');
  });

  let channel;
  await step('device detail and channel tree', async () => {
    await page.click(`tr[data-device="${cfg.device}"] a`);
    await page.waitForFunction((d) => location.hash === `#/devices/${d}`, cfg.device);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=channel-tree] li[data-kind=camera]').length === 2);
    channel = await page.locator('[data-testid=channel-tree] li[data-kind=camera]').first().getAttribute('data-channel');
    // DeviceInfo asked from the device is shown.
    await page.waitForSelector('dl.kv >> text=camgate simulated IPC');
    await noHorizontalScroll(page, 'device');
    await shot(page, '04-device-channel-tree');
  });

  await step('the tree nests regions, business groups and organisations', async () => {
    // The simulator's catalog is flat (two cameras under the device), so the
    // served tree module is also given a GB/T 28181 catalog with every kind.
    const tree = await page.evaluate(async () => {
      const { buildTree } = await import('/js/tree.js');
      const ch = (id, kind, extra = {}) => ({ id, kind, name: id, parent_ids: [], ...extra });
      const roots = buildTree([
        ch('340200', 'region'),
        ch('34', 'region'),
        ch('3402', 'region'),
        ch('34020000002150000001', 'business_group', { parent_id: '34020000002000000001', parent_ids: ['34020000002000000001'] }),
        ch('34020000002160000001', 'virtual_organization', { parent_id: '34020000002150000001', parent_ids: ['34020000002150000001'], business_group_id: '34020000002150000001' }),
        ch('34020000001310000001', 'camera', { parent_id: '34020000002160000001', parent_ids: ['34020000002160000001'] }),
        ch('34020000001310000002', 'camera', { civil_code: '340200' }),
        ch('34020000001310000003', 'camera', { parent_ids: ['34020000002000000001', '34020000002160000001'] }),
        ch('34020000001310000004', 'camera', { parent_id: '34020000001320000001', parent_ids: ['34020000001320000001'] }),
      ]);
      const show = (n) => (n.children.length ? { [n.channel.id]: n.children.map(show) } : n.channel.id);
      return roots.map(show);
    });
    const want = [
      { 34: [{ 3402: [{ 340200: ['34020000001310000002'] }] }] },
      { '34020000002150000001': [{ '34020000002160000001': ['34020000001310000001', '34020000001310000003'] }] },
      '34020000001310000004',
    ];
    if (JSON.stringify(tree) !== JSON.stringify(want)) throw new Error(`tree ${JSON.stringify(tree)}`);
  });

  await step('GB28181 channel plays in a tile over WebRTC', async () => {
    await page.click(`[data-testid=channel-tree] li[data-channel="${channel}"] [data-testid=play]`);
    await page.waitForFunction(() => location.hash === '#/live');
    await tilePlays(page, `${stream}${channel}`, 'webrtc');
  });

  await step('add an RTSP source through the form and test it', async () => {
    await openNav(page, 'sources');
    await page.click('[data-testid=source-add]');
    const form = page.locator('[data-testid=source-form]');
    await form.locator('input[name=name]').fill('ui-cam');
    await form.locator('input[name=url]').fill(cfg.camera_url);
    await form.locator('select[name=transport]').selectOption('tcp');
    // Tested before saving: the camera's codec and size come back.
    await form.locator('[data-testid=source-form-test]').click();
    await form.locator('[data-testid=form-test-result]:has-text("✓")').waitFor();
    const tested = await form.locator('[data-testid=form-test-result]').textContent();
    if (!/H264/.test(tested) || !/\d+×\d+/.test(tested)) throw new Error(`test result: ${tested}`);
    await form.locator('[data-testid=source-save]').click();
    await page.waitForSelector('tr[data-source="ui-cam"]');
    await page.click('tr[data-source="ui-cam"] [data-testid=source-test]');
    await page.waitForSelector('tr[data-source="ui-cam"] [data-testid=test-result]:has-text("✓")');
    await noHorizontalScroll(page, 'sources');
    await shot(page, '05-sources');
  });

  await step('RTSP source plays over WebRTC, HTTP-FLV and LL-HLS', async () => {
    await page.click('tr[data-source="ui-cam"] [data-testid=source-watch]');
    await page.waitForFunction(() => location.hash === '#/live');
    const webrtc = await tilePlays(page, 'ui-cam', 'webrtc');
    // A second tile forced to HTTP-FLV (mpegts.js), a third to LL-HLS (hls.js).
    for (const transport of ['flv', 'hls']) {
      await page.click('.tile[data-state=empty] .tile-empty');
      await page.click('dialog [data-pick="ui-cam"]');
      const tile = page.locator('.tile.selected');
      await tile.locator('[data-testid=prefer]').selectOption(transport);
      await tilePlays(page, 'ui-cam', transport);
    }
    await noHorizontalScroll(page, 'live');
    await shot(page, '06-live-grid');
    // The vendored players were loaded only now, by the fallbacks.
    const loaded = await page.evaluate(() => [...document.scripts].map((s) => s.src).filter((s) => s.includes('/vendor/')));
    if (loaded.length !== 2) throw new Error(`vendor scripts loaded: ${loaded}`);
    // Closing the WebRTC tile ends its WHEP session at the gateway.
    const before = await pageFetch(page, 'GET', '/api/v1/streams/ui-cam');
    if (!(before.body.viewers_by_output.webrtc >= 1)) throw new Error(`no WebRTC viewer: ${JSON.stringify(before.body)}`);
    await page.click(`.tile[data-tile="${webrtc}"] [data-testid=tile-close]`);
    await page.waitForFunction(async () => {
      const r = await fetch('/api/v1/streams/ui-cam', { credentials: 'same-origin' });
      const s = await r.json();
      return !s.viewers_by_output.webrtc;
    }, undefined, { polling: 500 });
  });

  await step('layouts 1, 9, 16', async () => {
    for (const n of [1, 9, 16, 4]) {
      await page.click(`[data-layout="${n}"]`);
      await page.waitForFunction((k) => document.querySelectorAll('.live-grid .tile').length === k, n);
      await noHorizontalScroll(page, `live ${n}`);
    }
  });

  await step('PTZ pad moves the head and lists presets', async () => {
    // The simulator announces fixed cameras (PTZType 3, no pad), so the
    // channel is put in a tile as a PTZ camera would be, through the live
    // page's own stored state; the commands then go to the device.
    await page.evaluate(({ device, channel }) => {
      sessionStorage.setItem('camgate.live', JSON.stringify({
        layout: 1,
        tiles: [{ device, channel, title: 'PTZ', ptz: true, prefer: 'auto' }],
      }));
    }, { device: cfg.device, channel });
    await page.reload();
    await page.waitForSelector('.tile[data-state=playing]');
    await page.click('[data-testid=ptz-toggle]');
    await page.waitForSelector('[data-testid=ptz-pad] .ptz-preset-row select option:nth-child(2)', { state: 'attached' });
    const ptzAnswer = (want) => page.waitForResponse((r) => r.url().endsWith(`/channels/${cfg.device}/${channel}/ptz`)
      && r.request().method() === 'POST' && JSON.parse(r.request().postData()).action === want);
    const right = page.locator('[data-testid=ptz-pad] button[aria-label="Right"]');
    const box = await right.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const moved = ptzAnswer('move');
    await page.mouse.down();
    const move = await moved;
    const stopped = ptzAnswer('stop');
    await page.mouse.up();
    const stop = await stopped;
    for (const r of [move, stop]) {
      if (r.status() !== 200 || (await r.json()).via !== 'gb28181') throw new Error(`PTZ answered ${r.status()}: ${await r.text()}`);
    }
    await shot(page, '06b-live-ptz');
  });

  await step('users and API tokens', async () => {
    await openNav(page, 'users');
    await page.waitForSelector(`tr[data-user="${cfg.user}"]`);
    // A viewer user, created through the form.
    await page.click('[data-testid=user-add]');
    const form = page.locator('[data-testid=user-form]');
    await form.locator('input[name=username]').fill('watcher');
    await form.locator('input[name=password]').fill('watcher-pass-123');
    await form.locator('select[name=role]').selectOption('viewer');
    await form.locator('[data-testid=user-save]').click();
    await page.waitForSelector('tr[data-user="watcher"]');
    // A token, shown once.
    const tf = page.locator('[data-testid=token-form]');
    await tf.locator('input[name=name]').fill('ui-test-token');
    await tf.locator('select[name=role]').selectOption('operator');
    await tf.locator('button[type=submit]').click();
    await page.waitForSelector('tr[data-token="ui-test-token"]');
    const token = await page.locator('[data-testid=token-value]').textContent();
    const r = await page.evaluate(async (tk) => (await fetch('/api/v1/streams', { headers: { Authorization: `Bearer ${tk}` } })).status, token.trim());
    if (r !== 200) throw new Error(`the new token answered ${r}`);
    await noHorizontalScroll(page, 'users');
    await shot(page, '07-users-tokens');
  });

  await step('a webhook added in the UI delivers a signed event', async () => {
    // A local receiver: records each POST and checks its HMAC signature.
    const received = [];
    let secret = '';
    const server = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const want = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
        received.push({ event: req.headers['x-camgate-event'], signed: req.headers['x-camgate-signature'] === want });
        res.writeHead(200).end();
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      await openNav(page, 'webhooks');
      await page.click('[data-testid=webhook-add]');
      const form = page.locator('[data-testid=webhook-form]');
      await form.locator('input[name=url]').fill(`http://127.0.0.1:${server.address().port}/hook`);
      secret = await form.locator('input[name=secret]').inputValue();
      await form.locator('input[name=all]').uncheck();
      await form.locator('input[name=kind][value=catalog_synced]').check();
      await form.locator('[data-testid=webhook-save]').click();
      await page.waitForSelector('[data-testid=deliveries]');
      // A catalog refresh makes a catalog_synced event.
      const r = await pageFetch(page, 'POST', `/api/v1/devices/${cfg.device}/catalog/refresh`);
      if (r.status >= 300) throw new Error(`catalog refresh: ${r.status} ${JSON.stringify(r.body)}`);
      await page.waitForSelector('[data-testid=deliveries] tr[data-event=catalog_synced][data-state=delivered]');
      if (!received.some((m) => m.event === 'catalog_synced' && m.signed)) throw new Error(`received ${JSON.stringify(received)}`);
      if (received.some((m) => m.event !== 'catalog_synced')) throw new Error(`unsubscribed events: ${JSON.stringify(received)}`);
      await noHorizontalScroll(page, 'webhooks');
      await shot(page, '18-webhooks');
    } finally {
      server.close();
    }
  });

  await step('change the on-demand grace in settings', async () => {
    await openNav(page, 'settings');
    const grace = page.locator('[data-testid=grace]');
    await grace.waitFor();
    await grace.fill(String(cfg.grace));
    await page.click('[data-testid=save-media]');
    await page.waitForFunction(async (g) => {
      const r = await fetch('/api/v1/settings/media', { credentials: 'same-origin' });
      return (await r.json()).on_demand_grace_secs === g;
    }, cfg.grace, { polling: 250 });
    // The public IP is stored and applies at the next start: the page says so.
    const ip = page.locator('[data-testid=settings-network] input[name=public_ip]');
    await ip.waitFor();
    await ip.fill('192.0.2.77');
    await page.click('[data-testid=save-network]');
    await page.waitForSelector('[data-testid=restart-required]');
    await noHorizontalScroll(page, 'settings');
    await shot(page, '08-settings');
  });

  await step('events with filters', async () => {
    await openNav(page, 'events');
    await page.waitForSelector('tr[data-kind=device_online]');
    await page.selectOption('[data-testid=event-kind]', 'catalog_synced');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('tr[data-kind]')];
      return rows.length > 0 && rows.every((r) => r.dataset.kind === 'catalog_synced');
    });
    await page.selectOption('[data-testid=event-kind]', '');
    await page.waitForSelector('tr[data-kind=device_online]');
    await noHorizontalScroll(page, 'events');
    await shot(page, '09-events');
  });

  await step('Chinese', async () => {
    // Both text tables have the same keys.
    const diff = await page.evaluate(async () => {
      const en = Object.keys((await import('/i18n/en.js')).default);
      const zh = Object.keys((await import('/i18n/zh.js')).default);
      return [...en.filter((k) => !zh.includes(k)), ...zh.filter((k) => !en.includes(k))];
    });
    if (diff.length) throw new Error(`keys in only one of en.js and zh.js: ${diff}`);
    await openNav(page, 'dashboard');
    await page.selectOption('header [data-testid=lang]', 'zh');
    await page.waitForSelector('[data-nav=devices]:has-text("设备")');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=stat-online] .stat-value')?.textContent) >= 1);
    const lang = await page.evaluate(() => localStorage.getItem('camgate.lang'));
    if (lang !== 'zh') throw new Error(`language not kept: ${lang}`);
    await shot(page, '10-dashboard-zh');
    await openNav(page, 'devices');
    await page.waitForSelector(`tr[data-device="${cfg.device}"]`);
    await shot(page, '11-devices-zh');
    // The choice survives a reload.
    await page.reload();
    await page.waitForSelector('[data-nav=devices]:has-text("设备")');
    await page.selectOption('header [data-testid=lang]', 'en');
    await page.waitForSelector('[data-nav=devices]:has-text("Devices")');
  });

  await step('tablet size', async () => {
    await page.setViewportSize(TABLET);
    for (const [nav, ready] of [
      ['dashboard', '[data-testid=stat-cpu]'],
      ['devices', `tr[data-device="${cfg.device}"]`],
      ['live', '.live-grid .tile'],
      ['sources', 'tr[data-source="ui-cam"]'],
      ['events', 'tr[data-kind]'],
      ['users', 'tr[data-user=watcher]'],
      ['settings', '[data-testid=grace]'],
    ]) {
      await openNav(page, nav);
      await page.waitForSelector(ready);
      await noHorizontalScroll(page, `${nav} at tablet size`);
    }
    await openNav(page, 'devices');
    await page.click(`tr[data-device="${cfg.device}"] a`);
    await page.waitForSelector('[data-testid=channel-tree] li[data-kind=camera]');
    await noHorizontalScroll(page, 'device at tablet size');
    await shot(page, '12-device-tablet');
    await openNav(page, 'live');
    await page.waitForSelector('.tile[data-state=playing]');
    await shot(page, '13-live-tablet');
    // Touch-sized controls: every visible button is at least 34 px tall.
    const small = await page.evaluate(() => [...document.querySelectorAll('button, select, input:not([type=checkbox]):not([type=range])')]
      .filter((b) => b.offsetParent && b.getBoundingClientRect().height < 34).map((b) => b.outerHTML.slice(0, 80)));
    if (small.length) throw new Error(`controls too small for touch: ${small.join(' | ')}`);
    await page.setViewportSize(DESKTOP);
  });

  await step('viewer cannot reach admin pages or APIs', async () => {
    const vctx = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
    vctx.setDefaultTimeout(TIMEOUT);
    const vpage = await vctx.newPage();
    watch(vpage, 'viewer');
    await login(vpage, 'watcher', 'watcher-pass-123');
    const navs = await vpage.evaluate(() => [...document.querySelectorAll('[data-nav]')].map((a) => a.dataset.nav));
    if (navs.includes('users')) throw new Error(`viewer sees nav ${navs}`);
    await vpage.goto(`${base}/#/users`);
    await vpage.waitForSelector('[data-testid=not-allowed]');
    await shot(vpage, '14-viewer-not-allowed');
    // Settings are read-only, sources have no edit buttons.
    await vpage.goto(`${base}/#/settings`);
    await vpage.waitForSelector('[data-testid=grace]');
    if (await vpage.locator('[data-testid=save-media]').count()) throw new Error('viewer sees a settings save button');
    if (!(await vpage.locator('[data-testid=grace]').isDisabled())) throw new Error('viewer can edit settings');
    await vpage.goto(`${base}/#/sources`);
    await vpage.waitForSelector('tr[data-source="ui-cam"]');
    if (await vpage.locator('[data-testid=source-add], [data-testid=source-edit], [data-testid=source-delete]').count()) {
      throw new Error('viewer sees source edit buttons');
    }
    // The server says no too, with the viewer's own cookie and CSRF token.
    const checks = [
      ['GET', '/api/v1/users'],
      ['GET', '/api/v1/tokens'],
      ['POST', '/api/v1/users', { username: 'x', password: 'yyyyyyyy', role: 'admin' }],
      ['PUT', '/api/v1/settings/media', { on_demand_grace_secs: 1, start_timeout_secs: 10 }],
      ['POST', '/api/v1/sources', { name: 'evil', url: 'rtsp://127.0.0.1/x' }],
      ['DELETE', '/api/v1/sources/ui-cam'],
    ];
    for (const [method, path, body] of checks) {
      const r = await pageFetch(vpage, method, path, body);
      if (r.status !== 403) throw new Error(`viewer ${method} ${path} answered ${r.status}: ${JSON.stringify(r.body)}`);
    }
    await vctx.close();
  });

  await step('API docs: browse, search and try a request', async () => {
    const foreign = [];
    const onRequest = (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) foreign.push(r.url());
    };
    page.on('request', onRequest);
    await page.goto(`${base}/api/docs`);
    await page.waitForFunction(() => document.querySelectorAll('details.op').length > 60);
    await page.fill('#token', cfg.token);
    await page.fill('#search', 'users');
    const visible = await page.$$eval('details.op:not(.hidden) .path', (ps) => ps.map((p) => p.textContent));
    if (!visible.length || !visible.every((p) => p.includes('users'))) throw new Error(`search shows ${visible}`);
    const op = page.locator('details.op:not(.hidden)').filter({ has: page.locator('.method.get') }).filter({ has: page.locator('.path', { hasText: /^\/api\/v1\/users$/ }) });
    await op.locator('summary').first().click();
    await op.locator('form.try button[type=submit]').click();
    await op.locator('p.status', { hasText: /^200 / }).waitFor();
    const body = await op.locator('form.try pre').textContent();
    if (!body.includes(cfg.user)) throw new Error(`try-it answer: ${body}`);
    await shot(page, '17-api-docs');
    page.off('request', onRequest);
    if (foreign.length) throw new Error(`the docs loaded from elsewhere: ${foreign}`);
    await page.goto(`${base}/`);
  });

  await step('sign out', async () => {
    await page.click('[data-testid=logout]');
    await page.waitForSelector('[data-testid=login-form]');
    const r = await page.evaluate(async () => (await fetch('/api/v1/auth/session', { credentials: 'same-origin' })).status);
    if (r !== 401) throw new Error(`session after sign-out answered ${r}`);
  });
  await ctx.close();
}

async function afterRestartPhase(browser) {
  const ctx = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
  ctx.setDefaultTimeout(TIMEOUT);
  const page = await ctx.newPage();
  watch(page, 'admin');
  await step('sign in with the API token', async () => {
    await page.goto(`${base}/`);
    await page.click('[data-testid=login-mode]');
    await page.fill('input[name=token]', cfg.token);
    await page.click('[data-testid=login-form] button[type=submit]');
    await page.waitForSelector('[data-testid=who] .role');
    // An admin token may open the admin pages.
    await page.goto(`${base}/#/users`);
    await page.waitForSelector(`tr[data-user="${cfg.user}"]`);
    await page.click('[data-testid=logout]');
    await page.waitForSelector('[data-testid=login-form]');
  });
  await step('sign in after the restart', () => login(page, cfg.user, cfg.password));
  await step('the grace set before the restart is kept', async () => {
    await page.goto(`${base}/#/settings`);
    const grace = page.locator('[data-testid=grace]');
    await grace.waitFor();
    const value = await grace.inputValue();
    if (value !== String(cfg.grace)) throw new Error(`grace is ${value}, set ${cfg.grace} before the restart`);
    const ip = page.locator('[data-testid=settings-network] input[name=public_ip]');
    await ip.waitFor();
    if ((await ip.inputValue()) !== '192.0.2.77') throw new Error('the public IP set before the restart is lost');
    // Applied now: nothing waits for a restart.
    if (await page.locator('[data-testid=restart-required]').count()) throw new Error('still says restart required');
    await shot(page, '15-settings-after-restart');
  });
  await step('the RTSP source added in the UI is kept', async () => {
    await page.goto(`${base}/#/sources`);
    await page.waitForSelector('tr[data-source="ui-cam"]');
  });
  await ctx.close();
}

// Against a gateway with WebRTC turned off, as an operator: a tile left on
// "Auto" falls back to HTTP-FLV by itself; the operator may play but sees
// no admin pages and may not change settings.
async function fallbackPhase(browser) {
  const ctx = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
  ctx.setDefaultTimeout(TIMEOUT);
  const page = await ctx.newPage();
  watch(page, 'operator');
  await step('operator signs in', () => login(page, cfg.user, cfg.password));
  await step('operator sees no admin pages', async () => {
    if (await page.locator('nav [data-nav=users]').count()) throw new Error('operator sees Users');
    const r = await pageFetch(page, 'PUT', '/api/v1/settings/media', { on_demand_grace_secs: 3, start_timeout_secs: 10 });
    if (r.status !== 403) throw new Error(`operator changed settings: ${r.status}`);
  });
  await step('without WebRTC an Auto tile falls back to HTTP-FLV', async () => {
    await page.goto(`${base}/#/sources`);
    await page.click(`tr[data-source="${cfg.source}"] [data-testid=source-watch]`);
    await page.waitForFunction(() => location.hash === '#/live');
    const index = await tilePlays(page, cfg.source, 'flv');
    const prefer = await page.locator(`.tile[data-tile="${index}"] [data-testid=prefer]`).inputValue();
    if (prefer !== 'auto') throw new Error(`the tile was forced to ${prefer}`);
    await shot(page, '16-live-fallback-flv');
  });
  await ctx.close();
}

async function run() {
  const browser = await launch();
  try {
    if (phase === 'main') await mainPhase(browser);
    else if (phase === 'after-restart') await afterRestartPhase(browser);
    else if (phase === 'fallback') await fallbackPhase(browser);
    else throw new Error(`unknown phase ${phase}`);
    return { ok: true, phase, steps, screenshots, measured };
  } catch (e) {
    // The last page state, for the CI artefacts.
    for (const ctx of browser.contexts()) {
      for (const [i, p] of ctx.pages().entries()) {
        await p.screenshot({ path: join(cfg.screenshots, `failure-${phase}-${i}.png`), fullPage: true }).catch(() => {});
      }
    }
    return { ok: false, phase, error: String(e && e.message || e), steps, screenshots, measured, console: consoleLog.slice(-80) };
  } finally {
    await browser.close();
  }
}

finish(run());
