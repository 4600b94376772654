// Multi-node chat: several examples/chat processes sharing broadcasts and
// presence through a real Redis (`chat --redis redis://HOST:PORT --node NAME`),
// driven by the official phoenix.js client (npm phoenix) over `ws`.
//
// What it checks: a broadcast reaches clients on other nodes exactly once; a
// node subscribes to a topic's Redis channel (`plume:t:<topic>`) only while it
// has local subscribers; phoenix.js Presence converges across nodes and drops
// the users of a node that was killed, and at once those of a node stopped by
// SIGTERM (which exits 0); a join reply means the node already receives the
// topic's broadcasts; while Redis is down each node serves its own clients,
// and once Redis is back (restarted empty, same port) broadcasts cross again,
// in order; a bad --redis URL is refused and an unreachable Redis does not
// stop the chat from serving.
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat \
//        node --test cluster.test.mjs
// The cluster tests need Debian's redis-server on PATH (PLUME_REDIS_SERVER=/path
// overrides; scripts/setup.sh installs it). Each test starts its
// own Redis on a free 127.0.0.1 port and its own nodes; every process is
// stopped by PID in afterEach/after. Every wait is on an event, a callback or a polled
// condition, bounded by a deadline that fails the test.
import { describe, it, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import {
  startServer,
  spawnTracked,
  signalProcess,
  binaryFromEnv,
  closeAllClients,
  withTimeout,
  phxConnect,
  recordChannel,
  joinOk,
  pushResult,
  presenceMember,
} from './support/servers.mjs';

const BIN = 'PLUME_CHAT_BIN';
const T = { timeout: 60000 };

// Phoenix.Tracker periods for the nodes: a dead node is noticed quickly. The
// tracker refuses a down_period not longer than broadcast_period *
// max_silent_periods (10 by default): a quiet replica heartbeats only every
// max_silent_periods broadcasts, and must not be taken for dead.
const BROADCAST_MS = 200;
const DOWN_MS = 2500;
// A dead node's presences are gone within down + broadcast period + margin.
const NODE_DOWN_DEADLINE_MS = 10000;
// A topic stays subscribed for a while after its last local subscriber left.
const UNSUBSCRIBE_DEADLINE_MS = 10000;
const START_TIMEOUT_MS = 10000; // Redis or a node
const STOP_TIMEOUT_MS = 10000; // a process exiting after SIGTERM
const CONVERGE_MS = 10000; // presence lists, cluster mesh
// A node stopped by SIGTERM tells the others at once (a permdown). The
// graceful-stop test runs with a down period far longer than this deadline, so
// a leave within it can only come from the permdown, however loaded the machine.
const GRACEFUL_DOWN_MS = 120000;
const GRACEFUL_LEAVE_MS = 10000;
// After Redis comes back, broadcasts cross nodes again within this (the
// nodes reconnect with a jittered backoff of at most 1 s, then resubscribe).
const REDIS_RECOVER_MS = 15000;

// ------------------------------------------------------------------ redis

/** The redis-server binary: $PLUME_REDIS_SERVER, else the first on PATH; null when none. */
function findRedisServer() {
  if (process.env.PLUME_REDIS_SERVER) return process.env.PLUME_REDIS_SERVER;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, 'redis-server'))) return path.join(dir, 'redis-server');
  }
  return null;
}

// scripts/setup.sh installs it: a missing redis-server fails the tests, it
// does not skip them.
const REDIS_SERVER =
  findRedisServer() ??
  assert.fail('redis-server not found on PATH (scripts/setup.sh installs Debian\'s redis-server; PLUME_REDIS_SERVER overrides)');

/** A 127.0.0.1 port nobody listens on right now (listen on port 0, close). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A command as a RESP array of bulk strings. */
function encodeCommand(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/**
 * Parses one RESP2 value at `off` of `buf`: {value, off} past it, or null when
 * the buffer ends first. Error replies become Error values.
 */
function parseResp(buf, off = 0) {
  if (off >= buf.length) return null;
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, eol);
  let next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, off: next };
    case '-':
      return { value: new Error(`Redis: ${line}`), off: next };
    case ':':
      return { value: Number(line), off: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, off: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), off: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, off: next };
      const items = [];
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, next);
        if (!item) return null;
        items.push(item.value);
        next = item.off;
      }
      return { value: items, off: next };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.toString('utf8', off, Math.min(buf.length, off + 40)))}`);
  }
}

/** Sends one command to Redis on a fresh connection and resolves with its reply. */
function redisCommand(port, args, timeoutMs = 2000) {
  const sock = net.connect({ host: '127.0.0.1', port });
  const reply = new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    sock.once('connect', () => sock.write(encodeCommand(args)));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let parsed;
      try {
        parsed = parseResp(buf);
      } catch (e) {
        reject(e);
        return;
      }
      if (!parsed) return;
      if (parsed.value instanceof Error) reject(parsed.value);
      else resolve(parsed.value);
    });
    sock.once('error', reject);
    sock.once('close', () => reject(new Error(`Redis closed the connection before answering ${args[0]}`)));
  });
  return withTimeout(reply, timeoutMs, `Redis on port ${port} to answer ${args.join(' ')}`).finally(() =>
    sock.destroy()
  );
}

/** PUBSUB NUMSUB channel → how many connections (nodes) subscribe to it. */
async function numsub(redis, channel) {
  const reply = await redisCommand(redis.port, ['PUBSUB', 'NUMSUB', channel]);
  assert.ok(Array.isArray(reply) && reply.length === 2 && reply[0] === channel, `NUMSUB reply ${JSON.stringify(reply)}`);
  return Number(reply[1]);
}

/** How many "chat: redis subscribe connection: <error>" lines `node` printed on stderr so far. */
const subscribeDownLines = (node) => (node.output().match(/^chat: redis subscribe connection: /gm) || []).length;

/** The Redis channel the adapter publishes `topic` on. */
const topicChannel = (topic) => `plume:t:${topic}`;

/**
 * Calls `probe` (async) until `done(value)` holds, pausing `intervalMs` between
 * calls; fails naming `what` and the last value once `timeoutMs` has passed.
 */
async function pollUntil(probe, done, { timeoutMs, intervalMs = 50, what }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const shown = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${shown})`);
    }
    await delay(intervalMs);
  }
}

