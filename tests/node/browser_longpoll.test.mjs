// Browser test: the chat demo page in Debian's Chromium (playwright-core) when
// the network blocks WebSockets. The pages reach the chat through a proxy on
// 127.0.0.1 that forwards plain HTTP (over keep-alive connections to plume)
// and refuses every WebSocket upgrade, as an enterprise proxy does; phoenix.js
// (the page's /phoenix.mjs, longPollFallbackMs: 2500) tries its WebSocket,
// falls back to long-poll (/socket/longpoll) by itself, and chat and presence
// work as before. A second test puts a page on ?transport=longpoll next to a
// page on a WebSocket, both straight to the chat.
//
// Run: PLUME_CHAT_BIN=build/dev/examples/chat/chat node --test browser_longpoll.test.mjs
// (cwd tests/node, after `npm ci`; Chromium from scripts/setup.sh). Skipped
// only when /usr/bin/chromium is missing. Every wait is on a page condition or
// a process event, bounded by a timeout; the servers listen on 127.0.0.1 and
// the servers and the browser are stopped by PID.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import { startServer, trackProcess, withTimeout } from './support/servers.mjs';

const CHROMIUM = '/usr/bin/chromium';
// As in browser_chat.test.mjs: without the background-networking flags
// Chromium's own connections would show up; --no-sandbox as the tests run as root.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const START_TIMEOUT_MS = 15000; // server or browser start
const WAIT_MS = 10000; // any page condition
const STOP_TIMEOUT_MS = 10000; // a process exiting after it was asked to
// The chat's long-poll window: a poll is answered within it, and a session
// not polled for 1.5 × window is closed (its presence leaves).
const LONGPOLL_WINDOW_MS = 1000;
const CHAT_ARGS = ['--longpoll-window-ms', String(LONGPOLL_WINDOW_MS)];

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does)`;

// ------------------------------------------------------------- chat server

/**
 * Starts `chat --host 127.0.0.1 --port 0 ARGS` (servers.mjs's startServer) and
 * resolves once it prints its URL; `url` is http://127.0.0.1:PORT/.
 */
async function startChat(args = []) {
  const server = await startServer('PLUME_CHAT_BIN', args, { startTimeoutMs: START_TIMEOUT_MS });
  if (server.host !== '127.0.0.1') {
    await server.stop('SIGKILL');
    throw new Error(`chat listens on ${server.host}, not on 127.0.0.1\n${server.output()}`);
  }
  return { ...server, url: `${server.url}/` };
}

/** Stops chat by PID (SIGTERM); a string describing what went wrong, or null. */
async function stopChat(chat) {
  const status = await chat.stop('SIGTERM', STOP_TIMEOUT_MS).catch((err) => ({ killed: err.message }));
  if (status.killed) return status.killed;
  if (status.code !== 0) return `chat exited with code ${status.code}, signal ${status.signal}\n${chat.output()}`;
  return null;
}

// ------------------------------------------------------------ the network

// Hop-by-hop headers (RFC 9110 7.6.1): each side of the proxy has its own.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const endToEnd = (headers) =>
  Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase())));

/**
 * An HTTP proxy on 127.0.0.1 in front of the chat that blocks WebSockets: it
 * forwards every ordinary request (headers as sent, Host included, so the
 * chat's same-host Origin check sees the page's own origin; bodies streamed
 * both ways) over keep-alive connections to the chat, and blocks every
 * WebSocket upgrade: with `upgrades: 'refuse'` it answers 403 and closes the
 * connection, with 'hang' it never answers (the browser gives up). `stats`
 * counts what it did: upgrades blocked (their paths), requests forwarded (by
 * path), upstream connections opened and requests sent on a reused one, and
 * errors (which also answer 502).
 */
async function startBlockingProxy(targetPort, { upgrades = 'refuse' } = {}) {
  const agent = new http.Agent({ keepAlive: true });
  const stats = {
    upgradesRefused: [], // request paths
    requests: 0,
    longpollGets: 0,
    longpollPosts: 0,
    upstreamConnections: 0,
    reusedConnections: 0, // requests sent on a kept-alive upstream connection
    aborted: 0, // requests the browser gave up on before the answer (e.g. a page closed)
    postOrigins: new Set(), // Origin headers of the long-poll POSTs
    errors: [],
  };
  const clientSockets = new Set();
  const server = http.createServer((req, res) => {
    stats.requests++;
    const path = req.url.replace(/\?.*$/, '');
    if (path === '/socket/longpoll') {
      if (req.method === 'GET') stats.longpollGets++;
      else if (req.method === 'POST') {
        stats.longpollPosts++;
        stats.postOrigins.add(req.headers.origin ?? '(none)');
      }
    }
    const upstream = http.request({
      host: '127.0.0.1',
      port: targetPort,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.headers), // includes the browser's Host
      agent,
    });
    upstream.on('socket', (socket) => {
      if (upstream.reusedSocket) stats.reusedConnections++;
      else stats.upstreamConnections++;
      void socket;
    });
    upstream.on('response', (ures) => {
      res.writeHead(ures.statusCode, ures.statusMessage, endToEnd(ures.headers));
      ures.pipe(res);
      ures.on('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      if (res.writableFinished || req.destroyed) return;
      stats.errors.push(`${req.method} ${req.url}: ${err.code || err.message}`);
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { 'content-type': 'text/plain' }).end(`proxy: ${err.message}`);
    });
    // The browser went away (a poll aborted, a page closed): so does the request to the chat.
    res.on('close', () => {
      if (!res.writableFinished) {
        stats.aborted++;
        upstream.destroy();
      }
    });
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    clientSockets.add(socket);
    socket.on('close', () => clientSockets.delete(socket));
  });
  server.on('upgrade', (req, socket) => {
    stats.upgradesRefused.push(req.url.replace(/\?.*$/, ''));
    socket.on('error', () => {});
    if (upgrades === 'hang') return; // the connection stays open, unanswered (closed with the proxy)
    socket.end(
      'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\n' +
        'websockets are blocked'
    );
  });
  await withTimeout(
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    }),
    START_TIMEOUT_MS,
    'the proxy to listen'
  );
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    stats,
    async close() {
      for (const s of clientSockets) s.destroy();
      agent.destroy();
      await withTimeout(new Promise((resolve) => server.close(resolve)), STOP_TIMEOUT_MS, 'the proxy to close');
    },
  };
}

// ---------------------------------------------------------------- browser

/**
 * Launches Chromium through a Playwright browser server, so that the browser
 * process (and its PID) is ours; stop() closes it and SIGKILLs it by PID if it
 * does not exit in time.
 */
async function startBrowser() {
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    chromiumSandbox: false,
    host: '127.0.0.1',
    port: 0,
    timeout: START_TIMEOUT_MS,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const proc = server.process();
  const { exited, exitWithin } = trackProcess(proc);
  let browser;
  try {
    browser = await chromium.connect(server.wsEndpoint(), { timeout: START_TIMEOUT_MS });
  } catch (err) {
    await server.kill();
    throw err;
  }
  const stop = async () => {
    await withTimeout(browser.close(), STOP_TIMEOUT_MS, 'the browser connection to close').catch(() => {});
    const closing = server.close().catch(() => {});
    const status = await exitWithin(STOP_TIMEOUT_MS);
    await withTimeout(closing, STOP_TIMEOUT_MS, 'the browser server to close').catch(() => {});
    return status ?? { ...(await exited), killed: `chromium did not exit within ${STOP_TIMEOUT_MS} ms; SIGKILLed` };
  };
  return { browser, pid: proc.pid, stop };
}

// ------------------------------------------------------------------- page

/**
 * One user in one browser context at `pageUrl`, with every page/console
 * error, failed request and HTTP error recorded in `problems`, the WebSockets
 * the page opened in `sockets` and its long-poll requests in `longpolls`.
 */
async function openChat(browser, pageUrl, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  const warnings = [];
  const sockets = [];
  const longpolls = [];
  let closing = false; // once the test closes the page, its aborted requests are no problem
  page.on('pageerror', (err) => problems.push(`[${name}] page error: ${err.stack || err}`));
  page.on('console', (msg) => {
    const loc = msg.location();
    const text = `[${name}] console.${msg.type()}: ${msg.text()} (${loc.url}:${loc.lineNumber})`;
    if (msg.type() === 'warning') warnings.push(text);
    if (msg.type() === 'error') problems.push(text);
  });
  page.on('requestfailed', (req) => {
    if (!closing) problems.push(`[${name}] request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
  });
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/socket/longpoll') longpolls.push(req.method());
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`[${name}] HTTP ${res.status()} for ${res.url()}`);
  });
  page.on('crash', () => problems.push(`[${name}] page crashed`));
  page.on('websocket', (ws) => {
    sockets.push(ws.url());
    ws.on('socketerror', (e) => problems.push(`[${name}] websocket error: ${e}`));
  });

  const res = await page.goto(pageUrl, { waitUntil: 'load', timeout: WAIT_MS });
  assert.equal(res.status(), 200, `[${name}] GET ${pageUrl}`);
  assert.equal(await page.title(), 'plume chat');
  return {
    name,
    context,
    page,
    problems,
    warnings,
    sockets,
    longpolls,
    async close() {
      closing = true;
      await context.close();
    },
  };
}

