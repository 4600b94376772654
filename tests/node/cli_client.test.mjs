// examples/cli_client (plume's C++ client) against examples/chat, with a
// phoenix.js user in the same room: stdin lines become new_msg pushes,
// new_msg broadcasts are printed as "<user>: <body>", presence as
// "* <user> joined/left" (when the server sends presence), and the client
// exits 0 at end of input once its messages were acknowledged — also across
// a server restart.
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat \
//        PLUME_CLI_CLIENT_BIN=build/dev/examples/cli_client/cli_client node --test cli_client.test.mjs
// Every wait is on an output line or event, bounded; processes are stopped by PID.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import readline from 'node:readline';
import {
  Inbox,
  binaryFromEnv,
  spawnTracked,
  startServer,
  withTimeout,
  phxConnect,
  closeAllClients,
  joinOk,
} from './support/servers.mjs';

const T = { timeout: 60000 };

/** Starts cli_client; stdout and stderr lines go to two Inboxes. */
function startCli(args) {
  const bin = binaryFromEnv('PLUME_CLI_CLIENT_BIN', 'build/dev/examples/cli_client/cli_client');
  const { proc, exited, kill } = spawnTracked(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new Inbox('cli stdout');
  const err = new Inbox('cli stderr');
  readline.createInterface({ input: proc.stdout }).on('line', (l) => out.push(l));
  readline.createInterface({ input: proc.stderr }).on('line', (l) => err.push(l));
  return {
    proc,
    out,
    err,
    exited,
    line: (text) => proc.stdin.write(`${text}\n`),
    end: () => proc.stdin.end(),
    waitOut: (text, timeoutMs = 8000) => out.waitFor((l) => l === text, { timeoutMs, what: JSON.stringify(text) }),
    waitErr: (re, timeoutMs = 8000) => err.waitFor((l) => re.test(l), { timeoutMs, what: String(re) }),
    kill,
  };
}

/**
 * Whether the chat server tracks presence: a phoenix.js probe joins, then a
 * ping round trip; a presence_state pushed after the join comes before the reply.
 */
async function sendsPresence(server) {
  const probe = await phxConnect(server.socketUrl, { params: { user_id: 'probe' } });
  const room = probe.channel('room:probe');
  await joinOk(room);
  await new Promise((resolve, reject) => {
    room.push('ping', {}).receive('ok', resolve).receive('error', reject).receive('timeout', reject);
  });
  const seen = probe.plumeMessages.all((m) => m.event === 'presence_state').length > 0;
  await new Promise((resolve) => probe.disconnect(resolve));
  return seen;
}

describe('cli_client against examples/chat', () => {
  const cleanups = [];
  afterEach(async () => {
    await closeAllClients();
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const track = (cli) => {
    cleanups.push(async () => {
      cli.kill();
      await cli.exited;
    });
    return cli;
  };
  const chat = async (args = []) => {
    const server = await startServer('PLUME_CHAT_BIN', args);
    cleanups.push(() => server.stop().catch(() => {}));
    return server;
  };

  it('pushes stdin lines, prints what the room says, exits 0 once acknowledged', T, async () => {
    const server = await chat();
    const bob = await phxConnect(server.socketUrl, { params: { user_id: 'bob' } });
    const bobRoom = bob.channel('room:lobby');
    const bobSaw = new Inbox('bob');
    bobRoom.on('new_msg', (m) => bobSaw.push(m));
    await joinOk(bobRoom);

    const cli = track(startCli([server.socketUrl, 'room:lobby', '--user', 'alice']));
    await cli.waitErr(/^\[joined room:lobby\]$/);
    bobRoom.push('new_msg', { body: 'hi alice' });
    await cli.waitOut('bob: hi alice');

    cli.line('hello');
    cli.line('a second line, with "quotes" and ünïcode');
    cli.end();
    const exit = await withTimeout(cli.exited, 10000, 'cli exit');
    assert.deepEqual(exit, { code: 0, signal: null }, cli.err.describe());
    await cli.waitOut('alice: hello');
    await cli.waitOut('alice: a second line, with "quotes" and ünïcode');
    const seen = [
      await bobSaw.waitFor((m) => m.body === 'hello', { what: 'hello' }),
      await bobSaw.waitFor((m) => m.body.startsWith('a second'), { what: 'second' }),
    ];
    assert.deepEqual(seen.map((m) => m.user_id), ['alice', 'alice']);
  });

  it('shows presence joins and leaves when the server sends them', T, async (t) => {
    const server = await chat();
    if (!(await sendsPresence(server))) {
      t.skip('this chat server sends no presence events');
      return;
    }
    const cli = track(startCli([server.socketUrl, 'room:lobby', '--user', 'alice']));
    await cli.waitErr(/^\[joined room:lobby\]$/);
    await cli.waitOut('* alice joined');
    const carol = await phxConnect(server.socketUrl, { params: { user_id: 'carol' } });
    await joinOk(carol.channel('room:lobby'));
    await cli.waitOut('* carol joined');
    await new Promise((resolve) => carol.disconnect(resolve));
    await cli.waitOut('* carol left');
    cli.end();
    assert.deepEqual(await withTimeout(cli.exited, 10000, 'cli exit'), { code: 0, signal: null });
  });

  it('survives a server restart: lines typed while it is down are delivered after the rejoin', T, async () => {
    const first = await chat();
    const port = first.port;
    const cli = track(startCli([first.socketUrl, 'room:lobby', '--user', 'alice']));
    await cli.waitErr(/^\[connected\]$/);
    await cli.waitErr(/^\[joined room:lobby\]$/);
    cli.line('before');
    await cli.waitOut('alice: before');

    await first.stop();
    await cli.waitErr(/reconnecting/);
    cli.line('while down');
    await cli.waitErr(/could not connect/); // the client keeps trying
    const second = await chat(['--port', String(port)]);
    await cli.waitErr(/^\[connected\]$/);
    await cli.waitErr(/^\[joined room:lobby\]$/);
    await cli.waitOut('alice: while down');

    const bob = await phxConnect(second.socketUrl, { params: { user_id: 'bob' } });
    const bobRoom = bob.channel('room:lobby');
    await joinOk(bobRoom);
    bobRoom.push('new_msg', { body: 'welcome back' });
    await cli.waitOut('bob: welcome back');
    cli.end();
    assert.deepEqual(await withTimeout(cli.exited, 10000, 'cli exit'), { code: 0, signal: null }, cli.err.describe());
  });

  it('exits 1 when a message is never acknowledged', T, async () => {
    const gone = await chat();
    const url = gone.socketUrl;
    await gone.stop(); // nothing listens there any more
    const cli = track(startCli([url, 'room:lobby', '--user', 'alice', '--timeout-ms', '300']));
    cli.line('into the void');
    cli.end();
    assert.deepEqual(await withTimeout(cli.exited, 10000, 'cli exit'), { code: 1, signal: null });
    await cli.waitErr(/message not delivered \(no answer in time\): into the void/);
  });
});