// --------------------------------------------------------------- processes

// Everything a test started, stopped in reverse order (nodes before their Redis).
const running = [];

/** Stops every tracked process by PID; rethrows the first failure after trying them all. */
async function stopAll() {
  await closeAllClients();
  let firstError = null;
  while (running.length > 0) {
    const r = running.pop();
    try {
      await r.stop();
    } catch (e) {
      firstError ??= e;
    }
  }
  if (firstError) throw firstError;
}

afterEach(stopAll);
after(stopAll);

/**
 * Starts `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no`
 * on `port` (default: a free one) and resolves once it answers PING. With
 * `replaces` (a handle of a Redis that has exited), the new one takes its
 * place in the stop order (before the nodes started after it are stopped).
 *
 * @returns {Promise<{port: number, url: string, output: () => string,
 *   stop: () => Promise<void>, kill: () => Promise<{code: number|null, signal: string|null}>}>}
 *   kill() SIGKILLs it and resolves with its exit status once it is gone.
 */
async function startRedis({ port, replaces } = {}) {
  port ??= await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const { proc, exited, exitWithin } = spawnTracked(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (c) => (out = (out + c).slice(-8000)));
  proc.stderr.on('data', (c) => (out = (out + c).slice(-8000)));
  let spawnError = null;
  proc.once('error', (e) => (spawnError = e));
  let gone = null;
  exited.then((status) => (gone = status));
  const output = () => `command: ${REDIS_SERVER} ${args.map((a) => a || '""').join(' ')}\n${out}`;

  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    output,
    async stop() {
      signalProcess(proc, 'SIGTERM');
      if ((await exitWithin(STOP_TIMEOUT_MS)) === null) {
        throw new Error(`redis-server did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM; killed\n${output()}`);
      }
    },
    async kill() {
      signalProcess(proc, 'SIGKILL');
      return withTimeout(exited, STOP_TIMEOUT_MS, `redis-server on port ${port} to exit after SIGKILL`);
    },
  };
  const at = replaces ? running.indexOf(replaces) : -1;
  if (at >= 0) running[at] = redis;
  else running.push(redis);

  await pollUntil(
    async () => {
      if (spawnError) throw new Error(`spawn failed: ${spawnError.message}`);
      if (gone) throw new Error(`exited early (${JSON.stringify(gone)})`);
      return redisCommand(port, ['PING'], 500);
    },
    (reply) => reply === 'PONG',
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 25, what: `redis-server on port ${port} to answer PING\n${output()}` }
  ).catch((e) => {
    throw new Error(`${e.message}\n${output()}`);
  });
  return redis;
}

/**
 * Starts one chat node on `redisUrl` (with fast tracker periods) and resolves
 * once it prints its listening line; the node is stopped by PID after the test.
 */
async function startNode(redisUrl, name, extra = []) {
  const node = await startServer(
    BIN,
    [
      '--threads', '1',
      '--redis', redisUrl,
      '--node', name,
      '--tracker-broadcast-ms', String(BROADCAST_MS),
      '--tracker-down-ms', String(DOWN_MS),
      ...extra,
    ],
    { startTimeoutMs: START_TIMEOUT_MS }
  );
  node.name = name;
  running.push({ stop: () => node.stop('SIGTERM', STOP_TIMEOUT_MS) });
  return node;
}

/**
 * Waits until the nodes form a cluster: a probe client on each node joins a
 * scratch room, and each probe pushes new_msg (again every 250 ms) until every
 * other probe got one. A node prints its listening line before its Redis
 * connections are up (it serves locally without Redis), so the tests start
 * from here rather than from the listening lines.
 */
async function waitForMesh(nodes) {
  const topic = `room:mesh-${Math.random().toString(36).slice(2, 10)}`;
  const probes = [];
  for (const node of nodes) {
    const socket = await phxConnect(node.socketUrl, { params: { user_id: `probe-${node.name}` } });
    const ch = socket.channel(topic, {});
    const inbox = recordChannel(ch, ['new_msg']);
    await joinOk(ch);
    probes.push({ node, socket, ch, inbox });
  }
  const deadline = Date.now() + CONVERGE_MS;
  for (const from of probes) {
    const others = probes.filter((p) => p !== from);
    const seen = new Set();
    for (let n = 0; seen.size < others.length; n++) {
      if (Date.now() >= deadline) {
        const missing = others.filter((p) => !seen.has(p)).map((p) => p.node.name);
        throw new Error(
          `nodes did not form a cluster within ${CONVERGE_MS} ms: ` +
            `${missing.join(', ')} never got a broadcast from ${from.node.name}`
        );
      }
      from.ch.push('new_msg', { body: `probe ${n}` });
      await Promise.all(
        others
          .filter((p) => !seen.has(p))
          .map((p) =>
            p.inbox
              .waitFor((e) => e.payload.user_id === `probe-${from.node.name}`, { timeoutMs: 250, what: 'a probe' })
              .then(() => seen.add(p), () => {})
          )
      );
    }
  }
  // The probes stay connected (in their own room) until the test's clients are closed.
}

