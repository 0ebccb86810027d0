// The web page in Debian's chromium, driven by playwright-core (which downloads no
// browser), with axe-core run inside the page. Started by tests/page.rs, which
// serves the app with a private Redis, seeds dead letters and passes:
//
//   PAGE_URL      the server's base URL, e.g. http://127.0.0.1:40123
//   USER_TOKEN    a user's token;  USER_ID its user id
//   ADMIN_TOKEN   an admin's token
//   CASES         which cases to run, comma-separated: `admin` (sign-in, admin
//                 views, dead letters), `notify` (a notification published from
//                 outside arrives live; needs the notifications routes and /ws),
//                 `briefing` (the user's weekly schedule set; the briefing the
//                 server writes from the stored market rows arrives and opens)
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Prints one `ok - ...` or `not ok - ...` line per step and `N passed, N failed`
// at the end; exits 1 when a step failed. A failed step ends its case (the steps
// after it depend on it).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
};
const URL_ = env('PAGE_URL').replace(/\/$/, '');
const USER_TOKEN = env('USER_TOKEN');
const USER_ID = env('USER_ID');
const ADMIN_TOKEN = env('ADMIN_TOKEN');
const CASES = (process.env.CASES || 'admin').split(',').map((c) => c.trim()).filter(Boolean);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Longest wait for anything the page should show. */
const WAIT_MS = 20000;

let passed = 0;
let failed = 0;

class Case {
  constructor(name) {
    this.name = name;
    this.broken = null;
  }

