// Starting plume's Phoenix servers (examples/chat, tests/servers/channel_test_server)
// for the Node interop tests, plus the small client-side helpers those tests
// share: bounded waits, an event inbox, a raw V2/V1 `ws` client that keeps
// every frame, and phoenix.js sockets with short timers.
//
//   const server = await startServer('PLUME_CHANNEL_SERVER_BIN', ['--max-channels', '3']);
//   ... new Socket(server.socketUrl, {transport: WebSocket}) ...
//   await server.stop();
//
// or, for one server shared by the tests of a describe() (or of a file):
//
//   const server = serverPerSuite(() => startServer('PLUME_CHAT_BIN', ['--threads', '2']));
//
// The binary path comes from the named env variable (CTest sets it). The
// server is always started on 127.0.0.1, with `--port 0` unless the args name
// a port, and the port is read from the stdout line `listening on
// (ws|http)://HOST:PORT/`. Every process started here (or handed to
// trackProcess) is killed by PID when the test process exits, whatever happened.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after, afterEach } from 'node:test';
import WebSocket from 'ws';
import { Presence, Socket } from 'phoenix';

const LISTEN_RE = /listening on (wss|ws|https|http):\/\/(\[[^\]]+\]|[^:/\s]+):(\d+)\//;

// ------------------------------------------------------------ processes

const live = new Set();

process.on('exit', () => {
  for (const proc of live) signalProcess(proc, 'SIGKILL');
});

