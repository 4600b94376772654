// Phoenix's long-poll transport (/socket/longpoll) and HTTP/1.1 keep-alive,
// against plume's examples/chat, with real clients: phoenix.js's LongPoll
// (over Node's fetch) next to phoenix.js over WebSocket, fetch() requests
// written by hand for the session protocol, and raw TCP sockets where the
// connection itself matters (keep-alive, pipelining, close, limits).
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat \
//        node --test longpoll.test.mjs
// Every wait is on an event, an answer or a condition, bounded by a timeout
// that fails the test (a poll is itself bounded by the server's window);
// servers listen on 127.0.0.1 and are stopped by PID. Short windows
// (--longpoll-window-ms) keep the 204s and session timeouts quick.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { LongPoll, Presence } from 'phoenix';
import {
  startServer,
  closeAllClients,
  withTimeout,
  Inbox,
  phxSocket,
  phxConnect,
  presenceMember,
  recordChannel,
  trackJoins,
  pushResult,
  joinOk,
  encodeBinaryPush,
  httpGet,
  openRaw,
  v2Url,
} from './support/servers.mjs';

const BIN = 'PLUME_CHAT_BIN';
const T = { timeout: 30000 };
const LONGPOLL_PATH = '/socket/longpoll';

// ------------------------------------------------------------ fetch helpers

/**
 * One request to the server's long-poll endpoint with fetch (Node's undici,
 * which keeps connections alive): ?vsn=2.0.0 plus `params`, plus token=…
 * when `token` is given. Resolves with {http, headers, text, json}.
 */
async function lpRequest(server, { method = 'GET', params = {}, token, headers = {}, body, timeoutMs = 10000 } = {}) {
  const q = new URLSearchParams({ vsn: '2.0.0', ...params });
  if (token !== undefined) q.append('token', token);
  const url = `${server.url}${LONGPOLL_PATH}?${q}`;
  const what = `${method} ${LONGPOLL_PATH}?${q.toString().slice(0, 80)}`;
  let res;
  let text;
  try {
    res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
    text = await res.text();
  } catch (e) {
    throw new Error(`${what} failed: ${e.name}: ${e.message}`);
  }
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { http: res.status, headers: res.headers, text, json };
}

/** The JSON body of a long-poll answer, after checking the HTTP level every answer shares. */
function lpBody(r, what) {
  assert.equal(r.http, 200, `${what}: HTTP status (body ${r.text})`);
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8', `${what}: content-type`);
  assert.equal(r.headers.get('cache-control'), 'no-store', `${what}: cache-control`);
  assert.equal(r.headers.get('access-control-allow-origin'), '*', `${what}: CORS`);
  assert.ok(r.json && typeof r.json === 'object', `${what}: a JSON object body, got ${r.text}`);
  return r.json;
}

/** A long-poll session driven by hand: open(), post(lines), poll(); decoded messages in `inbox`. */
class LpSession {
  constructor(server, name = 'long-poll session') {
    this.server = server;
    this.name = name;
    this.token = null;
    this.inbox = new Inbox(name);
    this.params = {};
  }

  async open(params) {
    this.params = params;
    const body = lpBody(await lpRequest(this.server, { params }), `${this.name}: open`);
    assert.equal(body.status, 410, `${this.name}: a new session answers 410, got ${JSON.stringify(body)}`);
    assert.equal(typeof body.token, 'string');
    assert.deepEqual(body.messages, []);
    this.token = body.token;
    return body;
  }

  /** POSTs `lines` (ndjson by default, else the one message as the body); resolves with the JSON body. */
  async post(lines, { ndjson = true, headerToken = false, eol = '\n' } = {}) {
    const headers = ndjson ? { 'Content-Type': 'application/x-ndjson' } : { 'Content-Type': 'text/plain' };
    const opts = { method: 'POST', params: this.params, headers, body: ndjson ? lines.join(eol) : lines[0] };
    if (headerToken) headers['X-Phoenix-Longpoll-Token'] = this.token;
    else opts.token = this.token;
    return lpBody(await lpRequest(this.server, opts), `${this.name}: POST`);
  }

  /** One poll; its messages (decoded) go to the inbox. Resolves with the JSON body. */
  async poll({ headerToken = false } = {}) {
    const opts = { params: this.params };
    if (headerToken) opts.headers = { 'X-Phoenix-Longpoll-Token': this.token };
    else opts.token = this.token;
    const body = lpBody(await lpRequest(this.server, opts), `${this.name}: poll`);
    if (body.status === 200) {
      assert.ok(body.messages.length > 0, `${this.name}: a 200 poll carries messages`);
      for (const m of body.messages) {
        assert.equal(typeof m, 'string', 'each message is serialized text');
        this.inbox.push(JSON.parse(m));
      }
    }
    return body;
  }

  /** Polls until the inbox holds a message matching pred (bounded by timeoutMs). */
  async pollUntil(pred, what, timeoutMs = 10000) {
    const start = Date.now();
    while (!this.inbox.items.some(pred)) {
      if (Date.now() - start > timeoutMs) {
        throw new Error(`${this.name}: no ${what} after polling for ${timeoutMs} ms; got ${this.inbox.describe()}`);
      }
      const body = await this.poll();
      if (body.status !== 200 && body.status !== 204) {
        throw new Error(`${this.name}: poll answered ${JSON.stringify(body)} while waiting for ${what}`);
      }
    }
    return this.inbox.items.find(pred);
  }

  /** The V2 replies received so far, in order. */
  replies() {
    return this.inbox.items.filter((m) => Array.isArray(m) && m[3] === 'phx_reply');
  }
}

const v2 = (joinRef, ref, topic, event, payload) => JSON.stringify([joinRef, ref, topic, event, payload]);
const heartbeat = (ref) => v2(null, String(ref), 'phoenix', 'heartbeat', {});

// ---------------------------------------------------------- raw TCP helper

const rawSockets = new Set();
after(() => {
  for (const s of rawSockets) s.destroy();
});

/**
 * A raw TCP connection that parses the HTTP responses it receives (each must
 * carry Content-Length, as plume's do) into `responses`, in order; after a
 * 101 the bytes are WebSocket frames, parsed into `frames`.
 */