  /** Runs one step unless an earlier one failed. */
  async step(what, fn) {
    if (this.broken) {
      console.log(`not ok - ${this.name}: ${what} (skipped: "${this.broken}" failed)`);
      failed += 1;
      return;
    }
    try {
      await fn();
      console.log(`ok - ${this.name}: ${what}`);
      passed += 1;
    } catch (e) {
      console.log(`not ok - ${this.name}: ${what}: ${e && e.message ? e.message.split('\n').slice(0, 6).join(' | ') : e}`);
      failed += 1;
      this.broken = what;
    }
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** A fresh tab with the CSP enforced; console errors and page errors collected. */
async function openPage(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  return { context, page, problems };
}

/** axe-core in the page: throws listing every serious or critical violation. */
async function axe(page, label) {
  // Evaluated over the DevTools protocol, which the page's CSP does not govern:
  // the page itself still allows no inline script.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of violations.filter((x) => !bad.includes(x))) {
    console.log(`# axe (${label}), ${v.impact}: ${v.id}: ${v.help} at ${v.nodes.join(', ')}`);
  }
  assert(bad.length === 0, `axe (${label}): ${bad.map((v) => `${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(', ')}`).join('; ')}`);
}

async function signIn(page, token) {
  await page.fill('#token', token);
  await page.click('#sign-in-form button[type="submit"]');
  await page.waitForSelector('#who:not([hidden])');
}

async function adminCase(browser) {
  const c = new Case('admin');
  const { context, page, problems } = await openPage(browser);
  let response;
  await c.step('the page loads without a token, with a strict CSP', async () => {
    response = await page.goto(`${URL_}/`);
    assert(response.status() === 200, `GET / answered ${response.status()}`);
    const csp = response.headers()['content-security-policy'] || '';
    assert(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), `CSP: ${csp}`);
    await page.waitForSelector('#sign-in-form');
    assert(await page.isVisible('#token'), 'no token field');
    assert(await page.isHidden('#admin'), 'admin views shown before sign-in');
  });
  await c.step('a malformed token is refused with a message', async () => {
    await page.fill('#token', 'not-a-token');
    await page.click('#sign-in-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#sign-in-error').textContent.includes('not a token'));
    assert(await page.isHidden('#who'), 'signed in with a malformed token');
  });
  await c.step('a user signs in and sees notifications but no admin views', async () => {
    await signIn(page, USER_TOKEN);
    assert((await page.textContent('#who-name')) === USER_ID, 'wrong user shown');
    assert(await page.isVisible('#notifications'), 'no notifications section');
    assert(await page.isHidden('#admin'), 'admin views shown to a user');
    const stored = await page.evaluate(() => sessionStorage.getItem('strategist.token'));
    assert(stored === USER_TOKEN, 'token not kept in sessionStorage');
  });
  await c.step('sign-out is reachable with the keyboard and forgets the token', async () => {
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    let reached = false;
    for (let i = 0; i < 8 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.id === 'sign-out');
    }
    assert(reached, 'Tab never reached the sign-out button');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#sign-in:not([hidden])');
    assert((await page.evaluate(() => sessionStorage.getItem('strategist.token'))) === null, 'token still stored');
    await page.reload();
    await page.waitForSelector('#sign-in:not([hidden])');
    assert(await page.isHidden('#who'), 'signed in again after reload');
  });
  await c.step('axe on the sign-in view', async () => axe(page, 'sign-in'));
  await c.step('an admin signs in and sees the streams table', async () => {
    await signIn(page, ADMIN_TOKEN);
    assert((await page.textContent('#who-role')).includes('admin'), 'not shown as admin');
    await page.waitForSelector('#streams-table tbody tr[data-stream="contextual.events"]');
    const streams = await page.$$eval('#streams-table tbody tr[data-stream]', (rows) => [...new Set(rows.map((r) => r.dataset.stream))]);
    assert(streams.length === 7, `streams shown: ${streams.join(', ')}`);
    const text = await page.textContent('#streams-table tbody');
    assert(text.includes('file-processor'), 'the file-processor group is not listed');
  });
  await c.step('the charts, pools and sagas are drawn', async () => {
    // A flat line has no height, so "visible" never holds: attached is enough.
    await page.waitForSelector('#chart-throughput path.line', { state: 'attached' });
    const label = await page.getAttribute('#chart-throughput', 'aria-label');
    assert(/^Events handled per minute\. Now: all types \d/.test(label), `chart label: ${label}`);
    await page.waitForSelector('#chart-latency text.axis', { state: 'attached' });
    await page.waitForSelector('#pools-table tbody tr[data-group="file-processor"]');
    const workers = await page.textContent('#pools-table tbody tr[data-group="file-processor"] td.workers');
    assert(Number(workers) >= 1, `file-processor workers here: ${workers}`);
    await page.waitForFunction(() => /No running sagas|file-processing/.test(document.querySelector('#sagas-table tbody').textContent));
    assert(!(await page.textContent('#admin-error')), `admin error: ${await page.textContent('#admin-error')}`);
  });
  await c.step('dead letters: the filters show only the chosen type', async () => {
    await page.waitForSelector('#dlq-table tbody tr[data-type="ai.content.generation.requested"]');
    await page.selectOption('#dlq-stream', 'contextual.events');
    await page.fill('#dlq-type', 'file.uploaded');
    await page.selectOption('#dlq-reason', 'invalid_event');
    await page.click('#dlq-filter button[type="submit"]');
    await page.waitForFunction(() => {
      const types = [...document.querySelectorAll('#dlq-table tbody tr[data-id]')].map((r) => r.dataset.type);
      return types.length > 0 && types.every((t) => t === 'file.uploaded');
    });
    const streams = await page.$$eval('#dlq-table tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.stream));
    assert(streams.every((s) => s === 'contextual.events'), `streams: ${streams}`);
  });
  let reprocessed;
  await c.step('reprocessing one (with the keyboard) takes it off the open list', async () => {
    reprocessed = await page.$eval('#dlq-table tbody tr[data-id]:has(button.reprocess)', (r) => r.dataset.id);
    const button = page.locator(`#dlq-table tbody tr[data-id="${reprocessed}"] button.reprocess`);
    await button.focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector(`#dlq-table tbody tr[data-id="${reprocessed}"]`, { state: 'detached' });
    await page.waitForFunction(() => document.querySelector('#dlq-status').textContent.startsWith('Sent file.uploaded'));
    await page.selectOption('#dlq-status-filter', 'reprocessed');
    await page.click('#dlq-filter button[type="submit"]');
    await page.waitForSelector(`#dlq-table tbody tr[data-id="${reprocessed}"]`);
    const status = await page.textContent(`#dlq-table tbody tr[data-id="${reprocessed}"]`);
    assert(status.includes('reprocessed') && !status.includes('Reprocess'), `row: ${status}`);
  });
  await c.step('axe on the admin views', async () => axe(page, 'admin'));
  await c.step('no CSP violation and no script error', async () => assert(problems.length === 0, problems.join(' | ')));
  await context.close();
}

