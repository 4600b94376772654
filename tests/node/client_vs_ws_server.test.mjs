// plume's C++ client (tests/servers/client_driver) against an independent
// Phoenix V2 server written only with `ws` (support/v2_ws_server.mjs): the
// URL it connects to, joins, pushes and replies, broadcasts and server
// pushes, and above all that it reconnects and rejoins after the server
// closes the connection — with 1000, 1001 and 1011 alike — or goes away.
//
// Run: cd tests/node && PLUME_CLIENT_DRIVER_BIN=build/dev/tests/client_driver \
//        node --test client_vs_ws_server.test.mjs
// Every wait is on an event, bounded; the driver is stopped by PID.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import readline from 'node:readline';
import { Inbox, binaryFromEnv, spawnTracked, withTimeout } from './support/servers.mjs';
import { startV2Server } from './support/v2_ws_server.mjs';

const T = { timeout: 30000 };

/** Starts client_driver; its stdout JSON lines go to `events` (an Inbox). */
function startDriver(args) {
  const bin = binaryFromEnv('PLUME_CLIENT_DRIVER_BIN', 'build/dev/tests/client_driver');
  const { proc, exited, kill } = spawnTracked(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const events = new Inbox('client_driver');
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      events.push(JSON.parse(line));
    } catch {
      events.push({ ev: 'unparsable', line });
    }
  });
  const driver = {
    proc,
    events,
    exited,
    stderr: () => stderr,
    send(cmd) {
      proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    },
    waitFor(pred, what, timeoutMs = 5000) {
      return events.waitFor(pred, { timeoutMs, what });
    },
    async exit() {
      driver.send({ cmd: 'exit' });
      await driver.waitFor((e) => e.ev === 'bye', 'bye');
      return withTimeout(exited, 5000, 'client_driver exit');
    },
    kill,
  };
  return driver;
}

const FAST = ['--reconnect-ms', '20', '--rejoin-ms', '50', '--timeout-ms', '3000'];
const opened = (d, what = 'open') => d.waitFor((e) => e.ev === 'open', what);
const joinOk = (d, topic) =>
  d.waitFor((e) => e.ev === 'join' && e.topic === topic && e.status === 'ok', `join ok of ${topic}`);
const replyTo = (d, id) => d.waitFor((e) => e.ev === 'reply' && e.id === id, `reply ${id}`);

