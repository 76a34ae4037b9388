// Drives headless Chromium (Debian's /usr/bin/chromium through playwright-core) against a running
// sse-server, for server/tests/clients.rs. Usage: node browser.mjs SCENARIO ARGS...
//
//   events    URL TOPIC COUNT [QUERY]
//                                   EventSource on a same-origin page: onmessage and named listeners
//                                   (QUERY is appended to the subscribe URL, e.g. `&access_token=T`)
//   reconnect URL TOPIC N1 N2       EventSource across a server restart (retry, Last-Event-ID)
//   cross     MODE TOPIC COUNT      EventSource from a page of another origin (MODE: plain or
//                                   credentials); prints ORIGIN, then reads `URL ...` on stdin
//   demo      URL PNG               the console at `/`: the time (its playground's `time` topic)
//                                   ticks; screenshot to PNG
//   console   URL PNG TOPIC DATA    the console at `/`: live figures, a subscription and a publish
//                                   through its forms; reads `CONNECTIONS N` on stdin, waits for the
//                                   open-connections figure to reach N; screenshot to PNG
//   console-token URL TOKEN TOPIC DATA
//                                   the console's publish form against a server with a publish
//                                   token: the 401 shows the token field, the token then publishes
//   fetch     URL TOKEN BODY TOPIC N1 N2
//                                   @microsoft/fetch-event-source: POST /events with a bearer token
//                                   and a `form` or `json` BODY, across a server restart
//
// The line protocol on stdout and stdin is described in lib.mjs.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { deadline, emit, fatal, nextStdinLine, until } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.SSE_TEST_CHROMIUM || '/usr/bin/chromium';
// Generous: Chromium starts slowly on a loaded two-core machine, and a test that really fails
// is stopped by these deadlines rather than hanging.
const WAIT_MS = 30_000;
// Same-origin scenarios run their scripts in a page of the server that opens no stream of its own
// (the console at `/` would add its own streams, reconnecting alongside the one under test).
const SAME_ORIGIN_PAGE = '/healthz';

const [scenario, ...args] = process.argv.slice(2);

if (!fs.existsSync(CHROMIUM)) {
  fatal(`Chromium could not be found at ${CHROMIUM}; install it with ./scripts/setup-test-deps.sh ` +
    '(Debian package `chromium`), or point SSE_TEST_CHROMIUM at a Chromium binary');
}

// A fresh profile for every run, so no cache, cookie or HSTS state leaks between tests. The driver
// says where (SSE_TEST_PROFILES), so that it can remove it even if this script is killed.
const userDataDir = fs.mkdtempSync(path.join(process.env.SSE_TEST_PROFILES || os.tmpdir(), 'sse-chromium-'));
let context;
async function cleanup() {
  try { await context?.close(); } finally { fs.rmSync(userDataDir, { recursive: true, force: true }); }
}
deadline(120_000, cleanup);

context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 800, height: 600 },
});
const page = context.pages()[0] ?? await context.newPage();

// Console errors tell why the browser refused something (CORS above all).
const consoleErrors = [];
page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });

/**
 * Records every request to `/events` with the headers the browser really sent (Playwright reports
 * the final headers, including the Last-Event-ID that EventSource adds on reconnect).
 */
const requests = [];
page.on('request', async (req) => {
  if (new URL(req.url()).pathname !== '/events') return;
  const entry = { method: req.method(), url: req.url(), lastEventId: null };
  requests.push(entry);
  const headers = await req.allHeaders().catch(() => req.headers());
  entry.lastEventId = headers['last-event-id'] ?? null;
  entry.authorization = headers.authorization ?? null;
});

/** Installs the recorder used by every EventSource scenario inside the page. */
const installRecorder = () => page.evaluate(() => {
  window.__events = [];
  window.__log = [];
  window.__record = (es) => {
    // Which handler fired is what matters: unnamed events must reach onmessage only, named
    // events their own listener only, so every handler records its own name.
    es.onmessage = (e) => window.__events.push(['message', e.data, e.lastEventId]);
    for (const name of ['tick', 'other']) {
      es.addEventListener(name, (e) => window.__events.push([name, e.data, e.lastEventId]));
    }
    es.onopen = () => window.__log.push({ what: 'open', t: performance.now(), readyState: es.readyState, events: window.__events.length });
    es.onerror = () => window.__log.push({ what: 'error', t: performance.now(), readyState: es.readyState, events: window.__events.length });
  };
});