/** Redis plus nodes named `names` (in that order), formed into a cluster. */
async function startCluster(names, extra = []) {
  const redis = await startRedis();
  const nodes = [];
  for (const name of names) nodes.push(await startNode(redis.url, name, extra));
  await waitForMesh(nodes);
  const h = extra.indexOf('--history');
  if (h < 0 || extra[h + 1] !== '0') for (const node of nodes) await waitForHistory(node);
  return { redis, nodes };
}

/**
 * Until `node` reads its rooms' history from Redis: a join's reply carries the
 * room's position (epoch, offset) only then. A node serves clients before its
 * Redis connection is up, and a first join would get no position.
 */
async function waitForHistory(node) {
  await pollUntil(
    async () => {
      const socket = await phxConnect(node.socketUrl, { params: { user_id: `history-probe-${node.name}` } });
      try {
        return await joinOk(socket.channel(`room:history-ready-${Math.random().toString(36).slice(2, 10)}`, {}));
      } finally {
        socket.disconnect();
      }
    },
    (reply) => typeof reply.epoch === 'string',
    { timeoutMs: CONVERGE_MS, what: `${node.name} to read history from Redis\n${node.output()}` }
  );
}

// ----------------------------------------------------------------- clients

/** A phoenix.js client of `node` joined to `topic`, recording new_msg. */
async function chatter(node, user, topic = 'room:lobby') {
  const socket = await phxConnect(node.socketUrl, { params: { user_id: user } });
  const channel = socket.channel(topic, {});
  const inbox = recordChannel(channel, ['new_msg']);
  await joinOk(channel);
  return { user, socket, channel, inbox };
}

/** A new_msg payload without its history offset (which the history tests check). */
function withoutOffset(payload) {
  const { offset, ...rest } = payload;
  if (offset !== undefined) assert.equal(typeof offset, 'number', JSON.stringify(payload));
  return rest;
}

/** Waits for new_msg `body` at `client`; resolves with its payload, without its offset. */
async function received(client, body, timeoutMs = 5000) {
  const e = await client.inbox.waitFor((m) => m.payload.body === body, {
    timeoutMs,
    what: `new_msg "${body}" at ${client.user}`,
  });
  return withoutOffset(e.payload);
}

/** How often each body arrived at `client`. */
function bodyCounts(client) {
  const counts = {};
  for (const e of client.inbox.items) counts[e.payload.body] = (counts[e.payload.body] || 0) + 1;
  return counts;
}

/** A phoenix.js client of `node` in `topic` with a Presence (see presenceMember). */
async function member(node, user, topic = 'room:lobby') {
  const m = await presenceMember(node.socketUrl, user, topic, { name: `${user} on ${node.name}`, timeoutMs: CONVERGE_MS });
  return { ...m, node };
}

// ------------------------------------------------------------------- tests