/** Sends `signal` to `proc` by PID unless it has exited already (its PID may be reused). */
export function signalProcess(proc, signal = 'SIGKILL') {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    process.kill(proc.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Tracks a child process so that it is SIGKILLed by PID if the test process
 * exits first.
 *
 * @returns {{exited: Promise<{code: number|null, signal: string|null}>, kill: () => void,
 *   exitWithin: (ms: number) => Promise<{code: number|null, signal: string|null}|null>}}
 *   `exited` resolves once it has exited; kill() SIGKILLs it unless it is gone already;
 *   exitWithin(ms) resolves with the exit status, or, when the process has not exited
 *   within `ms`, SIGKILLs it and resolves with null once it is gone.
 */
export function trackProcess(proc) {
  live.add(proc);
  const exited = new Promise((resolve) => {
    const done = (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    };
    if (proc.exitCode !== null || proc.signalCode !== null) done(proc.exitCode, proc.signalCode);
    else proc.once('exit', done);
  });
  const kill = () => signalProcess(proc, 'SIGKILL');
  const exitWithin = async (ms) => {
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    const first = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (first !== null) return first;
    kill();
    await exited;
    return null;
  };
  return { exited, kill, exitWithin };
}

/** Spawns `bin` and tracks it (see trackProcess); returns {proc, exited, kill, exitWithin}. */
export function spawnTracked(bin, args, options = {}) {
  const proc = spawn(bin, args, options);
  return { proc, ...trackProcess(proc) };
}

/** The binary named by env variable `envVar`; throws naming an example path when unset. */
export function binaryFromEnv(
  envVar,
  example = 'PLUME_CHAT_BIN=build/dev/examples/chat/chat, PLUME_CHANNEL_SERVER_BIN=build/dev/tests/channel_test_server'
) {
  const bin = process.env[envVar];
  if (!bin) throw new Error(`${envVar} is not set: point it at the binary (${example})`);
  return bin;
}

// -------------------------------------------------------------- servers

/**
 * Spawns a plume server and resolves once it prints its listening line.
 *
 * @param {string} binEnvVar env variable holding the binary path
 * @param {string[]} args extra command-line arguments (`--port N` overrides `--port 0`)
 * @param {{startTimeoutMs?: number}} [options]
 * @returns {Promise<{port: number, host: string, url: string, httpUrl: string, socketUrl: string,
 *   wsUrl: string, proc: import('node:child_process').ChildProcess,
 *   exited: Promise<{code: number|null, signal: string|null}>, output: () => string,
 *   stop: (signal?: string, timeoutMs?: number) => Promise<{code: number|null, signal: string|null}>}>}
 *   `url`/`httpUrl` = http://HOST:PORT, `socketUrl` = ws://HOST:PORT/socket (for phoenix.js),
 *   `wsUrl` = ws://HOST:PORT/socket/websocket (for raw clients; v2Url/v1Url add ?vsn=…).
 */
export function startServer(binEnvVar, args = [], { startTimeoutMs = 10000 } = {}) {
  const bin = binaryFromEnv(binEnvVar);
  const fullArgs = [];
  if (!args.includes('--port')) fullArgs.push('--port', '0');
  if (!args.includes('--host')) fullArgs.push('--host', '127.0.0.1');
  fullArgs.push(...args);

  const { proc, exited, kill, exitWithin } = spawnTracked(bin, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'] });

  let stdout = '';
  let stderr = '';
  const output = () =>
    `command: ${bin} ${fullArgs.join(' ')}\n--- stdout ---\n${stdout.slice(-4000)}` +
    `\n--- stderr ---\n${stderr.slice(-4000)}`;

  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      kill();
      reject(new Error(`${bin} did not start: ${why}\n${output()}`));
    };
    const timer = setTimeout(
      () => fail(`no "listening on ws|http://HOST:PORT/" line on stdout within ${startTimeoutMs} ms`),
      startTimeoutMs
    );

    proc.once('error', (err) => fail(`spawn failed: ${err.message}`));
    proc.once('exit', (code, signal) => fail(`exited early (code ${code}, signal ${signal})`));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (stderr.length > 65536) stderr = stderr.slice(-16384);
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.length > 65536) stdout = stdout.slice(-16384);
      if (settled) return;
      const m = LISTEN_RE.exec(stdout);
      if (!m) return;
      settled = true;
      clearTimeout(timer);
      const secure = m[1] === 'wss' || m[1] === 'https';
      const host = m[2];
      const port = Number(m[3]);
      const stop = async (signal = 'SIGTERM', timeoutMs = 10000) => {
        signalProcess(proc, signal);
        const status = await exitWithin(timeoutMs);
        if (status === null) {
          throw new Error(`${bin} did not exit within ${timeoutMs} ms of ${signal}; killed\n${output()}`);
        }
        return status;
      };
      resolve({
        host,
        port,
        secure,
        url: `http${secure ? 's' : ''}://${host}:${port}`,
        httpUrl: `http${secure ? 's' : ''}://${host}:${port}`,
        socketUrl: `ws${secure ? 's' : ''}://${host}:${port}/socket`,
        wsUrl: `ws${secure ? 's' : ''}://${host}:${port}/socket/websocket`,
        proc,
        exited,
        output,
        stop,
      });
    });
  });
}

// ------------------------------------------------------------- waiting

/** Rejects with a message naming `what` when `promise` has not settled within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Records items (messages, events) in arrival order; waitFor() resolves with
 * the first recorded item matching a predicate that no earlier waitFor took,
 * whether it arrived before or after the call.
 */
export class Inbox {
  constructor(name = 'inbox') {
    this.name = name;
    this.items = [];
    this.taken = new Set();
    this.waiters = [];
    this.closedWith = null;
  }

  push(item) {
    const index = this.items.length;
    this.items.push(item);
    for (const w of this.waiters) {
      if (!w.done && !this.taken.has(index) && w.pred(item)) {
        w.done = true;
        this.taken.add(index);
        w.resolve(item);
        break;
      }
    }
    this.waiters = this.waiters.filter((w) => !w.done);
  }

  /** Fails pending and future waits (e.g. the connection closed). */
  close(why) {
    this.closedWith = why;
    for (const w of this.waiters.splice(0)) {
      if (!w.done) w.reject(new Error(`${this.name}: ${why} while waiting for ${w.what}`));
    }
  }

