// Interop tests: plume's channel_test_server (tests/servers/channel_test_server.cpp)
// driven by the official phoenix.js client (npm phoenix 1.8.16) and by raw
// `ws` clients that check the exact V2/V1 frames. The expected behaviour is
// Phoenix's (see /work/shared/reference/phoenix-protocol.md and
// phoenix-observed.md); a failure here is a deviation of plume's server.
//
// Run: cd tests/node && PLUME_CHANNEL_SERVER_BIN=build/dev/tests/channel_test_server \
//        node --test phoenix_channels.test.mjs
// Every wait is on an event or callback, bounded by a timeout that fails the
// test; servers listen on 127.0.0.1 and are stopped by PID.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  serverPerSuite,
  closeClientsAndStop,
  withTimeout,
  v2Url,
  v1Url,
  openRaw,
  rawUpgrade,
  httpGet,
  encodeBinaryPush,
  phxSocket,
  phxConnect,
  recordChannel,
  trackJoins,
  pushResult,
  joinResult,
  joinOk,
} from './support/servers.mjs';

const BIN = 'PLUME_CHANNEL_SERVER_BIN';
const T = { timeout: 30000 };

const bytes = (n, seed = 0) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b.buffer;
};

const UNMATCHED = { status: 'error', response: { reason: 'unmatched topic' } };

// ============================================================ shared server

