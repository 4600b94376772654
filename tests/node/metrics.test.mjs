// /metrics of examples/chat after known phoenix.js traffic: the exact counts,
// and the whole exposition read by an independent Prometheus text-format
// parser (npm parse-prometheus-text-format) plus the 0.0.4 grammar line by
// line (that parser is lenient: it rejects some malformed lines, not all).
//
// Run: cd tests/node && PLUME_CHAT_BIN=build/dev/examples/chat/chat \
//        node --test metrics.test.mjs
// Every wait is on an event, bounded by a timeout; the server listens on
// 127.0.0.1 and is stopped by PID.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import parsePrometheus from 'parse-prometheus-text-format';
import { Serializer } from 'phoenix';
import {
  startServer,
  serverPerSuite,
  httpGet,
  phxConnect,
  joinOk,
  joinResult,
  recordChannel,
  rawUpgrade,
} from './support/servers.mjs';

const BIN = 'PLUME_CHAT_BIN';
const T = { timeout: 60000 };

// --- the text format, version 0.0.4 -----------------------------------------

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*(?:[eE][+-]?\\d+)?|\\.\\d+(?:[eE][+-]?\\d+)?)|[+-]Inf|NaN)';
const SAMPLE_RE = new RegExp(
  `^(${NAME})(?:\\{(${LABEL}=${LABEL_VALUE}(?:,${LABEL}=${LABEL_VALUE})*)?\\})? (${VALUE})$`
);
const HELP_RE = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

const LABEL_PAIR_RE = new RegExp(`(${LABEL})=(${LABEL_VALUE})`, 'g');

/** {name: value} of a sample's label text, escapes undone. */
function labelsOf(text) {
  const out = {};
  for (const m of (text || '').matchAll(LABEL_PAIR_RE)) out[m[1]] = JSON.parse(m[2]);
  return out;
}

/**
 * Checks every line against the grammar and the rules parsers rely on (HELP
 * and TYPE once per family, before its samples; samples of a family
 * together; histogram series ending in +Inf, cumulative, +Inf == _count),
 * then parses with parse-prometheus-text-format. Returns the families by name;
 * `.histograms` maps a histogram family to its series as read line by line
 * ({labels, buckets: [[le, count], ...] in order, count, sum}).
 */
function parseStrict(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const typeOf = new Map();
  const histograms = new Map(); // family -> Map(labels JSON -> series)
  const helped = new Set();
  let current = null;
  const seenFamilies = new Set();
  const lines = text.slice(0, -1).split('\n');
  for (const line of lines) {
    let m;
    if ((m = HELP_RE.exec(line))) {
      assert.ok(!helped.has(m[1]), `HELP once for ${m[1]}`);
      helped.add(m[1]);
      continue;
    }
    if ((m = TYPE_RE.exec(line))) {
      assert.ok(!typeOf.has(m[1]), `TYPE once for ${m[1]}`);
      assert.ok(helped.has(m[1]), `HELP before TYPE for ${m[1]}`);
      typeOf.set(m[1], m[2]);
      assert.ok(!seenFamilies.has(m[1]), `${m[1]}: samples before TYPE`);
      current = m[1];
      seenFamilies.add(m[1]);
      continue;
    }
    m = SAMPLE_RE.exec(line);
    assert.ok(m, `not a 0.0.4 line: ${JSON.stringify(line)}`);
    const name = m[1];
    const family =
      typeOf.get(current) === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name;
    assert.equal(family, current, `sample ${name} outside its family ${current}`);
    if (typeOf.get(current) === 'histogram') {
      const { le, ...labels } = labelsOf(m[2]);
      const key = JSON.stringify(labels);
      if (!histograms.has(family)) histograms.set(family, new Map());
      const series = histograms.get(family);
      if (!series.has(key)) series.set(key, { labels, buckets: [] });
      const h = series.get(key);
      if (name.endsWith('_bucket')) {
        assert.ok(le !== undefined, `${name}: le label`);
        h.buckets.push([le, m[3]]);
      } else if (name.endsWith('_count')) h.count = m[3];
      else if (name.endsWith('_sum')) h.sum = m[3];
    }
  }
  // Histograms, line by line (the npm parser merges a family's labelled
  // series into one: parse-prometheus-text-format 1.1.1 keeps buckets only).
  for (const [name, series] of histograms) {
    for (const h of series.values()) {
      const [lastLe, lastCount] = h.buckets[h.buckets.length - 1];
      assert.equal(lastLe, '+Inf', `${name}: +Inf bucket last`);
      let last = 0;
      let bound = -Infinity;
      for (const [le, count] of h.buckets) {
        const v = le === '+Inf' ? Infinity : Number(le);
        assert.ok(v > bound, `${name}: bounds increase`);
        bound = v;
        assert.ok(Number(count) >= last, `${name}: buckets cumulative`);
        last = Number(count);
      }
      assert.equal(lastCount, h.count, `${name}: +Inf bucket == _count`);
      assert.ok(!Number.isNaN(Number(h.sum)), `${name}: _sum a number`);
    }
  }
  const parsed = parsePrometheus(text);
  const byName = new Map();
  for (const f of parsed) {
    assert.equal(f.type, typeOf.get(f.name).toUpperCase(), `type of ${f.name}`);
    assert.ok(!byName.has(f.name), `family ${f.name} once`);
    byName.set(f.name, f);
    for (const s of f.metrics) {
      const labelled = [...(histograms.get(f.name) || new Map()).values()].some(
        (h) => Object.keys(h.labels).length > 0
      );
      if (f.type === 'HISTOGRAM' && !labelled) {
        const bounds = Object.keys(s.buckets);
        assert.equal(bounds[bounds.length - 1], '+Inf', `${f.name}: +Inf bucket last`);
        let last = 0;
        for (const b of bounds) {
          assert.ok(Number(s.buckets[b]) >= last, `${f.name}: buckets cumulative`);
          last = Number(s.buckets[b]);
        }
        assert.equal(s.buckets['+Inf'], s.count, `${f.name}: +Inf bucket == _count`);
        assert.ok(!Number.isNaN(Number(s.sum)), `${f.name}: _sum a number`);
      } else if (f.type !== 'HISTOGRAM') {
        assert.ok(!Number.isNaN(Number(s.value)) || s.value === 'NaN', `${f.name}: value`);
        assert.equal(s.timestamp_ms, undefined, `${f.name}: no timestamps`);
      }
    }
  }
  assert.deepEqual([...byName.keys()].sort(), [...typeOf.keys()].sort());
  byName.histograms = histograms;
  return byName;
}

