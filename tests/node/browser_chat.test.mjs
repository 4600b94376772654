// Browser test: Debian's Chromium, driven by playwright-core, loads the chat
// demo page served by plume's `chat` example and exchanges messages through
// the official phoenix.js client (the page's /phoenix.mjs).
//
// Run: PLUME_CHAT_BIN=build/dev/examples/chat/chat node --test browser_chat.test.mjs
// (cwd tests/node, after `npm ci`; Chromium from scripts/setup.sh). Skipped
// only when /usr/bin/chromium is missing. Every wait is on a page condition or
// a process event, bounded by a timeout; the server listens on 127.0.0.1 and
// the server and the browser are stopped by PID. A page whose network is cut
// (by a TCP relay between it and the chat) and restored a few seconds later
// shows, once it has rejoined, every message it missed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import {
  startServer,
  trackProcess,
  withTimeout,
  Inbox,
  phxConnect,
  recordChannel,
  joinOk,
  closeAllClients,
  makeCert,
} from './support/servers.mjs';

const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium's own connections are
// refused by a closed network; --no-sandbox because the tests run as root.
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

const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does)`;

// ------------------------------------------------------------- chat server

/**
 * Starts `chat --host 127.0.0.1 --port 0` (servers.mjs's startServer) and
 * resolves once it prints its URL; `url` is http://127.0.0.1:PORT/.
 */
async function startChat(args = []) {
  const server = await startServer('PLUME_CHAT_BIN', args, { startTimeoutMs: START_TIMEOUT_MS });
  // The page's websocket URL is checked against this address.
  if (server.host !== '127.0.0.1') {
    await server.stop('SIGKILL');
    throw new Error(`chat listens on ${server.host}, not on 127.0.0.1\n${server.output()}`);
  }
  return { ...server, url: `${server.url}/` };
}

// ------------------------------------------------------------ the network

/**
 * A TCP relay on 127.0.0.1 in front of the chat, so a test can cut a page's
 * network for real: cut() resets every relayed connection (both halves) and
 * resets every new one until restore(). (Chromium's offline emulation,
 * Network.emulateNetworkConditions / context.setOffline, leaves an open
 * WebSocket alone.) `refused` records each connection reset while cut.
 */
async function startRelay(targetPort) {
  const pairs = new Set();
  const refused = new Inbox('connections refused by the relay');
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) {
      client.resetAndDestroy();
      refused.push({ at: Date.now() });
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await withTimeout(
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    }),
    START_TIMEOUT_MS,
    'the relay to listen'
  );
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    refused,
    cut() {
      cut = true;
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      pairs.clear();
    },
    restore() {
      cut = false;
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      await withTimeout(new Promise((resolve) => server.close(resolve)), STOP_TIMEOUT_MS, 'the relay to close');
    },
  };
}

// ---------------------------------------------------------------- browser

/**
 * Launches Chromium through a Playwright browser server, so that the browser
 * process (and its PID) is ours. Playwright gives it a fresh temporary
 * --user-data-dir and removes it when the browser closes; the server's own
 * websocket listens on 127.0.0.1.
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
    await withTimeout(browser.close(), STOP_TIMEOUT_MS, 'the browser connection to close').catch(
      () => {}
    );
    // Closes the browser gracefully (Playwright kills it after its own timeout).
    const closing = server.close().catch(() => {});
    const status = await exitWithin(STOP_TIMEOUT_MS);
    await withTimeout(closing, STOP_TIMEOUT_MS, 'the browser server to close').catch(() => {});
    return status ?? { ...(await exited), killed: `chromium did not exit within ${STOP_TIMEOUT_MS} ms; SIGKILLed` };
  };
  return { browser, pid: proc.pid, stop };
}

// ------------------------------------------------------------------- page

/** One user in one browser context, with every page/console error recorded. */
async function openChat(browser, baseUrl, name, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  const warnings = [];
  page.on('pageerror', (err) => problems.push(`[${name}] page error: ${err.stack || err}`));
  page.on('console', (msg) => {
    const loc = msg.location();
    const text = `[${name}] console.${msg.type()}: ${msg.text()} (${loc.url}:${loc.lineNumber})`;
    if (msg.type() === 'warning') warnings.push(text);
    if (msg.type() !== 'error') return;
    // The browser itself asks for /favicon.ico, which the demo does not serve;
    // that 404 is no error of the page.
    const path = loc.url ? new URL(loc.url).pathname : '';
    if (path === '/favicon.ico' && /\b404\b/.test(msg.text())) return;
    problems.push(text);
  });
  page.on('requestfailed', (req) =>
    problems.push(
      `[${name}] request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`
    )
  );
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`[${name}] HTTP ${res.status()} for ${res.url()}`);
  });
  page.on('crash', () => problems.push(`[${name}] page crashed`));
  const sockets = [];
  page.on('websocket', (ws) => {
    sockets.push(ws.url());
    ws.on('socketerror', (e) => problems.push(`[${name}] websocket error: ${e}`));
  });

  const res = await page.goto(baseUrl, { waitUntil: 'load', timeout: WAIT_MS });
  assert.equal(res.status(), 200, `[${name}] GET ${baseUrl}`);
  assert.equal(await page.title(), 'plume chat');
  return { name, context, page, problems, warnings, sockets };
}

const messageTexts = (page) =>
  page.locator('#messages p.msg').evaluateAll((ps) => ps.map((p) => p.textContent));

async function login(user, baseUrl) {
  const { page, name } = user;
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
  // app.js sets the form's `hidden` property. (Whether the form disappears is
  // up to the page's CSS, which is not what this test checks.)
  assert.equal(await page.$eval('#login', (f) => f.hidden), true, `[${name}] login form hidden`);
  assert.deepEqual(
    user.sockets.map((u) => u.replace(/\?.*$/, '')),
    [`${baseUrl.replace(/^http/, 'ws')}socket/websocket`],
    `[${name}] one websocket to /socket/websocket`
  );
}

async function send(user, body) {
  const { page } = user;
  await page.fill('#body', body);
  await page.click('#send button');
  // The page clears the input once the push is made.
  await page.waitForFunction(() => document.getElementById('body').value === '', null, {
    timeout: WAIT_MS,
  });
}

async function waitForMessage(user, text) {
  await user.page
    .locator('#messages p.msg')
    .filter({ hasText: text })
    .first()
    .waitFor({ state: 'attached', timeout: WAIT_MS })
    .catch(async (err) => {
      const seen = await messageTexts(user.page).catch(() => []);
      throw new Error(
        `[${user.name}] "${text}" never shown: ${err.message}\nmessages: ${JSON.stringify(seen)}`
      );
    });
}

// ------------------------------------------------------------------ tests

describe('chat demo page in Chromium (playwright-core + phoenix.js)', { skip }, () => {
  let chat;
  let chromiumBrowser;
  const users = [];
  const relays = [];

  before(async () => {
    chat = await startChat();
    chromiumBrowser = await startBrowser();
  });

  after(async () => {
    const problems = [];
    await closeAllClients();
    for (const u of users) await u.context.close().catch(() => {});
    for (const r of relays) await r.close().catch((err) => problems.push(err.message));
    if (chromiumBrowser) {
      const status = await chromiumBrowser.stop();
      if (status.killed) problems.push(status.killed);
    }
    if (chat) {
      // stop() throws, with chat's output, when it had to SIGKILL chat.
      const status = await chat.stop('SIGTERM', STOP_TIMEOUT_MS).catch((err) => ({ killed: err.message }));
      if (status.killed) problems.push(status.killed);
      else if (status.code !== 0)
        problems.push(
          `chat exited with code ${status.code}, signal ${status.signal}\n${chat.output()}`
        );
    }
    assert.deepEqual(problems, [], 'clean shutdown');
  });

  it('two users join room:lobby and exchange messages', async (t) => {
    const alice = await openChat(chromiumBrowser.browser, chat.url, 'alice');
    users.push(alice);
    const bob = await openChat(chromiumBrowser.browser, chat.url, 'bob');
    users.push(bob);

    await login(alice, chat.url);
    await login(bob, chat.url);

    const hello = `hello from alice ${randomUUID()}`;
    await send(alice, hello);
    await waitForMessage(bob, `alice: ${hello}`);
    await waitForMessage(alice, `alice: ${hello}`);

    const reply = `hi alice, bob here ${randomUUID()}`;
    await send(bob, reply);
    await waitForMessage(alice, `bob: ${reply}`);
    await waitForMessage(bob, `bob: ${reply}`);

    // Exactly these messages, in this order, on both pages; no error lines.
    for (const u of [alice, bob]) {
      assert.deepEqual(
        await messageTexts(u.page),
        [`alice: ${hello}`, `bob: ${reply}`],
        `[${u.name}] messages`
      );
      assert.equal(await u.page.locator('#messages p.error').count(), 0, `[${u.name}] error lines`);
      assert.equal(
        await u.page.evaluate(() => window.plumeChat.socket.isConnected()),
        true,
        `[${u.name}] still connected`
      );
    }
    for (const w of [...alice.warnings, ...bob.warnings]) t.diagnostic(w);
    assert.deepEqual(
      [...alice.problems, ...bob.problems],
      [],
      'page errors, console errors, failed requests or HTTP errors'
    );
  });
  it('a page that loses its connection for a few seconds shows every message it missed', async (t) => {
    // The page reaches the chat through a relay that can cut its network;
    // dave (phoenix.js in Node) talks to the chat directly.
    const relay = await startRelay(chat.port);
    relays.push(relay);
    const carol = await openChat(chromiumBrowser.browser, relay.url, 'carol');
    users.push(carol);
    await login(carol, relay.url);
    const daveSocket = await phxConnect(chat.socketUrl, { params: { user_id: 'dave' } });
    const dave = daveSocket.channel('room:lobby', {});
    const daveInbox = recordChannel(dave, ['new_msg']);
    await joinOk(dave);
    const say = async (body) => {
      dave.push('new_msg', { body });
      await daveInbox.waitFor((e) => e.payload.body === body, { timeoutMs: WAIT_MS, what: `dave's own copy of "${body}"` });
    };
    const id = randomUUID();
    const before = `before the cut ${id}`;
    const missed = [1, 2, 3].map((i) => `missed ${i} ${id}`);
    const after = `after the reconnect ${id}`;

    await say(before);
    await waitForMessage(carol, `dave: ${before}`);
    const joinRef = await carol.page.evaluate(() => window.plumeChat.channel.joinRef());

    // Cut: the page notices its websocket is gone; then its reconnects are
    // refused for a few seconds (phoenix.js's backoff: 10, 50, 100, 150, 200,
    // 250, 500, 1000 ms: 8 refused attempts take about 2.3 s).
    const problemsAtCut = carol.problems.length;
    const cutAt = Date.now();
    relay.cut();
    await carol.page.waitForFunction(
      () =>
        !window.plumeChat.socket.isConnected() &&
        document.getElementById('status').textContent === 'disconnected, reconnecting…',
      null,
      { timeout: WAIT_MS }
    );
    for (const m of missed) await say(m);
    for (let i = 0; i < 8; i++) {
      await relay.refused.waitFor(() => true, { timeoutMs: WAIT_MS, what: `refused reconnect ${i + 1} of the page` });
    }
    assert.equal(await carol.page.evaluate(() => window.plumeChat.socket.isConnected()), false, 'still offline');
    const offline = await messageTexts(carol.page);
    assert.deepEqual(offline, [`dave: ${before}`], 'nothing new reached the page while it was offline');

    // Restore: the page reconnects and rejoins with the offset it last saw.
    relay.restore();
    await carol.page.waitForFunction(
      (before) =>
        window.plumeChat.socket.isConnected() &&
        window.plumeChat.channel.state === 'joined' &&
        window.plumeChat.channel.joinRef() !== before,
      joinRef,
      { timeout: WAIT_MS }
    );
    const problemsAtRejoin = carol.problems.length;
    t.diagnostic(`offline for ${Date.now() - cutAt} ms, ${relay.refused.items.length} reconnects refused`);

    for (const m of missed) await waitForMessage(carol, `dave: ${m}`);
    await say(after);
    await waitForMessage(carol, `dave: ${after}`);
    assert.deepEqual(
      await messageTexts(carol.page),
      [before, ...missed, after].map((b) => `dave: ${b}`),
      '[carol] every message once, in order'
    );
    assert.deepEqual(
      await carol.page.locator('#messages p.error').evaluateAll((ps) => ps.map((p) => p.textContent)),
      [],
      '[carol] no error line (no "some messages were missed while offline")'
    );
    assert.equal(await carol.page.textContent('#status'), 'connected as carol');

    // The refused reconnects show up as websocket errors while the network
    // was cut, and as failed long-poll requests once phoenix.js falls back
    // to long-poll (the page's longPollFallbackMs); nothing else went wrong,
    // before or after.
    const wsUrl = `${relay.url.replace(/^http/, 'ws')}socket/websocket?vsn=2.0.0`;
    const lpUrl = `${relay.url}socket/longpoll?`;
    const expected = (p) =>
      p.startsWith('[carol] websocket error: ') ||
      p.startsWith(`[carol] console.error: WebSocket connection to '${wsUrl}' failed: `) ||
      p.startsWith(`[carol] request failed: GET ${lpUrl}`) ||
      (p.startsWith('[carol] console.error: Failed to load resource: net::') && p.includes(`(${lpUrl}`));
    const during = carol.problems.slice(problemsAtCut, problemsAtRejoin);
    assert.ok(during.length > 0, 'the refused reconnects were seen by the page');
    assert.deepEqual(during.filter((p) => !expected(p)), [], 'problems while the network was cut');
    assert.deepEqual(
      [...carol.problems.slice(0, problemsAtCut), ...carol.problems.slice(problemsAtRejoin)],
      [],
      'page errors, console errors, failed requests or HTTP errors outside the cut'
    );
    for (const w of carol.warnings) t.diagnostic(w);
  });
});