class RawHttp {
  static open(server, name = 'raw HTTP connection', timeoutMs = 5000) {
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    const conn = new RawHttp(socket, name);
    const connected = new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(conn));
      socket.once('error', reject);
    });
    return withTimeout(connected, timeoutMs, `${name} to connect`);
  }

  constructor(socket, name) {
    this.socket = socket;
    this.name = name;
    this.buf = Buffer.alloc(0);
    this.mode = 'http';
    this.responses = new Inbox(`${name} responses`);
    this.frames = new Inbox(`${name} ws frames`);
    this.errors = [];
    this.isClosed = false;
    this.methods = []; // the methods of the requests written, when the caller names them
    rawSockets.add(socket);
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    socket.on('error', (e) => this.errors.push(e));
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true;
        rawSockets.delete(socket);
        this.responses.close('the connection closed');
        this.frames.close('the connection closed');
        resolve();
      });
    });
  }

  parse() {
    for (;;) {
      if (this.mode === 'ws') {
        if (this.buf.length < 2) return;
        const len7 = this.buf[1] & 0x7f;
        const hdr = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
        if (this.buf.length < hdr) return;
        const len = len7 < 126 ? len7 : len7 === 126 ? this.buf.readUInt16BE(2) : Number(this.buf.readBigUInt64BE(2));
        if (this.buf.length < hdr + len) return;
        const opcode = this.buf[0] & 0x0f;
        const payload = this.buf.subarray(hdr, hdr + len);
        this.buf = this.buf.subarray(hdr + len);
        this.frames.push({ opcode, text: payload.toString('utf8') });
        continue;
      }
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.(\d) (\d{3})/.exec(lines[0]);
      if (!m) {
        this.responses.push({ malformed: lines[0] });
        this.buf = Buffer.alloc(0);
        return;
      }
      const headers = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
      }
      const status = Number(m[2]);
      if (status >= 100 && status < 200 && status !== 101) {
        // An interim answer (100 Continue): no body, the final answer follows.
        this.buf = this.buf.subarray(end + 4);
        this.responses.push({ status, headers, body: '', interim: true });
        continue;
      }
      if (status === 101) {
        this.buf = this.buf.subarray(end + 4);
        this.mode = 'ws';
        this.responses.push({ status, headers, body: '' });
        continue;
      }
      if (headers['content-length'] === undefined) {
        this.responses.push({ status, headers, body: null, malformed: 'no Content-Length' });
        this.buf = Buffer.alloc(0);
        return;
      }
      // The answer to a HEAD has no body, whatever its Content-Length says.
      const len = this.methods[0] === 'HEAD' ? 0 : Number(headers['content-length']);
      if (this.buf.length < end + 4 + len) return;
      this.methods.shift();
      const body = this.buf.subarray(end + 4, end + 4 + len).toString('utf8');
      this.buf = this.buf.subarray(end + 4 + len);
      let json;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      this.responses.push({ status, minor: Number(m[1]), headers, body, json });
    }
  }

  /** Writes bytes; `methods` names the requests in them (a HEAD's answer has no body). */
  write(data, methods = []) {
    this.methods.push(...methods);
    this.socket.write(data);
  }

  /** The next response on this connection. */
  next(what = 'a response', timeoutMs = 10000) {
    return this.responses.waitFor(() => true, { timeoutMs, what });
  }

  /** Resolves once the server closed the connection (fails after timeoutMs). */
  waitClosed(what = 'the server to close the connection', timeoutMs = 5000) {
    return withTimeout(this.closed, timeoutMs, `${this.name}: ${what}`);
  }

  destroy() {
    this.socket.destroy();
  }
}