  waitFor(pred, { timeoutMs = 5000, what = 'a matching item' } = {}) {
    for (let i = 0; i < this.items.length; i++) {
      if (!this.taken.has(i) && pred(this.items[i])) {
        this.taken.add(i);
        return Promise.resolve(this.items[i]);
      }
    }
    if (this.closedWith) {
      return Promise.reject(new Error(`${this.name}: ${this.closedWith} before ${what}; got ${this.describe()}`));
    }
    const waiter = { pred, what, done: false };
    const p = new Promise((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this.waiters.push(waiter);
    return withTimeout(p, timeoutMs, `${what} (${this.name} so far: ${this.describe()})`).finally(() => {
      waiter.done = true;
    });
  }

  /** All recorded items matching pred. */
  all(pred = () => true) {
    return this.items.filter(pred);
  }

  describe() {
    const shown = this.items.slice(-12).map((i) => {
      try {
        return JSON.stringify(i, (k, v) => (v instanceof ArrayBuffer ? `<ArrayBuffer ${v.byteLength}>` : v));
      } catch {
        return String(i);
      }
    });
    return `[${shown.join(', ')}]${this.items.length > 12 ? ` (last 12 of ${this.items.length})` : ''}`;
  }
}

// ---------------------------------------------------------- raw client

/** Decodes a server→client V2 binary frame (kinds 0 push, 1 reply, 2 broadcast). */
export function decodeBinaryFrame(buf) {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
  const kind = b[0];
  let off;
  const take = (n) => {
    const s = b.subarray(off, off + n).toString('utf8');
    off += n;
    return s;
  };
  if (kind === 0) {
    const [jr, t, e] = [b[1], b[2], b[3]];
    off = 4;
    return { kind: 'push', join_ref: take(jr), ref: null, topic: take(t), event: take(e), payload: b.subarray(off) };
  }
  if (kind === 1) {
    const [jr, r, t, s] = [b[1], b[2], b[3], b[4]];
    off = 5;
    const join_ref = take(jr);
    const ref = take(r);
    const topic = take(t);
    const status = take(s);
    return { kind: 'reply', join_ref, ref, topic, event: 'phx_reply', status, payload: b.subarray(off) };
  }
  if (kind === 2) {
    const [t, e] = [b[1], b[2]];
    off = 3;
    return { kind: 'broadcast', join_ref: null, ref: null, topic: take(t), event: take(e), payload: b.subarray(off) };
  }
  return { kind: `unknown(${kind})`, raw: b };
}

/** Encodes a client→server V2 binary push (kind 0). */
export function encodeBinaryPush(joinRef, ref, topic, event, payload) {
  const parts = [joinRef ?? '', ref ?? '', topic, event].map((s) => Buffer.from(s, 'utf8'));
  return Buffer.concat([Buffer.from([0, ...parts.map((p) => p.length)]), ...parts, Buffer.from(payload)]);
}

const rawClients = new Set();

/**
 * A raw `ws` client that records every frame: `inbox` holds
 * {text, json, binary, frame} items in arrival order.
 */
export class RawClient {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.inbox = new Inbox(name);
    this.closeInfo = null;
    this.errors = [];
    this.upgradeHeaders = null;
    ws.on('upgrade', (res) => {
      this.upgradeHeaders = res.headers;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.inbox.push({ binary: true, frame: decodeBinaryFrame(data), raw: data });
      } else {
        const text = data.toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        this.inbox.push({ binary: false, text, json });
      }
    });
    ws.on('error', (err) => this.errors.push(err));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        rawClients.delete(this);
        this.closeInfo = { code, reason: reason.toString() };
        this.inbox.close(`connection closed (code ${code}, reason "${reason}")`);
        resolve(this.closeInfo);
      });
    });
  }

  /** Sends a V2 array / V1 object as JSON text, or a string as is. */
  send(msg) {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  sendBinary(buf) {
    this.ws.send(buf, { binary: true });
  }

  /** The next text frame whose parsed JSON matches pred. */
  async nextJson(pred, opts = {}) {
    const item = await this.inbox.waitFor((i) => !i.binary && i.json !== undefined && pred(i.json), opts);
    return item.json;
  }

  /** The V2 reply to `ref`: [join_ref, ref, topic, "phx_reply", {status, response}]. */
  replyTo(ref, opts = {}) {
    return this.nextJson((m) => Array.isArray(m) && m[1] === ref && m[3] === 'phx_reply', {
      what: `the phx_reply to ref ${ref}`,
      ...opts,
    });
  }

  /** The next V2 text frame with this topic and event. */
  event(topic, event, opts = {}) {
    return this.nextJson((m) => Array.isArray(m) && m[2] === topic && m[3] === event, {
      what: `event ${event} on ${topic}`,
      ...opts,
    });
  }

  /** Sends phx_join (join_ref = ref) and resolves with the reply frame. */
  async join(topic, ref, payload = {}, opts = {}) {
    this.send([ref, ref, topic, 'phx_join', payload]);
    return this.replyTo(ref, opts);
  }

  waitClosed(timeoutMs = 5000) {
    return withTimeout(this.closed, timeoutMs, `${this.name} to be closed by the server`);
  }

  close() {
    try {
      this.ws.terminate();
    } catch {
      // already gone
    }
  }
}