const eventCount = () => page.evaluate(() => window.__events.length);
const opens = () => page.evaluate(() => window.__log.filter((l) => l.what === 'open').length);

async function printRecords() {
  for (const e of await page.evaluate(() => window.__events)) emit('EVENT', e);
  for (const r of requests) emit('REQUEST', r);
  for (const l of await page.evaluate(() => window.__log ?? [])) emit('LOG', l);
  for (const c of consoleErrors) emit('CONSOLE', c);
}

/** Waits for N1 events, says so, then waits for N1 + N2 events after a second `open`. */
async function acrossRestart(n1, n2) {
  await until(async () => (await eventCount()) >= n1, WAIT_MS, `${n1} events before the restart`);
  emit('GOT', String(await eventCount()));
  await until(async () => (await eventCount()) >= n1 + n2 && (await opens()) >= 2, WAIT_MS,
    `${n1 + n2} events and a reconnect`);
}

/** The raw value of one of the console's live figures (`data-value`; '' before the first). */
const figure = (key) => page.evaluate((k) => document.getElementById('v-' + k).dataset.value ?? '', key);

/** Subscribes to `topic` with the console's form and waits for the stream to be open. */
async function subscribeWithForm(topic) {
  await page.fill('#sub-topics', topic);
  await page.click('#sub-go');
  await until(() => page.evaluate((t) => [...document.querySelectorAll('#subs li')]
    .some((li) => li.dataset.topics === t && li.dataset.state === 'open'), topic), WAIT_MS, `the subscription to ${topic} open`);
}

/** Publishes with the console's form; resolves with `{status, text}` of the result line. */
async function publishWithForm(topic, type, data) {
  await page.evaluate(() => { delete document.getElementById('pub-result').dataset.status; });
  await page.fill('#pub-topic', topic);
  await page.fill('#pub-event', type);
  await page.fill('#pub-data', data);
  await page.click('#pub-send');
  await until(() => page.evaluate(() => document.getElementById('pub-result').dataset.status !== undefined), WAIT_MS, 'the publish result');
  return page.evaluate(() => {
    const result = document.getElementById('pub-result');
    return { status: Number(result.dataset.status), text: result.textContent };
  });
}

/** Waits for a row of the console's event log with this data; resolves with its cells. */
async function receivedRow(data) {
  const row = () => page.evaluate((d) => [...document.querySelectorAll('#log tr')]
    .map((tr) => [...tr.cells].map((td) => td.textContent)).find((cells) => cells[3] === d) ?? null, data);
  await until(async () => (await row()) !== null, WAIT_MS, `an event with data ${data} in the page`);
  return row();
}