describe('plume client against an independent ws V2 server', () => {
  const cleanups = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function setup(extraArgs = [], port = 0) {
    const server = await startV2Server({ port });
    const driver = startDriver(['--url', server.socketUrl, '--param', 'user=node', ...FAST, ...extraArgs]);
    cleanups.push(async () => {
      driver.kill();
      await driver.exited;
    });
    cleanups.push(() => server.stop());
    await driver.waitFor((e) => e.ev === 'ready', 'ready');
    return { server, driver };
  }

  it('connects to <url>/websocket?params&vsn, joins, pushes, gets broadcasts and pushes', T, async () => {
    const { server, driver } = await setup();
    driver.send({ cmd: 'connect' });
    await opened(driver);
    const connect = await server.log.waitFor((e) => e.type === 'connect', { what: 'connect' });
    assert.equal(connect.path, '/socket/websocket');
    assert.deepEqual(connect.query, { user: 'node', vsn: '2.0.0' });

    driver.send({ cmd: 'join', topic: 'room:1', params: { hello: 'there' } });
    const join = await joinOk(driver, 'room:1');
    assert.equal(join.response.joined, 'room:1');
    const joinMsg = await server.log.waitFor((e) => e.type === 'message' && e.event === 'phx_join', {
      what: 'phx_join',
    });
    assert.deepEqual(joinMsg.payload, { hello: 'there' });
    assert.equal(joinMsg.joinRef, joinMsg.ref);
    assert.equal(join.join_ref, joinMsg.ref);

    driver.send({ cmd: 'push', topic: 'room:1', event: 'echo', payload: { a: 1 }, id: 'e1' });
    driver.send({ cmd: 'push', topic: 'room:1', event: 'fail', id: 'f1' });
    const echo = await replyTo(driver, 'e1');
    assert.deepEqual([echo.status, echo.response], ['ok', { a: 1 }]);
    const fail = await replyTo(driver, 'f1');
    assert.deepEqual([fail.status, fail.response], ['error', { reason: 'asked' }]);
    const pushed = await server.log.waitFor((e) => e.type === 'message' && e.event === 'echo', { what: 'echo' });
    assert.equal(pushed.joinRef, join.join_ref);

    server.broadcast('room:1', 'news', { n: 1 });
    const news = await driver.waitFor((e) => e.ev === 'message' && e.event === 'news', 'broadcast');
    assert.deepEqual(news.payload, { n: 1 });
    assert.equal(news.join_ref, null);
    server.push('room:1', 'hello', { to: 'you' });
    const hello = await driver.waitFor((e) => e.ev === 'message' && e.event === 'hello', 'server push');
    assert.equal(hello.join_ref, join.join_ref);

    driver.send({ cmd: 'leave', topic: 'room:1', id: 'l1' });
    assert.equal((await replyTo(driver, 'l1')).status, 'ok');
    await server.log.waitFor((e) => e.type === 'message' && e.event === 'phx_leave', { what: 'phx_leave' });
    driver.send({ cmd: 'state', topic: 'room:1' });
    const state = await driver.waitFor((e) => e.ev === 'state', 'state');
    assert.equal(state.state, 'closed');
    assert.deepEqual(await driver.exit(), { code: 0, signal: null });
    assert.deepEqual(driver.events.all((e) => e.ev === 'error'), []);
  });

  for (const code of [1000, 1001, 1011]) {
    it(`reconnects and rejoins after the server closes with ${code}`, T, async () => {
      const { server, driver } = await setup();
      driver.send({ cmd: 'connect' });
      driver.send({ cmd: 'join', topic: 'room:1' });
      const first = await joinOk(driver, 'room:1');

      server.closeAll(code, 'test close');
      const close = await driver.waitFor((e) => e.ev === 'close', 'close');
      assert.equal(close.code, code);
      await opened(driver, 'second open');
      const second = await joinOk(driver, 'room:1');
      assert.notEqual(second.join_ref, first.join_ref);
      driver.send({ cmd: 'push', topic: 'room:1', event: 'echo', payload: { after: code }, id: 'after' });
      assert.deepEqual((await replyTo(driver, 'after')).response, { after: code });
      // And once more, the server closing on request of a push.
      driver.send({ cmd: 'push', topic: 'room:1', event: 'close_me', payload: { code }, id: 'bye' });
      assert.equal((await driver.waitFor((e) => e.ev === 'close', 'second close')).code, code);
      const third = await joinOk(driver, 'room:1');
      assert.notEqual(third.join_ref, second.join_ref);
      assert.deepEqual(await driver.exit(), { code: 0, signal: null });
    });
  }

  it('pushes made while the server is gone are sent after it returns, with the new join_ref', T, async () => {
    const { server, driver } = await setup();
    driver.send({ cmd: 'connect' });
    driver.send({ cmd: 'join', topic: 'room:1' });
    const first = await joinOk(driver, 'room:1');
    const port = server.port;
    await server.stop();
    await driver.waitFor((e) => e.ev === 'close', 'close');
    for (let i = 0; i < 3; i++) {
      driver.send({ cmd: 'push', topic: 'room:1', event: 'echo', payload: { i }, id: `p${i}` });
    }
    // The driver keeps retrying (connect_failed) until the server is back.
    await driver.waitFor((e) => e.ev === 'error' && e.code === 'connect_failed', 'a failed reconnect');
    const again = await startV2Server({ port });
    cleanups.push(() => again.stop());
    const second = await joinOk(driver, 'room:1');
    assert.notEqual(second.join_ref, first.join_ref);
    for (let i = 0; i < 3; i++) {
      const r = await replyTo(driver, `p${i}`);
      assert.deepEqual([r.status, r.response], ['ok', { i }]);
    }
    const echoes = again.log.all((e) => e.type === 'message' && e.event === 'echo');
    assert.deepEqual(
      echoes.map((e) => [e.payload.i, e.joinRef]),
      [0, 1, 2].map((i) => [i, second.join_ref])
    );
    assert.deepEqual(await driver.exit(), { code: 0, signal: null });
  });

  it('a server that stops answering heartbeats is left with 1000 "heartbeat timeout"', T, async () => {
    const { server, driver } = await setup(['--heartbeat-ms', '50', '--heartbeat-timeout-ms', '150']);
    driver.send({ cmd: 'connect' });
    driver.send({ cmd: 'join', topic: 'room:1' });
    const first = await joinOk(driver, 'room:1');
    await server.log.waitFor((e) => e.type === 'message' && e.event === 'heartbeat', { what: 'a heartbeat' });
    server.answerHeartbeats = false;
    const error = await driver.waitFor((e) => e.ev === 'error' && e.code === 'heartbeat_timeout', 'timeout');
    assert.match(error.detail, /heartbeat/);
    const close = await driver.waitFor((e) => e.ev === 'close', 'close');
    assert.deepEqual([close.code, close.reason], [1000, 'heartbeat timeout']);
    server.answerHeartbeats = true;
    const second = await joinOk(driver, 'room:1');
    assert.notEqual(second.join_ref, first.join_ref);
    const hb = server.log.all((e) => e.type === 'message' && e.event === 'heartbeat');
    assert.ok(hb.every((e) => e.joinRef === null && e.topic === 'phoenix'));
    assert.deepEqual(await driver.exit(), { code: 0, signal: null });
  });

  it('disconnect stops reconnecting', T, async () => {
    const { server, driver } = await setup();
    driver.send({ cmd: 'connect' });
    driver.send({ cmd: 'join', topic: 'room:1' });
    await joinOk(driver, 'room:1');
    driver.send({ cmd: 'disconnect' });
    await driver.waitFor((e) => e.ev === 'close' && e.code === 1000, 'close');
    await server.log.waitFor((e) => e.type === 'close', { what: 'server-side close' });
    // A state round trip through the driver's strand: no reconnect was started.
    driver.send({ cmd: 'state', topic: 'room:1' });
    const state = await driver.waitFor((e) => e.ev === 'state', 'state');
    assert.equal(state.state, 'errored');
    assert.equal(server.log.all((e) => e.type === 'connect').length, 1);
    assert.deepEqual(await driver.exit(), { code: 0, signal: null });
    assert.equal(driver.events.all((e) => e.ev === 'open').length, 1);
  });
});
