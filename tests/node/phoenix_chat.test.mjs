// Interop tests: plume's examples/chat (the RoomChannel of the Phoenix guides)
// driven by the official phoenix.js client (npm phoenix 1.8.16) over `ws`,
// plus raw upgrades where the HTTP status or headers matter.
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat \
//        node --test phoenix_chat.test.mjs
// Every wait is on an event or callback, bounded by a timeout that fails the
// test; servers listen on 127.0.0.1 and are stopped by PID.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import {
  startServer,
  serverPerSuite,
  closeClientsAndStop,
  withTimeout,
  v2Url,
  openRaw,
  rawUpgrade,
  httpGet,
  phxSocket,
  phxConnect,
  recordChannel,
  pushResult,
  joinResult,
  joinOk,
} from './support/servers.mjs';

const BIN = 'PLUME_CHAT_BIN';
const T = { timeout: 30000 };

/** method url [body] → {status, headers, body}, on a fresh connection. */
function httpRequest(method, url, body) {
  const done = new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
  return withTimeout(done, 5000, `${method} ${url}`);
}

// Writes raw bytes and collects everything until the server closes.
function rawExchange(url, bytes) {
  const { hostname, port } = new URL(url);
  const done = new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname, () => sock.write(bytes));
    let text = '';
    sock.setEncoding('latin1');
    sock.on('data', (c) => (text += c));
    sock.on('end', () => resolve(text));
    sock.on('error', reject);
  });
  return withTimeout(done, 5000, `raw ${url}`);
}