/** The value of the series of `family` with exactly `labels`. */
function valueOf(families, name, labels = {}) {
  const f = families.get(name);
  assert.ok(f, `family ${name} exposed`);
  const s = f.metrics.find(
    (m) => JSON.stringify(m.labels || {}) === JSON.stringify(labels)
  );
  assert.ok(s, `${name}${JSON.stringify(labels)} exposed`);
  return Number(s.value);
}

/** A phoenix.js socket whose frames are counted (bytes by event) both ways. */
async function countingSocket(socketUrl, user, counts) {
  const add = (table, event, bytes) => {
    table[event] = table[event] || { n: 0, bytes: 0 };
    table[event].n += 1;
    table[event].bytes += bytes;
  };
  return phxConnect(socketUrl, {
    params: { user_id: user },
    heartbeatIntervalMs: 600000, // only the heartbeat the test sends
    rejoinAfterMs: () => 600000, // a refused join is not tried again
    encode: (msg, cb) =>
      Serializer.encode(msg, (s) => {
        add(counts.sent, msg.event, Buffer.byteLength(s));
        cb(s);
      }),
    decode: (raw, cb) =>
      Serializer.decode(raw, (msg) => {
        add(counts.received, msg.event, Buffer.byteLength(raw));
        cb(msg);
      }),
  });
}