describe('chat cluster over Redis', () => {
  it('cross-node broadcast: new_msg from a client on A reaches B, and from B reaches A, exactly once', T, async () => {
    const { nodes: [A, B] } = await startCluster(['A', 'B']);
    const ann = await chatter(A, 'ann');
    const ben = await chatter(B, 'ben');

    ann.channel.push('new_msg', { body: 'hello from A' });
    assert.deepEqual(await received(ben, 'hello from A'), { body: 'hello from A', user_id: 'ann' });
    assert.deepEqual(await received(ann, 'hello from A'), { body: 'hello from A', user_id: 'ann' }, 'the sender\'s own copy');

    ben.channel.push('new_msg', { body: 'hello from B' });
    assert.deepEqual(await received(ann, 'hello from B'), { body: 'hello from B', user_id: 'ben' });
    assert.deepEqual(await received(ben, 'hello from B'), { body: 'hello from B', user_id: 'ben' }, 'the sender\'s own copy');

    // Fences: Redis delivers a node's subscription in publish order, so once
    // A's fence reached ben, any echo of B's own broadcasts reached B before
    // it (and the other way round): nothing arrives twice.
    ann.channel.push('new_msg', { body: 'fence A' });
    await received(ben, 'fence A');
    ben.channel.push('new_msg', { body: 'fence B' });
    await received(ann, 'fence B');
    await received(ann, 'fence A');
    await received(ben, 'fence B');
    const once = { 'hello from A': 1, 'hello from B': 1, 'fence A': 1, 'fence B': 1 };
    assert.deepEqual(bodyCounts(ann), once, 'ann: every message once');
    assert.deepEqual(bodyCounts(ben), once, 'ben: every message once');
  });

  it('no fan-in: only nodes with local subscribers subscribe to plume:t:room:lobby; leaving unsubscribes', T, async () => {
    const { redis, nodes: [A, B] } = await startCluster(['A', 'B', 'C']);
    const channel = topicChannel('room:lobby');
    assert.equal(await numsub(redis, channel), 0, 'nobody in room:lobby yet');

    const ann = await chatter(A, 'ann');
    const ben = await chatter(B, 'ben');
    await pollUntil(() => numsub(redis, channel), (n) => n === 2, {
      timeoutMs: CONVERGE_MS,
      what: `NUMSUB ${channel} to be 2 (A and B subscribe to room:lobby, C does not)`,
    });
    // A round trip through Redis, then still 2: C did not subscribe meanwhile.
    ann.channel.push('new_msg', { body: 'to B' });
    await received(ben, 'to B');
    assert.equal(await numsub(redis, channel), 2, 'after a broadcast: still only A and B');

    const left = await pushResult(ben.channel.leave(), 5000, 'the leave reply');
    assert.equal(left.status, 'ok', JSON.stringify(left));
    await pollUntil(() => numsub(redis, channel), (n) => n === 1, {
      timeoutMs: UNSUBSCRIBE_DEADLINE_MS,
      intervalMs: 100,
      what: `NUMSUB ${channel} to drop to 1 after the last client on B left`,
    });
    // A is still subscribed and still serves its client.
    ann.channel.push('new_msg', { body: 'still here' });
    await received(ann, 'still here');
    assert.equal(await numsub(redis, channel), 1);
  });

  it('presence across nodes: clients on A and B see both users, with the same metas; updates and leaves cross too', T, async () => {
    const { nodes: [A, B] } = await startCluster(['A', 'B']);
    const alice = await member(A, 'alice');
    const bob = await member(B, 'bob');
    await alice.until(() => alice.keys().join() === 'alice,bob', 'alice sees alice and bob');
    await bob.until(() => bob.keys().join() === 'alice,bob', 'bob sees alice and bob');
    const refs = (m) =>
      m.presence.list((key, { metas }) => [key, metas.map((x) => x.phx_ref)]).sort((x, y) => x[0].localeCompare(y[0]));
    assert.deepEqual(refs(alice), refs(bob), 'both hold the same presences');
    assert.equal(alice.presence.state.bob.metas.length, 1, 'one meta for bob');
    assert.equal(bob.presence.state.alice.metas.length, 1, 'one meta for alice');
    assert.ok(alice.events.some((e) => e.kind === 'join' && e.key === 'bob' && e.first), 'alice saw bob join');

    // A meta update on B reaches A.
    bob.channel.push('typing:start', {});
    await alice.until(() => alice.presence.state.bob?.metas.some((m) => m.typing) === true, 'bob typing, seen on A');

    // A leave on B reaches A.
    const left = await pushResult(bob.channel.leave(), 5000, 'bob\'s leave reply');
    assert.equal(left.status, 'ok', JSON.stringify(left));
    await alice.until(() => alice.keys().join() === 'alice', 'bob gone, seen on A');
    assert.ok(alice.events.some((e) => e.kind === 'leave' && e.key === 'bob' && e.last), 'alice saw bob leave');
  });

  it(`node death: after kill -9 of B, its user leaves the Presence list on A within ${NODE_DOWN_DEADLINE_MS} ms`, T, async () => {
    const { nodes: [A, B] } = await startCluster(['A', 'B']);
    const alice = await member(A, 'alice');
    const bob = await member(B, 'bob');
    await alice.until(() => alice.keys().join() === 'alice,bob', 'alice sees bob');
    await bob.until(() => bob.keys().join() === 'alice,bob', 'bob sees alice');

    const killedAt = Date.now();
    const status = await B.stop('SIGKILL', STOP_TIMEOUT_MS);
    assert.equal(status.signal, 'SIGKILL', JSON.stringify(status));
    bob.socket.disconnect(); // no reconnect attempts to the dead port

    await alice.until(() => alice.keys().join() === 'alice', 'bob to vanish after B died', NODE_DOWN_DEADLINE_MS);
    const elapsed = Date.now() - killedAt;
    assert.ok(alice.events.some((e) => e.kind === 'leave' && e.key === 'bob' && e.last), 'a presence_diff leave for bob');
    assert.ok(elapsed < NODE_DOWN_DEADLINE_MS, `bob left ${elapsed} ms after the kill`);
  });

  it(`node death at scale: after kill -9 of B holding 1,000 presences, A and C show every one leave within ${NODE_DOWN_DEADLINE_MS} ms, with the same lists`, T, async (t) => {
    const { nodes: [A, B, C] } = await startCluster(['A', 'B', 'C'], ['--no-rate-limits']);
    const topic = 'room:crowd';
    const onA = await member(A, 'watch-a', topic);
    const onC = await member(C, 'watch-c', topic);
    const n = 1000;
    const crowd = [];
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: 100 }, async (_, j) => {
          const socket = await phxConnect(B.socketUrl, { params: { user_id: `u${i + j}` } });
          await joinOk(socket.channel(topic, {}));
          return socket;
        })
      );
      crowd.push(...batch);
    }
    const everyone = n + 2;
    await onA.until(() => onA.keys().length === everyone, `all ${everyone} users on A`, CONVERGE_MS);
    await onC.until(() => onC.keys().length === everyone, `all ${everyone} users on C`, CONVERGE_MS);

    const killedAt = Date.now();
    const status = await B.stop('SIGKILL', STOP_TIMEOUT_MS);
    assert.equal(status.signal, 'SIGKILL', JSON.stringify(status));
    for (const s of crowd) s.disconnect(); // no reconnect attempts to the dead port
    const left = ['watch-a', 'watch-c'];
    await onA.until(() => onA.keys().join() === left.join(), 'B\'s 1,000 users to leave A\'s list', NODE_DOWN_DEADLINE_MS);
    await onC.until(() => onC.keys().join() === left.join(), 'B\'s 1,000 users to leave C\'s list', NODE_DOWN_DEADLINE_MS);
    t.diagnostic(`all 1,000 left A's and C's lists ${Date.now() - killedAt} ms after the kill`);
    for (const m of [onA, onC]) {
      const leaves = new Set(m.events.filter((e) => e.kind === 'leave' && e.last && e.key.startsWith('u')).map((e) => e.key));
      assert.equal(leaves.size, n, `${m.user}: a presence_diff leave for each of the ${n}`);
    }
    const entries = (m) => m.presence.list((key, { metas }) => `${key}:${metas.map((x) => x.phx_ref).sort().join(',')}`).sort();
    assert.deepEqual(entries(onC), entries(onA), 'A and C list the same presences');
  });

  it(`graceful stop: after SIGTERM of B, its user leaves the Presence list on A within ${GRACEFUL_LEAVE_MS} ms; B exits 0`, T, async (t) => {
    const { nodes: [A, B] } = await startCluster(['A', 'B'], ['--tracker-down-ms', String(GRACEFUL_DOWN_MS)]);
    const alice = await member(A, 'alice');
    const bob = await member(B, 'bob');
    await alice.until(() => alice.keys().join() === 'alice,bob', 'alice sees bob');
    await bob.until(() => bob.keys().join() === 'alice,bob', 'bob sees alice');

    const signalledAt = Date.now();
    // Settles with B's exit status (or the error of a B that had to be killed).
    const stopping = B.stop('SIGTERM', STOP_TIMEOUT_MS).catch((e) => e);
    await alice.until(
      () => alice.keys().join() === 'alice',
      `bob to leave within ${GRACEFUL_LEAVE_MS} ms of SIGTERM to B (the down period alone would take ${GRACEFUL_DOWN_MS} ms)`,
      GRACEFUL_LEAVE_MS
    );
    const elapsed = Date.now() - signalledAt;
    const status = await stopping;
    bob.socket.disconnect(); // no reconnect attempts to the closed port
    if (status instanceof Error) throw status;
    assert.deepEqual(status, { code: 0, signal: null }, `B's exit after SIGTERM\n${B.output()}`);
    assert.ok(alice.events.some((e) => e.kind === 'leave' && e.key === 'bob' && e.last), 'a presence_diff leave for bob');
    t.diagnostic(`bob left A's Presence list ${elapsed} ms after SIGTERM to B`);
    // A goes on serving its client.
    const ann = await chatter(A, 'ann');
    ann.channel.push('new_msg', { body: 'after B stopped' });
    await received(ann, 'after B stopped');
  });

  it(`Redis restart: nodes serve local clients while it is down, and broadcasts cross again within ${REDIS_RECOVER_MS} ms of it coming back`, T, async (t) => {
    const { redis, nodes: [A, B] } = await startCluster(['A', 'B']);
    const ann = await chatter(A, 'ann');
    const amy = await chatter(A, 'amy');
    const ben = await chatter(B, 'ben');
    const bea = await chatter(B, 'bea');
    ann.channel.push('new_msg', { body: 'before the outage' });
    await received(ben, 'before the outage');

    // Redis dies; both nodes notice (their subscribe connection drops).
    const noticed = [A, B].map(subscribeDownLines);
    const killed = await redis.kill();
    assert.equal(killed.signal, 'SIGKILL', JSON.stringify(killed));
    await pollUntil(
      async () => [A, B].map(subscribeDownLines),
      (counts) => counts.every((n, i) => n > noticed[i]),
      { timeoutMs: CONVERGE_MS, what: `"chat: redis subscribe connection: …" on A and B\nA: ${A.output()}\nB: ${B.output()}` }
    );
    await assert.rejects(redisCommand(redis.port, ['PING'], 500), 'Redis is down');

    // Meanwhile each node still serves its own clients.
    ann.channel.push('new_msg', { body: 'A during the outage' });
    assert.deepEqual(await received(amy, 'A during the outage'), { body: 'A during the outage', user_id: 'ann' });
    ben.channel.push('new_msg', { body: 'B during the outage' });
    assert.deepEqual(await received(bea, 'B during the outage'), { body: 'B during the outage', user_id: 'ben' });
    await assert.rejects(redisCommand(redis.port, ['PING'], 500), 'Redis was down all along');

    // Redis comes back on the same port (empty: no subscriptions survive).
    await startRedis({ port: redis.port, replaces: redis });
    const backAt = Date.now();

    // Numbered messages from A until one reaches B.
    const tag = 'after restart';
    const isProbe = (e) => e.payload.body.startsWith(`${tag} `);
    let n = 0;
    let first = null;
    while (first === null) {
      if (Date.now() - backAt >= REDIS_RECOVER_MS) {
        throw new Error(
          `no new_msg from A reached B within ${REDIS_RECOVER_MS} ms of Redis coming back (${n} sent)\n` +
            `A: ${A.output()}\nB: ${B.output()}`
        );
      }
      ann.channel.push('new_msg', { body: `${tag} ${n++}` });
      first = await ben.inbox.waitFor(isProbe, { timeoutMs: 250, what: 'a probe' }).catch(() => null);
    }
    t.diagnostic(`"${first.payload.body}" crossed ${Date.now() - backAt} ms after Redis was back (${n} sent)`);

    // From then on every message crosses, once, in order.
    const later = [];
    for (let i = 0; i < 10; i++) later.push(`${tag} ${n + i}`);
    for (const body of later) ann.channel.push('new_msg', { body });
    for (const body of later) assert.deepEqual(await received(ben, body), { body, user_id: 'ann' });
    ann.channel.push('new_msg', { body: 'fence' });
    await received(ben, 'fence');
    const atB = ben.inbox.items.map((e) => e.payload.body);
    assert.deepEqual(atB.filter((b) => later.includes(b)), later, 'at B: every message after the first crossing, in order, once');
    // And back from B to A: B's own publishing connection reconnects on its
    // own schedule (backoff at most 1 s), so probe until one crosses.
    const fromB = (e) => e.payload.body.startsWith('B after restart ');
    let m = 0;
    let back = null;
    while (back === null) {
      if (Date.now() - backAt >= REDIS_RECOVER_MS) {
        throw new Error(`no new_msg from B reached A within ${REDIS_RECOVER_MS} ms of Redis coming back (${m} sent)`);
      }
      ben.channel.push('new_msg', { body: `B after restart ${m++}` });
      back = await ann.inbox.waitFor(fromB, { timeoutMs: 250, what: 'a probe from B' }).catch(() => null);
    }
    t.diagnostic(`"${back.payload.body}" crossed from B ${Date.now() - backAt} ms after Redis was back`);
  });

  it('a stalled node (SIGSTOP) is cut off by Redis at its pub/sub output buffer limit; A goes on, and B gets live messages again after SIGCONT', T, async (t) => {
    const { redis, nodes: [A, B] } = await startCluster(['A', 'B'], ['--history', '0', '--no-rate-limits']);
    // A small limit, so a few MB show it (the default is 32 MB).
    assert.equal(await redisCommand(redis.port, ['CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1mb 256kb 60']), 'OK');
    const ann = await chatter(A, 'ann');
    const amy = await chatter(A, 'amy');
    const ben = await chatter(B, 'ben');
    ann.channel.push('new_msg', { body: 'before' });
    await received(ben, 'before');

    const noticed = subscribeDownLines(B);
    process.kill(B.proc.pid, 'SIGSTOP');
    // 5,000 x 3.9 KB (the chat's longest body): about 20 MB for B's
    // subscriber connection, beyond what the kernel's socket buffers hold.
    const n = 5000;
    try {
      const pad = 'x'.repeat(3900);
      const isBig = (e) => e.payload.body.startsWith('big ');
      // In batches of 100, each once amy has the one before: this process
      // then reads the broadcasts about as fast as it writes the pushes. All
      // 5,000 at once, a release build of A (the io_uring one in CI) queued
      // 2 x 20 MB for ann and amy faster than this one process read them,
      // and closed both with 1008 at max_send_queue (4 MiB): the slow-reader
      // policy, not what this test is about.
      const batch = 100;
      for (let i = 0; i < n; i += batch) {
        for (let j = i; j < i + batch; j++) ann.channel.push('new_msg', { body: `big ${j} ${pad}` });
        await amy.inbox.waitFor(() => amy.inbox.items.filter(isBig).length >= i + batch, {
          timeoutMs: 20000,
          what: `big messages ${i}..${i + batch - 1} at amy (A) while B is stopped`,
        });
      }
      assert.equal(amy.inbox.items.filter(isBig).length, n, 'each big message once at amy');
      await pollUntil(async () => redis.output(), (out) => out.includes('overcoming of output buffer limits'), {
        timeoutMs: CONVERGE_MS,
        what: `Redis to close B's subscriber connection for its output buffer\n${redis.output()}`,
      });
    } finally {
      process.kill(B.proc.pid, 'SIGCONT');
    }
    // B finds its subscriber connection closed, reconnects and resubscribes.
    await pollUntil(async () => subscribeDownLines(B), (c) => c > noticed, {
      timeoutMs: CONVERGE_MS,
      what: `"chat: redis subscribe connection: …" on B after SIGCONT\n${B.output()}`,
    });
    const resumedAt = Date.now();
    let k = 0;
    let got = null;
    while (got === null) {
      if (Date.now() - resumedAt >= REDIS_RECOVER_MS) {
        throw new Error(`no new_msg from A reached B within ${REDIS_RECOVER_MS} ms of B resuming\n${B.output()}`);
      }
      ann.channel.push('new_msg', { body: `after ${k++}` });
      got = await ben.inbox.waitFor((e) => e.payload.body.startsWith('after '), { timeoutMs: 250, what: 'a probe' }).catch(() => null);
    }
    t.diagnostic(`B got "${got.payload.body}" ${Date.now() - resumedAt} ms after it noticed`);
    const fence = `fence ${k}`;
    ann.channel.push('new_msg', { body: fence });
    await received(ben, fence);
  });

  it('join/publish ordering: a broadcast from A right after B\'s join reply reaches the joiner (20 fresh topics)', T, async () => {
    const { nodes: [A, B] } = await startCluster(['A', 'B']);
    const sender = await phxConnect(A.socketUrl, { params: { user_id: 'sender' } });
    const joiner = await phxConnect(B.socketUrl, { params: { user_id: 'joiner' } });
    const rounds = [];
    for (let i = 0; i < 20; i++) {
      const topic = `room:race-${i}`;
      const from = sender.channel(topic, {});
      await joinOk(from);
      const to = joiner.channel(topic, {});
      const inbox = recordChannel(to, ['new_msg']);
      const body = `race ${i}`;
      // The push goes out from the join reply's own callback: no delay at all.
      const joined = new Promise((resolve, reject) => {
        to.join()
          .receive('ok', () => {
            from.push('new_msg', { body });
            resolve();
          })
          .receive('error', (r) => reject(new Error(`join of ${topic} on B refused: ${JSON.stringify(r)}`)))
          .receive('timeout', () => reject(new Error(`join of ${topic} on B timed out`)));
      });
      await withTimeout(joined, 8000, `the join reply of ${topic} on B`);
      const got = await inbox.waitFor((e) => e.payload.body === body, {
        timeoutMs: 5000,
        what: `"${body}" on ${topic} at the client that just joined on B`,
      });
      assert.deepEqual(withoutOffset(got.payload), { body, user_id: 'sender' });
      rounds.push({ topic, from, inbox, body });
    }
    // A fence per topic from the same sender: nothing arrived twice.
    for (const r of rounds) r.from.push('new_msg', { body: 'fence' });
    for (const r of rounds) {
      await r.inbox.waitFor((e) => e.payload.body === 'fence', { timeoutMs: 5000, what: `the fence on ${r.topic}` });
      assert.deepEqual(r.inbox.items.map((e) => e.payload.body), [r.body, 'fence'], r.topic);
    }
  });
});