/** A request's bytes; Content-Length is added for a body (or any POST). */
function httpReq(method, target, { headers = {}, body = '', version = '1.1' } = {}) {
  const h = { Host: '127.0.0.1', ...headers };
  if (body.length > 0 || method === 'POST') h['Content-Length'] = String(Buffer.byteLength(body));
  const head = `${method} ${target} HTTP/${version}\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return typeof body === 'string' ? head + body : Buffer.concat([Buffer.from(head), body]);
}

/** A masked client text frame (payload < 126 bytes). */
function wsTextFrame(text) {
  const payload = Buffer.from(text);
  assert.ok(payload.length < 126);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

// ------------------------------------------------------ phoenix.js helpers

/** A phoenix.js socket over LongPoll (fetch), with the helpers' fast timers and event log. */
function lpSocket(server, opts = {}) {
  return phxSocket(`${server.url}/socket`, { transport: LongPoll, longpollerTimeout: 10000, ...opts });
}

async function lpConnect(server, opts = {}) {
  const socket = lpSocket(server, opts);
  socket.connect();
  await socket.plumeLog.waitFor((e) => e.type === 'open', { timeoutMs: 8000, what: 'long-poll socket open' });
  assert.ok(socket.conn instanceof LongPoll, 'the connection is a LongPoll');
  return socket;
}

/** A phoenix.js Presence on `channel` with keys() and until(pred) (checked after each sync). */
function watchPresence(channel, name) {
  const presence = new Presence(channel);
  const waiters = [];
  const keys = () => presence.list((key) => key).sort();
  presence.onSync(() => {
    for (const w of [...waiters]) {
      if (w.pred()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const until = (pred, what, ms = 8000) =>
    withTimeout(
      new Promise((resolve) => {
        if (pred()) return resolve();
        waiters.push({ pred, resolve });
      }),
      ms,
      `${name}: ${what} (Presence.list keys now ${JSON.stringify(keys())})`
    );
  return { presence, keys, until };
}

/**
 * Replaces globalThis.fetch (which phoenix.js's Ajax calls) so that requests
 * whose URL contains `match` can be held back, as if the network stopped
 * carrying them: close() holds them, open() lets them (and later ones) go.
 */
function gateFetch(match) {
  const real = globalThis.fetch;
  let held = null;
  const gate = {
    heldCount: 0,
    close() {
      held = held ?? [];
    },
    open() {
      const h = held ?? [];
      held = null;
      for (const release of h) release();
    },
    restore() {
      gate.open();
      globalThis.fetch = real;
    },
  };
  globalThis.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url ?? String(input);
    if (held && url.includes(match)) {
      gate.heldCount++;
      await new Promise((resolve) => held.push(resolve));
    }
    return real(input, init);
  };
  return gate;
}

/**
 * One chat server for the tests of the enclosing describe(), with `args`;
 * the helpers' clients are closed after each test. Stopped (SIGTERM) after the
 * suite, it must exit 0 with no sanitizer report, whatever sessions were open.
 */
function chatPerSuite(args) {
  const server = {};
  before(async () => {
    Object.assign(server, await startServer(BIN, args));
  });
  afterEach(async () => {
    await closeAllClients();
  });
  after(async () => {
    await closeAllClients();
    if (!server.stop) return;
    const status = await server.stop();
    assert.equal(status.code, 0, `the chat exits cleanly on SIGTERM: ${JSON.stringify(status)}\n${server.output()}`);
    assert.doesNotMatch(server.output(), /AddressSanitizer|LeakSanitizer|runtime error:/, server.output());
  });
  return server;
}

// ==================================================================== tests

// The keep-alive idle timeout (15 s) is measured on a connection opened
// before the suites run; the last suite checks when it was closed, so the
// wait overlaps the other tests instead of adding to the file's runtime.
const idleProbe = { server: null, conn: null, answeredAt: 0, closedAt: 0 };
before(async () => {
  idleProbe.server = await startServer(BIN, ['--history', '0']);
  idleProbe.conn = await RawHttp.open(idleProbe.server, 'idle keep-alive probe');
  idleProbe.conn.closed.then(() => {
    idleProbe.closedAt = Date.now();
  });
  idleProbe.conn.write(httpReq('GET', '/token?user=idle'));
  const r = await idleProbe.conn.next('the idle probe answer');
  idleProbe.answeredAt = Date.now();
  assert.equal(r.headers.connection, 'keep-alive');
});
after(async () => {
  idleProbe.conn?.destroy();
  if (!idleProbe.server) return;
  const status = await idleProbe.server.stop();
  assert.equal(status.code, 0, `clean exit: ${JSON.stringify(status)}\n${idleProbe.server.output()}`);
});

describe('phoenix.js over long-poll (LongPoll transport, Node fetch)', () => {
  const server = chatPerSuite(['--history', '0', '--longpoll-window-ms', '1000']);

  it('joins, gets replies and broadcasts; talks both ways with a WebSocket client; presence both ways', T, async () => {
    const topic = 'room:lobby';
    const watcher = await presenceMember(server.socketUrl, 'wsuser', topic, { name: 'WebSocket watcher' });
    const wsMsgs = recordChannel(watcher.channel, ['new_msg']);
    // The chat's presence_state is the room as of its last presence_diff: once
    // the watcher has seen its own join, a later joiner's state names it.
    await watcher.until(() => watcher.keys().includes('wsuser'), 'the watcher sees itself');

    const lp = await lpConnect(server, { params: { user_id: 'lpuser' } });
    const ch = lp.channel(topic, {});
    const msgs = recordChannel(ch, ['new_msg', 'presence_state']);
    const lpPresence = watchPresence(ch, 'long-poll client');
    assert.deepEqual(await joinOk(ch), {});

    // presence_state (with the WebSocket user), then both users in each list.
    const state = await msgs.waitFor((e) => e.event === 'presence_state', { what: 'presence_state' });
    assert.ok('wsuser' in state.payload, `presence_state names wsuser: ${JSON.stringify(state.payload)}`);
    await lpPresence.until(() => lpPresence.keys().join() === 'lpuser,wsuser', 'both users listed');
    await watcher.until(() => watcher.keys().includes('lpuser'), 'the long-poll user joined');
    assert.ok(watcher.events.some((e) => e.kind === 'join' && e.key === 'lpuser' && e.first));
    const meta = watcher.presence.state.lpuser.metas[0];
    assert.equal(meta.typing, false);
    assert.equal(typeof meta.phx_ref, 'string');

    // A reply over long-poll.
    assert.deepEqual(await pushResult(ch.push('ping', { n: 1, s: 'é✓' })), { status: 'ok', response: { n: 1, s: 'é✓' } });
    assert.deepEqual(await pushResult(ch.push('dance', {})), { status: 'error', response: { reason: 'unknown event' } });

    // long-poll → everyone (itself included), WebSocket → everyone.
    ch.push('new_msg', { body: 'from long-poll' });
    const a = await wsMsgs.waitFor((e) => e.payload.body === 'from long-poll', { what: 'the long-poll broadcast at ws' });
    assert.deepEqual(a.payload, { body: 'from long-poll', user_id: 'lpuser' });
    await msgs.waitFor((e) => e.event === 'new_msg' && e.payload.body === 'from long-poll', { what: 'own broadcast' });
    watcher.channel.push('new_msg', { body: 'from websocket' });
    const b = await msgs.waitFor((e) => e.event === 'new_msg' && e.payload.body === 'from websocket', {
      what: 'the ws broadcast at long-poll',
    });
    assert.deepEqual(b.payload, { body: 'from websocket', user_id: 'wsuser' });

    // Bursts keep their order in both directions (phoenix.js batches the
    // long-poll pushes into one ndjson POST; a poll carries several messages).
    const n = 40;
    for (let i = 0; i < n; i++) ch.push('new_msg', { body: `lp ${i}` });
    for (let i = 0; i < n; i++) watcher.channel.push('new_msg', { body: `ws ${i}` });
    await wsMsgs.waitFor((e) => e.payload.body === `lp ${n - 1}`, { what: 'the last long-poll message at ws' });
    await msgs.waitFor((e) => e.event === 'new_msg' && e.payload.body === `ws ${n - 1}`, { what: 'the last ws message' });
    const order = (inbox, prefix) =>
      inbox.items.filter((e) => e.event === 'new_msg' && e.payload.body.startsWith(prefix)).map((e) => e.payload.body);
    const expect = (prefix) => Array.from({ length: n }, (_, i) => `${prefix} ${i}`);
    assert.deepEqual(order(wsMsgs, 'lp '), expect('lp'), 'ws got the long-poll burst once each, in order');
    assert.deepEqual(order(msgs, 'ws '), expect('ws'), 'long-poll got the ws burst once each, in order');
    await msgs.waitFor((e) => e.event === 'new_msg' && e.payload.body === `lp ${n - 1}`, { what: 'own burst' });
    assert.deepEqual(order(msgs, 'lp '), expect('lp'), 'long-poll got its own burst once each, in order');

    // No heartbeats over long-poll (phoenix.js skips them), and nothing closed.
    assert.equal(lp.plumeMessages.all((m) => m.topic === 'phoenix').length, 0, 'no heartbeat replies');
    assert.equal(lp.plumeLog.all((e) => e.type !== 'open').length, 0, `socket log: ${lp.plumeLog.describe()}`);

    // Typing (presence update) from the long-poll client reaches the watcher;
    // leaving removes it.
    ch.push('typing:start', {});
    await watcher.until(() => watcher.online().some((p) => p.key === 'lpuser' && p.typing), 'lpuser typing');
    await withTimeout(new Promise((res) => ch.leave().receive('ok', res)), 5000, 'leave ok');
    await watcher.until(() => !watcher.keys().includes('lpuser'), 'lpuser left');
    assert.ok(watcher.events.some((e) => e.kind === 'leave' && e.key === 'lpuser' && e.last));
  });

  it('authToken (X-Phoenix-AuthToken) and a `token` connect param both identify the user; a bad authToken → onError(403), no open', T, async () => {
    const tokenFor = async (user) => {
      const r = await httpGet(`${server.url}/token?user=${user}`);
      assert.equal(r.status, 200);
      return r.json.token;
    };
    const topic = 'room:lp-auth';
    const watcher = await phxConnect(server.socketUrl, { params: { user_id: 'authwatch' } });
    const wch = watcher.channel(topic, {});
    const seen = recordChannel(wch, ['new_msg']);
    await joinOk(wch);

    // authToken: phoenix.js hands it to LongPoll, which sends the header.
    const a = await lpConnect(server, { authToken: await tokenFor('tokuser') });
    const ach = a.channel(topic, {});
    await joinOk(ach);
    ach.push('new_msg', { body: 'via authToken' });
    const m1 = await seen.waitFor((e) => e.payload.body === 'via authToken', { what: 'authToken message' });
    assert.equal(m1.payload.user_id, 'tokuser');

    // params: {token}: every request then carries the user's token=… next to
    // the session's token=…; the server must tell them apart.
    const p = await lpConnect(server, { params: { token: await tokenFor('paramuser') } });
    const pch = p.channel(topic, {});
    await joinOk(pch);
    assert.deepEqual(await pushResult(pch.push('ping', { k: 1 })), { status: 'ok', response: { k: 1 } });
    pch.push('new_msg', { body: 'via token param' });
    const m2 = await seen.waitFor((e) => e.payload.body === 'via token param', { what: 'token param message' });
    assert.equal(m2.payload.user_id, 'paramuser');

    // A bad token: the long-poll answer is {"status":403}; phoenix.js reports it.
    const bad = lpSocket(server, { authToken: 'not-a-token' });
    const errors = [];
    bad.onError((e) => errors.push(e));
    bad.connect();
    await bad.plumeLog.waitFor((e) => e.type === 'close', { what: 'close of a refused long-poll socket' });
    bad.disconnect();
    assert.ok(errors.includes(403), `onError got ${JSON.stringify(errors)}`);
    assert.equal(bad.plumeLog.all((e) => e.type === 'open').length, 0);
  });

  it('phoenix.js reconnects and rejoins when the server closed its session (it stopped polling)', T, async () => {
    const topic = 'room:lp-gone';
    const watcher = await presenceMember(server.socketUrl, 'gonewatch', topic, { name: 'watcher' });
    const gate = gateFetch('user_id=sleepy');
    try {
      const s = await lpConnect(server, { params: { user_id: 'sleepy' } });
      const errors = [];
      s.onError((e) => errors.push(e));
      const ch = s.channel(topic, {});
      const joins = trackJoins(ch);
      const msgs = recordChannel(ch, ['new_msg']);
      ch.join();
      await joins.waitFor((j) => j.status === 'ok', { what: 'the first join' });
      await watcher.until(() => watcher.keys().includes('sleepy'), 'sleepy joined');

      // Its requests stop reaching the server: 1.5 × window later the session
      // is closed and its presence leaves.
      gate.close();
      await watcher.until(() => !watcher.keys().includes('sleepy'), 'sleepy left when its session timed out', 15000);
      assert.ok(gate.heldCount >= 1, 'a poll was held back');

      // Back online: the held poll learns {"status":410} (session gone);
      // phoenix.js reconnects with a new session and rejoins.
      gate.open();
      const rejoin = await joins.waitFor((j) => j.status === 'ok', { what: 'the rejoin', timeoutMs: 10000 });
      assert.notEqual(rejoin.joinRef, joins.items[0].joinRef, 'a new join');
      assert.ok(errors.includes(410), `onError saw the 410 of the closed session: ${JSON.stringify(errors)}`);
      await watcher.until(() => watcher.keys().includes('sleepy'), 'sleepy back');
      watcher.channel.push('new_msg', { body: 'welcome back' });
      const m = await msgs.waitFor((e) => e.payload.body === 'welcome back', { what: 'a message after the rejoin' });
      assert.equal(m.payload.user_id, 'gonewatch');
    } finally {
      gate.restore();
    }
  });
});

describe('long-poll session protocol by hand (window 500 ms)', () => {
  const WINDOW = 500;
  const server = chatPerSuite(['--history', '0', '--longpoll-window-ms', String(WINDOW)]);

  it('a GET without a token opens a session: {status:410, token, messages:[]}, HTTP 200, JSON, no-store, CORS, keep-alive', T, async () => {
    const r = await lpRequest(server, { params: { user_id: 'opener' } });
    assert.equal(r.headers.get('connection'), 'keep-alive');
    const body = lpBody(r, 'open');
    assert.deepEqual(Object.keys(body).sort(), ['messages', 'status', 'token']);
    assert.equal(body.status, 410);
    assert.deepEqual(body.messages, []);
    assert.match(body.token, /^[A-Za-z0-9_\-.]+$/, 'a URL-safe token');
    const other = lpBody(await lpRequest(server, { params: { user_id: 'opener' } }), 'open again');
    assert.notEqual(other.token, body.token, 'each session has its own token');
  });

  it('polls with nothing to say answer {status:204} after the window with the same token; polling keeps the session alive', T, async () => {
    const s = new LpSession(server, 'idle poller');
    await s.open({ user_id: 'idle' });
    // Four polls in a row span 4 windows (> 1.5 × window): the session stays.
    for (let i = 0; i < 4; i++) {
      const start = Date.now();
      const body = await s.poll();
      const took = Date.now() - start;
      assert.deepEqual(body, { status: 204, token: s.token, messages: [] }, `poll ${i}`);
      assert.ok(took >= WINDOW - 50, `poll ${i} was held for the window (${took} ms)`);
    }
    // The header form polls the same session.
    assert.deepEqual(await s.poll({ headerToken: true }), { status: 204, token: s.token, messages: [] });
  });

  it('an ndjson POST of a join and pushes → {status:200}; the next poll has every reply, in order, refs matching', T, async () => {
    const s = new LpSession(server, 'batcher');
    await s.open({ user_id: 'batcher' });
    const topic = 'room:lp-batch';
    const lines = [
      v2('1', '1', topic, 'phx_join', {}),
      v2('1', '2', topic, 'ping', { n: 1 }),
      v2('1', '3', topic, 'new_msg', { body: 'hello from a batch' }),
      v2('1', '4', topic, 'ping', { n: 2, s: 'ünïcødé ✓\n"quoted"' }),
      v2('1', '5', topic, 'dance', {}),
      v2('1', '6', 'room:not-joined', 'ping', {}),
      heartbeat(7),
    ];
    assert.deepEqual(await s.post(lines), { status: 200 });
    // The POST was answered after all its lines were handled: one poll
    // returns all the replies at once.
    const first = await s.poll();
    assert.equal(first.status, 200);
    assert.equal(first.token, s.token);
    assert.deepEqual(s.replies(), [
      ['1', '1', topic, 'phx_reply', { status: 'ok', response: {} }],
      ['1', '2', topic, 'phx_reply', { status: 'ok', response: { n: 1 } }],
      ['1', '4', topic, 'phx_reply', { status: 'ok', response: { n: 2, s: 'ünïcødé ✓\n"quoted"' } }],
      ['1', '5', topic, 'phx_reply', { status: 'error', response: { reason: 'unknown event' } }],
      // (join_ref null, as over WebSocket and in Phoenix)
      [null, '6', 'room:not-joined', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }],
      [null, '7', 'phoenix', 'phx_reply', { status: 'ok', response: {} }],
    ]);
    // presence_state follows the join reply; the broadcast and our presence join arrive too.
    const idx = (pred) => s.inbox.items.findIndex(pred);
    const stateAt = idx((m) => m[3] === 'presence_state');
    assert.ok(stateAt > idx((m) => m[1] === '1'), `presence_state after the join reply: ${s.inbox.describe()}`);
    const msg = await s.pollUntil((m) => m[3] === 'new_msg', 'the new_msg broadcast');
    assert.deepEqual(msg, [null, null, topic, 'new_msg', { body: 'hello from a batch', user_id: 'batcher' }]);
    const diff = await s.pollUntil((m) => m[3] === 'presence_diff', 'our own presence join');
    assert.ok('batcher' in diff[4].joins, JSON.stringify(diff));
    // Another batch on the same session, with CRLF line ends and the token in the header.
    assert.deepEqual(
      await s.post([v2('1', '8', topic, 'ping', { n: 8 }), v2('1', '9', topic, 'ping', { n: 9 })], {
        headerToken: true,
        eol: '\r\n',
      }),
      { status: 200 }
    );
    await s.pollUntil((m) => m[1] === '9', 'reply 9');
    assert.deepEqual(s.replies().slice(-2).map((m) => [m[1], m[4]]), [
      ['8', { status: 'ok', response: { n: 8 } }],
      ['9', { status: 'ok', response: { n: 9 } }],
    ]);
  });

  it('a POST without ndjson is one message; a base64 line is a binary (V2 binary push) message', T, async () => {
    const s = new LpSession(server, 'binary');
    await s.open({ user_id: 'binuser' });
    const topic = 'room:lp-binary';
    assert.deepEqual(await s.post([v2('1', '1', topic, 'phx_join', {})], { ndjson: false }), { status: 200 });
    await s.pollUntil((m) => m[1] === '1', 'the join reply');
    assert.deepEqual(s.replies()[0][4], { status: 'ok', response: {} });
    // A binary push whose payload is not JSON: the chat answers (in JSON text) that body must be a string.
    const bin = encodeBinaryPush('1', '2', topic, 'new_msg', Buffer.from([0, 1, 2, 255])).toString('base64');
    const binUnpadded = encodeBinaryPush('1', '3', topic, 'new_msg', Buffer.from([9])).toString('base64').replace(/=+$/, '');
    assert.deepEqual(await s.post([bin, binUnpadded, v2('1', '4', topic, 'ping', { after: 'binary' })]), { status: 200 });
    await s.pollUntil((m) => m[1] === '4', 'the reply after the binary pushes');
    assert.deepEqual(s.replies().slice(1).map((m) => [m[1], m[4]]), [
      ['2', { status: 'error', response: { reason: 'body must be a string' } }],
      ['3', { status: 'error', response: { reason: 'body must be a string' } }],
      ['4', { status: 'ok', response: { after: 'binary' } }],
    ]);
  });

  it('a session not polled for 1.5 × window is closed: its presence leaves; its signed token then gets {status:410} without a token', T, async () => {
    const topic = 'room:lp-timeout';
    const watcher = await presenceMember(server.socketUrl, 'tw', topic, { name: 'watcher' });
    const s = new LpSession(server, 'quitter');
    await s.open({ user_id: 'quitter' });
    assert.deepEqual(await s.post([v2('1', '1', topic, 'phx_join', {})]), { status: 200 });
    await s.pollUntil((m) => m[1] === '1', 'the join reply');
    await watcher.until(() => watcher.keys().includes('quitter'), 'quitter joined');
    // Polled while the join went on: the session is alive.
    assert.notEqual((await s.poll()).status, 410);
    const lastPoll = Date.now();
    // It stops polling.
    await watcher.until(() => !watcher.keys().includes('quitter'), 'quitter left after its session timed out', 10000);
    const idle = Date.now() - lastPoll;
    // (1.5 × window after the server sent the last answer; half a window as the
    // lower bound leaves room for a slow client under load.)
    assert.ok(idle >= WINDOW / 2, `the session lived on after its last poll (${idle} ms)`);
    assert.ok(watcher.events.some((e) => e.kind === 'leave' && e.key === 'quitter' && e.last));

    // Its token is still correctly signed, but names a closed session.
    assert.deepEqual(await s.poll(), { status: 410 });
    assert.deepEqual(await s.poll({ headerToken: true }), { status: 410 });
    assert.deepEqual(await s.post([heartbeat(2)]), { status: 410 });
    // Also with user params that would open a new session: the token decides.
    const r = lpBody(await lpRequest(server, { params: { user_id: 'quitter' }, token: s.token }), 'poll');
    assert.deepEqual(r, { status: 410 });
  });
});

describe('long-poll refusals and limits (default window, no rate limits)', () => {
  const server = chatPerSuite(['--history', '0', '--no-rate-limits']);
  const tokenFor = async (user) => (await httpGet(`${server.url}/token?user=${user}`)).json.token;

  it('a POST without a session → {status:410}', T, async () => {
    const hb = heartbeat(1);
    const post = (opts) => lpRequest(server, { method: 'POST', body: hb, ...opts });
    assert.deepEqual(lpBody(await post({ params: { user_id: 'x' } }), 'POST'), { status: 410 });
    assert.deepEqual(lpBody(await post({}), 'POST'), { status: 410 });
    assert.deepEqual(lpBody(await post({ token: 'garbage' }), 'POST'), { status: 410 });
    assert.deepEqual(lpBody(await post({ token: await tokenFor('u') }), 'POST'), { status: 410 });
    assert.deepEqual(lpBody(await post({ headers: { 'X-Phoenix-Longpoll-Token': 'garbage' } }), 'POST'), { status: 410 });
  });

  it('a token that is not a session token is not a session: garbage or forged → new session (connect decides)', T, async () => {
    const real = new LpSession(server, 'real');
    await real.open({ user_id: 'realuser' });
    const [p, data, sig] = real.token.split('.');
    // One base64url character in the middle of the signature changed (all 6 of its bits count).
    const forgedSig = `${p}.${data}.${sig.slice(0, 5)}${sig[5] === 'A' ? 'B' : 'A'}${sig.slice(6)}`;
    // A header token that does not verify: a new session for the connect params.
    for (const bad of ['garbage', forgedSig, `${p}.${data}`]) {
      const body = lpBody(
        await lpRequest(server, { params: { user_id: 'fresh' }, headers: { 'X-Phoenix-Longpoll-Token': bad } }),
        `header ${bad.slice(0, 20)}`
      );
      assert.equal(body.status, 410, `header token ${bad.slice(0, 30)}…: ${JSON.stringify(body)}`);
      assert.equal(typeof body.token, 'string', 'a new session, with its token');
      assert.notEqual(body.token, real.token);
    }
    // A `token` query param that is the chat user's own token (a connect
    // param): a new session, and connect() sees the param.
    const s = new LpSession(server, 'user token');
    const open = await s.open({ token: await tokenFor('tokenparam') });
    assert.notEqual(open.token, real.token);
    const topic = 'room:lp-tokenparam';
    assert.deepEqual(
      await s.post([v2('1', '1', topic, 'phx_join', {}), v2('1', '2', topic, 'new_msg', { body: 'who am i' })]),
      { status: 200 }
    );
    const m = await s.pollUntil((x) => x[3] === 'new_msg', 'the broadcast');
    assert.equal(m[4].user_id, 'tokenparam');
    // A garbage `token` param is handed to connect() too, and the chat refuses
    // a bad token (as over WebSocket): {status:403}, not "session gone".
    assert.deepEqual(lpBody(await lpRequest(server, { params: { user_id: 'x' }, token: 'garbage' }), 'garbage'), { status: 403 });
    // The real session is untouched by all this.
    assert.deepEqual(await real.post([heartbeat(5)]), { status: 200 });
    await real.pollUntil((x) => x[1] === '5', 'heartbeat reply');
  });

  it('refused connects → {status:403}: bad vsn, missing or invalid user_id; vsn 1.0.0 speaks V1 objects', T, async () => {
    const get = async (params) => lpBody(await lpRequest(server, { params }), JSON.stringify(params));
    assert.deepEqual(await get({ vsn: '3.0.0', user_id: 'v' }), { status: 403 });
    assert.deepEqual(await get({ vsn: 'nope', user_id: 'v' }), { status: 403 });
    assert.deepEqual(await get({}), { status: 403 });
    assert.deepEqual(await get({ user_id: 'bad name!' }), { status: 403 });
    assert.deepEqual(await get({ user_id: 'x'.repeat(33) }), { status: 403 });
    // V1: {topic, event, payload, ref} objects both ways.
    const s = new LpSession(server, 'v1');
    await s.open({ vsn: '1.0.0', user_id: 'vone' });
    const topic = 'room:lp-v1';
    const v1 = (event, ref, payload = {}) => JSON.stringify({ topic, event, payload, ref });
    assert.deepEqual(await s.post([v1('phx_join', '1'), v1('ping', '2', { v: 1 })]), { status: 200 });
    await s.pollUntil((m) => m.ref === '2', 'V1 reply 2');
    const replies = s.inbox.items.filter((m) => m.event === 'phx_reply');
    assert.deepEqual(replies, [
      { topic, event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: '1' },
      { topic, event: 'phx_reply', payload: { status: 'ok', response: { v: 1 } }, ref: '2' },
    ]);
  });

  it('methods: OPTIONS is a CORS preflight; PUT and DELETE → HTTP 405 (Allow, Connection: close)', T, async () => {
    const url = `${server.url}${LONGPOLL_PATH}?vsn=2.0.0`;
    const pre = await fetch(url, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://elsewhere.example',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-phoenix-longpoll-token',
      },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.equal(pre.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS');
    assert.equal(pre.headers.get('access-control-allow-headers'), 'content-type,x-phoenix-longpoll-token');
    assert.equal(pre.headers.get('access-control-max-age'), '3600');
    assert.equal(await pre.text(), '');
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const r = await fetch(url, { method, body: method === 'DELETE' ? undefined : '[]', signal: AbortSignal.timeout(5000) });
      await r.text();
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.get('allow'), 'GET, POST, OPTIONS', method);
      assert.equal(r.headers.get('connection'), 'close', method);
    }
  });

  it('a line that is neither JSON nor base64 → {status:400}: none of the batch is handled; the session still works', T, async () => {
    const s = new LpSession(server, 'malformed');
    await s.open({ user_id: 'mal' });
    // ("null" or "abcd" would be base64: binary messages.)
    for (const junk of ['not json!!', 'abc$', '"a string"', '=abc', 'a']) {
      assert.deepEqual(await s.post([heartbeat(`bad-${junk}`), junk]), { status: 400 }, `line ${JSON.stringify(junk)}`);
    }
    assert.deepEqual(await s.post(['%%%'], { ndjson: false }), { status: 400 }, 'a non-ndjson body');
    assert.deepEqual(await s.post([heartbeat('good')]), { status: 200 });
    await s.pollUntil((m) => m[1] === 'good', 'the good heartbeat reply');
    assert.deepEqual(
      s.replies().map((m) => m[1]),
      ['good'],
      'the lines before a malformed one in the same POST were not handled'
    );
  });

  it('a JSON-looking line that is not a Phoenix message closes the session (as a WebSocket closes 1007): the POST and later requests → {status:410}', T, async () => {
    const topic = 'room:lp-badmsg';
    const watcher = await presenceMember(server.socketUrl, 'badwatch', topic, { name: 'watcher' });
    for (const bad of ['[1,2,3]', '{"nope":true}', '[not json']) {
      const s = new LpSession(server, `bad ${bad}`);
      await s.open({ user_id: 'badmsg' });
      assert.deepEqual(await s.post([v2('1', '1', topic, 'phx_join', {})]), { status: 200 });
      await s.pollUntil((m) => m[1] === '1', 'the join reply');
      await watcher.until(() => watcher.keys().includes('badmsg'), 'badmsg joined');
      assert.deepEqual(await s.post([heartbeat('before'), bad, heartbeat('after')]), { status: 410 }, bad);
      assert.deepEqual(await s.poll(), { status: 410 }, `poll after ${bad}`);
      await watcher.until(() => !watcher.keys().includes('badmsg'), `badmsg left after ${bad}`);
    }
  });

  it('1000 lines in one POST are handled in order; 1001 → {status:413} and none is handled', T, async () => {
    const s = new LpSession(server, 'big batch');
    await s.open({ user_id: 'big' });
    const lines = (from, n) => Array.from({ length: n }, (_, i) => heartbeat(from + i));
    assert.deepEqual(await s.post(lines(0, 1001)), { status: 413 });
    assert.deepEqual(await s.post(lines(10000, 1000)), { status: 200 });
    const body = await s.poll();
    assert.equal(body.status, 200);
    assert.deepEqual(
      s.replies().map((m) => Number(m[1])),
      Array.from({ length: 1000 }, (_, i) => 10000 + i),
      'one poll returns the 1000 replies, in order, and none of the refused batch'
    );
  });

  it('a session holding more than 10,000 unpolled messages is closed (presence leaves); its token → {status:410}', T, async () => {
    const topic = 'room:lp-flood';
    const watcher = await presenceMember(server.socketUrl, 'floodwatch', topic, { name: 'watcher' });
    const s = new LpSession(server, 'never polls');
    await s.open({ user_id: 'hoarder' });
    assert.deepEqual(await s.post([v2('1', '1', topic, 'phx_join', {})]), { status: 200 });
    await s.pollUntil((m) => m[1] === '1', 'the join reply');
    await watcher.until(() => watcher.keys().includes('hoarder'), 'hoarder joined');
    // Drain what the join sent, so the count below is exact.
    await s.pollUntil((m) => m[3] === 'presence_diff', 'own presence join');
    // 10 × 1000 heartbeats: 10,000 replies held, still open.
    for (let k = 0; k < 10; k++) {
      const batch = Array.from({ length: 1000 }, (_, i) => heartbeat(k * 1000 + i));
      assert.deepEqual(await s.post(batch), { status: 200 }, `batch ${k}`);
    }
    // One more reply is one too many: the session closes (the POST whose
    // message it was learns it is gone).
    const last = await s.post([heartbeat('one too many')]);
    assert.deepEqual(last, { status: 410 });
    await watcher.until(() => !watcher.keys().includes('hoarder'), 'hoarder left', 10000);
    assert.deepEqual(await s.poll(), { status: 410 });
  });

  it('a session holding more than 4 MiB of unpolled messages is closed', T, async () => {
    const s = new LpSession(server, 'bytes');
    await s.open({ user_id: 'bytes' });
    const topic = 'room:lp-bytes';
    assert.deepEqual(await s.post([v2('1', '1', topic, 'phx_join', {})]), { status: 200 });
    await s.pollUntil((m) => m[1] === '1', 'the join reply');
    // Each ping echoes ~900 KB: four fit under 4 MiB, the fifth does not.
    const big = 'x'.repeat(900 * 1024);
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(await s.post([v2('1', `p${i}`, topic, 'ping', { big })]), { status: 200 }, `ping ${i}`);
    }
    assert.deepEqual(await s.post([v2('1', 'p4', topic, 'ping', { big })]), { status: 410 });
    assert.deepEqual(await s.poll(), { status: 410 });
  });
});

describe('long-poll connection rate limit', () => {
  const server = chatPerSuite(['--history', '0']);

  it('new sessions from one address over the connection rate → {status:500} (phoenix.js retries); polls do not count', T, async () => {
    const s = new LpSession(server, 'survivor');
    await s.open({ user_id: 'survivor' });
    // The default allows bursts of 500 new sockets per address (then 100/s).
    // 800 opens pipelined on one connection arrive faster than that refills.
    const n = 800;
    const c = await RawHttp.open(server, 'opener');
    try {
      c.write(httpReq('GET', `${LONGPOLL_PATH}?vsn=2.0.0&user_id=rate`).repeat(n));
      const statuses = [];
      for (let i = 0; i < n; i++) {
        const r = await c.next(`open ${i}`);
        assert.equal(r.status, 200);
        statuses.push(r.json.status);
        if (r.json.status !== 410) assert.deepEqual(r.json, { status: 500 }, `open ${i}`);
      }
      const accepted = statuses.filter((x) => x === 410).length;
      assert.ok(accepted >= 499, `the burst was accepted (${accepted})`);
      assert.ok(statuses.slice(0, 499).every((x) => x === 410), 'the first 499 (the burst, less the survivor) were accepted');
      assert.ok(n - accepted >= 100, `opens over the rate were refused (${n - accepted} of ${n})`);
    } finally {
      c.destroy();
    }
    // The existing session still works: its requests are not new connections.
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await s.post([heartbeat(i)]), { status: 200 });
      await s.pollUntil((m) => m[1] === String(i), `heartbeat reply ${i}`);
    }
  });
});

describe('long-poll and --origin', () => {
  const server = chatPerSuite(['--origin', 'http://allowed.example']);

  it('a disallowed Origin → {status:403}; the allowed one (or none) opens a session', T, async () => {
    const open = async (headers) =>
      lpBody(await lpRequest(server, { params: { user_id: 'o' }, headers }), JSON.stringify(headers)).status;
    assert.equal(await open({ Origin: 'http://evil.example' }), 403);
    assert.equal(await open({ Origin: `http://127.0.0.1:${server.port}` }), 403);
    assert.equal(await open({ Origin: 'http://allowed.example' }), 410);
    assert.equal(await open({}), 410);
  });
});