/** `server`'s raw WebSocket URL for the V2 JSON serializer (?vsn=2.0.0), plus `params`. */
export function v2Url(server, params = {}) {
  return `${server.wsUrl}?${new URLSearchParams({ vsn: '2.0.0', ...params })}`;
}

/** `server`'s raw WebSocket URL for the V1 JSON serializer (?vsn=1.0.0), plus `params`. */
export function v1Url(server, params = {}) {
  return `${server.wsUrl}?${new URLSearchParams({ vsn: '1.0.0', ...params })}`;
}

/**
 * Opens a raw ws client to `url` and resolves once it is open; rejects with
 * the HTTP status if the upgrade is refused.
 */
export function openRaw(url, { headers, protocols, timeoutMs = 5000, name = 'raw client' } = {}) {
  const ws = new WebSocket(url, protocols, { headers });
  const client = new RawClient(ws, name);
  rawClients.add(client);
  const opened = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        const err = new Error(`upgrade refused: HTTP ${res.statusCode} ${body}`);
        err.status = res.statusCode;
        err.body = body;
        err.headers = res.headers;
        reject(err);
        ws.terminate();
      });
    });
    ws.once('error', (err) => reject(err));
  });
  return withTimeout(opened, timeoutMs, `${name} to open ${url}`);
}

/**
 * Sends a WebSocket upgrade request by hand and resolves with
 * {status, headers, body} of the response (the socket is destroyed after a 101).
 */
export function rawUpgrade(url, headers = {}, timeoutMs = 5000) {
  const u = new URL(url.replace(/^ws/, 'http'));
  const req = http.request({
    host: u.hostname,
    port: u.port,
    path: u.pathname + u.search,
    method: 'GET',
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      ...headers,
    },
  });
  const done = new Promise((resolve, reject) => {
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  req.end();
  return withTimeout(done, timeoutMs, `the response to an upgrade of ${url}`).finally(() => req.destroy());
}

/**
 * GET url → {status, headers, body, json}. A fresh connection per request
 * unless `agent` is given (e.g. a keep-alive http.Agent).
 */
export function httpGet(url, timeoutMs = 5000, agent = false) {
  const done = new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
  });
  return withTimeout(done, timeoutMs, `GET ${url}`);
}

// ------------------------------------------------------------ phoenix.js

const phxSockets = new Set();