try {
  if (scenario === 'events') {
    const [url, topic, count, extraQuery = ''] = args;
    await page.goto(url + SAME_ORIGIN_PAGE);
    await installRecorder();
    await page.evaluate(([t, q]) => window.__record(new EventSource('/events?topic=' + encodeURIComponent(t) + q)), [topic, extraQuery]);
    await until(opens, WAIT_MS, 'EventSource open');
    emit('READY');
    await until(async () => (await eventCount()) >= Number(count), WAIT_MS, `${count} events`);
    await printRecords();
  } else if (scenario === 'reconnect') {
    const [url, topic, n1, n2] = args;
    await page.goto(url + SAME_ORIGIN_PAGE);
    await installRecorder();
    await page.evaluate((t) => window.__record(new EventSource('/events?topic=' + encodeURIComponent(t))), topic);
    await until(opens, WAIT_MS, 'EventSource open');
    emit('READY');
    await acrossRestart(Number(n1), Number(n2));
    await printRecords();
  } else if (scenario === 'cross') {
    const [mode, topic, count] = args;
    // The other origin: a static page on another port of 127.0.0.1.
    const pageServer = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>other origin</title><p>cross-origin EventSource test</p>');
    });
    await new Promise((r) => pageServer.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${pageServer.address().port}`;
    emit('ORIGIN', origin);
    const line = await nextStdinLine();
    if (!line.startsWith('URL ')) fatal(`expected URL on stdin, got ${line}`);
    const sseUrl = line.slice(4).trim();
    await page.goto(origin + '/');
    await installRecorder();
    await page.evaluate(([u, t, withCredentials]) => {
      window.__es = new EventSource(u + '/events?topic=' + encodeURIComponent(t), { withCredentials });
      window.__record(window.__es);
    }, [sseUrl, topic, mode === 'credentials']);
    // Either outcome settles the first step: open (allowed) or error (refused).
    await until(() => page.evaluate(() => window.__log.length > 0), WAIT_MS, 'open or error');
    const first = await page.evaluate(() => window.__log[0].what);
    if (first === 'error') {
      // A CORS failure is fatal for EventSource: it must end CLOSED, with no reconnect.
      await until(() => page.evaluate(() => window.__es.readyState === 2), WAIT_MS, 'readyState CLOSED');
    }
    emit('READY', first);
    if (first === 'open') {
      await until(async () => (await eventCount()) >= Number(count), WAIT_MS, `${count} events`);
    }
    emit('STATE', await page.evaluate(() => ({ readyState: window.__es.readyState, withCredentials: window.__es.withCredentials })));
    await printRecords();
    pageServer.close();
  } else if (scenario === 'demo') {
    const [url, png] = args;
    const responses = [];
    page.on('response', (r) => { if (new URL(r.url()).pathname === '/') responses.push(r.headers()['content-type']); });
    await page.goto(url + '/');
    emit('CONTENT_TYPE', String(responses[0]));
    // The time ticks: the first time of day (HH:MM:SS) the page shows takes three values.
    const shownTime = async () => ((await page.innerText('body')).match(/\d{2}:\d{2}:\d{2}/) ?? [null])[0];
    const times = [];
    await until(async () => {
      const now = await shownTime();
      if (now !== null && now !== times[times.length - 1]) times.push(now);
      return times.length >= 3;
    }, WAIT_MS, 'the time shown on the console to tick twice');
    fs.mkdirSync(path.dirname(png), { recursive: true });
    await page.screenshot({ path: png, fullPage: true });
    for (const t of times) emit('TIME', t);
    emit('TEXT', JSON.stringify(await page.innerText('body')));
    for (const c of consoleErrors) emit('CONSOLE', c);
  } else if (scenario === 'console') {
    const [url, png, topic, data] = args;
    await page.setViewportSize({ width: 1280, height: 1000 });
    const foreign = [];
    page.on('request', (r) => { if (!r.url().startsWith(url + '/')) foreign.push(r.url()); });
    await page.goto(url + '/');
    await until(async () => (await figure('connections')) !== '', WAIT_MS, 'the first live figures');
    await subscribeWithForm(topic);
    emit('READY', await figure('connections'));
    // The driver opens its connections, then says how many the figure must show.
    const line = await nextStdinLine();
    if (!line.startsWith('CONNECTIONS ')) fatal(`expected CONNECTIONS on stdin, got ${line}`);
    const target = Number(line.slice(12));
    let most = 0;
    await until(async () => {
      most = Math.max(most, Number(await figure('connections')));
      return most >= target;
    }, 2 * WAIT_MS, `the open-connections figure to reach ${target}`);
    emit('CONNECTIONS', String(most));
    await until(async () => Number(await figure('deliveries_per_s')) > 0, WAIT_MS, 'deliveries per second above 0');
    emit('DELIVERIES', await figure('deliveries_per_s'));
    emit('PUBLISHED', await publishWithForm(topic, 'greeting', data));
    emit('RECEIVED', await receivedRow(data));
    // A few more seconds of figures, so the screenshot shows the ramp and the delivery rate.
    await page.waitForTimeout(4000);
    fs.mkdirSync(path.dirname(png), { recursive: true });
    await page.screenshot({ path: png, fullPage: true });
    emit('FIGURES', await page.evaluate(() => Object.fromEntries(
      [...document.querySelectorAll('.fig b')].map((b) => [b.id.slice(2), b.textContent]))));
    for (const f of foreign) emit('FOREIGN', f);
    for (const c of consoleErrors) emit('CONSOLE', c);
  } else if (scenario === 'console-token') {
    const [url, token, topic, data] = args;
    await page.goto(url + '/');
    await subscribeWithForm(topic);
    const authShown = () => page.evaluate(() => document.getElementById('pub-auth').classList.contains('on'));
    emit('AUTH_FIELD_BEFORE', String(await authShown()));
    emit('WITHOUT_TOKEN', await publishWithForm(topic, '', data));
    emit('AUTH_FIELD_AFTER', String(await authShown()));
    await page.fill('#pub-token', token);
    emit('WITH_TOKEN', await publishWithForm(topic, '', data));
    emit('RECEIVED', await receivedRow(data));
    for (const c of consoleErrors) emit('CONSOLE', c);
  } else if (scenario === 'fetch') {
    const [url, token, bodyKind, topic, n1, n2] = args;
    // fetch-event-source ships ES modules with extension-less relative imports; serve them to the
    // page from node_modules under a path the server never sees.
    const esm = path.join(here, 'node_modules/@microsoft/fetch-event-source/lib/esm');
    await page.route('**/__fetch-event-source/**', (route) => {
      const name = path.basename(new URL(route.request().url()).pathname).replace(/(\.js)?$/, '.js');
      route.fulfill({ status: 200, contentType: 'text/javascript', body: fs.readFileSync(path.join(esm, name)) });
    });
    await page.goto(url + SAME_ORIGIN_PAGE);
    await installRecorder();
    const [contentType, body] = bodyKind === 'json'
      ? ['application/json', JSON.stringify({ topic })]
      : ['application/x-www-form-urlencoded', 'topic=' + encodeURIComponent(topic)];
    // Without the token the subscription must be refused.
    emit('UNAUTHORIZED_STATUS', String(await page.evaluate(async ([ct, b]) =>
      (await fetch('/events', { method: 'POST', headers: { 'Content-Type': ct }, body: b })).status, [contentType, body])));
    await page.evaluate(async ([tok, ct, b]) => {
      const { fetchEventSource } = await import('/__fetch-event-source/index.js');
      class Fatal extends Error {}
      fetchEventSource('/events', {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + tok, 'Content-Type': ct },
        body: b,
        openWhenHidden: true,
        async onopen(res) {
          window.__log.push({ what: 'open', t: performance.now(), status: res.status, contentType: res.headers.get('content-type'), events: window.__events.length });
          if (!res.ok || !(res.headers.get('content-type') || '').startsWith('text/event-stream')) {
            throw new Fatal(`bad response ${res.status}`);
          }
        },
        onmessage(ev) {
          // fetch-event-source calls onmessage for every blank line, even after a block without
          // `data:` (the server's opening `retry:` block); the spec dispatches nothing there, so
          // such calls are skipped. The tests never publish empty data.
          if (ev.data === '') return;
          window.__events.push([ev.event || 'message', ev.data, ev.id]);
        },
        // The server closing the stream is not the end: throwing makes the library retry, after
        // the `retry` the server sent, with Last-Event-ID.
        onclose() {
          window.__log.push({ what: 'close', t: performance.now(), events: window.__events.length });
          throw new Error('stream closed by the server');
        },
        onerror(err) {
          window.__log.push({ what: 'error', t: performance.now(), message: String(err), events: window.__events.length });
          if (err instanceof Fatal) throw err;
          return undefined; // retry after the server's `retry`
        },
      }).catch((err) => window.__log.push({ what: 'fatal', message: String(err) }));
    }, [token, contentType, body]);
    await until(opens, WAIT_MS, 'fetch-event-source open');
    emit('READY');
    await acrossRestart(Number(n1), Number(n2));
    await printRecords();
  } else {
    fatal(`unknown scenario ${scenario}`);
  }
  emit('DONE');
} catch (err) {
  try { await printRecords(); } catch { /* the page may be gone */ }
  await cleanup();
  fatal(err);
}
await cleanup();
process.exit(0);
