// wss:// and https://: the chat over TLS (--tls-cert/--tls-key, a certificate
// made by scripts/make-cert.sh for 127.0.0.1). phoenix.js connects over wss://
// trusting that certificate; clients that do not trust it, plain ws:// and
// plain HTTP are refused without harming anyone else. (The RFC 6455/7692
// suite over TLS is conformance.test.mjs's "tls" mode.)
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat node --test tls.test.mjs
// Every wait is on an event or callback, bounded by a timeout that fails the
// test; servers listen on 127.0.0.1 and are stopped by PID.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import http from 'node:http';
import { Presence } from 'phoenix';
import WebSocket from 'ws';
import {
  startServer,
  serverPerSuite,
  withTimeout,
  phxConnect,
  recordChannel,
  joinOk,
  makeCert,
  trustingWebSocket,
} from './support/servers.mjs';

const BIN = 'PLUME_CHAT_BIN';
const T = { timeout: 30000 };
const cert = makeCert();
const TrustingWS = trustingWebSocket(cert.ca);

/** GET over HTTPS trusting the test certificate: {status, headers, body}. */
function httpsGet(url) {
  const done = new Promise((resolve, reject) => {
    https
      .get(url, { ca: cert.ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      })
      .on('error', reject);
  });
  return withTimeout(done, 5000, `GET ${url}`);
}

/** Resolves with how a WebSocket to `url` (made by `make`) failed to open: its error message. */
function failsToOpen(make) {
  const failed = new Promise((resolve, reject) => {
    const ws = make();
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the connection opened'));
    });
    ws.once('error', (e) => resolve(e.message));
  });
  return withTimeout(failed, 5000, 'the refused connection to fail');
}

/** A phoenix.js user in room:lobby over wss://, with its Presence and new_msg inbox. */
async function wssMember(server, user) {
  const socket = await phxConnect(server.socketUrl, { params: { user_id: user }, transport: TrustingWS });
  const channel = socket.channel('room:lobby', {});
  const presence = new Presence(channel);
  const msgs = recordChannel(channel, ['new_msg']);
  const synced = [];
  presence.onSync(() => synced.push(presence.list((key) => key).sort().join(',')));
  await joinOk(channel);
  return { socket, channel, presence, msgs, synced };
}

describe('chat over TLS', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--tls-cert', cert.cert, '--tls-key', cert.key]), {
    closeClientsAfterEach: true,
  });

  it('prints https:// and wss:// URLs; serves the page and tokens over HTTPS', T, async () => {
    assert.equal(server.secure, true, 'the listening line names https');
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const page = await httpsGet(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<html/i);
    const token = await httpsGet(`${server.url}/token?user=ann`);
    assert.equal(token.status, 200, token.body);
    assert.equal(JSON.parse(token.body).user_id, 'ann');
  });

  it('phoenix.js over wss://: two users chat and see each other online', T, async () => {
    const ann = await wssMember(server, 'ann');
    const ben = await wssMember(server, 'ben');
    const both = 'ann,ben';
    await withTimeout(
      new Promise((resolve) => {
        const check = () => (ann.synced.includes(both) && ben.synced.includes(both) ? resolve() : setTimeout(check, 20));
        check();
      }),
      5000,
      'both users in both Presence lists'
    );
    ann.channel.push('new_msg', { body: 'over TLS' });
    const got = await ben.msgs.waitFor((e) => e.payload.body === 'over TLS', { what: 'ann\'s message at ben' });
    assert.equal(got.payload.user_id, 'ann');
    // A message bigger than one TLS record (16 KiB) each way, in one piece.
    const big = 'x'.repeat(3900);
    for (let i = 0; i < 20; i++) ben.channel.push('new_msg', { body: `${i} ${big}` });
    await ann.msgs.waitFor((e) => e.payload.body.startsWith('19 '), { what: 'the 20th big message' });
    assert.deepEqual(
      ann.msgs.all((e) => e.payload.body.endsWith(big)).map((e) => e.payload.body.split(' ')[0]),
      Array.from({ length: 20 }, (_, i) => String(i))
    );
  });

  it('an untrusted certificate, plain ws:// and plain HTTP are refused; trusted clients go on', T, async () => {
    const untrusted = await failsToOpen(() => new WebSocket(`${server.wsUrl}?vsn=2.0.0&user_id=eve`));
    assert.match(untrusted, /self[- ]signed|certificate/i, untrusted);
    const plainWs = await failsToOpen(() => new WebSocket(`${server.wsUrl.replace(/^wss/, 'ws')}?vsn=2.0.0&user_id=eve`));
    assert.ok(plainWs.length > 0);
    const plainHttp = await withTimeout(
      new Promise((resolve) => {
        http
          .get(`${server.url.replace(/^https/, 'http')}/`, { agent: false }, (res) => resolve(`HTTP ${res.statusCode}`))
          .on('error', (e) => resolve(e.message));
      }),
      5000,
      'the plain HTTP request to end'
    );
    assert.doesNotMatch(plainHttp, /^HTTP 2/, 'no page over plain HTTP');
    const ann = await wssMember(server, 'ann');
    ann.channel.push('new_msg', { body: 'still here' });
    await ann.msgs.waitFor((e) => e.payload.body === 'still here');
  });

  it('a closing handshake over TLS ends with 1000 and the server closing the connection', T, async () => {
    const ws = new TrustingWS(`${server.wsUrl}?vsn=2.0.0&user_id=cy`);
    await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open');
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000, 'bye');
    assert.equal(await withTimeout(closed, 5000, 'the close event'), 1000);
  });
});

describe('chat over TLS with permessage-deflate', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--tls-cert', cert.cert, '--tls-key', cert.key, '--deflate']), {
    closeClientsAfterEach: true,
  });

  it('negotiates permessage-deflate inside TLS and messages flow', T, async () => {
    const ws = new TrustingWS(`${server.wsUrl}?vsn=2.0.0&user_id=dee`, { perMessageDeflate: true });
    await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open');
    assert.match(ws.extensions, /permessage-deflate/);
    const replies = [];
    const got = new Promise((resolve) =>
      ws.on('message', (m) => {
        const msg = JSON.parse(m.toString());
        replies.push(msg);
        if (msg[3] === 'new_msg') resolve(msg);
      })
    );
    ws.send(JSON.stringify(['1', '1', 'room:lobby', 'phx_join', {}]));
    ws.send(JSON.stringify(['1', '2', 'room:lobby', 'new_msg', { body: 'y'.repeat(3000) }]));
    const msg = await withTimeout(got, 5000, 'the broadcast back');
    assert.equal(msg[4].body, 'y'.repeat(3000));
    assert.equal(replies[0][3], 'phx_reply');
    ws.close();
  });
});
