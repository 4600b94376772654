// Missed messages are not lost: the chat keeps each room's last broadcasts
// (EndpointConfig::history), and phoenix.js, rejoining with the offset and
// epoch of the last message it saw (channel params as a function, as the chat
// page does), gets what it missed, in order, before anything new.
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat \
//        node --test chat_history.test.mjs
// Every wait is on an event or callback, bounded by a timeout that fails the
// test; servers listen on 127.0.0.1 and are stopped by PID.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  serverPerSuite,
  withTimeout,
  phxConnect,
  recordChannel,
  trackJoins,
  joinOk,
  openRaw,
} from './support/servers.mjs';

const BIN = 'PLUME_CHAT_BIN';
const T = { timeout: 30000 };

/** A user in room:lobby whose join params carry the last offset seen. */
async function member(server, user) {
  const socket = await phxConnect(`${server.url}/socket`, { params: { user_id: user } });
  const seen = { offset: null, epoch: null };
  const channel = socket.channel('room:lobby', () =>
    seen.epoch === null ? {} : { offset: seen.offset, epoch: seen.epoch });
  const msgs = recordChannel(channel, ['new_msg']);
  channel.on('new_msg', ({ offset }) => { seen.offset = offset; });
  const joins = trackJoins(channel);
  const first = await joinOk(channel);
  seen.offset = first.offset;
  seen.epoch = first.epoch;
  return { socket, channel, msgs, joins, seen, first };
}

/** Loses the connection, runs `meanwhile`, reconnects; resolves with the rejoin's reply. */
async function offlineWhile(m, meanwhile) {
  const before = m.joins.items.length;
  await withTimeout(new Promise((resolve) => m.socket.disconnect(resolve)), 5000, 'disconnect');
  await meanwhile();
  m.socket.connect();
  const rejoin = await m.joins.waitFor((j) => m.joins.items.indexOf(j) >= before, {
    what: 'the rejoin reply',
  });
  assert.equal(rejoin.status, 'ok', JSON.stringify(rejoin));
  return rejoin.response;
}

/** Sends new_msg (the chat replies nothing) and waits for the sender's own copy. */
async function say(m, body) {
  m.channel.push('new_msg', { body });
  await m.msgs.waitFor((e) => e.payload.body === body, { what: `own copy of ${body}` });
}