describe('chat demo page over https:// in Chromium (wss://, a self-signed certificate)', { skip }, () => {
  let chat;
  let chromiumBrowser;
  const users = [];

  before(async () => {
    const cert = makeCert();
    chat = await startChat(['--tls-cert', cert.cert, '--tls-key', cert.key]);
    chromiumBrowser = await startBrowser();
  });

  after(async () => {
    const problems = [];
    for (const u of users) await u.context.close().catch(() => {});
    if (chromiumBrowser) {
      const status = await chromiumBrowser.stop();
      if (status.killed) problems.push(status.killed);
    }
    if (chat) {
      const status = await chat.stop('SIGTERM', STOP_TIMEOUT_MS).catch((err) => ({ killed: err.message }));
      if (status.killed) problems.push(status.killed);
      else if (status.code !== 0) problems.push(`chat exited with code ${status.code}\n${chat.output()}`);
    }
    assert.deepEqual(problems, [], 'clean shutdown');
  });

  it('two users on an https page chat over wss:// (phoenix.js picks wss from the page)', async () => {
    assert.match(chat.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    // The certificate is signed by nobody the browser trusts: the contexts
    // accept it, as a user clicking through the warning would.
    const alice = await openChat(chromiumBrowser.browser, chat.url, 'alice', { ignoreHTTPSErrors: true });
    users.push(alice);
    const bob = await openChat(chromiumBrowser.browser, chat.url, 'bob', { ignoreHTTPSErrors: true });
    users.push(bob);
    await login(alice, chat.url); // checks the one websocket is wss://127.0.0.1:PORT/socket/websocket
    await login(bob, chat.url);
    const hello = `hello over TLS ${randomUUID()}`;
    await send(alice, hello);
    await waitForMessage(bob, `alice: ${hello}`);
    const reply = `bob over TLS ${randomUUID()}`;
    await send(bob, reply);
    await waitForMessage(alice, `bob: ${reply}`);
    for (const u of [alice, bob]) {
      assert.deepEqual(await messageTexts(u.page), [`alice: ${hello}`, `bob: ${reply}`], `[${u.name}] messages`);
      assert.deepEqual(u.problems, [], `[${u.name}] no page errors`);
    }
  });
});