describe('channel_test_server: phoenix.js and raw V2 clients', () => {
  const server = serverPerSuite(() => startServer(BIN), { closeClientsAfterEach: true });

  // ------------------------------------------------------------- joins

  it('join ok: phoenix.js gets the join response; raw V2 reply is [ref, ref, topic, phx_reply, {status, response}]', T, async () => {
    const socket = await phxConnect(server.socketUrl, { params: { user_id: 'alice' } });
    const ch = socket.channel('echo:join-ok', {});
    const r = await joinResult(ch);
    assert.deepEqual(r, { status: 'ok', response: { joined: 'echo:join-ok', user_id: 'alice' } });
    assert.equal(ch.state, 'joined');

    const raw = await openRaw(v2Url(server));
    const reply = await raw.join('echo:raw', '1');
    assert.deepEqual(reply, [
      '1',
      '1',
      'echo:raw',
      'phx_reply',
      { status: 'ok', response: { joined: 'echo:raw', user_id: 'anon' } },
    ]);
  });

  it('join error: {reason:"join refused"}; phoenix.js retries the join; nothing is registered', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:join-fail', { fail: true });
    const joins = trackJoins(ch);
    ch.join();
    const first = await joins.waitFor(() => true, { what: 'the first join outcome' });
    assert.deepEqual(first, { status: 'error', response: { reason: 'join refused' }, joinRef: first.joinRef });
    // phoenix.js rejoins errored channels after rejoinAfterMs (50 ms here).
    const second = await joins.waitFor(() => true, { what: 'the retried join outcome' });
    assert.equal(second.status, 'error');
    assert.notEqual(second.joinRef, first.joinRef, 'the retry is a new join (new join_ref)');
    assert.equal(ch.state, 'errored');

    const raw = await openRaw(v2Url(server));
    assert.deepEqual(await raw.join('echo:raw-fail', '1', { fail: true }), [
      '1',
      '1',
      'echo:raw-fail',
      'phx_reply',
      { status: 'error', response: { reason: 'join refused' } },
    ]);
    raw.send(['1', '2', 'echo:raw-fail', 'echo', { after: 'failed join' }]);
    assert.deepEqual(await raw.replyTo('2'), [null, '2', 'echo:raw-fail', 'phx_reply', UNMATCHED]);
  });

  it('join crash: an exception in join → {reason:"join crashed"}; the socket and its other channels carry on', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ok = socket.channel('echo:crash-neighbour', {});
    await joinOk(ok);
    const ch = socket.channel('echo:join-crash', { crash: true });
    const r = await joinResult(ch);
    assert.deepEqual(r, { status: 'error', response: { reason: 'join crashed' } });
    assert.deepEqual(await pushResult(ok.push('echo', { still: 'alive' })), { status: 'ok', response: { still: 'alive' } });

    const raw = await openRaw(v2Url(server));
    assert.deepEqual(await raw.join('echo:raw-crash', '1', { crash: true }), [
      '1',
      '1',
      'echo:raw-crash',
      'phx_reply',
      { status: 'error', response: { reason: 'join crashed' } },
    ]);
    const again = await raw.join('echo:raw-after-crash', '2');
    assert.equal(again[4].status, 'ok');
  });

  it('unmatched topic: join nope:1 → error {reason:"unmatched topic"} with join_ref null; socket stays open', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('nope:1', {});
    assert.deepEqual(await joinResult(ch), UNMATCHED);

    const raw = await openRaw(v2Url(server));
    assert.deepEqual(await raw.join('nope:1', '1'), [null, '1', 'nope:1', 'phx_reply', UNMATCHED]);
    // A push to a topic that was never joined.
    raw.send(['7', '2', 'echo:never-joined', 'echo', {}]);
    assert.deepEqual(await raw.replyTo('2'), [null, '2', 'echo:never-joined', 'phx_reply', UNMATCHED]);
    // Topic "phoenix" only knows heartbeat.
    raw.send([null, '3', 'phoenix', 'something', {}]);
    assert.deepEqual(await raw.replyTo('3'), [null, '3', 'phoenix', 'phx_reply', UNMATCHED]);
    assert.equal((await raw.join('echo:after-unmatched', '4'))[4].status, 'ok');
  });

  // ------------------------------------------------------------- pushes

  it('push: ok reply echoes the payload, error reply, and timeout when the server never replies', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:push', {});
    await joinOk(ch);
    assert.deepEqual(await pushResult(ch.push('echo', { a: 1, nested: { b: [1, 2, 'x'] } })), {
      status: 'ok',
      response: { a: 1, nested: { b: [1, 2, 'x'] } },
    });
    assert.deepEqual(await pushResult(ch.push('error', {})), {
      status: 'error',
      response: { reason: 'asked for an error' },
    });
    assert.deepEqual(await pushResult(ch.push('noreply', {}, 300)), { status: 'timeout' });
    // The channel is still usable after a push timed out.
    assert.deepEqual(await pushResult(ch.push('echo', { n: 2 })), { status: 'ok', response: { n: 2 } });

    const raw = await openRaw(v2Url(server));
    await raw.join('echo:raw-push', '1');
    raw.send(['1', '2', 'echo:raw-push', 'echo', { x: 'y' }]);
    assert.deepEqual(await raw.replyTo('2'), ['1', '2', 'echo:raw-push', 'phx_reply', { status: 'ok', response: { x: 'y' } }]);
    raw.send(['1', '3', 'echo:raw-push', 'error', {}]);
    assert.deepEqual(await raw.replyTo('3'), [
      '1',
      '3',
      'echo:raw-push',
      'phx_reply',
      { status: 'error', response: { reason: 'asked for an error' } },
    ]);
  });

  it('push: a reply to a push sent without join_ref carries the channel\'s join_ref (as Phoenix)', T, async () => {
    // Phoenix replies from the channel process with socket.join_ref, whatever
    // join_ref the push had (phoenix-observed.md: "replies from the channel
    // process carry the join's ref as join_ref").
    const raw = await openRaw(v2Url(server));
    await raw.join('echo:null-join-ref', '1');
    raw.send([null, '2', 'echo:null-join-ref', 'echo', { k: 1 }]);
    const reply = await raw.replyTo('2');
    assert.deepEqual(reply[4], { status: 'ok', response: { k: 1 } }, 'a push without join_ref is delivered');
    assert.equal(reply[0], '1', `reply join_ref: Phoenix sends the channel's join_ref "1"; got ${JSON.stringify(reply)}`);
  });

  it('server push: `push` sends "pushed" [join_ref, null, topic, event, payload] before the ok reply', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:server-push', {});
    const inbox = recordChannel(ch, ['pushed']);
    await joinOk(ch);
    const reply = pushResult(ch.push('push', { hello: 'there' }));
    const pushed = await inbox.waitFor(() => true, { what: 'the pushed event' });
    assert.deepEqual(pushed.payload, { hello: 'there' });
    assert.equal((await reply).status, 'ok');

    const raw = await openRaw(v2Url(server));
    await raw.join('echo:raw-server-push', '1');
    raw.send(['1', '2', 'echo:raw-server-push', 'push', { p: 1 }]);
    assert.deepEqual(await raw.event('echo:raw-server-push', 'pushed'), ['1', null, 'echo:raw-server-push', 'pushed', { p: 1 }]);
    const r = await raw.replyTo('2');
    assert.deepEqual(r, ['1', '2', 'echo:raw-server-push', 'phx_reply', { status: 'ok', response: {} }]);
  });

  it('deferred reply: the reply comes later from handle_info with the original ref', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:defer', {});
    await joinOk(ch);
    assert.deepEqual(await pushResult(ch.push('defer', {})), { status: 'ok', response: { deferred: true } });

    const raw = await openRaw(v2Url(server));
    await raw.join('echo:raw-defer', '1');
    raw.send(['1', '2', 'echo:raw-defer', 'defer', {}]);
    assert.deepEqual(await raw.replyTo('2'), [
      '1',
      '2',
      'echo:raw-defer',
      'phx_reply',
      { status: 'ok', response: { deferred: true } },
    ]);
  });

  it('after_join: the push scheduled in join arrives after the join reply', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:after-join', { after_join: true });
    // Recorded synchronously in the callbacks: both frames may arrive in one
    // read, so promise continuations would not show their order.
    const order = [];
    ch.on('after_join', (payload) => order.push(['after_join', payload]));
    ch.joinPush.receive('ok', () => order.push(['join', 'ok']));
    const inbox = recordChannel(ch, ['after_join']);
    await joinOk(ch);
    await inbox.waitFor(() => true, { what: 'after_join' });
    assert.deepEqual(order, [
      ['join', 'ok'],
      ['after_join', { topic: 'echo:after-join' }],
    ]);

    const raw = await openRaw(v2Url(server));
    raw.send(['1', '1', 'echo:raw-after-join', 'phx_join', { after_join: true }]);
    const push = await raw.event('echo:raw-after-join', 'after_join');
    assert.deepEqual(push, ['1', null, 'echo:raw-after-join', 'after_join', { topic: 'echo:raw-after-join' }]);
    const frames = raw.inbox.items.map((i) => i.json);
    const replyAt = frames.findIndex((m) => m[3] === 'phx_reply' && m[1] === '1');
    const pushAt = frames.findIndex((m) => m[3] === 'after_join');
    assert.ok(replyAt >= 0 && replyAt < pushAt, `join reply must precede after_join; frames: ${JSON.stringify(frames)}`);
  });

  // ---------------------------------------------------------- broadcasts

  it('broadcast reaches every joined client (sender included) exactly once and in order', T, async () => {
    const topic = 'echo:bcast-many';
    const clients = [];
    for (let i = 0; i < 8; i++) {
      const socket = await phxConnect(server.socketUrl, { params: { user_id: `u${i}` } });
      const ch = socket.channel(topic, {});
      const inbox = recordChannel(ch, ['broadcast']);
      await joinOk(ch);
      clients.push({ ch, inbox });
    }
    const n = 5;
    for (let k = 0; k < n; k++) clients[k % clients.length].ch.push('broadcast', { k });
    // Only one sender, so the order is defined: use client 0 for an ordered run.
    for (let k = n; k < 2 * n; k++) clients[0].ch.push('broadcast', { k });
    for (const c of clients) {
      for (let k = 0; k < 2 * n; k++) {
        await c.inbox.waitFor((e) => e.payload.k === k, { what: `broadcast k=${k}` });
      }
    }
    // A last broadcast from client 0 as a fence: nothing else may arrive in between.
    clients[0].ch.push('broadcast', { fence: true });
    for (const c of clients) {
      await c.inbox.waitFor((e) => e.payload.fence === true, { what: 'the fence broadcast' });
      const seen = c.inbox.items.map((e) => e.payload);
      assert.equal(seen.length, 2 * n + 1, `each broadcast exactly once; got ${JSON.stringify(seen)}`);
      const ordered = seen.filter((p) => p.k >= n).map((p) => p.k);
      assert.deepEqual(ordered, [5, 6, 7, 8, 9], 'broadcasts of one sender arrive in order');
      for (let k = 0; k < 2 * n; k++) {
        assert.equal(seen.filter((p) => p.k === k).length, 1, `k=${k} exactly once`);
      }
    }

    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    clients[1].ch.push('broadcast', { raw: 1 });
    assert.deepEqual(await raw.event(topic, 'broadcast'), [null, null, topic, 'broadcast', { raw: 1 }]);
  });

  it('broadcast_from excludes the sender', T, async () => {
    const topic = 'echo:bcast-from';
    const [a, b, c] = await Promise.all(
      ['a', 'b', 'c'].map((u) => phxConnect(server.socketUrl, { params: { user_id: u } }))
    );
    const chans = [a, b, c].map((s) => s.channel(topic, {}));
    const inboxes = chans.map((ch) => recordChannel(ch, ['broadcast', 'broadcast_from']));
    for (const ch of chans) await joinOk(ch);
    chans[0].push('broadcast_from', { from: 'a' });
    // Fence: a's ordinary broadcast after its broadcast_from; every client
    // sees a's messages in order, so the sender has all it will ever get of
    // the broadcast_from once the fence is in.
    chans[0].push('broadcast', { fence: true });
    for (const inbox of inboxes) await inbox.waitFor((e) => e.event === 'broadcast', { what: 'the fence' });
    assert.deepEqual(
      inboxes[0].items.map((e) => e.event),
      ['broadcast'],
      'the sender must not get its own broadcast_from'
    );
    for (const inbox of inboxes.slice(1)) {
      assert.deepEqual(
        inbox.items.map((e) => [e.event, e.payload]),
        [
          ['broadcast_from', { from: 'a' }],
          ['broadcast', { fence: true }],
        ]
      );
    }
  });

  it('broadcast from outside a channel (GET /broadcast) reaches joined clients as [null, null, topic, event, payload]', T, async () => {
    const topic = 'echo:external';
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel(topic, {});
    const inbox = recordChannel(ch, ['news']);
    await joinOk(ch);
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    const other = socket.channel('echo:external-other', {});
    const otherInbox = recordChannel(other, ['news']);
    await joinOk(other);

    const res = await httpGet(`${server.url}/broadcast?topic=${encodeURIComponent(topic)}&event=news&body=hello%20world`);
    assert.equal(res.status, 200);
    const got = await inbox.waitFor(() => true, { what: 'news from outside' });
    assert.deepEqual(got.payload, { body: 'hello world' });
    assert.deepEqual(await raw.event(topic, 'news'), [null, null, topic, 'news', { body: 'hello world' }]);
    // Only subscribers of that topic: fence with a broadcast on the other topic.
    await httpGet(`${server.url}/broadcast?topic=echo:external-other&event=news&body=fence`);
    await otherInbox.waitFor(() => true, { what: 'the fence on the other topic' });
    assert.equal(otherInbox.items.length, 1);
    assert.equal(inbox.items.length, 1);
  });

  it('intercepted broadcasts (`filtered`): handle_out drops {drop:true} and adds seen_by per client', T, async () => {
    const topic = 'echo:filtered';
    const [sa, sb] = await Promise.all(['ann', 'bob'].map((u) => phxConnect(server.socketUrl, { params: { user_id: u } })));
    const ca = sa.channel(topic, {});
    const cb = sb.channel(topic, {});
    const ia = recordChannel(ca, ['filtered']);
    const ib = recordChannel(cb, ['filtered']);
    await joinOk(ca);
    await joinOk(cb);
    ca.push('filtered', { n: 1 });
    ca.push('filtered', { n: 2, drop: true });
    ca.push('filtered', { n: 3 });
    await ia.waitFor((e) => e.payload.n === 3, { what: 'n=3 at ann' });
    await ib.waitFor((e) => e.payload.n === 3, { what: 'n=3 at bob' });
    assert.deepEqual(
      ia.items.map((e) => e.payload),
      [
        { n: 1, seen_by: 'ann' },
        { n: 3, seen_by: 'ann' },
      ]
    );
    assert.deepEqual(
      ib.items.map((e) => e.payload),
      [
        { n: 1, seen_by: 'bob' },
        { n: 3, seen_by: 'bob' },
      ]
    );
    // The intercepted push carries the channel's join_ref (a push, not a broadcast).
    const raw = await openRaw(v2Url(server, { user_id: 'raw' }));
    await raw.join(topic, '1');
    ca.push('filtered', { n: 4 });
    assert.deepEqual(await raw.event(topic, 'filtered'), ['1', null, topic, 'filtered', { n: 4, seen_by: 'raw' }]);
  });

  // ------------------------------------------------ leave, duplicates, stale

  it('leave: ok reply and onClose; then a push to that topic gets `unmatched topic`', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:leave', {});
    await joinOk(ch);
    const closed = new Promise((resolve) => ch.onClose(resolve));
    assert.equal((await pushResult(ch.leave())).status, 'ok');
    await withTimeout(closed, 5000, 'onClose after leave');
    assert.equal(ch.state, 'closed');
    assert.ok(!socket.channels.includes(ch), 'a left channel is removed from the socket');

    const raw = await openRaw(v2Url(server));
    await raw.join('echo:raw-leave', '1');
    raw.send(['1', '2', 'echo:raw-leave', 'phx_leave', {}]);
    assert.deepEqual(await raw.replyTo('2'), ['1', '2', 'echo:raw-leave', 'phx_reply', { status: 'ok', response: {} }]);
    assert.deepEqual(await raw.event('echo:raw-leave', 'phx_close'), ['1', '1', 'echo:raw-leave', 'phx_close', {}]);
    raw.send(['1', '3', 'echo:raw-leave', 'echo', {}]);
    assert.deepEqual(await raw.replyTo('3'), [null, '3', 'echo:raw-leave', 'phx_reply', UNMATCHED]);
    // phx_leave for a topic never joined: ok, echoing the join_ref, no phx_close.
    raw.send(['9', '4', 'echo:never', 'phx_leave', {}]);
    assert.deepEqual(await raw.replyTo('4'), ['9', '4', 'echo:never', 'phx_reply', { status: 'ok', response: {} }]);
    raw.send([null, '5', 'phoenix', 'heartbeat', {}]);
    await raw.replyTo('5');
    assert.equal(raw.inbox.all((i) => i.json && i.json[2] === 'echo:never' && i.json[3] === 'phx_close').length, 0);
  });

  it('duplicate join (raw V2): the old join_ref gets phx_close, the new join is ok and serves pushes', T, async () => {
    const topic = 'echo:dup-raw';
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    raw.send(['2', '2', topic, 'phx_join', {}]);
    const reply = await raw.replyTo('2');
    assert.deepEqual(reply, ['2', '2', topic, 'phx_reply', { status: 'ok', response: { joined: topic, user_id: 'anon' } }]);
    assert.deepEqual(await raw.event(topic, 'phx_close', { what: 'phx_close for the old join_ref' }), ['1', '1', topic, 'phx_close', {}]);
    raw.send(['2', '3', topic, 'echo', { v: 3 }]);
    assert.deepEqual(await raw.replyTo('3'), ['2', '3', topic, 'phx_reply', { status: 'ok', response: { v: 3 } }]);
    // Only one channel remains: one broadcast, one frame.
    raw.send(['2', '4', topic, 'broadcast', { once: true }]);
    await raw.event(topic, 'broadcast');
    raw.send([null, '5', 'phoenix', 'heartbeat', {}]);
    await raw.replyTo('5');
    assert.equal(raw.inbox.all((i) => i.json && i.json[3] === 'broadcast').length, 1);
    assert.equal(raw.inbox.all((i) => i.json && i.json[3] === 'phx_close').length, 1);
  });

  it('duplicate join (two phoenix.js Channel objects on one topic): the first closes, the second joins', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const first = socket.channel('echo:dup-js', {});
    await joinOk(first);
    const firstClosed = new Promise((resolve) => first.onClose(resolve));
    const second = socket.channel('echo:dup-js', {});
    assert.equal((await joinResult(second)).status, 'ok');
    await withTimeout(firstClosed, 5000, 'onClose of the first channel');
    assert.equal(first.state, 'closed');
    assert.equal(second.state, 'joined');
    assert.deepEqual(await pushResult(second.push('echo', { second: true })), { status: 'ok', response: { second: true } });
  });

  it('stale join_ref: pushes and leaves for an old incarnation are dropped silently', T, async () => {
    const topic = 'echo:stale';
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    raw.send(['5', '5', topic, 'phx_join', {}]);
    await raw.replyTo('5');
    raw.send(['1', '6', topic, 'echo', { stale: true }]); // stale: dropped
    raw.send(['1', '7', topic, 'phx_leave', {}]); // stale leave: ignored, no reply
    raw.send(['5', '8', topic, 'echo', { current: true }]);
    assert.deepEqual(await raw.replyTo('8'), ['5', '8', topic, 'phx_reply', { status: 'ok', response: { current: true } }]);
    const replies = raw.inbox.all((i) => i.json && (i.json[1] === '6' || i.json[1] === '7')).map((i) => i.json);
    assert.deepEqual(replies, [], 'no reply to the stale push or the stale leave');
    // The channel is still joined (the stale leave did not end it).
    raw.send(['5', '9', topic, 'echo', { still: true }]);
    assert.equal((await raw.replyTo('9'))[4].status, 'ok');
  });

  // --------------------------------------------------------- crash & stop

  it('crashing handler: phx_error [jr, jr, topic, "phx_error", …], phoenix.js rejoins by itself', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:crash', {});
    const joins = trackJoins(ch);
    const errors = recordChannel(ch, ['phx_error']);
    ch.join();
    const j1 = await joins.waitFor(() => true, { what: 'first join' });
    assert.equal(j1.status, 'ok');
    ch.push('crash', {});
    const err = await errors.waitFor(() => true, { what: 'phx_error' });
    assert.ok(
      JSON.stringify(err.payload) === '{}' || JSON.stringify(err.payload) === '{"reason":"channel_crash"}',
      `phx_error payload {} or {reason:"channel_crash"}, got ${JSON.stringify(err.payload)}`
    );
    const j2 = await joins.waitFor(() => true, { what: 'the automatic rejoin' });
    assert.equal(j2.status, 'ok', 'the join reply is seen a second time');
    assert.notEqual(j2.joinRef, j1.joinRef);
    assert.equal(ch.state, 'joined');
    assert.deepEqual(await pushResult(ch.push('echo', { after: 'crash' })), { status: 'ok', response: { after: 'crash' } });

    const raw = await openRaw(v2Url(server));
    await raw.join('echo:raw-crash-neighbour', '1');
    await raw.join('echo:raw-crash', '2');
    raw.send(['2', '3', 'echo:raw-crash', 'crash', {}]);
    const e = await raw.event('echo:raw-crash', 'phx_error');
    assert.equal(e[0], '2');
    assert.equal(e[1], '2');
    raw.send(['2', '4', 'echo:raw-crash', 'echo', {}]);
    assert.deepEqual(await raw.replyTo('4'), [null, '4', 'echo:raw-crash', 'phx_reply', UNMATCHED]);
    assert.equal(raw.inbox.all((i) => i.json && i.json[1] === '3').length, 0, 'the crashed push gets no reply');
    raw.send(['1', '5', 'echo:raw-crash-neighbour', 'echo', { ok: 1 }]);
    assert.equal((await raw.replyTo('5'))[4].status, 'ok', 'other channels of the socket are unaffected');
  });

  it('stop: phx_close [jr, jr, topic, "phx_close", {}], phoenix.js onClose fires and the channel is not rejoined', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:stop', {});
    const joins = trackJoins(ch);
    ch.join();
    assert.equal((await joins.waitFor(() => true, { what: 'join' })).status, 'ok');
    const closed = new Promise((resolve) => ch.onClose(resolve));
    ch.push('stop', {});
    await withTimeout(closed, 5000, 'onClose after stop');
    assert.equal(ch.state, 'closed');
    assert.ok(!socket.channels.includes(ch), 'a closed channel is removed from the socket (no rejoin)');
    const close = await socket.plumeMessages.waitFor((m) => m.topic === 'echo:stop' && m.event === 'phx_close', {
      what: 'phx_close',
    });
    assert.equal(close.join_ref, j1ref(joins));

    const raw = await openRaw(v2Url(server));
    await raw.join('echo:raw-stop', '1');
    raw.send(['1', '2', 'echo:raw-stop', 'stop', {}]);
    assert.deepEqual(await raw.event('echo:raw-stop', 'phx_close'), ['1', '1', 'echo:raw-stop', 'phx_close', {}]);
    raw.send(['1', '3', 'echo:raw-stop', 'echo', {}]);
    assert.deepEqual(await raw.replyTo('3'), [null, '3', 'echo:raw-stop', 'phx_reply', UNMATCHED]);
    assert.equal(raw.inbox.all((i) => i.json && i.json[3] === 'phx_error').length, 0, 'a stop is not a crash');
  });

  // ------------------------------------------------------------ heartbeat

  it('heartbeat: [null,"9","phoenix","heartbeat",{}] → [null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]; socket.ping round trip', T, async () => {
    const raw = await openRaw(v2Url(server));
    raw.send('[null,"9","phoenix","heartbeat",{}]');
    assert.deepEqual(await raw.replyTo('9'), [null, '9', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    // join_ref is always null in the reply, and any payload is accepted.
    raw.send(['3', '10', 'phoenix', 'heartbeat', { extra: 1 }]);
    assert.deepEqual(await raw.replyTo('10'), [null, '10', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);

    const socket = await phxConnect(server.socketUrl);
    const rtt = await withTimeout(
      new Promise((resolve) => assert.equal(socket.ping(resolve), true)),
      5000,
      'the socket.ping callback'
    );
    assert.equal(typeof rtt, 'number');
    assert.ok(rtt >= 0);
  });

  it('heartbeat: phoenix.js periodic heartbeats are answered (socket stays open across several intervals)', T, async () => {
    const socket = await phxConnect(server.socketUrl, { heartbeatIntervalMs: 100 });
    for (let i = 0; i < 3; i++) {
      await socket.plumeMessages.waitFor((m) => m.topic === 'phoenix' && m.event === 'phx_reply', {
        what: `heartbeat reply ${i + 1}`,
      });
    }
    assert.equal(socket.plumeLog.all((e) => e.type === 'close').length, 0, 'no heartbeat timeout / close');
  });

  // --------------------------------------------------------------- binary

  it('binary: a phoenix.js ArrayBuffer push to `echo` gets a binary reply with the same bytes', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:binary', {});
    await joinOk(ch);
    const payload = bytes(1000, 7);
    const r = await pushResult(ch.push('echo', payload));
    assert.equal(r.status, 'ok');
    assert.ok(r.response instanceof ArrayBuffer, `binary reply expected, got ${typeof r.response}`);
    assert.deepEqual(Buffer.from(r.response), Buffer.from(payload));
    // Empty binary payload too.
    const empty = await pushResult(ch.push('echo', new ArrayBuffer(0)));
    assert.equal(empty.status, 'ok');
    assert.ok(empty.response instanceof ArrayBuffer);
    assert.equal(empty.response.byteLength, 0);
  });

  it('binary (raw): kind-0 push → kind-1 reply [join_ref, ref, topic, "ok", bytes]; `push` → kind-0 push without ref', T, async () => {
    const topic = 'echo:raw-binary';
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    const payload = Buffer.from(bytes(300, 3));
    raw.sendBinary(encodeBinaryPush('1', '2', topic, 'echo', payload));
    const reply = await raw.inbox.waitFor((i) => i.binary && i.frame.ref === '2', { what: 'binary reply' });
    assert.equal(reply.frame.kind, 'reply');
    assert.equal(reply.frame.join_ref, '1');
    assert.equal(reply.frame.topic, topic);
    assert.equal(reply.frame.status, 'ok');
    assert.deepEqual(Buffer.from(reply.frame.payload), payload);

    raw.sendBinary(encodeBinaryPush('1', '3', topic, 'push', Buffer.from([0, 1, 2, 255])));
    const pushed = await raw.inbox.waitFor((i) => i.binary && i.frame.event === 'pushed', { what: 'binary push' });
    assert.equal(pushed.frame.kind, 'push');
    assert.equal(pushed.frame.join_ref, '1');
    assert.equal(pushed.frame.topic, topic);
    assert.deepEqual(Buffer.from(pushed.frame.payload), Buffer.from([0, 1, 2, 255]));
    // The plain ok reply to `push` stays JSON text.
    assert.deepEqual(await raw.replyTo('3'), ['1', '3', topic, 'phx_reply', { status: 'ok', response: {} }]);
  });

  it('binary broadcast: every subscriber gets a kind-2 frame; phoenix.js sees an ArrayBuffer payload', T, async () => {
    const topic = 'echo:binary-bcast';
    const [sa, sb] = await Promise.all(['x', 'y'].map((u) => phxConnect(server.socketUrl, { params: { user_id: u } })));
    const ca = sa.channel(topic, {});
    const cb = sb.channel(topic, {});
    const ia = recordChannel(ca, ['broadcast']);
    const ib = recordChannel(cb, ['broadcast']);
    await joinOk(ca);
    await joinOk(cb);
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    const payload = bytes(64, 1);
    ca.push('broadcast', payload);
    for (const inbox of [ia, ib]) {
      const e = await inbox.waitFor(() => true, { what: 'binary broadcast' });
      assert.ok(e.payload instanceof ArrayBuffer, 'ArrayBuffer payload');
      assert.deepEqual(Buffer.from(e.payload), Buffer.from(payload));
    }
    const frame = await raw.inbox.waitFor((i) => i.binary, { what: 'kind-2 frame' });
    assert.equal(frame.frame.kind, 'broadcast');
    assert.equal(frame.frame.topic, topic);
    assert.equal(frame.frame.event, 'broadcast');
    assert.deepEqual(Buffer.from(frame.frame.payload), Buffer.from(payload));
  });

  // ----------------------------------------------------------- serializers

  it('V1 serializer (vsn=1.0.0): replies are {topic, event, payload, ref} without join_ref', T, async () => {
    const raw = await openRaw(v1Url(server));
    raw.send({ topic: 'echo:v1', event: 'phx_join', payload: {}, ref: '1', join_ref: '1' });
    const reply = await raw.nextJson((m) => m.ref === '1', { what: 'V1 join reply' });
    assert.deepEqual(reply, {
      topic: 'echo:v1',
      event: 'phx_reply',
      payload: { status: 'ok', response: { joined: 'echo:v1', user_id: 'anon' } },
      ref: '1',
    });
    assert.deepEqual(Object.keys(reply).sort(), ['event', 'payload', 'ref', 'topic'], 'V1 encode drops join_ref');

    raw.send({ topic: 'echo:v1', event: 'echo', payload: { v: 1 }, ref: '2', join_ref: '1' });
    assert.deepEqual(await raw.nextJson((m) => m.ref === '2', { what: 'V1 echo reply' }), {
      topic: 'echo:v1',
      event: 'phx_reply',
      payload: { status: 'ok', response: { v: 1 } },
      ref: '2',
    });
    // join_ref is optional when decoding V1.
    raw.send({ topic: 'echo:v1', event: 'echo', payload: { v: 2 }, ref: '3' });
    assert.equal((await raw.nextJson((m) => m.ref === '3', { what: 'reply without join_ref' })).payload.status, 'ok');

    raw.send({ topic: 'echo:v1', event: 'push', payload: { p: 1 }, ref: '4', join_ref: '1' });
    assert.deepEqual(await raw.nextJson((m) => m.event === 'pushed', { what: 'V1 push' }), {
      topic: 'echo:v1',
      event: 'pushed',
      payload: { p: 1 },
      ref: null,
    });
    raw.send({ topic: 'echo:v1', event: 'broadcast', payload: { b: 1 }, ref: '5', join_ref: '1' });
    assert.deepEqual(await raw.nextJson((m) => m.event === 'broadcast', { what: 'V1 broadcast' }), {
      topic: 'echo:v1',
      event: 'broadcast',
      payload: { b: 1 },
      ref: null,
    });
    raw.send({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: '6' });
    assert.deepEqual(await raw.nextJson((m) => m.ref === '6', { what: 'V1 heartbeat reply' }), {
      topic: 'phoenix',
      event: 'phx_reply',
      payload: { status: 'ok', response: {} },
      ref: '6',
    });
    raw.send({ topic: 'nope:v1', event: 'phx_join', payload: {}, ref: '7' });
    assert.deepEqual(await raw.nextJson((m) => m.ref === '7', { what: 'V1 unmatched' }), {
      topic: 'nope:v1',
      event: 'phx_reply',
      payload: UNMATCHED,
      ref: '7',
    });
  });

  it('V1 is the default without ?vsn=, V2 with vsn=2.0.0; V1 and V2 clients share broadcasts', T, async () => {
    const topic = 'echo:v1v2';
    const v1raw = await openRaw(server.wsUrl, { name: 'no-vsn client' });
    v1raw.send({ topic, event: 'phx_join', payload: {}, ref: '1' });
    const r = await v1raw.nextJson((m) => m.ref === '1', { what: 'join reply on a socket without vsn' });
    assert.equal(r.event, 'phx_reply');
    const v2raw = await openRaw(v2Url(server));
    await v2raw.join(topic, '1');
    v2raw.send(['1', '2', topic, 'broadcast', { both: true }]);
    assert.deepEqual(await v2raw.event(topic, 'broadcast'), [null, null, topic, 'broadcast', { both: true }]);
    assert.deepEqual(await v1raw.nextJson((m) => m.event === 'broadcast', { what: 'V1 copy of the broadcast' }), {
      topic,
      event: 'broadcast',
      payload: { both: true },
      ref: null,
    });
  });

  it('vsn: 2.0.x and 1.0.x upgrade (101); unsupported or malformed vsn → HTTP 403', T, async () => {
    for (const vsn of ['2.0.0', '2.0.1', '1.0.0', '1.0.5']) {
      const res = await rawUpgrade(`${server.wsUrl}?vsn=${encodeURIComponent(vsn)}`);
      assert.equal(res.status, 101, `vsn=${vsn}`);
    }
    for (const vsn of ['3.0.0', '2.1.0', '1.1.0', 'abc', '2.0', '']) {
      const res = await rawUpgrade(`${server.wsUrl}?vsn=${encodeURIComponent(vsn)}`);
      assert.equal(res.status, 403, `vsn=${JSON.stringify(vsn)} → 403, got ${res.status} ${res.body}`);
    }
  });

  // ------------------------------------------------------------ auth, origin

  it('authToken: phoenix.js `authToken` is accepted (101 echoes Sec-WebSocket-Protocol: phoenix); a bad token → 403', T, async () => {
    const socket = await phxConnect(server.socketUrl, { authToken: 'good-token' });
    const ch = socket.channel('echo:auth', {});
    assert.deepEqual(await joinOk(ch), { joined: 'echo:auth', user_id: 'token-user' });

    const proto = `base64url.bearer.phx.${Buffer.from('good-token').toString('base64').replace(/=/g, '')}`;
    const ok = await rawUpgrade(`${server.wsUrl}?vsn=2.0.0`, { 'Sec-WebSocket-Protocol': `phoenix, ${proto}` });
    assert.equal(ok.status, 101);
    assert.equal(ok.headers['sec-websocket-protocol'], 'phoenix');
    const badProto = `base64url.bearer.phx.${Buffer.from('bad-token').toString('base64').replace(/=/g, '')}`;
    const bad = await rawUpgrade(`${server.wsUrl}?vsn=2.0.0`, { 'Sec-WebSocket-Protocol': `phoenix, ${badProto}` });
    assert.equal(bad.status, 403);
    // A subprotocol offer without "phoenix" is refused by default
    // (require_phoenix_subprotocol; Phoenix itself answers 101, see --relaxed-subprotocols).
    const other = await rawUpgrade(`${server.wsUrl}?vsn=2.0.0`, { 'Sec-WebSocket-Protocol': 'chat' });
    assert.equal(other.status, 403);
    assert.match(other.body, /unsupported subprotocol \(expected "phoenix"\)/);

    // phoenix.js with a bad token: the socket errors and never opens.
    const badSocket = phxSocket(server.socketUrl, { authToken: 'bad-token' });
    badSocket.connect();
    await badSocket.plumeLog.waitFor((e) => e.type === 'error' || e.type === 'close', { what: 'error/close with a bad token' });
    assert.equal(badSocket.plumeLog.all((e) => e.type === 'open').length, 0);
  });

  it('connect refusals: reject=1 → 403, reject=429 → 429; phoenix.js never opens', T, async () => {
    const r403 = await rawUpgrade(`${server.wsUrl}?vsn=2.0.0&reject=1`);
    assert.equal(r403.status, 403);
    const r429 = await rawUpgrade(`${server.wsUrl}?vsn=2.0.0&reject=429`);
    assert.equal(r429.status, 429);
    const s = phxSocket(server.socketUrl, { params: { reject: '1' } });
    s.connect();
    await s.plumeLog.waitFor((e) => e.type === 'error', { what: 'socket onError' });
    await s.plumeLog.waitFor((e) => e.type === 'close', { what: 'socket onClose' });
    assert.equal(s.plumeLog.all((e) => e.type === 'open').length, 0);
  });

  it('origin: a foreign Origin → 403, the same host → 101, no Origin → 101', T, async () => {
    const url = `${server.wsUrl}?vsn=2.0.0`;
    assert.equal((await rawUpgrade(url, { Origin: 'http://evil.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: `http://127.0.0.1:${server.port + 1 === 65536 ? 1 : server.port + 1}` })).status, 403, 'same host, other port');
    assert.equal((await rawUpgrade(url, { Origin: `http://127.0.0.1:${server.port}` })).status, 101);
    assert.equal((await rawUpgrade(url)).status, 101);
    await assert.rejects(openRaw(url, { headers: { Origin: 'http://evil.example' } }), (err) => err.status === 403);
  });

  // -------------------------------------------------------- malformed input

  it('malformed message: `not json` → close 1007 with a reason; other clients are unaffected', T, async () => {
    const bystander = await phxConnect(server.socketUrl);
    const ch = bystander.channel('echo:bystander', {});
    await joinOk(ch);
    const raw = await openRaw(v2Url(server));
    await raw.join('echo:malformed', '1');
    raw.send('not json');
    const info = await raw.waitClosed();
    assert.equal(info.code, 1007, `close code ${info.code} reason "${info.reason}"`);
    assert.ok(info.reason.length > 0, 'the close frame says why');
    assert.deepEqual(await pushResult(ch.push('echo', { fine: true })), { status: 'ok', response: { fine: true } });
    assert.equal(bystander.plumeLog.all((e) => e.type === 'close').length, 0);
  });
});

function j1ref(joins) {
  return joins.items[joins.items.length - 1].joinRef;
}

// ====================================================== dedicated servers

describe('channel_test_server: disconnects', () => {
  const server = serverPerSuite(() => startServer(BIN), { closeClientsAfterEach: true });

  async function userSockets() {
    const mk = async (user) => {
      const socket = await phxConnect(server.socketUrl, { params: { user_id: user } });
      const ch = socket.channel(`echo:dc-${user}`, {});
      const joins = trackJoins(ch);
      ch.join();
      assert.equal((await joins.waitFor(() => true, { what: `join of ${user}` })).status, 'ok');
      return { socket, ch, joins };
    };
    return { u1a: await mk('u1'), u1b: await mk('u1'), u2: await mk('u2') };
  }

  async function expectReconnected({ socket, ch, joins }, who) {
    const close = await socket.plumeLog.waitFor((e) => e.type === 'close', { what: `${who} close` });
    assert.equal(close.code, 1001, `${who}: close code 1001 (going away) so phoenix.js reconnects; got ${close.code}`);
    await socket.plumeLog.waitFor((e) => e.type === 'open', { what: `${who} reconnect` });
    const rejoin = await joins.waitFor(() => true, { what: `${who} rejoin` });
    assert.equal(rejoin.status, 'ok');
    assert.deepEqual(await pushResult(ch.push('echo', { back: who })), { status: 'ok', response: { back: who } });
  }

  it('GET /disconnect?id=test_socket:u1 closes every socket of u1 with 1001; phoenix.js reconnects and rejoins', T, async () => {
    const s = await userSockets();
    const res = await httpGet(`${server.url}/disconnect?id=test_socket:u1`);
    assert.equal(res.status, 200);
    await expectReconnected(s.u1a, 'u1 socket a');
    await expectReconnected(s.u1b, 'u1 socket b');
    // u2 untouched: a round trip, and no close recorded.
    assert.equal((await pushResult(s.u2.ch.push('echo', {}))).status, 'ok');
    assert.equal(s.u2.socket.plumeLog.all((e) => e.type === 'close').length, 0);
  });

  it('`disconnect_me` (endpoint.disconnect from a channel) closes all sockets of the user with 1001', T, async () => {
    const s = await userSockets();
    s.u1a.ch.push('disconnect_me', {});
    await expectReconnected(s.u1a, 'u1 socket a');
    await expectReconnected(s.u1b, 'u1 socket b');
    assert.equal((await pushResult(s.u2.ch.push('echo', {}))).status, 'ok');
    assert.equal(s.u2.socket.plumeLog.all((e) => e.type === 'close').length, 0);

    const raw = await openRaw(v2Url(server, { user_id: 'u3' }));
    await raw.join('echo:dc-raw', '1');
    raw.send(['1', '2', 'echo:dc-raw', 'disconnect_me', {}]);
    const info = await raw.waitClosed();
    assert.equal(info.code, 1001);
  });
});

describe('channel_test_server: --max-channels 3', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--max-channels', '3']), { closeClientsAfterEach: true });

  it('the 4th join → error {reason:"too many channels joined"}; after a leave a join succeeds', T, async () => {
    const socket = await phxConnect(server.socketUrl);
    const chans = [];
    for (let i = 1; i <= 3; i++) {
      const ch = socket.channel(`echo:max-${i}`, {});
      await joinOk(ch);
      chans.push(ch);
    }
    const fourth = socket.channel('echo:max-4', {});
    assert.deepEqual(await joinResult(fourth), { status: 'error', response: { reason: 'too many channels joined' } });
    fourth.leave();

    const raw = await openRaw(v2Url(server));
    for (let i = 1; i <= 3; i++) assert.equal((await raw.join(`echo:m${i}`, String(i)))[4].status, 'ok');
    assert.deepEqual(await raw.join('echo:m4', '4'), [
      '4',
      '4',
      'echo:m4',
      'phx_reply',
      { status: 'error', response: { reason: 'too many channels joined' } },
    ]);
    raw.send(['1', '5', 'echo:m1', 'phx_leave', {}]);
    await raw.replyTo('5');
    assert.equal((await raw.join('echo:m4', '6'))[4].status, 'ok');
    // A crashed channel frees its slot too.
    raw.send(['2', '7', 'echo:m2', 'crash', {}]);
    await raw.event('echo:m2', 'phx_error');
    assert.equal((await raw.join('echo:m5', '8'))[4].status, 'ok');
    // And a stopped one.
    raw.send(['3', '9', 'echo:m3', 'stop', {}]);
    await raw.event('echo:m3', 'phx_close');
    assert.equal((await raw.join('echo:m6', '10'))[4].status, 'ok');
    assert.deepEqual((await raw.join('echo:m7', '11'))[4], { status: 'error', response: { reason: 'too many channels joined' } });
  });
});

describe('channel_test_server: --idle-timeout 1', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--idle-timeout', '1']));

  it('a silent socket is closed (not with 1000); phoenix.js heartbeats keep a socket open', T, async () => {
    const socket = await phxConnect(server.socketUrl, { heartbeatIntervalMs: 200 });
    const ch = socket.channel('echo:idle', {});
    await joinOk(ch);
    const silent = await openRaw(v2Url(server), { name: 'silent client' });
    const info = await silent.waitClosed(8000);
    assert.notEqual(info.code, 1000, `idle close code ${info.code}: 1000 would stop phoenix.js <= 1.8.15 from reconnecting`);
    assert.ok([1001, 1002, 1011, 1012].includes(info.code), `idle close code ${info.code}`);
    // The phoenix.js socket lived through the same (> 1 s) period thanks to its heartbeats.
    assert.equal(socket.plumeLog.all((e) => e.type === 'close').length, 0, 'heartbeating socket was not closed');
    assert.deepEqual(await pushResult(ch.push('echo', { alive: true })), { status: 'ok', response: { alive: true } });
  });
});

describe('channel_test_server: --relaxed-subprotocols', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--relaxed-subprotocols']), { closeClientsAfterEach: true });

  it('an offer without "phoenix" → 101 naming no subprotocol; "phoenix" among others is chosen', T, async () => {
    const url = `${server.wsUrl}?vsn=2.0.0`;
    const mqtt = await rawUpgrade(url, { 'Sec-WebSocket-Protocol': 'mqtt' });
    assert.equal(mqtt.status, 101);
    assert.equal(mqtt.headers['sec-websocket-protocol'], undefined);
    const several = await rawUpgrade(url, { 'Sec-WebSocket-Protocol': 'mqtt, chat' });
    assert.equal(several.status, 101);
    assert.equal(several.headers['sec-websocket-protocol'], undefined);
    const withPhoenix = await rawUpgrade(url, { 'Sec-WebSocket-Protocol': 'mqtt, phoenix, v2' });
    assert.equal(withPhoenix.status, 101);
    assert.equal(withPhoenix.headers['sec-websocket-protocol'], 'phoenix');
    // authToken still reaches connect(): a bad one is refused, a good one works without "phoenix".
    const token = (t) => `base64url.bearer.phx.${Buffer.from(t).toString('base64').replace(/=/g, '')}`;
    assert.equal((await rawUpgrade(url, { 'Sec-WebSocket-Protocol': token('bad-token') })).status, 403);
    const good = await rawUpgrade(url, { 'Sec-WebSocket-Protocol': token('good-token') });
    assert.equal(good.status, 101);
    assert.equal(good.headers['sec-websocket-protocol'], undefined);
    // phoenix.js (no subprotocol, or authToken with "phoenix") is unaffected.
    const socket = await phxConnect(server.socketUrl, { authToken: 'good-token' });
    assert.deepEqual(await joinOk(socket.channel('echo:relaxed-phx', {})), { joined: 'echo:relaxed-phx', user_id: 'token-user' });
  });

  it('a `ws` client offering "mqtt" joins a channel; `ws` itself refuses a 101 without a subprotocol when it was given `protocols`', T, async () => {
    // The same request bytes two ways. As a plain header, ws does not check
    // the answer and the socket works:
    const raw = await openRaw(v2Url(server), { headers: { 'Sec-WebSocket-Protocol': 'mqtt' } });
    assert.equal(raw.upgradeHeaders['sec-websocket-protocol'], undefined);
    assert.equal(raw.ws.protocol, '');
    assert.deepEqual(await raw.join('echo:relaxed', '1'), [
      '1',
      '1',
      'echo:relaxed',
      'phx_reply',
      { status: 'ok', response: { joined: 'echo:relaxed', user_id: 'anon' } },
    ]);
    // As `protocols`, ws (like browsers) insists that the server picks one
    // (RFC 6455 lets it pick none): relaxing does not help such clients.
    await assert.rejects(openRaw(v2Url(server), { protocols: ['mqtt'] }), /Server sent no subprotocol/);
    // Offering "phoenix" too is the way for them.
    const both = await openRaw(v2Url(server), { protocols: ['mqtt', 'phoenix'] });
    assert.equal(both.ws.protocol, 'phoenix');
    assert.equal((await both.join('echo:relaxed-both', '1'))[4].status, 'ok');
  });
});

describe('channel_test_server: --origin allow-list', () => {
  const server = serverPerSuite(() =>
    startServer(BIN, ['--origin', 'http://allowed.example', '--origin', '//*.wild.example'])
  );

  it('only listed origins upgrade; the same host is not implicitly allowed', T, async () => {
    const url = `${server.wsUrl}?vsn=2.0.0`;
    assert.equal((await rawUpgrade(url, { Origin: 'http://allowed.example' })).status, 101);
    assert.equal((await rawUpgrade(url, { Origin: 'https://allowed.example' })).status, 403, 'scheme must match');
    assert.equal((await rawUpgrade(url, { Origin: 'https://a.wild.example' })).status, 101, '*.wild.example subdomain');
    assert.equal((await rawUpgrade(url, { Origin: 'http://wild.example' })).status, 101, '*.wild.example base');
    assert.equal((await rawUpgrade(url, { Origin: 'http://evil.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: 'http://notwild.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: `http://127.0.0.1:${server.port}` })).status, 403);
    assert.equal((await rawUpgrade(url)).status, 101, 'no Origin header is allowed');
  });
});

describe('channel_test_server: restart on the same port', () => {
  let server;
  after(() => closeClientsAndStop(server));

  it('phoenix.js reconnects to a new server on the same port and rejoins by itself; pushes work', T, async () => {
    server = await startServer(BIN);
    const port = server.port;
    const socket = await phxConnect(server.socketUrl, { params: { user_id: 'survivor' } });
    const ch = socket.channel('echo:restart', {});
    const joins = trackJoins(ch);
    ch.join();
    assert.equal((await joins.waitFor(() => true, { what: 'first join' })).status, 'ok');

    const old = server;
    server = null;
    const exit = await old.stop();
    assert.equal(exit.code, 0, `server exits cleanly on SIGTERM (got ${JSON.stringify(exit)})`);
    const close = await socket.plumeLog.waitFor((e) => e.type === 'close', { what: 'close when the server stops' });
    assert.notEqual(close.code, 1000, 'a server shutdown must not close with 1000 (phoenix.js < 1.8.16 would stay away)');

    server = await startServer(BIN, ['--port', String(port)]);
    assert.equal(server.port, port);
    await socket.plumeLog.waitFor((e) => e.type === 'open', { what: 'reconnect to the new server', timeoutMs: 10000 });
    const rejoin = await joins.waitFor((j) => j.status === 'ok', { what: 'automatic rejoin', timeoutMs: 10000 });
    assert.equal(rejoin.response.user_id, 'survivor');
    assert.deepEqual(await pushResult(ch.push('echo', { after: 'restart' })), { status: 'ok', response: { after: 'restart' } });
  });
});

// Issue 11: where recorded Phoenix 1.7.24 scenarios disagreed with plume
// (phoenix-observed.md). Raw frames, checked to the byte where it matters.
describe('Phoenix wire compatibility', () => {
  const server = serverPerSuite(() => startServer(BIN), { closeClientsAfterEach: true });
  const OK = (response = {}) => ({ status: 'ok', response });
  const joined = (topic) => OK({ joined: topic, user_id: 'anon' });
  // The raw text of the next frame matching pred.
  const nextText = async (raw, pred, what) => (await raw.inbox.waitFor((i) => !i.binary && i.json !== undefined && pred(i.json), { what })).text;

  it('a payload may be any JSON value (V2): echoed in replies, pushed and broadcast as given', T, async () => {
    const topic = 'echo:any-payload';
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    const payloads = ['str', 42, -1.5, null, true, [], [1, 'a', { b: 2 }], ''];
    let ref = 2;
    for (const p of payloads) {
      const r = String(ref++);
      raw.send(['1', r, topic, 'echo', p]);
      assert.deepEqual(await raw.replyTo(r), ['1', r, topic, 'phx_reply', OK(p)], `echo of ${JSON.stringify(p)}`);
    }
    raw.send(['1', '20', topic, 'push', 'pushed as a string']);
    assert.deepEqual(await raw.event(topic, 'pushed'), ['1', null, topic, 'pushed', 'pushed as a string']);
    raw.send(['1', '21', topic, 'broadcast', [1, 2]]);
    assert.equal(await nextText(raw, (m) => m[3] === 'broadcast', 'broadcast'), `[null,null,"${topic}","broadcast",[1,2]]`);
    // Join params too; the socket stays open throughout.
    assert.deepEqual(await raw.join('echo:any-params', '30', 'just a string'), ['30', '30', 'echo:any-params', 'phx_reply', joined('echo:any-params')]);
    raw.send([null, '31', 'phoenix', 'heartbeat', 'any']);
    assert.deepEqual(await raw.replyTo('31'), [null, '31', 'phoenix', 'phx_reply', OK()]);
    assert.equal(raw.closeInfo, null);
  });

  it('a payload may be any JSON value (V1), and phoenix.js pushes of strings, numbers and arrays are echoed', T, async () => {
    const raw = await openRaw(v1Url(server));
    raw.send({ topic: 'echo:v1-any', event: 'phx_join', payload: {}, ref: '1' });
    await raw.nextJson((m) => m.ref === '1', { what: 'V1 join reply' });
    raw.send({ topic: 'echo:v1-any', event: 'echo', payload: 'str', ref: '2' });
    assert.deepEqual(await raw.nextJson((m) => m.ref === '2', { what: 'V1 echo' }), { topic: 'echo:v1-any', event: 'phx_reply', payload: OK('str'), ref: '2' });

    const socket = await phxConnect(server.socketUrl);
    const ch = socket.channel('echo:js-any', {});
    await joinOk(ch);
    // (phoenix.js's channel.push turns a falsy payload into {}: null, 0 and '' are raw-only.)
    for (const p of ['str', 7, [1, 2], true]) {
      assert.deepEqual(await pushResult(ch.push('echo', p)), OK(p), `phoenix.js echo of ${JSON.stringify(p)}`);
    }
    // Normal use is unaffected.
    assert.deepEqual(await pushResult(ch.push('echo', { body: 'hi' })), OK({ body: 'hi' }));
  });

  it('numeric join_ref/ref are echoed as numbers in replies, pushes, phx_error and phx_close', T, async () => {
    const topic = 'echo:numeric';
    const raw = await openRaw(v2Url(server));
    raw.send([1, 1, topic, 'phx_join', {}]);
    assert.deepEqual(await raw.replyTo(1), [1, 1, topic, 'phx_reply', joined(topic)]);
    raw.send([1, 2, topic, 'echo', {}]);
    assert.equal(await nextText(raw, (m) => m[1] === 2, 'reply to ref 2'), `[1,2,"${topic}","phx_reply",{"response":{},"status":"ok"}]`);
    raw.send([1, 3, topic, 'push', { p: 1 }]);
    assert.deepEqual(await raw.event(topic, 'pushed'), [1, null, topic, 'pushed', { p: 1 }]);
    // Any number, as Phoenix echoes the term it decoded.
    raw.send([null, 2.5, 'phoenix', 'heartbeat', {}]);
    assert.deepEqual(await raw.replyTo(2.5), [null, 2.5, 'phoenix', 'phx_reply', OK()]);
    raw.send([-4, 12345678901234, 'nope:1', 'ping', {}]);
    assert.deepEqual(await raw.replyTo(12345678901234), [null, 12345678901234, 'nope:1', 'phx_reply', UNMATCHED]);
    // The number 1 is not the string "1": like Phoenix 1.8 (===), a push with
    // join_ref "1" is stale for a channel joined with join_ref 1.
    raw.send(['1', 5, topic, 'echo', {}]);
    raw.send([1, 6, topic, 'crash', {}]);
    assert.deepEqual(await raw.event(topic, 'phx_error'), [1, 1, topic, 'phx_error', { reason: 'channel_crash' }]);
    assert.equal(raw.inbox.all((i) => i.json && i.json[1] === 5).length, 0, 'no reply to the stale push');
    raw.send([7, 7, topic, 'phx_join', {}]);
    await raw.replyTo(7);
    raw.send([7, 8, topic, 'stop', {}]);
    assert.equal(await nextText(raw, (m) => m[3] === 'phx_close', 'phx_close'), `[7,7,"${topic}","phx_close",{}]`);
    // Refs of other kinds are refused (no client sends them): close 1007 with a reason.
    raw.send([{ a: 1 }, '9', topic, 'phx_join', {}]);
    const info = await raw.waitClosed();
    assert.equal(info.code, 1007);
    assert.match(info.reason, /join_ref must be a string, a number or null/);
  });

  it('null join_ref at join (V2): join reply, phx_error and phx_close carry null; channel replies and pushes carry the join ref', T, async () => {
    const topic = 'echo:null-jr';
    const raw = await openRaw(v2Url(server));
    raw.send([null, '3', topic, 'phx_join', {}]);
    assert.deepEqual(await raw.replyTo('3'), [null, '3', topic, 'phx_reply', joined(topic)]);
    raw.send([null, '4', topic, 'echo', { a: 1 }]);
    assert.deepEqual(await raw.replyTo('4'), ['3', '4', topic, 'phx_reply', OK({ a: 1 })]);
    raw.send([null, '5', topic, 'push', { p: 1 }]);
    assert.deepEqual(await raw.event(topic, 'pushed'), ['3', null, topic, 'pushed', { p: 1 }]);
    raw.send([null, '6', topic, 'crash', {}]);
    assert.deepEqual(await raw.event(topic, 'phx_error'), [null, null, topic, 'phx_error', { reason: 'channel_crash' }]);
    // Rejoin with a null join_ref, then stop: phx_close carries null too.
    raw.send([null, '7', topic, 'phx_join', {}]);
    await raw.replyTo('7');
    raw.send([null, '8', topic, 'stop', {}]);
    assert.deepEqual(await raw.event(topic, 'phx_close'), [null, null, topic, 'phx_close', {}]);
    // A duplicate join of a null-join_ref channel closes it with null too.
    raw.send([null, '9', topic, 'phx_join', {}]);
    await raw.replyTo('9');
    raw.send(['10', '10', topic, 'phx_join', {}]);
    assert.deepEqual(await raw.replyTo('10'), ['10', '10', topic, 'phx_reply', joined(topic)]);
    assert.deepEqual(await raw.event(topic, 'phx_close'), [null, null, topic, 'phx_close', {}]);
  });

  it('V1 joins have no join_ref: phx_error and phx_close carry ref null; replies carry the message ref', T, async () => {
    const topic = 'echo:v1-null';
    const raw = await openRaw(v1Url(server));
    const next = (pred, what) => raw.nextJson(pred, { what });
    raw.send({ topic, event: 'phx_join', payload: {}, ref: '1' });
    assert.deepEqual(await next((m) => m.ref === '1', 'join reply'), { topic, event: 'phx_reply', payload: joined(topic), ref: '1' });
    raw.send({ topic, event: 'crash', payload: {}, ref: '2' });
    assert.equal(await nextText(raw, (m) => m.event === 'phx_error', 'V1 phx_error'), `{"event":"phx_error","payload":{"reason":"channel_crash"},"ref":null,"topic":"${topic}"}`);
    raw.send({ topic, event: 'phx_join', payload: {}, ref: '3' });
    await next((m) => m.ref === '3', 'rejoin reply');
    raw.send({ topic, event: 'stop', payload: {}, ref: '4' });
    assert.equal(await nextText(raw, (m) => m.event === 'phx_close', 'V1 phx_close'), `{"event":"phx_close","payload":{},"ref":null,"topic":"${topic}"}`);
  });

  it('duplicate join: the new join reply comes first, then phx_close for the old join_ref', T, async () => {
    const topic = 'echo:dup-order';
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    raw.send(['2', '2', topic, 'phx_join', {}]);
    await raw.event(topic, 'phx_close');
    const frames = raw.inbox.all((i) => i.json && i.json[2] === topic).map((i) => i.json);
    assert.deepEqual(frames.slice(-2), [
      ['2', '2', topic, 'phx_reply', joined(topic)],
      ['1', '1', topic, 'phx_close', {}],
    ]);
    // One channel is subscribed: a broadcast arrives once.
    raw.send(['2', '3', topic, 'broadcast', { once: true }]);
    await raw.event(topic, 'broadcast');
    raw.send([null, '4', 'phoenix', 'heartbeat', {}]);
    await raw.replyTo('4');
    assert.equal(raw.inbox.all((i) => i.json && i.json[3] === 'broadcast').length, 1);
  });

  it('duplicate join refused: the old channel is closed anyway, after the error reply (as Phoenix)', T, async () => {
    const topic = 'echo:dup-refused';
    const raw = await openRaw(v2Url(server));
    await raw.join(topic, '1');
    raw.send(['2', '2', topic, 'phx_join', { fail: true }]);
    await raw.event(topic, 'phx_close');
    const frames = raw.inbox.all((i) => i.json && i.json[2] === topic).map((i) => i.json);
    assert.deepEqual(frames.slice(-2), [
      ['2', '2', topic, 'phx_reply', { status: 'error', response: { reason: 'join refused' } }],
      ['1', '1', topic, 'phx_close', {}],
    ]);
    raw.send(['1', '3', topic, 'echo', {}]);
    assert.deepEqual(await raw.replyTo('3'), [null, '3', topic, 'phx_reply', UNMATCHED]);
  });

  it('V1 binary frames are decoded as JSON text; invalid UTF-8 in one closes with 1007', T, async () => {
    const topic = 'echo:v1-binary';
    const raw = await openRaw(v1Url(server));
    raw.sendBinary(Buffer.from(JSON.stringify({ topic, event: 'phx_join', payload: {}, ref: '1' })));
    assert.deepEqual(await raw.nextJson((m) => m.ref === '1', { what: 'join reply' }), { topic, event: 'phx_reply', payload: joined(topic), ref: '1' });
    raw.sendBinary(Buffer.from(JSON.stringify({ topic, event: 'echo', payload: { s: 'caf\u00e9' }, ref: '2' })));
    const reply = await raw.inbox.waitFor((i) => i.json && i.json.ref === '2', { what: 'echo reply' });
    assert.equal(reply.binary, false, 'replies stay text frames');
    assert.deepEqual(reply.json.payload, OK({ s: 'caf\u00e9' }));
    raw.sendBinary(Buffer.concat([Buffer.from('{"topic":"'), Buffer.from([0xff]), Buffer.from('","event":"e","payload":{},"ref":"3"}')]));
    const info = await raw.waitClosed();
    assert.equal(info.code, 1007);
    assert.match(info.reason, /UTF-8/);
  });
});