describe('chat: rooms with phoenix.js (user_id connect param)', () => {
  // --history 0: these check exact payloads and replies; chat_history.test.mjs
  // covers the offsets and epochs that history adds.
  const server = serverPerSuite(() => startServer(BIN, ['--history', '0']), { closeClientsAfterEach: true });

  it('serves the demo page, app.js and phoenix.mjs', T, async () => {
    const page = await httpGet(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'], /text\/html/);
    const app = await httpGet(`${server.url}/app.js`);
    assert.equal(app.status, 200);
    assert.match(app.headers['content-type'], /javascript/);
    const phx = await httpGet(`${server.url}/phoenix.mjs`);
    assert.equal(phx.status, 200);
    assert.match(phx.headers['content-type'], /javascript/);
    assert.match(phx.body, /class Socket|Socket/);
    assert.equal((await httpGet(`${server.url}/nope.txt`)).status, 404);
  });

  it('HTTP: sequential GETs on a keep-alive connection (Node\'s default agent) all get answers', T, async () => {
    // Node >= 19 (and browsers) reuse connections. A server that closes after
    // each response must say `Connection: close` (RFC 9112 §9.6), or the
    // client sends its next request on a dead socket ("socket hang up").
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await httpGet(`${server.url}/token?user=keep1`, 5000, agent);
      assert.equal(first.status, 200);
      const closes = /close/i.test(first.headers.connection || '');
      const second = await httpGet(`${server.url}/token?user=keep2`, 5000, agent).catch((e) => ({ error: e.message }));
      assert.equal(
        second.status,
        200,
        `second GET on the same agent: ${JSON.stringify(second)}; first response headers ${JSON.stringify(first.headers)}` +
          (closes ? '' : ' (no "Connection: close" although the server closed the connection)')
      );
    } finally {
      agent.destroy();
    }
  });

  it('join room:lobby and room:<any>; ping replies with the payload; unknown event and non-string body → error', T, async () => {
    const socket = await phxConnect(server.socketUrl, { params: { user_id: 'alice' } });
    const lobby = socket.channel('room:lobby', {});
    assert.deepEqual(await joinResult(lobby), { status: 'ok', response: {} });
    const other = socket.channel('room:42', {});
    assert.equal((await joinResult(other)).status, 'ok');
    assert.deepEqual(await pushResult(lobby.push('ping', { n: 1, s: 'x' })), { status: 'ok', response: { n: 1, s: 'x' } });
    assert.deepEqual(await pushResult(lobby.push('dance', {})), { status: 'error', response: { reason: 'unknown event' } });
    for (const body of [42, null, { nested: 'x' }, ['a']]) {
      assert.deepEqual(await pushResult(lobby.push('new_msg', { body })), {
        status: 'error',
        response: { reason: 'body must be a string' },
      }, `body ${JSON.stringify(body)}`);
    }
    assert.deepEqual(await pushResult(lobby.push('new_msg', {})), {
      status: 'error',
      response: { reason: 'body must be a string' },
    });
    assert.equal(socket.plumeLog.all((e) => e.type === 'close').length, 0);
  });

  it('room:private-<user> admits only that user; others get {reason:"unauthorized"}', T, async () => {
    const alice = await phxConnect(server.socketUrl, { params: { user_id: 'alice' } });
    const bob = await phxConnect(server.socketUrl, { params: { user_id: 'bob' } });
    assert.equal((await joinResult(alice.channel('room:private-alice', {}))).status, 'ok');
    assert.deepEqual(await joinResult(bob.channel('room:private-alice', {})), {
      status: 'error',
      response: { reason: 'unauthorized' },
    });
    assert.equal((await joinResult(bob.channel('room:private-bob', {}))).status, 'ok');
    // Prefix tricks do not pass.
    assert.deepEqual(await joinResult(bob.channel('room:private-bobby', {})), {
      status: 'error',
      response: { reason: 'unauthorized' },
    });
  });

  it('new_msg: 20 clients in room:lobby each get every message exactly once, in order, with the sender\'s user_id', T, async () => {
    const clients = [];
    for (let i = 0; i < 20; i++) {
      const socket = await phxConnect(server.socketUrl, { params: { user_id: `user${i}` } });
      const ch = socket.channel('room:lobby', {});
      const inbox = recordChannel(ch, ['new_msg']);
      await joinOk(ch);
      clients.push({ ch, inbox });
    }
    const sender = clients[3];
    const bodies = ['one', 'two', 'three', 'four', 'five', 'ünïcødé ✓'];
    for (const body of bodies) sender.ch.push('new_msg', { body });
    // A fence from the same sender: all earlier messages arrived before it.
    sender.ch.push('new_msg', { body: 'fence' });
    await Promise.all(
      clients.map((c, i) => c.inbox.waitFor((e) => e.payload.body === 'fence', { what: `the fence at client ${i}` }))
    );
    for (const [i, c] of clients.entries()) {
      assert.deepEqual(
        c.inbox.items.map((e) => e.payload),
        [...bodies, 'fence'].map((body) => ({ body, user_id: 'user3' })),
        `client ${i}`
      );
    }
    // A second sender interleaved: each client still sees each message once.
    clients[7].ch.push('new_msg', { body: 'from 7' });
    clients[11].ch.push('new_msg', { body: 'from 11' });
    await Promise.all(
      clients.map((c) =>
        Promise.all([
          c.inbox.waitFor((e) => e.payload.body === 'from 7', { what: 'from 7' }),
          c.inbox.waitFor((e) => e.payload.body === 'from 11', { what: 'from 11' }),
        ])
      )
    );
    for (const c of clients) assert.equal(c.inbox.items.length, bodies.length + 3);
  });

  it('typing: broadcast_from reaches the others, not the sender (low priority: after new_msg if both wait)', T, async () => {
    const users = ['tina', 'tom', 'tim'];
    const clients = [];
    for (const u of users) {
      const socket = await phxConnect(server.socketUrl, { params: { user_id: u } });
      const ch = socket.channel('room:typing', {});
      const inbox = recordChannel(ch, ['typing', 'new_msg']);
      await joinOk(ch);
      clients.push({ ch, inbox });
    }
    clients[0].ch.push('typing', {});
    clients[0].ch.push('new_msg', { body: 'fence' });
    for (const c of clients) await c.inbox.waitFor((e) => e.event === 'new_msg', { what: 'fence' });
    for (const c of clients.slice(1)) await c.inbox.waitFor((e) => e.event === 'typing', { what: 'typing' });
    // typing is a low-priority event (batched up to 100 ms): new_msg, normal,
    // may overtake it; each arrives once.
    const sorted = (c) => c.inbox.items.map((e) => [e.event, e.payload]).sort((a, b) => a[0].localeCompare(b[0]));
    for (const c of clients.slice(1)) {
      assert.deepEqual(sorted(c), [
        ['new_msg', { body: 'fence', user_id: 'tina' }],
        ['typing', { user_id: 'tina' }],
      ]);
    }
    // The sender got no typing echo: its own new_msg, sent after its typing,
    // came back, and the others' typing had arrived by then too.
    assert.deepEqual(clients[0].inbox.items.map((e) => e.event), ['new_msg'], 'no typing echo to the sender');
  });

  it('connect params: a missing or invalid user_id → 403; the socket id is per user', T, async () => {
    assert.equal((await rawUpgrade(v2Url(server))).status, 403, 'no user_id');
    assert.equal((await rawUpgrade(v2Url(server, { user_id: 'bad name!' }))).status, 403, 'invalid characters');
    assert.equal((await rawUpgrade(v2Url(server, { user_id: 'x'.repeat(33) }))).status, 403, '33 characters');
    assert.equal((await rawUpgrade(v2Url(server, { user_id: 'x'.repeat(32) }))).status, 101, '32 characters');
    // A bad token is refused even though user_id would do.
    assert.equal((await rawUpgrade(v2Url(server, { user_id: 'ok', token: 'garbage' }))).status, 403, 'bad token param');
    // phoenix.js: onError, onClose, no open.
    const s = phxSocket(server.socketUrl, { params: {} });
    s.connect();
    await s.plumeLog.waitFor((e) => e.type === 'close', { what: 'close of a refused socket' });
    assert.equal(s.plumeLog.all((e) => e.type === 'open').length, 0);
  });

  it('origin: default check accepts the page\'s own host:port, refuses other origins', T, async () => {
    const url = v2Url(server, { user_id: 'o' });
    assert.equal((await rawUpgrade(url, { Origin: 'http://evil.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: `http://127.0.0.1:${server.port}` })).status, 101);
    assert.equal((await rawUpgrade(url, { Origin: 'http://localhost' })).status, 403);
    assert.equal((await rawUpgrade(url)).status, 101);
    // phoenix.js does not send Origin from Node; a ws client with a foreign Origin is refused.
    await assert.rejects(openRaw(url, { headers: { Origin: 'http://evil.example' } }), (e) => e.status === 403);
  });

  it('raw V2 frames of a chat round trip', T, async () => {
    const raw = await openRaw(v2Url(server, { user_id: 'rawuser' }));
    assert.deepEqual(await raw.join('room:lobby', '1'), ['1', '1', 'room:lobby', 'phx_reply', { status: 'ok', response: {} }]);
    raw.send(['1', '2', 'room:lobby', 'new_msg', { body: 'hi' }]);
    assert.deepEqual(await raw.event('room:lobby', 'new_msg'), [null, null, 'room:lobby', 'new_msg', { body: 'hi', user_id: 'rawuser' }]);
    raw.send(['1', '3', 'room:lobby', 'ping', { p: true }]);
    assert.deepEqual(await raw.replyTo('3'), ['1', '3', 'room:lobby', 'phx_reply', { status: 'ok', response: { p: true } }]);
    assert.equal(raw.inbox.all((i) => i.json && i.json[1] === '2').length, 0, 'new_msg is noreply');
    // Payloads need not be objects (Phoenix accepts any JSON value): ping echoes
    // them, and new_msg with a non-object payload is an error reply, not a crash.
    raw.send(['1', '4', 'room:lobby', 'ping', 'pong?']);
    assert.deepEqual(await raw.replyTo('4'), ['1', '4', 'room:lobby', 'phx_reply', { status: 'ok', response: 'pong?' }]);
    for (const [ref, payload] of [['5', 'hi'], ['6', 42], ['7', null], ['8', ['hi']]]) {
      raw.send(['1', ref, 'room:lobby', 'new_msg', payload]);
      assert.deepEqual(await raw.replyTo(ref), ['1', ref, 'room:lobby', 'phx_reply', { status: 'error', response: { reason: 'body must be a string' } }]);
    }
    assert.equal(raw.inbox.all((i) => i.json && i.json[3] === 'phx_error').length, 0, 'the channel did not crash');
    raw.send('[null,"9","phoenix","heartbeat",{}]');
    assert.deepEqual(await raw.replyTo('9'), [null, '9', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
  });
});

describe('chat --threads 2: broadcasts from several threads', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--threads', '2']));

  it('every client gets every message of every sender exactly once, each sender\'s in order', T, async () => {
    const clients = [];
    for (let i = 0; i < 12; i++) {
      const socket = await phxConnect(server.socketUrl, { params: { user_id: `t${i}` } });
      const ch = socket.channel('room:threads', {});
      const inbox = recordChannel(ch, ['new_msg']);
      await joinOk(ch);
      clients.push({ ch, inbox });
    }
    const senders = [0, 5, 9];
    const perSender = 20;
    for (let k = 0; k < perSender; k++) {
      for (const s of senders) clients[s].ch.push('new_msg', { body: `${s}:${k}` });
    }
    await Promise.all(
      clients.flatMap((c, i) =>
        senders.map((s) =>
          c.inbox.waitFor((e) => e.payload.body === `${s}:${perSender - 1}`, { what: `last message of t${s} at t${i}`, timeoutMs: 10000 })
        )
      )
    );
    for (const [i, c] of clients.entries()) {
      for (const s of senders) {
        const got = c.inbox.items.filter((e) => e.payload.user_id === `t${s}`).map((e) => e.payload.body);
        assert.deepEqual(got, Array.from({ length: perSender }, (_, k) => `${s}:${k}`), `messages of t${s} at t${i}`);
      }
      assert.equal(c.inbox.items.length, senders.length * perSender, `t${i}: nothing extra`);
    }
  });
});

describe('chat --require-token: tokens from GET /token', () => {
  const server = serverPerSuite(
    () => startServer(BIN, ['--require-token', '--secret', 'a-test-secret-that-is-long-enough-0123456789']),
    { closeClientsAfterEach: true }
  );

  async function tokenFor(user) {
    const res = await httpGet(`${server.url}/token?user=${encodeURIComponent(user)}`);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.user_id, user);
    assert.equal(typeof res.json.token, 'string');
    return res.json.token;
  }

  it('GET /token validates the user name', T, async () => {
    assert.equal((await httpGet(`${server.url}/token?user=bad%20name`)).status, 400);
    assert.equal((await httpGet(`${server.url}/token`)).status, 400);
    assert.equal((await httpGet(`${server.url}/token?user=${'x'.repeat(33)}`)).status, 400);
  });

  it('GET and POST /token/:user: the user comes from the path, percent-decoded; 400/404/405/413', T, async () => {
    const byPath = await httpGet(`${server.url}/token/heidi`);
    assert.equal(byPath.status, 200, byPath.body);
    assert.equal(byPath.json.user_id, 'heidi');
    const socket = await phxConnect(server.socketUrl, { authToken: byPath.json.token });
    assert.equal((await joinResult(socket.channel('room:private-heidi', {}))).status, 'ok');

    const posted = await httpRequest('POST', `${server.url}/token/iv%61n`);
    assert.equal(posted.status, 200, posted.body);
    assert.equal(JSON.parse(posted.body).user_id, 'ivan');
    // The query form is still there, and both sign the same way.
    assert.equal((await httpGet(`${server.url}/token?user=ivan`)).json.user_id, 'ivan');

    assert.equal((await httpGet(`${server.url}/token/bad%20name`)).status, 400, 'invalid user name');
    assert.equal((await httpGet(`${server.url}/token/a%2Fb`)).status, 400, 'an encoded / stays in the segment');
    assert.equal((await httpGet(`${server.url}/token/a%00b`)).status, 400, 'NUL');
    assert.equal((await httpGet(`${server.url}/token/a/b`)).status, 404);
    assert.equal((await httpGet(`${server.url}/token/`)).status, 404);
    const del = await httpRequest('DELETE', `${server.url}/token/heidi`);
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, 'GET, HEAD, POST');
    // A body is read and ignored (the user comes from the path); one over
    // max_request_body (1 MiB) is refused from its Content-Length alone.
    const withBody = await httpRequest('POST', `${server.url}/token/heidi`, 'user=x');
    assert.equal(withBody.status, 200, withBody.body);
    assert.equal(JSON.parse(withBody.body).user_id, 'heidi');
    const tooBig = await rawExchange(
      server.url,
      'POST /token/heidi HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n',
    );
    assert.match(tooBig, /^HTTP\/1\.1 413 /);
    assert.equal((await httpRequest('POST', `${server.url}/nothing-here`)).status, 404);
  });

  it('phoenix.js authToken: accepted with a valid token; the user comes from the token', T, async () => {
    const token = await tokenFor('carol');
    const socket = await phxConnect(server.socketUrl, { authToken: token });
    const ch = socket.channel('room:lobby', {});
    const inbox = recordChannel(ch, ['new_msg']);
    await joinOk(ch);
    ch.push('new_msg', { body: 'signed' });
    const msg = await inbox.waitFor(() => true, { what: 'own new_msg' });
    const { offset, ...rest } = msg.payload;  // the room's history offset
    assert.equal(typeof offset, 'number');
    assert.deepEqual(rest, { body: 'signed', user_id: 'carol' });
    // The token names the user: carol may join her private room, not dave's.
    assert.equal((await joinResult(socket.channel('room:private-carol', {}))).status, 'ok');
    assert.deepEqual(await joinResult(socket.channel('room:private-dave', {})), {
      status: 'error',
      response: { reason: 'unauthorized' },
    });
  });

  it('authToken upgrade: 101 carries Sec-WebSocket-Protocol: phoenix; token in the query also works', T, async () => {
    const token = await tokenFor('erin');
    const proto = `base64url.bearer.phx.${Buffer.from(token).toString('base64').replace(/=/g, '')}`;
    const res = await rawUpgrade(v2Url(server), { 'Sec-WebSocket-Protocol': `phoenix, ${proto}` });
    assert.equal(res.status, 101, res.body);
    assert.equal(res.headers['sec-websocket-protocol'], 'phoenix');

    // ws verifies the selected subprotocol itself; a mismatch would fail the open.
    const raw = await openRaw(v2Url(server), { protocols: ['phoenix', proto] });
    assert.equal(raw.ws.protocol, 'phoenix');
    assert.equal((await raw.join('room:private-erin', '1'))[4].status, 'ok');

    const viaQuery = await phxConnect(server.socketUrl, { params: { token } });
    assert.equal((await joinResult(viaQuery.channel('room:private-erin', {}))).status, 'ok');
  });

  it('refusals: no token → 403 (user_id alone is not enough), a bad or tampered token → 403', T, async () => {
    assert.equal((await rawUpgrade(v2Url(server))).status, 403, 'no token');
    assert.equal((await rawUpgrade(v2Url(server, { user_id: 'mallory' }))).status, 403, 'user_id without token');
    assert.equal((await rawUpgrade(v2Url(server, { token: 'not-a-token' }))).status, 403, 'garbage token');
    const token = await tokenFor('frank');
    const parts = token.split('.');
    const tampered = [...parts.slice(0, -1), parts[parts.length - 1].replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))].join('.');
    assert.equal((await rawUpgrade(v2Url(server, { token: tampered }))).status, 403, 'tampered signature');
    const badProto = `base64url.bearer.phx.${Buffer.from('nope').toString('base64').replace(/=/g, '')}`;
    assert.equal((await rawUpgrade(v2Url(server), { 'Sec-WebSocket-Protocol': `phoenix, ${badProto}` })).status, 403, 'bad authToken');

    // phoenix.js with a bad authToken: error + close, never open.
    const s = phxSocket(server.socketUrl, { authToken: 'bad-token' });
    s.connect();
    await s.plumeLog.waitFor((e) => e.type === 'error', { what: 'onError with a bad token' });
    await s.plumeLog.waitFor((e) => e.type === 'close', { what: 'onClose with a bad token' });
    assert.equal(s.plumeLog.all((e) => e.type === 'open').length, 0);
  });

  it('a token from another server secret is refused', T, async () => {
    const other = await startServer(BIN, ['--require-token', '--secret', 'another-secret-another-secret-0123456789']);
    try {
      const res = await httpGet(`${other.url}/token?user=gina`);
      assert.equal(res.status, 200);
      assert.equal((await rawUpgrade(v2Url(server, { token: res.json.token }))).status, 403);
      assert.equal((await rawUpgrade(v2Url(other, { token: res.json.token }))).status, 101);
    } finally {
      await other.stop();
    }
  });
});

describe('chat --origin allow-list', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--origin', 'https://chat.example']));

  it('the listed origin upgrades, others (including the server\'s own host) get 403', T, async () => {
    const url = v2Url(server, { user_id: 'o' });
    assert.equal((await rawUpgrade(url, { Origin: 'https://chat.example' })).status, 101);
    assert.equal((await rawUpgrade(url, { Origin: 'http://chat.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: 'https://evil.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: `http://127.0.0.1:${server.port}` })).status, 403);
    assert.equal((await rawUpgrade(url)).status, 101);
  });
});

describe('chat: server shutdown and restart', () => {
  let server;
  after(() => closeClientsAndStop(server));

  it('SIGTERM closes sockets with 1001; phoenix.js reconnects to a new server on the same port and rejoins', T, async () => {
    server = await startServer(BIN);
    const port = server.port;
    const socket = await phxConnect(server.socketUrl, { params: { user_id: 'henry' } });
    const ch = socket.channel('room:lobby', {});
    const inbox = recordChannel(ch, ['new_msg']);
    const joins = [];
    const joined = [];
    ch.joinPush.receive('ok', () => {
      joins.push('ok');
      const w = joined.shift();
      if (w) w();
    });
    const nextJoin = () => withTimeout(new Promise((r) => joined.push(r)), 10000, 'a join ok');
    let j = nextJoin();
    ch.join();
    await j;

    const old = server;
    server = null;
    const exit = await old.stop();
    assert.equal(exit.code, 0, `clean exit on SIGTERM: ${JSON.stringify(exit)}\n${old.output()}`);
    const close = await socket.plumeLog.waitFor((e) => e.type === 'close', { what: 'close on shutdown' });
    assert.equal(close.code, 1001, `shutdown close code (going away) got ${close.code}`);

    j = nextJoin();
    server = await startServer(BIN, ['--port', String(port)]);
    await socket.plumeLog.waitFor((e) => e.type === 'open', { what: 'reconnect', timeoutMs: 10000 });
    await j;
    assert.equal(joins.length, 2, 'the join reply is seen twice (join, automatic rejoin)');
    ch.push('new_msg', { body: 'back again' });
    const msg = await inbox.waitFor(() => true, { what: 'new_msg after restart' });
    const { offset, ...rest } = msg.payload;  // the room's history offset
    assert.equal(typeof offset, 'number');
    assert.deepEqual(rest, { body: 'back again', user_id: 'henry' });
  });
});

describe('chat: the default limits, seen from phoenix.js', () => {
  const server = serverPerSuite(() => startServer(BIN), { closeClientsAfterEach: true });

  it('a client pushing faster than 100/s gets {"reason":"rate_limited"}; it and the room stay connected', T, async () => {
    const flooder = await phxConnect(server.socketUrl, { params: { user_id: 'flood' } });
    const ch = flooder.channel('room:lobby', {});
    await joinOk(ch);
    const bystander = await phxConnect(server.socketUrl, { params: { user_id: 'calm' } });
    const room = bystander.channel('room:lobby', {});
    await joinOk(room);
    const inbox = recordChannel(room, ['new_msg']);

    // 300 pushes at once: the burst (200, the join took one) gets answers,
    // the rest are refused, each with a reason phoenix.js hands to receive("error").
    // The bucket refills at 100/s while the pushes arrive, so a slow machine
    // (a busy CI runner) sees a few more answered: at most one per 10 ms.
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => pushResult(ch.push('ping', { i }), 10000))
    );
    const refilled = Math.ceil((performance.now() - started) / 10);
    const ok = results.filter((r) => r.status === 'ok').length;
    const limited = results.filter((r) => r.status === 'error' && r.response.reason === 'rate_limited').length;
    assert.equal(ok + limited, 300, JSON.stringify(results.filter((r) => r.status === 'timeout').length) + ' timed out');
    assert.ok(ok >= 199 && ok <= 200 + refilled, `ok replies: ${ok} (refill allows ${refilled} in the burst's time)`);
    assert.ok(limited >= 99 - refilled, `rate_limited replies: ${limited}`);
    assert.ok(results.slice(0, 199).every((r) => r.status === 'ok'), 'the first pushes of a burst are never refused');

    // Neither socket was closed, and the room still works for both.
    assert.equal(flooder.isConnected(), true);
    assert.equal(ch.state, 'joined');
    room.push('new_msg', { body: 'still here' });
    const m = await inbox.waitFor((e) => e.payload.body === 'still here', { what: 'the bystander\'s own broadcast' });
    assert.equal(m.payload.user_id, 'calm');
  });

  it('a topic longer than 256 bytes is refused with {"reason":"topic too long"}', T, async () => {
    const socket = await phxConnect(server.socketUrl, { params: { user_id: 'longtopic' } });
    const r = await joinResult(socket.channel('room:' + 'x'.repeat(300), {}));
    assert.deepEqual(r, { status: 'error', response: { reason: 'topic too long' } });
    const fine = await joinResult(socket.channel('room:' + 'x'.repeat(251), {}));
    assert.equal(fine.status, 'ok');
  });
});