describe('chat --no-longpoll', () => {
  const server = chatPerSuite(['--no-longpoll']);

  it('/socket/longpoll answers HTTP 404; WebSockets still work', T, async () => {
    for (const method of ['GET', 'POST']) {
      const r = await lpRequest(server, { method, params: { user_id: 'n' }, body: method === 'POST' ? '[]' : undefined });
      assert.equal(r.http, 404, `${method}: ${r.text}`);
      assert.equal(r.headers.get('connection'), 'close');
    }
    const raw = await openRaw(v2Url(server, { user_id: 'n' }));
    assert.deepEqual((await raw.join('room:lobby', '1'))[4].status, 'ok');
    raw.close();
  });
});

describe('HTTP/1.1 keep-alive (raw TCP)', () => {
  const server = chatPerSuite(['--history', '0']);

  it('two requests one after the other on one connection: both answered (Connection: keep-alive), bodies framed by Content-Length', T, async () => {
    const c = await RawHttp.open(server, 'sequential');
    try {
      c.write(httpReq('GET', '/'));
      const page = await c.next('GET /');
      assert.equal(page.status, 200);
      assert.equal(page.headers.connection, 'keep-alive');
      assert.match(page.headers['content-type'], /text\/html/);
      c.write(httpReq('GET', '/app.js'));
      const app = await c.next('GET /app.js');
      assert.equal(app.status, 200);
      assert.equal(app.headers.connection, 'keep-alive');
      assert.match(app.headers['content-type'], /javascript/);
      c.write(httpReq('GET', '/token?user=keep'));
      const tok = await c.next('GET /token');
      assert.equal(tok.json.user_id, 'keep');
      // Same bytes as on fresh connections.
      assert.equal(page.body, (await httpGet(`${server.url}/`)).body);
      assert.equal(app.body, (await httpGet(`${server.url}/app.js`)).body);
      assert.equal(c.isClosed, false);
      assert.equal(c.buf.length, 0, 'nothing after the last body');
    } finally {
      c.destroy();
    }
  });

  it('pipelined requests (one write) are answered in order', T, async () => {
    const c = await RawHttp.open(server, 'pipelined');
    try {
      c.write(
        httpReq('GET', '/token?user=p1') +
          httpReq('GET', '/app.js') +
          httpReq('POST', '/token/p2', { body: 'ignored body' }) +
          httpReq('GET', '/token?user=p3')
      );
      const r = [];
      for (let i = 0; i < 4; i++) r.push(await c.next(`pipelined answer ${i}`));
      assert.deepEqual(r.map((x) => x.status), [200, 200, 200, 200]);
      assert.equal(r[0].json.user_id, 'p1');
      assert.match(r[1].headers['content-type'], /javascript/);
      assert.equal(r[2].json.user_id, 'p2');
      assert.equal(r[3].json.user_id, 'p3');
      assert.ok(r.every((x) => x.headers.connection === 'keep-alive'));
      // Split across writes mid-head and mid-body works too.
      const req = httpReq('POST', '/token/p4', { body: 'abcdefgh' }) + httpReq('GET', '/token?user=p5');
      for (const part of [req.slice(0, 7), req.slice(7, 40), req.slice(40, req.length - 3), req.slice(req.length - 3)]) {
        c.write(part);
      }
      assert.equal((await c.next('p4')).json.user_id, 'p4');
      assert.equal((await c.next('p5')).json.user_id, 'p5');
    } finally {
      c.destroy();
    }
  });

  it('Connection: close → the answer says close, the connection ends, a pipelined request behind it is not answered', T, async () => {
    const c = await RawHttp.open(server, 'close');
    c.write(httpReq('GET', '/token?user=c1', { headers: { Connection: 'close' } }) + httpReq('GET', '/token?user=c2'));
    const r = await c.next('the answer');
    assert.equal(r.json.user_id, 'c1');
    assert.equal(r.headers.connection, 'close');
    await c.waitClosed();
    assert.equal(c.responses.items.length, 1, 'no answer after a Connection: close');
  });

  it('HTTP/1.0 closes after the answer unless it asks for keep-alive', T, async () => {
    const c = await RawHttp.open(server, 'http/1.0');
    c.write(httpReq('GET', '/token?user=old', { version: '1.0' }));
    const r = await c.next('the HTTP/1.0 answer');
    assert.equal(r.json.user_id, 'old');
    assert.equal(r.headers.connection, 'close');
    await c.waitClosed();

    const k = await RawHttp.open(server, 'http/1.0 keep-alive');
    try {
      k.write(httpReq('GET', '/token?user=old1', { version: '1.0', headers: { Connection: 'keep-alive' } }));
      const a = await k.next('first');
      assert.equal(a.headers.connection, 'keep-alive');
      k.write(httpReq('GET', '/token?user=old2', { version: '1.0' }));
      const b = await k.next('second');
      assert.equal(b.json.user_id, 'old2');
      assert.equal(b.headers.connection, 'close');
      await k.waitClosed();
    } finally {
      k.destroy();
    }
  });

  it('error answers (404, 405, 400) say Connection: close and end the connection', T, async () => {
    for (const [req, status] of [
      [httpReq('GET', '/nope.txt'), 404],
      [httpReq('PUT', `${LONGPOLL_PATH}?vsn=2.0.0`, { body: 'x' }), 405],
      ['GARBAGE\r\n\r\n', 400],
    ]) {
      const c = await RawHttp.open(server, `error ${status}`);
      c.write(req + httpReq('GET', '/token?user=after'));
      const r = await c.next(`the ${status}`);
      assert.equal(r.status, status);
      assert.equal(r.headers.connection, 'close');
      await c.waitClosed();
      assert.equal(c.responses.items.length, 1);
    }
  });

  it('request bodies: 1 MiB is read; more → 413 and close; Transfer-Encoding → 501 and close', T, async () => {
    const c = await RawHttp.open(server, 'bodies');
    try {
      // Exactly 1 MiB, to the long-poll endpoint (no session: 410), then one more request.
      c.write(httpReq('POST', `${LONGPOLL_PATH}?vsn=2.0.0`, { body: 'A'.repeat(1 << 20) }) + httpReq('GET', '/token?user=b'));
      const a = await c.next('the 1 MiB POST');
      assert.equal(a.status, 200);
      assert.deepEqual(a.json, { status: 410 });
      assert.equal(a.headers.connection, 'keep-alive');
      assert.equal((await c.next('after the big body')).json.user_id, 'b');
    } finally {
      c.destroy();
    }

    const big = await RawHttp.open(server, 'too big');
    big.write(
      `POST ${LONGPOLL_PATH}?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${(1 << 20) + 1}\r\n\r\n`
    );
    const r = await big.next('the 413');
    assert.equal(r.status, 413);
    assert.equal(r.headers.connection, 'close');
    await big.waitClosed();

    const te = await RawHttp.open(server, 'chunked');
    te.write(
      `POST ${LONGPOLL_PATH}?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`
    );
    const r2 = await te.next('the 501');
    assert.equal(r2.status, 501);
    assert.equal(r2.headers.connection, 'close');
    await te.waitClosed();
  });

  it('a held long-poll GET is answered when a POST on another connection brings a message; pipelined requests behind it wait their turn', T, async () => {
    const s = new LpSession(server, 'held');
    await s.open({ user_id: 'held' });
    const a = await RawHttp.open(server, 'poller');
    const b = await RawHttp.open(server, 'poster');
    try {
    const pollPath = `${LONGPOLL_PATH}?vsn=2.0.0&user_id=held&token=${encodeURIComponent(s.token)}`;
    // The poll, and behind it on the same connection a plain request.
    a.write(httpReq('GET', pollPath) + httpReq('GET', '/token?user=behind'));
    // A round trip on b (the poll is very likely held by now), then the POST.
    b.write(httpReq('GET', '/token?user=b'));
    await b.next('a first answer on b');
    assert.equal(a.responses.items.length, 0, 'the poll is held (nothing to say yet), and so is the request behind it');
    const postedAt = Date.now();
    b.write(
      httpReq('POST', pollPath, { headers: { 'Content-Type': 'application/x-ndjson' }, body: heartbeat('hb') })
    );
    const ack = await b.next('the POST answer');
    assert.deepEqual(ack.json, { status: 200 });
    const poll = await a.next('the poll answer');
    assert.ok(Date.now() >= postedAt);
    assert.equal(poll.status, 200);
    assert.equal(poll.headers.connection, 'keep-alive');
    assert.equal(poll.json.status, 200);
    assert.equal(poll.json.token, s.token);
    assert.deepEqual(poll.json.messages.map((m) => JSON.parse(m)), [
      [null, 'hb', 'phoenix', 'phx_reply', { status: 'ok', response: {} }],
    ]);
    const behind = await a.next('the request behind the poll');
    assert.equal(behind.json.user_id, 'behind');
    // The same connection polls again.
    a.write(httpReq('POST', pollPath, { body: heartbeat('hb2') }) + httpReq('GET', pollPath));
    assert.deepEqual((await a.next('POST on the poller')).json, { status: 200 });
    const again = await a.next('second poll');
    assert.deepEqual(JSON.parse(again.json.messages[0])[1], 'hb2');
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('a second poll of the same session replaces the waiting one: the first is answered {status:204} at once', T, async () => {
    // (The window is 10 s here: a 204 within 5 s is the replacement.)
    const s = new LpSession(server, 'two pollers');
    await s.open({ user_id: 'twopolls' });
    const pollPath = `${LONGPOLL_PATH}?vsn=2.0.0&token=${encodeURIComponent(s.token)}`;
    const conns = [await RawHttp.open(server, 'poll 1'), await RawHttp.open(server, 'poll 2')];
    const b = await RawHttp.open(server, 'poster');
    try {
      const answers = conns.map((c, i) => c.next('a poll answer', 9000).then((r) => ({ i, r })));
      conns[0].write(httpReq('GET', pollPath));
      b.write(httpReq('GET', '/token?user=b'));
      await b.next('a round trip');
      conns[1].write(httpReq('GET', pollPath));
      const first = await withTimeout(Promise.race(answers), 5000, 'the replaced poll to be answered');
      assert.deepEqual(first.r.json, { status: 204, token: s.token, messages: [] });
      b.write(httpReq('POST', pollPath, { body: heartbeat('after-replace') }));
      assert.deepEqual((await b.next('the POST answer')).json, { status: 200 });
      const second = (await answers[1 - first.i]).r;
      assert.equal(second.json.status, 200, JSON.stringify(second.json));
      assert.deepEqual(JSON.parse(second.json.messages[0]).slice(0, 2), [null, 'after-replace']);
      assert.equal(first.i, 0, 'the older poll was the one replaced (after a round trip elsewhere)');
    } finally {
      for (const c of [...conns, b]) c.destroy();
    }
  });

  it('HEAD on a kept-alive connection: the answer has no body, so the next answer is framed right', T, async () => {
    const c = await RawHttp.open(server, 'head');
    try {
      c.write(httpReq('HEAD', '/app.js') + httpReq('HEAD', '/token?user=h') + httpReq('GET', '/token?user=after-head'), [
        'HEAD',
        'HEAD',
        'GET',
      ]);
      const head = await c.next('the HEAD /app.js answer');
      assert.equal(head.status, 200);
      assert.match(head.headers['content-type'], /javascript/);
      const head2 = await c.next('the HEAD /token answer');
      assert.equal(head2.status, 200, `got ${JSON.stringify(head2).slice(0, 200)}`);
      const next = await c.next('the GET after the HEADs');
      assert.equal(next.json?.user_id, 'after-head', `got ${JSON.stringify(next).slice(0, 200)}`);
    } finally {
      c.destroy();
    }
  });

  it('Expect: 100-continue on a POST gets an interim 100 (Continue) before the body is sent', T, async () => {
    const c = await RawHttp.open(server, 'expect');
    try {
      const body = heartbeat('e');
      c.write(
        `POST ${LONGPOLL_PATH}?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n` +
          'Expect: 100-continue\r\n\r\n'
      );
      const interim = await c.next('the 100 Continue', 1500);
      assert.equal(interim.status, 100);
      c.write(body);
      assert.deepEqual((await c.next('the final answer')).json, { status: 410 });
    } finally {
      c.destroy();
    }
  });

  it('the 1000th request on a connection says Connection: close; the connection then ends', T, async () => {
    const c = await RawHttp.open(server, 'thousand');
    let all = '';
    for (let i = 0; i < 1001; i++) all += httpReq('GET', `/token?user=r${i}`);
    c.write(all);
    await c.waitClosed('the connection to end after 1000 answers', 15000);
    const r = c.responses.items;
    assert.equal(r.length, 1000, 'exactly 1000 answers');
    assert.ok(r.slice(0, 999).every((x, i) => x.headers.connection === 'keep-alive' && x.json.user_id === `r${i}`));
    assert.equal(r[999].json.user_id, 'r999');
    assert.equal(r[999].headers.connection, 'close');
  });

  it('a WebSocket upgrade after plain requests on the same connection', T, async () => {
    const c = await RawHttp.open(server, 'upgrade after keep-alive');
    try {
      c.write(httpReq('GET', '/token?user=u1'));
      assert.equal((await c.next('plain')).json.user_id, 'u1');
      c.write(
        httpReq('GET', '/socket/websocket?vsn=2.0.0&user_id=u1', {
          headers: {
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
          },
        })
      );
      const up = await c.next('101');
      assert.equal(up.status, 101);
      assert.equal(up.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      c.write(wsTextFrame(heartbeat('ws1')));
      const f = await c.frames.waitFor(() => true, { what: 'the heartbeat reply frame' });
      assert.equal(f.opcode, 1);
      assert.deepEqual(JSON.parse(f.text), [null, 'ws1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    } finally {
      c.destroy();
    }
  });
});

describe('shutdown with long-poll and keep-alive connections open', () => {
  it('SIGTERM with a held poll and an idle keep-alive connection: both close (the poll, if answered, gets {status:410}); exit 0', T, async () => {
    const server = await startServer(BIN, ['--history', '0']);
    try {
      const s = new LpSession(server, 'at shutdown');
      await s.open({ user_id: 'shut' });
      const idle = await RawHttp.open(server, 'idle keep-alive');
      idle.write(httpReq('GET', '/token?user=idle'));
      await idle.next('first');
      const poller = await RawHttp.open(server, 'held poll');
      poller.write(httpReq('GET', `${LONGPOLL_PATH}?vsn=2.0.0&token=${encodeURIComponent(s.token)}`));
      // A round trip on another connection so the poll is most likely held.
      const probe = await RawHttp.open(server, 'probe');
      probe.write(httpReq('GET', '/token?user=probe', { headers: { Connection: 'close' } }));
      await probe.next('probe');
      const exit = await server.stop('SIGTERM', 8000);
      assert.equal(exit.code, 0, `clean exit: ${JSON.stringify(exit)}\n${server.output()}`);
      assert.doesNotMatch(server.output(), /AddressSanitizer|LeakSanitizer|runtime error:/, server.output());
      await idle.waitClosed('the idle keep-alive connection to close');
      await poller.waitClosed('the poller connection to close');
      const answers = poller.responses.items;
      assert.ok(answers.length <= 1);
      if (answers.length === 1) assert.deepEqual(answers[0].json, { status: 410 }, 'the held poll learns the session is gone');
    } finally {
      if (server.proc.exitCode === null && server.proc.signalCode === null) await server.stop('SIGKILL');
    }
  });
});

describe('HTTP keep-alive idle timeout', () => {
  it('an idle kept-alive connection is closed by the server after 15 s (not before)', T, async () => {
    await idleProbe.conn.waitClosed('the idle connection to be closed (15 s after its answer)', 25000);
    const idle = idleProbe.closedAt - idleProbe.answeredAt;
    assert.ok(idle >= 13000 && idle <= 22000, `closed ${idle} ms after the answer`);
    assert.equal(idleProbe.conn.responses.items.length, 1);
  });
});