describe('chat: /metrics after known traffic', () => {
  // No presence (its diffs are timed) and no history: every count is exact.
  const server = serverPerSuite(() =>
    startServer(BIN, ['--history', '0', '--no-presence'])
  );

  it('counts exactly what phoenix.js did, in a well-formed exposition', T, async () => {
    const N = 3; // sockets, each joined to room:lobby
    const M = 4; // new_msg broadcasts
    const counts = { sent: {}, received: {} };

    // One socket refused by connect() (no user_id), before the others.
    const refused = await rawUpgrade(`${server.wsUrl}?vsn=2.0.0`);
    assert.equal(refused.status, 403);

    const sockets = [];
    const inboxes = [];
    for (let i = 0; i < N; i++) {
      const socket = await countingSocket(server.socketUrl, `user${i}`, counts);
      const channel = socket.channel('room:lobby', {});
      inboxes.push(recordChannel(channel, ['new_msg']));
      await joinOk(channel);
      sockets.push({ socket, channel });
    }
    // A refused join: room:private-bob admits bob only.
    const denied = await joinResult(sockets[0].socket.channel('room:private-bob', {}));
    assert.equal(denied.status, 'error');
    for (let i = 0; i < M; i++) sockets[0].channel.push('new_msg', { body: `hello ${i}` });
    for (const inbox of inboxes) {
      for (let i = 0; i < M; i++) {
        await inbox.waitFor((e) => e.event === 'new_msg' && e.payload.body === `hello ${i}`, {
          what: `new_msg ${i}`,
        });
      }
    }
    // A heartbeat, answered.
    const s0 = sockets[0].socket;
    s0.sendHeartbeat();
    await s0.plumeMessages.waitFor((m) => m.topic === 'phoenix' && m.event === 'phx_reply', {
      what: 'the heartbeat reply',
    });

    const res = await httpGet(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const f = parseStrict(res.body);

    const ws = { transport: 'websocket' };
    assert.equal(valueOf(f, 'plume_connections_total', ws), N);
    assert.equal(valueOf(f, 'plume_connections_refused_total', ws), 1);
    assert.equal(valueOf(f, 'plume_connections_open', ws), N);
    assert.equal(valueOf(f, 'plume_connections_open', { transport: 'longpoll' }), 0);
    assert.equal(valueOf(f, 'plume_joins_total', { result: 'ok' }), N);
    assert.equal(valueOf(f, 'plume_joins_total', { result: 'refused' }), 1);
    assert.equal(valueOf(f, 'plume_channels_joined'), N);
    assert.equal(valueOf(f, 'plume_messages_in_total', { class: 'phx_join' }), N + 1);
    assert.equal(valueOf(f, 'plume_messages_in_total', { class: 'app' }), M);
    assert.equal(valueOf(f, 'plume_messages_in_total', { class: 'heartbeat' }), 1);
    assert.equal(valueOf(f, 'plume_messages_in_total', { class: 'phx_leave' }), 0);
    assert.equal(valueOf(f, 'plume_broadcasts_total'), M);
    assert.equal(valueOf(f, 'plume_broadcast_deliveries_total'), M * N);
    assert.equal(valueOf(f, 'plume_messages_out_total', { class: 'broadcast' }), M * N);
    // Replies: N + 1 joins and the heartbeat (new_msg answers nothing).
    assert.equal(valueOf(f, 'plume_messages_out_total', { class: 'reply' }), N + 2);
    assert.equal(valueOf(f, 'plume_messages_out_total', { class: 'push' }), 0);
    assert.equal(valueOf(f, 'plume_rate_limited_total', { scope: 'connection' }), 0);
    assert.equal(valueOf(f, 'plume_join_refusals_total', { cause: 'join' }), 1);
    assert.equal(valueOf(f, 'plume_join_refusals_total', { cause: 'unmatched_topic' }), 0);
    for (const lane of ['critical', 'high', 'normal'])
      assert.equal(valueOf(f, 'plume_dropped_total', { lane, reason: 'overflow' }), 0);
    assert.equal(valueOf(f, 'plume_dropped_total', { lane: 'low', reason: 'pressure' }), 0);
    assert.equal(valueOf(f, 'plume_coalesced_total', { lane: 'low' }), 0);
    assert.equal(valueOf(f, 'plume_lane_frames_total', { lane: 'low' }), 0);
    assert.equal(valueOf(f, 'plume_lane_batches_total', { lane: 'low' }), 0);
    assert.equal(valueOf(f, 'plume_presence_entries'), 0);
    assert.equal(valueOf(f, 'plume_presence_topics'), 0);

    // Bytes: exactly the frames phoenix.js encoded and decoded.
    const sent = (ev) => (counts.sent[ev] || { bytes: 0 }).bytes;
    const received = (ev) => (counts.received[ev] || { bytes: 0 }).bytes;
    assert.equal(valueOf(f, 'plume_message_bytes_in_total', { class: 'phx_join' }), sent('phx_join'));
    assert.equal(valueOf(f, 'plume_message_bytes_in_total', { class: 'app' }), sent('new_msg'));
    assert.equal(valueOf(f, 'plume_message_bytes_in_total', { class: 'heartbeat' }), sent('heartbeat'));
    assert.equal(valueOf(f, 'plume_message_bytes_out_total', { class: 'broadcast' }), received('new_msg'));
    assert.equal(valueOf(f, 'plume_message_bytes_out_total', { class: 'reply' }), received('phx_reply'));

    // The queue depth histogram: one sample, at the heartbeat.
    const depth = f.get('plume_send_queue_depth_bytes');
    assert.equal(depth.type, 'HISTOGRAM');
    assert.equal(depth.metrics[0].count, '1');
    // handle_in durations: the M new_msg pushes, answered with nothing.
    assert.equal(f.get('plume_handle_in_duration_seconds').type, 'HISTOGRAM');
    const handleIn = [...f.histograms.get('plume_handle_in_duration_seconds').values()];
    const byResult = Object.fromEntries(handleIn.map((h) => [h.labels.result, h]));
    assert.deepEqual(Object.keys(byResult).sort(), ['crashed', 'noreply', 'reply', 'stop']);
    assert.equal(byResult.noreply.count, String(M));
    assert.equal(byResult.reply.count, '0');
    assert.ok(Number(byResult.noreply.sum) > 0 && Number(byResult.noreply.sum) < 10);

    // After a leave and a close the gauges come down.
    await new Promise((resolve) => sockets[1].channel.leave().receive('ok', resolve));
    const after = parseStrict((await httpGet(`${server.url}/metrics`)).body);
    assert.equal(valueOf(after, 'plume_channels_joined'), N - 1);
    assert.equal(valueOf(after, 'plume_messages_in_total', { class: 'phx_leave' }), 1);

    // Nothing left to keep Node alive: the refused join's 10-minute rejoin
    // timer and the sockets (whose heartbeat is 10 minutes too).
    for (const { socket } of sockets) {
      for (const ch of socket.channels) ch.rejoinTimer.reset();
      socket.disconnect();
    }
  });

  it('counts the low lane: typing indicators sent, coalesced, batched', T, async () => {
    const K = 6; // typing pushes
    const scrape = async () => parseStrict((await httpGet(`${server.url}/metrics`)).body);
    const low = (f) => ({
      frames: valueOf(f, 'plume_lane_frames_total', { lane: 'low' }),
      batches: valueOf(f, 'plume_lane_batches_total', { lane: 'low' }),
      coalesced: valueOf(f, 'plume_coalesced_total', { lane: 'low' }),
      dropped: valueOf(f, 'plume_dropped_total', { lane: 'low', reason: 'pressure' }),
    });
    const before = low(await scrape());
    const opts = { heartbeatIntervalMs: 600000 };
    const a = await phxConnect(server.socketUrl, { ...opts, params: { user_id: 'typist' } });
    const b = await phxConnect(server.socketUrl, { ...opts, params: { user_id: 'reader' } });
    const ca = a.channel('room:lanes', {});
    const cb = b.channel('room:lanes', {});
    const inbox = recordChannel(cb, ['typing', 'new_msg']);
    await joinOk(ca);
    await joinOk(cb);
    // K typing indicators (low, one coalescing key), then a normal new_msg:
    // the write that carries the new_msg takes every low frame still
    // waiting, so once the reader has it, its connection's counts are final.
    for (let i = 0; i < K; i++) ca.push('typing', {});
    ca.push('new_msg', { body: 'after typing' });
    await inbox.waitFor((e) => e.event === 'new_msg', { what: 'the new_msg after the typing' });
    const received = inbox.items.filter((e) => e.event === 'typing').length;
    assert.ok(received >= 1 && received <= K, `${received} typing indicators received`);
    // The connection's lane counts reach the metrics at its heartbeat.
    b.sendHeartbeat();
    await b.plumeMessages.waitFor((m) => m.topic === 'phoenix' && m.event === 'phx_reply', {
      what: 'the heartbeat reply',
    });
    const after = low(await scrape());
    assert.equal(after.frames - before.frames, received);
    assert.equal(after.coalesced - before.coalesced, K - received);
    assert.equal(after.dropped - before.dropped, 0);
    const batches = after.batches - before.batches;
    assert.ok(batches >= 1 && batches <= received, `${batches} batches`);
    a.disconnect();
    b.disconnect();
  });

  it('the parser rejects a malformed exposition, and so does the grammar check', T, async () => {
    const text = (await httpGet(`${server.url}/metrics`)).body;
    // An unquoted label value: the parser itself refuses it.
    assert.throws(() => parsePrometheus(text.replace('{transport="websocket"}', '{transport=websocket}')));
    // What the parser lets through, the line check does not.
    for (const bad of [
      text.replace('{transport="websocket"}', '{transport="websocket}'),
      text.replace(/^(plume_broadcasts_total) \d+$/m, '$1 many'),
      text.replace(/^(plume_broadcasts_total) (\d+)$/m, '$1 $2 1 2'),
      text.replace('# TYPE plume_channels_joined gauge', '# TYPE plume_channels_joined bogus'),
    ]) {
      assert.notEqual(bad, text);
      assert.throws(() => parseStrict(bad));
    }
  });
});

describe('chat: --no-metrics', () => {
  const server = serverPerSuite(() => startServer(BIN, ['--no-metrics']));
  it('serves no /metrics', T, async () => {
    assert.equal((await httpGet(`${server.url}/metrics`)).status, 404);
  });
});
