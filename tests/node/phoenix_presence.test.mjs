// phoenix.js Presence (onJoin, onLeave, onSync, list) against the chat demo:
// clients see each other join, update their meta (typing), leave, and vanish
// when their connection drops.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { presenceMember, serverPerSuite, startServer, withTimeout } from './support/servers.mjs';

const server = serverPerSuite(() => startServer('PLUME_CHAT_BIN'));

// A client joined to a room with a phoenix.js Presence that records events.
const member = (user, topic) => presenceMember(server.socketUrl, user, topic);

const keys = (m) => m.online().map((p) => p.key).sort();

describe('phoenix.js Presence against the chat demo', () => {
  test('members see each other join, type, stop typing and leave', async () => {
    const topic = 'room:presence-1';
    const alice = await member('alice', topic);
    await alice.until(() => keys(alice).join() === 'alice', 'alice sees herself');
    const bob = await member('bob', topic);
    await bob.until(() => keys(bob).join() === 'alice,bob', 'bob sees both');
    await alice.until(() => keys(alice).join() === 'alice,bob', 'alice sees bob join');
    assert.ok(alice.events.some((e) => e.kind === 'join' && e.key === 'bob' && e.first));
    const bobMeta = alice.presence.state.bob.metas[0];
    assert.equal(bobMeta.typing, false);
    assert.equal(typeof bobMeta.online_at, 'string');
    assert.equal(typeof bobMeta.phx_ref, 'string');

    bob.channel.push('typing:start', {});
    await alice.until(() => alice.online().some((p) => p.key === 'bob' && p.typing), 'bob typing');
    const updated = alice.presence.state.bob.metas[0];
    assert.equal(updated.phx_ref_prev, bobMeta.phx_ref, 'an update names the ref it replaces');
    assert.equal(alice.presence.state.bob.metas.length, 1, 'an update does not add a meta');
    bob.channel.push('typing:stop', {});
    await alice.until(() => alice.online().some((p) => p.key === 'bob' && !p.typing), 'bob stopped');

    await withTimeout(new Promise((res) => bob.channel.leave().receive('ok', res)), 5000, 'leave');
    await alice.until(() => keys(alice).join() === 'alice', 'bob left');
    assert.ok(alice.events.some((e) => e.kind === 'leave' && e.key === 'bob' && e.last));
  });

  test('a dropped connection removes its presence; a second tab keeps the user online', async () => {
    const topic = 'room:presence-2';
    const watcher = await member('watcher', topic);
    const tab1 = await member('carol', topic);
    const tab2 = await member('carol', topic);
    await watcher.until(() => watcher.presence.state.carol?.metas.length === 2, 'two metas for carol');
    tab1.socket.disconnect();
    await watcher.until(() => watcher.presence.state.carol?.metas.length === 1, 'one tab gone');
    assert.deepEqual(keys(watcher), ['carol', 'watcher']);
    // The remaining tab vanishing without a close handshake (socket killed).
    tab2.socket.conn.terminate();
    tab2.socket.disconnect();
    await watcher.until(() => !('carol' in watcher.presence.state), 'carol gone');
    assert.ok(watcher.events.some((e) => e.kind === 'leave' && e.key === 'carol' && e.last));
  });

  test('three members converge on the same list', async () => {
    const topic = 'room:presence-3';
    const ms = [];
    for (const u of ['u1', 'u2', 'u3']) ms.push(await member(u, topic));
    for (const m of ms) await m.until(() => keys(m).join() === 'u1,u2,u3', 'all three');
    const lists = ms.map((m) => JSON.stringify(m.presence.list((k, { metas }) => [k, metas.map((x) => x.phx_ref)])));
    assert.equal(new Set(lists).size, 1, 'every member holds the same presences');
  });
});