/** Publishes a `notification.send.requested` for the user over the API, as another service would. */
async function publishNotification(title, extra = {}) {
  const res = await fetch(`${URL_}/api/v1/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      type: 'notification.send.requested',
      user_id: USER_ID,
      data: {
        user_id: USER_ID,
        notification_type: 'briefing_ready',
        channels: ['websocket'],
        message: { title, body: 'Three trends moved this week.', action_url: '/briefings/b-1' },
        priority: 'high',
        ...extra,
      },
    }),
  });
  assert(res.status === 202, `POST /api/v1/events: ${res.status} ${await res.text()}`);
}

/** The user's stored notifications, as the API lists them. */
async function stored() {
  const res = await fetch(`${URL_}/api/v1/notifications?limit=500`, { headers: { Authorization: `Bearer ${USER_TOKEN}` } });
  assert(res.status === 200, `GET /api/v1/notifications: ${res.status}`);
  return (await res.json()).notifications;
}

/**
 * Runs before the page's own scripts (over the DevTools protocol, so the CSP does
 * not apply): keeps every WebSocket the page opens and the URL it asked for, and
 * while `__blockWs` is set sends new ones to a path with no socket (404), so the test can drop
 * the connection and hold it down.
 */
function watchSockets() {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__wsUrls = [];
  window.__blockWs = false;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      window.__wsUrls.push(String(url));
      super(window.__blockWs ? String(url).replace('/ws?', '/no-such-socket?') : url, protocols);
      window.__sockets.push(this);
    }
  };
}

async function notifyCase(browser) {
  const c = new Case('notify');
  const { context, page, problems } = await openPage(browser);
  await context.addInitScript(watchSockets);
  const title = `Your weekly briefing ${Date.now()}`;
  await c.step('a user signs in and the page goes live over /ws', async () => {
    await page.goto(`${URL_}/`);
    await signIn(page, USER_TOKEN);
    try {
      await page.waitForSelector('#notifications[data-live="true"]', { timeout: WAIT_MS });
    } catch {
      throw new Error(`never live over /ws; the page says: "${await page.textContent('#live-state')}"`);
    }
  });
  await c.step('a notification published from outside appears, announced, with its link', async () => {
    await publishNotification(title);
    const item = page.locator('#notification-list li.notification', { hasText: title });
    await item.waitFor();
    assert((await item.getAttribute('data-state')) === 'unread', 'not unread');
    const href = await item.locator('a.action').getAttribute('href');
    assert(href && href.endsWith('/briefings/b-1'), `link: ${href}`);
    assert((await item.locator('a.action').textContent()) === 'Open the briefing', 'link text');
    await page.waitForFunction((t) => document.querySelector('#announcer').textContent.includes(t), title);
    assert((await page.textContent('#unread-count')).includes('1 unread'), `count: ${await page.textContent('#unread-count')}`);
  });
  await c.step('the briefing link opens in the page (one that does not exist says so)', async () => {
    const item = page.locator('#notification-list li.notification', { hasText: title });
    await item.locator('a.action').click();
    await page.waitForSelector('#briefing:not([hidden]) [role="alert"]');
    const said = await page.textContent('#briefing-body');
    assert(said.includes('cannot be shown'), `the section says: ${said}`);
    assert(!page.url().includes('/briefings/'), `navigated away: ${page.url()}`);
    await page.click('#briefing-close');
    assert(await page.isHidden('#briefing'), 'the briefing section did not close');
  });
  await c.step('axe with a notification shown', async () => axe(page, 'notifications'));
  const missed = `${title} (sent while offline)`;
  await c.step('a dropped socket reconnects after a backoff and resumes: what came meanwhile arrives once', async () => {
    const firstId = await page.getAttribute('#notification-list li.notification[data-state="unread"]', 'data-id');
    await page.evaluate(() => {
      window.__blockWs = true;
      window.__sockets.at(-1).close();
    });
    await page.waitForFunction(() => document.querySelector('#live-state').textContent.startsWith('Disconnected'));
    await publishNotification(missed, { notification_type: 'content_suggestion', priority: 'normal' });
    const deadline = Date.now() + WAIT_MS;
    while (!(await stored()).some((n) => n.title === missed)) {
      assert(Date.now() < deadline, 'the notification sent while offline was never stored');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Held down for a while: the page keeps retrying, each time later.
    await page.waitForFunction(() => window.__wsUrls.length >= 3, null, { timeout: WAIT_MS });
    await page.evaluate(() => {
      window.__blockWs = false;
    });
    await page.locator('#notification-list li.notification', { hasText: missed }).waitFor({ timeout: 40000 });
    await page.waitForSelector('#notifications[data-live="true"]');
    const urls = await page.evaluate(() => window.__wsUrls);
    const resumed = new URL(urls.at(-1)).searchParams.get('after');
    assert(resumed === firstId, `reconnected with after=${resumed}, expected ${firstId}`);
    for (const t of [title, missed]) {
      const shown = await page.locator(`#notification-list li.notification:has(.title:text-is("${t}"))`).count();
      assert(shown === 1, `"${t}" shown ${shown} times`);
    }
  });
  await c.step('mark as read is kept by the server across a reload', async () => {
    const id = await page.getAttribute(`#notification-list li.notification:has(.title:text-is("${title}"))`, 'data-id');
    await page.click(`#notification-list li[data-id="${id}"] button.mark-read`);
    await page.waitForSelector(`#notification-list li[data-id="${id}"][data-state="read"]`);
    // Focus stays on the notification whose button went away.
    assert(await page.evaluate((i) => document.activeElement.closest('li')?.dataset.id === i, id), 'focus lost');
    await page.reload();
    await page.waitForSelector(`#notification-list li[data-id="${id}"]`);
    assert((await page.getAttribute(`#notification-list li[data-id="${id}"]`, 'data-state')) === 'read', 'unread again after reload');
    assert((await page.textContent('#unread-count')).includes('1 unread'), 'the other one is still unread');
  });
  await c.step('no CSP violation and no script error', async () => assert(problems.length === 0, problems.join(' | ')));
  await context.close();
}