describe('chat: history and recovery (default: the last 100 messages of each room)', () => {
  const server = serverPerSuite(() => startServer(BIN), { closeClientsAfterEach: true });

  it('every message carries its offset; the join reply says where the room is', T, async () => {
    const alice = await member(server, 'alice');
    assert.equal(typeof alice.first.offset, 'number');
    assert.match(alice.first.epoch, /^[0-9a-z]{12}$/);
    assert.equal(alice.first.recovered, undefined, 'a first join asks nothing');
    const bob = await member(server, 'bob');
    assert.equal(bob.first.epoch, alice.first.epoch);
    await say(bob, 'one');
    await say(bob, 'two');
    const one = await alice.msgs.waitFor((e) => e.payload.body === 'one');
    const two = await alice.msgs.waitFor((e) => e.payload.body === 'two');
    assert.equal(one.payload.offset, bob.first.offset + 1);
    assert.equal(two.payload.offset, bob.first.offset + 2);
    assert.equal(one.payload.user_id, 'bob');
  });

  it('a rejoin gets every message it missed, in order, before new ones: recovered true', T, async () => {
    const alice = await member(server, 'alice');
    const bob = await member(server, 'bob');
    await say(bob, 'before');
    await alice.msgs.waitFor((e) => e.payload.body === 'before');
    const reply = await offlineWhile(alice, async () => {
      for (const body of ['missed 1', 'missed 2', 'missed 3']) await say(bob, body);
    });
    assert.equal(reply.recovered, true, JSON.stringify(reply));
    assert.equal(reply.epoch, alice.first.epoch);
    await say(bob, 'after');
    await alice.msgs.waitFor((e) => e.payload.body === 'after');
    const bodies = alice.msgs.all().map((e) => e.payload.body);
    assert.deepEqual(bodies, ['before', 'missed 1', 'missed 2', 'missed 3', 'after']);
    const offsets = alice.msgs.all().map((e) => e.payload.offset);
    for (let i = 1; i < offsets.length; i++) assert.equal(offsets[i], offsets[i - 1] + 1);
    assert.equal(reply.offset, offsets[3], 'the reply gives the offset of the last missed message');
  });

  it('a rejoin while messages keep coming: every offset after the one asked for arrives once, in order', T, async () => {
    const bob = await member(server, 'bob');
    const from = { ...bob.seen };
    const n = 90; // within the default history of 100
    for (let i = 0; i < n; i++) bob.channel.push('new_msg', { body: `r${i}` });
    const socket = await phxConnect(`${server.url}/socket`, { params: { user_id: 'carol' } });
    const ch = socket.channel('room:lobby', { offset: from.offset, epoch: from.epoch });
    const msgs = recordChannel(ch, ['new_msg']);
    const r = await joinOk(ch);
    assert.equal(r.recovered, true, JSON.stringify(r));
    await say(bob, 'fence');
    await msgs.waitFor((e) => e.payload.body === 'fence');
    assert.deepEqual(msgs.all().map((e) => e.payload.offset), Array.from({ length: n + 1 }, (_, i) => from.offset + 1 + i));
    socket.disconnect();
  });

  it('the join reply comes first: presence_state (the chat pushes it after_join) follows it', T, async () => {
    const raw = await openRaw(`${server.url.replace(/^http/, 'ws')}/socket/websocket?vsn=2.0.0&user_id=dora`);
    raw.ws.send(JSON.stringify(['1', '1', 'room:lobby', 'phx_join', {}]));
    const first = await raw.inbox.waitFor(() => true, { what: 'the first message after the join' });
    assert.equal(first.json[3], 'phx_reply', JSON.stringify(first.json));
    const second = await raw.inbox.waitFor(() => true, { what: 'the second message' });
    assert.equal(second.json[3], 'presence_state', JSON.stringify(second.json));
  });

  it('an unknown epoch, or an offset from the future, is not recovered', T, async () => {
    const bob = await member(server, 'bob');
    await say(bob, 'x');
    for (const params of [{ offset: 0, epoch: 'nope' }, { offset: 1e9, epoch: bob.first.epoch }, { offset: -1, epoch: bob.first.epoch }]) {
      const socket = await phxConnect(`${server.url}/socket`, { params: { user_id: 'carol' } });
      const ch = socket.channel('room:lobby', params);
      const msgs = recordChannel(ch, ['new_msg']);
      const r = await joinOk(ch);
      assert.equal(r.recovered, false, JSON.stringify({ params, r }));
      assert.equal(r.epoch, bob.first.epoch);
      assert.ok(r.offset >= 1);
      await say(bob, `live ${params.offset}`);
      await msgs.waitFor((e) => e.payload.body === `live ${params.offset}`);
      assert.equal(msgs.items.length, 1, 'nothing replayed: only the live message');
      socket.disconnect();
    }
  });
});

describe('chat --history 2: a gap longer than the history is not recovered', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--history', '2']), { closeClientsAfterEach: true });

  it('the rejoin says recovered false and replays nothing', T, async () => {
    const alice = await member(server, 'alice');
    const bob = await member(server, 'bob');
    const reply = await offlineWhile(alice, async () => {
      for (const body of ['m1', 'm2', 'm3']) await say(bob, body);
    });
    assert.equal(reply.recovered, false, JSON.stringify(reply));
    assert.equal(reply.offset, alice.first.offset + 3);
    await say(bob, 'live');
    await alice.msgs.waitFor((e) => e.payload.body === 'live');
    assert.deepEqual(alice.msgs.all().map((e) => e.payload.body), ['live']);
  });

  it('a gap within the history is recovered', T, async () => {
    const alice = await member(server, 'alice');
    const bob = await member(server, 'bob');
    const reply = await offlineWhile(alice, async () => {
      for (const body of ['n1', 'n2']) await say(bob, body);
    });
    assert.equal(reply.recovered, true, JSON.stringify(reply));
    await alice.msgs.waitFor((e) => e.payload.body === 'n2');
    assert.deepEqual(alice.msgs.all().map((e) => e.payload.body), ['n1', 'n2']);
  });
});