// ----------------------------------------------------------------- history

/**
 * A phoenix.js client of `node` in `topic` whose join params carry `seen`
 * ({offset, epoch}, updated by every new_msg), as the chat page does.
 * Resolves once joined, with the join's reply.
 */
async function historian(node, user, topic, seen = { offset: null, epoch: null }) {
  const socket = await phxConnect(node.socketUrl, { params: { user_id: user } });
  const channel = socket.channel(topic, () => (seen.epoch === null ? {} : { offset: seen.offset, epoch: seen.epoch }));
  const inbox = recordChannel(channel, ['new_msg']);
  channel.on('new_msg', ({ offset }) => {
    if (typeof offset === 'number') seen.offset = offset;
  });
  const reply = await joinOk(channel);
  if (typeof reply.epoch === 'string') {
    if (!reply.recovered) seen.offset = reply.offset;
    seen.epoch = reply.epoch;
  }
  return { user, socket, channel, inbox, seen, reply };
}

/** Sends new_msg `body` from `client` and waits for its own copy; resolves with its offset. */
async function say(client, body) {
  client.channel.push('new_msg', { body });
  const e = await client.inbox.waitFor((m) => m.payload.body === body, { what: `own copy of "${body}" at ${client.user}` });
  return e.payload.offset;
}