/** Sets the user's weekly briefing schedule over the API, as the user. */
async function scheduleWeekly() {
  const res = await fetch(`${URL_}/api/v1/briefings/schedule`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${USER_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ period: 'weekly', time_zone: 'UTC', contextual_core_id: 'core-1' }),
  });
  assert(res.status === 200, `PUT /api/v1/briefings/schedule: ${res.status} ${await res.text()}`);
}

async function briefingCase(browser) {
  const c = new Case('briefing');
  const { context, page, problems } = await openPage(browser);
  const title = 'Your weekly briefing is ready';
  await c.step('a user signs in and the page goes live over /ws', async () => {
    await page.goto(`${URL_}/`);
    await signIn(page, USER_TOKEN);
    await page.waitForSelector('#notifications[data-live="true"]');
  });
  await c.step('the user asks for weekly briefings', scheduleWeekly);
  const item = page.locator('#notification-list li.notification', { hasText: title });
  await c.step('the briefing_ready notification appears with its link', async () => {
    await item.waitFor();
    const href = await item.locator('a.action').getAttribute('href');
    assert(href && /\/briefings\/[0-9A-Z]{26}$/.test(href), `link: ${href}`);
    assert((await item.textContent()).includes('"rust" is rising'), `item: ${await item.textContent()}`);
  });
  await c.step("the link opens the briefing with the trend and an item's link", async () => {
    await item.locator('a.action').click();
    await page.waitForSelector('#briefing:not([hidden])');
    await page.waitForFunction(() => /rising/.test(document.querySelector('#briefing-body').textContent));
    const text = await page.textContent('#briefing-body');
    assert(text.includes('rust') && text.includes('0.97'), `the briefing says: ${text}`);
    assert(!text.includes('golang'), `another user's keyword shown: ${text}`);
    const link = page.locator('#briefing-body a[href="https://news.example/rust-2"]');
    assert((await link.count()) === 1, 'no link to the notable item');
    assert((await link.textContent()) === 'Rust 2.0 ships', `link text: ${await link.textContent()}`);
  });
  await c.step('axe with the briefing shown', async () => axe(page, 'briefing'));
  await c.step('no CSP violation and no script error', async () => assert(problems.length === 0, problems.join(' | ')));
  await context.close();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // As root (CI) chromium refuses its sandbox.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  for (const name of CASES) {
    if (name === 'admin') await adminCase(browser);
    else if (name === 'notify') await notifyCase(browser);
    else if (name === 'briefing') await briefingCase(browser);
    else {
      console.log(`not ok - unknown case ${name}`);
      failed += 1;
    }
  }
} finally {
  await browser.close();
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