/** Fast client timers so reconnects/rejoins happen within a test's bounds. */
export const FAST = {
  reconnectAfterMs: () => 50,
  rejoinAfterMs: () => 50,
  heartbeatIntervalMs: 30000,
  timeout: 5000,
};

/**
 * A phoenix.js Socket over `ws`, with fast timers and a record of its
 * open/close/error callbacks in `socket.log` (an Inbox of {type, ...}).
 */
export function phxSocket(socketUrl, opts = {}) {
  const socket = new Socket(socketUrl, { transport: WebSocket, ...FAST, ...opts });
  const log = new Inbox('phoenix.js socket');
  socket.onOpen(() => log.push({ type: 'open' }));
  socket.onClose((e) => log.push({ type: 'close', code: e && e.code, reason: e && e.reason }));
  socket.onError((e) => log.push({ type: 'error', message: e && e.message }));
  socket.plumeLog = log;
  // Every decoded message the socket received: {topic, event, payload, ref, join_ref}.
  const messages = new Inbox('phoenix.js messages');
  socket.onMessage((m) => messages.push(m));
  socket.plumeMessages = messages;
  phxSockets.add(socket);
  return socket;
}

/** Connects a phoenix.js socket and waits for its onOpen. */
export async function phxConnect(socketUrl, opts = {}, timeoutMs = 5000) {
  const socket = phxSocket(socketUrl, opts);
  socket.connect();
  await socket.plumeLog.waitFor((e) => e.type === 'open', { timeoutMs, what: 'socket open' });
  return socket;
}

/**
 * Records every event of a phoenix.js channel (plus join/push replies you
 * route into it) in an Inbox of {event, payload, ref, joinRef}.
 */
export function recordChannel(channel, events) {
  const inbox = new Inbox(`channel ${channel.topic}`);
  for (const ev of events) {
    channel.on(ev, (payload, ref, joinRef) => inbox.push({ event: ev, payload, ref, joinRef }));
  }
  channel.plumeInbox = inbox;
  return inbox;
}

/**
 * Records every outcome of a channel's join push (including automatic
 * rejoins) in an Inbox of {status, response, joinRef}. Call before join().
 */
export function trackJoins(channel) {
  const inbox = new Inbox(`joins of ${channel.topic}`);
  for (const status of ['ok', 'error', 'timeout']) {
    channel.joinPush.receive(status, (response) => inbox.push({ status, response, joinRef: channel.joinRef() }));
  }
  channel.plumeJoins = inbox;
  return inbox;
}

/**
 * Resolves with {status, response} when the Push gets ok/error/timeout
 * (bounded by timeoutMs on top of the push's own timeout).
 */
export function pushResult(push, timeoutMs = 8000, what = `the reply to ${push.event}`) {
  const p = new Promise((resolve) => {
    push
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => resolve({ status: 'timeout' }));
  });
  return withTimeout(p, timeoutMs, what);
}

/** Joins and resolves with {status, response} of the join. */
export function joinResult(channel, timeoutMs = 8000) {
  return pushResult(channel.join(), timeoutMs, `the join reply of ${channel.topic}`);
}

/** Joins and fails unless the join is ok; resolves with the response. */
export async function joinOk(channel, timeoutMs = 8000) {
  const r = await joinResult(channel, timeoutMs);
  if (r.status !== 'ok') {
    throw new Error(`join of ${channel.topic} not ok: ${JSON.stringify(r)}`);
  }
  return r.response;
}

/** Disconnects every phoenix.js socket and raw client the helpers made. */
export async function closeAllClients(timeoutMs = 3000) {
  const waits = [];
  for (const socket of phxSockets) {
    waits.push(
      withTimeout(new Promise((resolve) => socket.disconnect(() => resolve())), timeoutMs, 'phoenix.js disconnect').catch(
        () => {}
      )
    );
  }
  phxSockets.clear();
  for (const c of rawClients) {
    c.close();
  }
  rawClients.clear();
  await Promise.all(waits);
}