describe('chat cluster over Redis: history kept in Redis', () => {
  it('one offset sequence per room for the whole cluster: clients on A, B and C see the same messages in the same order', T, async () => {
    const { nodes: [A, B, C] } = await startCluster(['A', 'B', 'C']);
    const topic = 'room:history-order';
    const ann = await historian(A, 'ann', topic);
    const ben = await historian(B, 'ben', topic);
    const cat = await historian(C, 'cat', topic);
    assert.equal(typeof ann.reply.epoch, 'string');
    assert.equal(ben.reply.epoch, ann.reply.epoch, 'one epoch for the room on every node');
    assert.equal(cat.reply.epoch, ann.reply.epoch);
    const start = ann.reply.offset;
    // Two senders on two nodes, not waiting for each other.
    const bodies = [];
    for (let i = 0; i < 25; i++) {
      ann.channel.push('new_msg', { body: `a${i}` });
      ben.channel.push('new_msg', { body: `b${i}` });
      bodies.push(`a${i}`, `b${i}`);
    }
    const seqs = [];
    for (const c of [ann, ben, cat]) {
      await c.inbox.waitFor(() => c.inbox.items.length >= bodies.length, { what: `50 messages at ${c.user}` });
      const items = c.inbox.items.map((e) => e.payload);
      assert.deepEqual(items.map((p) => p.offset), bodies.map((_, i) => start + 1 + i), `${c.user}: consecutive offsets, in order`);
      assert.deepEqual([...items.map((p) => p.body)].sort(), [...bodies].sort(), `${c.user}: every message once`);
      seqs.push(items.map((p) => p.body).join(' '));
    }
    assert.equal(seqs[1], seqs[0], 'B sees the order A sees');
    assert.equal(seqs[2], seqs[0], 'C sees the order A sees');
    // Each sender's own messages keep their order.
    const order = seqs[0].split(' ');
    assert.deepEqual(order.filter((b) => b.startsWith('a')), bodies.filter((b) => b.startsWith('a')));
    assert.deepEqual(order.filter((b) => b.startsWith('b')), bodies.filter((b) => b.startsWith('b')));
  });

  it('a client that was on A comes back through C and gets what it missed: recovered true, in order, then live; a gap longer than --history 3: false', T, async () => {
    const { nodes: [A, B, C] } = await startCluster(['A', 'B', 'C'], ['--history', '3']);
    const topic = 'room:history-rejoin';
    const ann = await historian(A, 'ann', topic);
    const ben = await historian(B, 'ben', topic);
    const stale = { ...ann.seen }; // a client gone since before 'before'
    await say(ben, 'before');
    await ann.inbox.waitFor((e) => e.payload.body === 'before');
    const left = { ...ann.seen };
    ann.socket.disconnect();
    const missed = ['m1', 'm2', 'm3'];
    const offsets = [];
    for (const body of missed) offsets.push(await say(ben, body));

    const back = await historian(C, 'ann', topic, { ...left });
    assert.equal(back.reply.recovered, true, JSON.stringify(back.reply));
    assert.equal(back.reply.epoch, left.epoch);
    assert.equal(back.reply.offset, offsets[2], 'the reply gives the offset of the last missed message');
    await say(ben, 'after');
    await back.inbox.waitFor((e) => e.payload.body === 'after', { what: '"after" at the client back on C' });
    assert.deepEqual(back.inbox.items.map((e) => e.payload.body), [...missed, 'after']);
    assert.deepEqual(back.inbox.items.map((e) => e.payload.offset), [...offsets, offsets[2] + 1]);

    // Four behind with three kept: not recovered, nothing replayed, only live messages.
    const late = await historian(B, 'late', topic, stale);
    assert.equal(late.reply.recovered, false, JSON.stringify(late.reply));
    assert.equal(late.reply.offset, offsets[2] + 1);
    await say(ben, 'live');
    await late.inbox.waitFor((e) => e.payload.body === 'live');
    assert.deepEqual(late.inbox.items.map((e) => e.payload.body), ['live']);
  });

  it('a rejoin while messages keep coming: every offset after the one asked for arrives once, in order', T, async () => {
    const { nodes: [A, B] } = await startCluster(['A', 'B'], ['--history', '1000', '--no-rate-limits']);
    const topic = 'room:history-race';
    const ben = await historian(A, 'ben', topic);
    const left = { ...ben.seen };
    const n = 400;
    // A burst from A, and at the same time a client rejoins on B from
    // before it: the recovery read lands somewhere inside the burst.
    for (let i = 0; i < n; i++) ben.channel.push('new_msg', { body: `r${i}` });
    const back = await historian(B, 'ann', topic, { ...left });
    assert.equal(back.reply.recovered, true, JSON.stringify(back.reply));
    await back.inbox.waitFor(() => back.inbox.items.length >= n, { what: `${n} messages at the client back on B` });
    await say(ben, 'fence');
    await back.inbox.waitFor((e) => e.payload.body === 'fence');
    const offsets = back.inbox.items.map((e) => e.payload.offset);
    assert.deepEqual(offsets, Array.from({ length: n + 1 }, (_, i) => left.offset + 1 + i));
    assert.deepEqual(back.inbox.items.slice(0, n).map((e) => e.payload.body), Array.from({ length: n }, (_, i) => `r${i}`));
  });

  it('Redis flushed (keys and scripts): the next rejoin is recovered false with a new epoch, and offsets start again', T, async () => {
    const { redis, nodes: [A, B] } = await startCluster(['A', 'B']);
    const topic = 'room:history-flush';
    const ann = await historian(A, 'ann', topic);
    const ben = await historian(B, 'ben', topic);
    await say(ben, 'one');
    await ann.inbox.waitFor((e) => e.payload.body === 'one');
    const old = { ...ann.seen };
    assert.ok(await redisCommand(redis.port, ['EXISTS', `plume:h:${topic}`]) === 1, 'the stream is in Redis');
    assert.equal(await redisCommand(redis.port, ['FLUSHALL']), 'OK');
    assert.equal(await redisCommand(redis.port, ['SCRIPT', 'FLUSH']), 'OK');
    // Publishing goes on (the script is sent again) and starts a new epoch.
    assert.equal(await say(ben, 'two'), 1, 'a new history starts at offset 1');
    await ann.inbox.waitFor((e) => e.payload.body === 'two');
    const again = await historian(A, 'ann2', topic, { ...old });
    assert.equal(again.reply.recovered, false, JSON.stringify(again.reply));
    assert.notEqual(again.reply.epoch, old.epoch, 'a new epoch');
    assert.equal(again.reply.offset, 1);
  });

  it('Redis down: a rejoin is answered recovered false without a position, and the node serves its own clients', T, async () => {
    const { redis, nodes: [A] } = await startCluster(['A']);
    const topic = 'room:history-down';
    const ann = await historian(A, 'ann', topic);
    await say(ann, 'one');
    const noticed = subscribeDownLines(A);
    await redis.kill();
    await pollUntil(async () => subscribeDownLines(A), (n) => n > noticed, {
      timeoutMs: CONVERGE_MS,
      what: `A to notice that Redis is gone\n${A.output()}`,
    });
    const amy = await historian(A, 'amy', topic, { ...ann.seen });
    assert.equal(amy.reply.recovered, false, JSON.stringify(amy.reply));
    assert.equal(amy.reply.epoch, undefined, 'no position: Redis could not be read');
    ann.channel.push('new_msg', { body: 'during the outage' });
    const e = await amy.inbox.waitFor((m) => m.payload.body === 'during the outage', { what: 'a local message during the outage' });
    assert.deepEqual(e.payload, { body: 'during the outage', user_id: 'ann' }, 'delivered locally, without an offset');
  });
});