const messageTexts = (page) => page.locator('#messages p.msg').evaluateAll((ps) => ps.map((p) => p.textContent));

/**
 * Logs in as the user's name and waits until the page has joined room:lobby;
 * resolves with the name of the transport the page's socket ended up on
 * ("WebSocket" or "LongPoll") and how long the login took.
 */
async function login(user) {
  const { page, name } = user;
  const started = Date.now();
  await page.fill('#user', name);
  await page.click('#login button');
  await page
    .locator('#messages p.info', { hasText: `joined room:lobby as ${name}` })
    .waitFor({ state: 'attached', timeout: WAIT_MS });
  await page.waitForFunction(
    (n) =>
      !document.getElementById('body').disabled &&
      document.getElementById('status').textContent === `connected as ${n}` &&
      window.plumeChat?.socket?.isConnected() &&
      window.plumeChat?.channel?.state === 'joined',
    name,
    { timeout: WAIT_MS }
  );
  const transport = await page.evaluate(() =>
    window.plumeChat.socket.transport === window.WebSocket ? 'WebSocket' : window.plumeChat.socket.transport.name
  );
  return { transport, ms: Date.now() - started };
}

async function send(user, body) {
  const { page } = user;
  await page.fill('#body', body);
  await page.click('#send button');
  // The page clears the input once the push is made.
  await page.waitForFunction(() => document.getElementById('body').value === '', null, { timeout: WAIT_MS });
}