// ---------------------------------------------------------------- suites

/** Closes the clients the helpers made, then stops `server` if it was started. */
export async function closeClientsAndStop(server) {
  await closeAllClients();
  if (server) await server.stop();
}

/**
 * One server for the tests of the enclosing describe() (or of the file, when
 * called at top level): `start()` runs in before(), closeClientsAndStop() in
 * after(); with `closeClientsAfterEach`, afterEach() closes the helpers'
 * clients too. The returned object is filled with the fields of the handle
 * start() resolves with (port, socketUrl, stop, ...) once before() has run,
 * so the tests can hold on to it from the describe() body.
 *
 * @param {() => Promise<object>} start e.g. () => startServer(BIN, ['--max-channels', '3'])
 * @param {{closeClientsAfterEach?: boolean}} [options]
 */
export function serverPerSuite(start, { closeClientsAfterEach = false } = {}) {
  const server = {};
  let started = false;
  before(async () => {
    Object.assign(server, await start());
    started = true;
  });
  if (closeClientsAfterEach) {
    afterEach(async () => {
      await closeAllClients();
    });
  }
  after(async () => {
    await closeClientsAndStop(started ? server : null);
  });
  return server;
}

/**
 * A phoenix.js client joined to `topic` at `socketUrl` as `user`, with a
 * Presence that records join/leave events. `keys()` is Presence.list's keys
 * (sorted), `online()` each key with whether any meta is typing, and
 * `until(pred, what, timeoutMs)` waits for pred after a presence sync.
 * `name` labels timeout messages.
 */
export async function presenceMember(socketUrl, user, topic, { name = user, timeoutMs = 5000 } = {}) {
  const socket = await phxConnect(socketUrl, { params: { user_id: user } });
  const channel = socket.channel(topic, {});
  const presence = new Presence(channel);
  const events = [];
  const waiters = [];
  const settle = () => {
    for (const w of [...waiters]) {
      if (w.pred()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  presence.onJoin((key, current, added) => events.push({ kind: 'join', key, first: !current, metas: added.metas }));
  presence.onLeave((key, current) => events.push({ kind: 'leave', key, last: current.metas.length === 0 }));
  presence.onSync(settle);
  const keys = () => presence.list((key) => key).sort();
  const online = () => presence.list((key, { metas }) => ({ key, typing: metas.some((m) => m.typing) }));
  const until = (pred, what, ms = timeoutMs) =>
    withTimeout(
      new Promise((resolve) => {
        waiters.push({ pred, resolve });
        settle();
      }),
      ms,
      `${name}: ${what} (Presence.list keys now ${JSON.stringify(keys())})`
    );
  await joinOk(channel);
  return { user, socket, channel, presence, events, keys, online, until };
}

// ------------------------------------------------------------------ TLS

/**
 * A fresh self-signed certificate for 127.0.0.1 and localhost, made by
 * scripts/make-cert.sh (openssl) in a temporary folder: {dir, cert, key, ca}
 * with `ca` the certificate's PEM (what a client trusts).
 */
export function makeCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plume-cert-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const script = fileURLToPath(new URL('../../../scripts/make-cert.sh', import.meta.url));
  const r = spawnSync('bash', [script, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/make-cert.sh failed (${r.status}): ${r.stderr}`);
  const cert = path.join(dir, 'cert.pem');
  return { dir, cert, key: path.join(dir, 'key.pem'), ca: fs.readFileSync(cert) };
}

/** A WebSocket class for phoenix.js (its `transport` option) that trusts `ca`. */
export function trustingWebSocket(ca) {
  return class extends WebSocket {
    constructor(url, protocols, options = {}) {
      if (protocols && typeof protocols === 'object' && !Array.isArray(protocols)) {
        options = protocols;
        protocols = undefined;
      }
      super(url, protocols, { ...options, ca });
    }
  };
}