describe('chat --redis: a bad URL, an unreachable Redis', () => {
  it('--redis http://nope: exits non-zero with a message naming the URL', T, async () => {
    const bin = binaryFromEnv(BIN);
    const args = ['--host', '127.0.0.1', '--port', '0', '--threads', '1', '--redis', 'http://nope', '--node', 'x'];
    const { proc, exitWithin } = spawnTracked(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (c) => (stdout += c));
    proc.stderr.on('data', (c) => (stderr += c));
    const status = await exitWithin(START_TIMEOUT_MS);
    const shown = `command: ${bin} ${args.join(' ')}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
    assert.notEqual(status, null, `still running ${START_TIMEOUT_MS} ms after start (killed)\n${shown}`);
    assert.equal(status.signal, null, `died of a signal\n${shown}`);
    assert.notEqual(status.code, 0, `exit code\n${shown}`);
    assert.match(stderr, /redis/i, shown);
    assert.ok(stderr.includes('http://nope'), `stderr names the URL\n${shown}`);
  });

  it('unreachable Redis: the chat still starts, serves its own clients, and stops on SIGTERM', T, async () => {
    const port = await freePort(); // nothing listens there
    const node = await startNode(`redis://127.0.0.1:${port}`, 'lonely');
    assert.ok(node.port > 0, 'the listening line was printed');
    // Local delivery goes on while Redis is down.
    const solo = await chatter(node, 'solo');
    solo.channel.push('new_msg', { body: 'anyone?' });
    assert.deepEqual(await received(solo, 'anyone?'), { body: 'anyone?', user_id: 'solo' });
    await closeAllClients();
    const status = await node.stop('SIGTERM', STOP_TIMEOUT_MS);
    assert.equal(status.code, 0, `clean exit on SIGTERM while Redis is unreachable: ${JSON.stringify(status)}\n${node.output()}`);
  });
});
