// Drives headless Chromium (Debian's /usr/bin/chromium through playwright-core) through nginx in
// front of sse-server, for server/tests/proxy.rs. Usage: node proxy-browser.mjs SCENARIO ARGS...
//
//   many      ORIGIN TOPIC STREAMS   a page on ORIGIN opens STREAMS EventSources to the same
//                                    topic; prints PROTOCOL (the page's, h2 or http/1.1), then
//                                    OPENED n once every stream is open or none opened for 3 s;
//                                    then the driver publishes and writes `COUNT k` on stdin;
//                                    prints STREAM [i, ids...] for each stream once every open one
//                                    has k events (or 3 s passed with no new event), then DONE
//   reconnect ORIGIN TOPIC           one EventSource; prints PROTOCOL, OPEN on each open, ERROR
//                                    when the stream is cut, EVENT [data, lastEventId] per event,
//                                    until the driver writes `STOP` on stdin
//
// The certificate is a throw-away one the test made: certificate errors are ignored. The line
// protocol on stdout and stdin is described in lib.mjs.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { deadline, emit, fatal, nextStdinLine, until } from './lib.mjs';

const CHROMIUM = process.env.SSE_TEST_CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 30_000;
const [scenario, origin, topic, streams] = process.argv.slice(2);

if (!fs.existsSync(CHROMIUM)) {
  fatal(`Chromium could not be found at ${CHROMIUM}; install it with ./scripts/setup-test-deps.sh`);
}
const userDataDir = fs.mkdtempSync(path.join(process.env.SSE_TEST_PROFILES || os.tmpdir(), 'sse-chromium-'));
let context;
async function cleanup() {
  try { await context?.close(); } finally { fs.rmSync(userDataDir, { recursive: true, force: true }); }
}
deadline(120_000, cleanup);

context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  ignoreHTTPSErrors: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors',
  ],
});
const page = context.pages()[0] ?? await context.newPage();
// A page of the proxied origin that opens no stream of its own.
await page.goto(`${origin}/healthz`);
emit('PROTOCOL', await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol));

const url = `/events?topic=${encodeURIComponent(topic)}`;

/** Waits until `count()` stops growing for `quietMs`, or `done()` holds. */
async function settle(count, done, quietMs) {
  let last = -1;
  let since = Date.now();
  await until(async () => {
    const now = await count();
    if (now !== last) { last = now; since = Date.now(); }
    return (await done()) || Date.now() - since > quietMs;
  }, WAIT_MS, 'streams to settle');
}

if (scenario === 'many') {
  const n = Number(streams);
  await page.evaluate(({ url, n }) => {
    window.streams = [];
    for (let i = 0; i < n; i++) {
      const s = { opened: false, ids: [] };
      const source = new EventSource(url);
      source.onopen = () => { s.opened = true; };
      source.onmessage = (e) => { s.ids.push(e.lastEventId); };
      window.streams.push(s);
    }
  }, { url, n });
  const opened = () => page.evaluate(() => window.streams.filter((s) => s.opened).length);
  await settle(opened, async () => (await opened()) === n, 3000);
  emit('OPENED', String(await opened()));
  const line = await nextStdinLine();
  const k = Number(line.replace(/^COUNT /, ''));
  const received = () => page.evaluate(() => window.streams.reduce((sum, s) => sum + s.ids.length, 0));
  const allHave = () => page.evaluate((k) => window.streams.filter((s) => s.opened).every((s) => s.ids.length >= k), k);
  await settle(received, allHave, 3000);
  const all = await page.evaluate(() => window.streams.map((s) => s.ids));
  all.forEach((ids, i) => emit('STREAM', [i, ...ids]));
  emit('DONE');
} else if (scenario === 'reconnect') {
  await page.exposeFunction('report', (keyword, payload) => emit(keyword, payload));
  await page.evaluate((url) => {
    const source = new EventSource(url);
    source.onopen = () => window.report('OPEN');
    source.onerror = () => window.report('ERROR', String(source.readyState));
    source.onmessage = (e) => window.report('EVENT', [e.data, e.lastEventId]);
  }, url);
  await nextStdinLine();
  emit('DONE');
} else {
  fatal(`unknown scenario ${scenario}`);
}
await cleanup();
process.exit(0);