async function waitForMessage(user, text) {
  await user.page
    .locator('#messages p.msg')
    .filter({ hasText: text })
    .first()
    .waitFor({ state: 'attached', timeout: WAIT_MS })
    .catch(async (err) => {
      const seen = await messageTexts(user.page).catch(() => []);
      throw new Error(`[${user.name}] "${text}" never shown: ${err.message}\nmessages: ${JSON.stringify(seen)}`);
    });
}

/** Waits until the page's #online lists exactly `names` (in any order). */
async function waitForOnline(user, names, timeoutMs = WAIT_MS) {
  const want = [...names].sort();
  await user.page
    .waitForFunction(
      (w) =>
        JSON.stringify(
          document
            .getElementById('online')
            .textContent.split(', ')
            .filter((s) => s)
            .sort()
        ) === JSON.stringify(w),
      want,
      { timeout: timeoutMs }
    )
    .catch(async (err) => {
      const shown = await user.page.textContent('#online').catch(() => '?');
      throw new Error(`[${user.name}] #online never became ${JSON.stringify(want)}: ${err.message}\n#online: "${shown}"`);
    });
}

// ------------------------------------------------------------------ tests

describe('chat demo page in Chromium when WebSockets are blocked (phoenix.js long-poll)', { skip }, () => {
  let chromiumBrowser;
  const chats = [];
  const proxies = [];
  const users = [];

  before(async () => {
    chromiumBrowser = await startBrowser();
  });

  after(async () => {
    const problems = [];
    for (const u of users) await u.context.close().catch(() => {});
    for (const p of proxies) await p.close().catch((err) => problems.push(err.message));
    if (chromiumBrowser) {
      const status = await chromiumBrowser.stop();
      if (status.killed) problems.push(status.killed);
    }
    for (const chat of chats) {
      const problem = await stopChat(chat);
      if (problem) problems.push(problem);
    }
    assert.deepEqual(problems, [], 'clean shutdown');
  });

  it('behind a proxy that refuses WebSocket upgrades, two pages fall back to long-poll: chat and presence work', async (t) => {
    const chat = await startChat(CHAT_ARGS);
    chats.push(chat);
    const proxy = await startBlockingProxy(chat.port);
    proxies.push(proxy);

    const alice = await openChat(chromiumBrowser.browser, proxy.url, 'alice');
    users.push(alice);
    const bob = await openChat(chromiumBrowser.browser, proxy.url, 'bob');
    users.push(bob);

    // No ?transport: each page tries its WebSocket first, is refused, and
    // phoenix.js falls back to LongPoll by itself (and remembers it for the tab).
    for (const u of [alice, bob]) {
      const { transport, ms } = await login(u);
      t.diagnostic(`[${u.name}] joined over ${transport} ${ms} ms after the login`);
      assert.equal(transport, 'LongPoll', `[${u.name}] the socket's transport after the fallback`);
      assert.deepEqual(
        u.sockets.map((s) => s.replace(/\?.*$/, '')),
        [`${proxy.url.replace(/^http/, 'ws')}socket/websocket`],
        `[${u.name}] one WebSocket tried, to /socket/websocket`
      );
      assert.equal(
        await u.page.evaluate(() => sessionStorage.getItem('phx:fallback:LongPoll')),
        'true',
        `[${u.name}] phoenix.js remembers the fallback`
      );
      assert.ok(u.longpolls.includes('GET'), `[${u.name}] long-poll GETs seen by the page`);
    }

    // Presence: each page lists both users.
    await waitForOnline(alice, ['alice', 'bob']);
    await waitForOnline(bob, ['alice', 'bob']);

    const hello = `hello from alice ${randomUUID()}`;
    await send(alice, hello);
    await waitForMessage(bob, `alice: ${hello}`);
    await waitForMessage(alice, `alice: ${hello}`);
    const reply = `hi alice, bob here ${randomUUID()}`;
    await send(bob, reply);
    await waitForMessage(alice, `bob: ${reply}`);
    await waitForMessage(bob, `bob: ${reply}`);
    for (const u of [alice, bob]) {
      assert.deepEqual(await messageTexts(u.page), [`alice: ${hello}`, `bob: ${reply}`], `[${u.name}] messages`);
      assert.equal(await u.page.locator('#messages p.error').count(), 0, `[${u.name}] error lines`);
      assert.ok(u.longpolls.includes('POST'), `[${u.name}] long-poll POSTs seen by the page`);
    }
    // Still on long-poll, and still connected, after a few poll windows.
    assert.deepEqual(
      await Promise.all([alice, bob].map((u) => u.page.evaluate(() => window.plumeChat.socket.isConnected()))),
      [true, true],
      'both pages still connected'
    );

    // bob's tab closes: alice's #online drops him, whether through a
    // phx_leave or the chat closing his unpolled session (1.5 × window).
    const closedAt = Date.now();
    await bob.close();
    await waitForOnline(alice, ['alice'], WAIT_MS);
    t.diagnostic(`bob left alice's #online ${Date.now() - closedAt} ms after his context closed`);
    assert.equal(await alice.page.textContent('#status'), 'connected as alice');

    // The proxy refused the WebSockets and forwarded the long-poll requests,
    // over upstream connections it kept alive.
    const s = proxy.stats;
    t.diagnostic(`proxy: ${JSON.stringify({ ...s, postOrigins: [...s.postOrigins] })}`);
    assert.ok(s.upgradesRefused.length >= 2, `upgrades refused: ${JSON.stringify(s.upgradesRefused)}`);
    assert.ok(s.upgradesRefused.every((p) => p === '/socket/websocket'), 'only /socket/websocket upgrades');
    assert.ok(s.longpollGets >= 4, `long-poll GETs forwarded: ${s.longpollGets}`);
    assert.ok(s.longpollPosts >= 4, `long-poll POSTs forwarded: ${s.longpollPosts}`); // 2 joins, 2 messages
    // The chat checked these against the Host the proxy passed on (the page's).
    assert.deepEqual([...s.postOrigins], [proxy.url.replace(/\/$/, '')], 'Origin of the long-poll POSTs');
    assert.ok(s.reusedConnections > 0, `requests on kept-alive connections to the chat: ${s.reusedConnections}`);
    assert.ok(
      s.upstreamConnections < s.requests,
      `fewer connections to the chat (${s.upstreamConnections}) than requests (${s.requests})`
    );
    assert.deepEqual(s.errors, [], 'proxy errors (upstream requests that failed)');

    // The refused upgrades are the only problems the pages saw.
    for (const u of [alice, bob]) {
      const wsUrl = `${proxy.url.replace(/^http/, 'ws')}socket/websocket?vsn=2.0.0`;
      const refused = (p) =>
        p.startsWith(`[${u.name}] websocket error: `) ||
        p.startsWith(`[${u.name}] console.error: WebSocket connection to '${wsUrl}' failed: `);
      assert.ok(u.problems.some(refused), `[${u.name}] the refused upgrade was seen by the page`);
      for (const p of u.problems.filter(refused)) t.diagnostic(p);
      assert.deepEqual(u.problems.filter((p) => !refused(p)), [], `[${u.name}] page errors, console errors, failed requests or HTTP errors`);
      for (const w of u.warnings) t.diagnostic(w);
    }
  });

  it('behind a proxy that never answers WebSocket upgrades, the page falls back after longPollFallbackMs (2.5 s)', async (t) => {
    const chat = await startChat(CHAT_ARGS);
    chats.push(chat);
    const proxy = await startBlockingProxy(chat.port, { upgrades: 'hang' });
    proxies.push(proxy);
    const erin = await openChat(chromiumBrowser.browser, proxy.url, 'erin');
    users.push(erin);

    // No error from the WebSocket: only phoenix.js's timer ends the attempt.
    const { transport, ms } = await login(erin);
    t.diagnostic(`[erin] joined over ${transport} ${ms} ms after the login`);
    assert.equal(transport, 'LongPoll', '[erin] the socket\'s transport after the fallback');
    assert.ok(ms >= 2500, `[erin] joined ${ms} ms after the login: before longPollFallbackMs`);
    assert.deepEqual(proxy.stats.upgradesRefused, ['/socket/websocket'], 'one upgrade left unanswered');
    assert.ok(proxy.stats.longpollGets >= 2, `long-poll GETs forwarded: ${proxy.stats.longpollGets}`);

    await waitForOnline(erin, ['erin']);
    const hello = `anyone here? ${randomUUID()}`;
    await send(erin, hello);
    await waitForMessage(erin, `erin: ${hello}`);
    assert.deepEqual(await messageTexts(erin.page), [`erin: ${hello}`], '[erin] messages');
    assert.deepEqual(proxy.stats.errors, [], 'proxy errors (upstream requests that failed)');

    // The abandoned WebSocket may be reported by Chromium; nothing else went wrong.
    const wsUrl = `${proxy.url.replace(/^http/, 'ws')}socket/websocket?vsn=2.0.0`;
    const abandoned = (p) =>
      p.startsWith('[erin] websocket error: ') ||
      p.startsWith(`[erin] console.error: WebSocket connection to '${wsUrl}' failed: `);
    for (const p of erin.problems.filter(abandoned)) t.diagnostic(p);
    assert.deepEqual(erin.problems.filter((p) => !abandoned(p)), [], '[erin] page errors, console errors, failed requests or HTTP errors');
    for (const w of erin.warnings) t.diagnostic(w);
  });

  it('a page on ?transport=longpoll and a page on a WebSocket chat with each other', async (t) => {
    const chat = await startChat(CHAT_ARGS);
    chats.push(chat);
    const carol = await openChat(chromiumBrowser.browser, `${chat.url}?transport=longpoll`, 'carol');
    users.push(carol);
    const dave = await openChat(chromiumBrowser.browser, chat.url, 'dave');
    users.push(dave);

    const carolLogin = await login(carol);
    const daveLogin = await login(dave);
    t.diagnostic(`carol joined over ${carolLogin.transport} in ${carolLogin.ms} ms, dave over ${daveLogin.transport} in ${daveLogin.ms} ms`);
    assert.equal(carolLogin.transport, 'LongPoll', '[carol] transport');
    assert.deepEqual(carol.sockets, [], '[carol] no WebSocket tried');
    assert.ok(carol.longpolls.includes('GET'), '[carol] long-poll GETs');
    assert.equal(daveLogin.transport, 'WebSocket', '[dave] transport');
    assert.deepEqual(
      dave.sockets.map((s) => s.replace(/\?.*$/, '')),
      [`${chat.url.replace(/^http/, 'ws')}socket/websocket`],
      '[dave] one WebSocket'
    );
    assert.deepEqual(dave.longpolls, [], '[dave] no long-poll request');

    await waitForOnline(carol, ['carol', 'dave']);
    await waitForOnline(dave, ['carol', 'dave']);

    const id = randomUUID();
    const said = [];
    for (const [from, to, body] of [
      [carol, dave, `from long-poll ${id}`],
      [dave, carol, `from websocket ${id}`],
      [carol, dave, `long-poll again ${id}`],
      [dave, carol, `websocket again ${id}`],
    ]) {
      await send(from, body);
      said.push(`${from.name}: ${body}`);
      await waitForMessage(to, `${from.name}: ${body}`);
      await waitForMessage(from, `${from.name}: ${body}`);
    }
    for (const u of [carol, dave]) {
      assert.deepEqual(await messageTexts(u.page), said, `[${u.name}] every message once, in order`);
      assert.equal(await u.page.locator('#messages p.error').count(), 0, `[${u.name}] error lines`);
    }
    assert.ok(carol.longpolls.includes('POST'), '[carol] long-poll POSTs');

    // dave (WebSocket) leaves: carol (long-poll) sees it.
    await dave.close();
    await waitForOnline(carol, ['carol']);
    assert.equal(await carol.page.textContent('#status'), 'connected as carol');

    for (const u of [carol, dave]) {
      assert.deepEqual(u.problems, [], `[${u.name}] page errors, console errors, failed requests or HTTP errors`);
      for (const w of u.warnings) t.diagnostic(w);
    }
  });
});
