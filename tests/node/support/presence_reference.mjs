// phoenix.js's Presence as the oracle for plume's client Presence.
//
// Runs the official `Presence` class (npm phoenix) over message sequences
// (hand-written edge cases plus seeded random ones) and records everything it
// does: each onJoin/onLeave/onSync call with its arguments and what list()
// returned at that moment, and the key order of list() after every step.
//
//   node support/presence_reference.mjs                  # prints the JSON
//   node support/presence_reference.mjs --header FILE    # writes the C++ header
//
// The header (tests/support/client_presence_reference.hpp) embeds the same
// JSON for tests/unit/client_presence.cpp; tests/node/client_presence_reference.test.mjs
// checks that it still equals what phoenix.js produces.
//
// Object key order: nlohmann::json keeps object keys sorted (bytewise), so a
// C++ client sees the keys of one message in sorted order whatever order the
// server wrote them in. Payloads are therefore fed to phoenix.js with their
// keys sorted the same way; the order rules that matter (array-index keys
// first, then arrival order across messages) are phoenix.js's own.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Presence } from 'phoenix';

/** Deep copy with object keys sorted by UTF-8 bytes (nlohmann::json's order). */
export function sortKeysDeep(value) {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value && typeof value === 'object') {
    const out = {};
    const keys = Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const k of keys) {
      // defineProperty: a "__proto__" key must become an own property.
      Object.defineProperty(out, k, {
        value: sortKeysDeep(value[k]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

const clone = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));

// A stand-in for a Channel: Presence only calls on() and joinRef().
class FakeChannel {
  constructor() {
    this.bindings = [];
    this.ref = null;
  }
  on(event, callback) {
    this.bindings.push({ event, callback });
  }
  joinRef() {
    return this.ref;
  }
  trigger(event, payload) {
    for (const b of this.bindings.filter((b) => b.event === event)) b.callback(payload);
  }
}

/** Runs one case: steps are {op:"join",ref} | {op:"state",payload} | {op:"diff",payload}. */
export function runCase(steps) {
  const channel = new FakeChannel();
  const presence = new Presence(channel);
  const events = [];
  presence.onJoin((key, current, joined) => {
    events.push({ type: 'join', key, current: clone(current), joined: clone(joined), list: clone(presence.list()) });
  });
  presence.onLeave((key, current, left) => {
    events.push({ type: 'leave', key, current: clone(current), left: clone(left), list: clone(presence.list()) });
  });
  presence.onSync(() => events.push({ type: 'sync', list: clone(presence.list()) }));
  for (const step of steps) {
    if (step.op === 'join') channel.ref = step.ref;
    else if (step.op === 'state') channel.trigger('presence_state', JSON.parse(JSON.stringify(step.payload)));
    else if (step.op === 'diff') channel.trigger('presence_diff', JSON.parse(JSON.stringify(step.payload)));
    else throw new Error(`unknown op ${step.op}`);
    events.push({ type: 'step', keys: presence.list((key) => key), pending: presence.inPendingSyncState() });
  }
  return events;
}

const m = (ref, extra = {}) => ({ phx_ref: ref, ...extra });
const p = (...metas) => ({ metas });

/** Hand-written sequences, one edge case each. */
export const handWrittenCases = [
  {
    name: 'state then diff join and leave',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1', { device: 'web' })), bob: p(m('b1')) } },
      { op: 'diff', payload: { joins: { carol: p(m('c1')) }, leaves: { bob: p(m('b1')) } } },
    ],
  },
  {
    name: 'diffs before the first state are held',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'diff', payload: { joins: { bob: p(m('b1')) }, leaves: {} } },
      { op: 'diff', payload: { joins: {}, leaves: { alice: p(m('a1')) } } },
      { op: 'state', payload: { alice: p(m('a1'), m('a2')) } },
    ],
  },
  {
    name: 'no join ref yet: diffs held until state',
    steps: [
      { op: 'diff', payload: { joins: { x: p(m('x1')) }, leaves: {} } },
      { op: 'join', ref: '3' },
      { op: 'diff', payload: { joins: { y: p(m('y1')) }, leaves: {} } },
      { op: 'state', payload: { z: p(m('z1')) } },
      { op: 'diff', payload: { joins: { w: p(m('w1')) }, leaves: {} } },
    ],
  },
  {
    name: 'rejoin holds diffs until the new state',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1')), bob: p(m('b1')) } },
      { op: 'join', ref: '7' },
      { op: 'diff', payload: { joins: { carol: p(m('c1')) }, leaves: { alice: p(m('a1')) } } },
      { op: 'state', payload: { bob: p(m('b2')), dave: p(m('d1')) } },
    ],
  },
  {
    name: 'array-index keys list first, numerically',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { 10: p(m('r10')), 9: p(m('r9')), alice: p(m('ra')), 2: p(m('r2')) } },
      { op: 'diff', payload: { joins: { '007': p(m('r007')), 1: p(m('r1')), zed: p(m('rz')) }, leaves: {} } },
      { op: 'diff', payload: { joins: { 4294967295: p(m('big')), 4294967294: p(m('max')) }, leaves: {} } },
    ],
  },
  {
    name: 'a key that leaves and comes back moves to the end',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1')), bob: p(m('b1')), carol: p(m('c1')) } },
      { op: 'diff', payload: { joins: {}, leaves: { alice: p(m('a1')) } } },
      { op: 'diff', payload: { joins: { alice: p(m('a2')) }, leaves: {} } },
    ],
  },
  {
    name: 'second device joins and leaves',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1', { device: 'phone' })) } },
      { op: 'diff', payload: { joins: { alice: p(m('a2', { device: 'laptop' })) }, leaves: {} } },
      { op: 'diff', payload: { joins: {}, leaves: { alice: p(m('a1', { device: 'phone' })) } } },
      { op: 'diff', payload: { joins: {}, leaves: { alice: p(m('a2', { device: 'laptop' })) } } },
    ],
  },
  {
    name: 'join with an already known ref replaces that meta',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1', { status: 'away' }), m('a2')) } },
      { op: 'diff', payload: { joins: { alice: p(m('a1', { status: 'online' })) }, leaves: {} } },
    ],
  },
  {
    name: 'update: same key joins and leaves in one diff',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1', { typing: false })) } },
      { op: 'diff', payload: { joins: { alice: p(m('a2', { typing: true })) }, leaves: { alice: p(m('a1', { typing: false })) } } },
    ],
  },
  {
    name: 'leave for unknown keys and refs',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1')) } },
      { op: 'diff', payload: { joins: {}, leaves: { ghost: p(m('g1')), alice: p(m('nope')) } } },
    ],
  },
  {
    name: 'state replaces state: joins, partial leaves, full leaves',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: p(m('a1'), m('a2')), bob: p(m('b1')), carol: p(m('c1')) } },
      { op: 'state', payload: { alice: p(m('a2'), m('a3')), carol: p(m('c1')), dave: p(m('d1')) } },
      { op: 'state', payload: {} },
    ],
  },
  {
    name: 'prototype-looking and non-ASCII keys',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: sortKeysDeep(JSON.parse('{"__proto__":{"metas":[{"phx_ref":"p1"}]},"constructor":{"metas":[{"phx_ref":"c1"}]},"émile":{"metas":[{"phx_ref":"e1"}]}}')) },
      { op: 'diff', payload: { joins: { toString: p(m('t1')), 'Zoë': p(m('z1')) }, leaves: { constructor: p(m('c1')) } } },
    ],
  },
  {
    name: 'presences with extra fields (fetch/3) and metas without phx_ref',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: { alice: { metas: [m('a1')], user: { name: 'Alice' } }, bob: { metas: [{ online_at: 1 }] } } },
      { op: 'diff', payload: { joins: { alice: { metas: [m('a2')], user: { name: 'Alice B.' } } }, leaves: { bob: { metas: [{ online_at: 2 }] } } } },
    ],
  },
  {
    name: 'empty diffs and empty state still sync',
    steps: [
      { op: 'join', ref: '1' },
      { op: 'state', payload: {} },
      { op: 'diff', payload: { joins: {}, leaves: {} } },
    ],
  },
];

// mulberry32: a small seeded PRNG, so the random cases are reproducible.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random but plausible sequences: a simulated server truth plus some noise. */
export function randomCases(seed = 2024, count = 24) {
  const rand = prng(seed);
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const keyPool = ['0', '1', '2', '10', '42', '007', 'alice', 'bob', 'carol', '__proto__', 'émile', 'z'];
  const cases = [];
  for (let c = 0; c < count; ++c) {
    let nextRef = 1;
    let joinRef = 1;
    // Null-prototype objects: "__proto__" is one of the keys.
    const truth = Object.create(null); // key -> metas
    const steps = [];
    const newMeta = () => ({ phx_ref: `r${nextRef++}`, n: Math.floor(rand() * 3) });
    if (rand() < 0.8) steps.push({ op: 'join', ref: String(joinRef) });
    const n = 5 + Math.floor(rand() * 8);
    for (let i = 0; i < n; ++i) {
      const r = rand();
      if (r < 0.12) {
        joinRef += 1;
        steps.push({ op: 'join', ref: String(joinRef) });
      } else if (r < 0.35) {
        // full state: the truth, sometimes with metas reordered
        const payload = Object.create(null);
        for (const [k, metas] of Object.entries(truth)) {
          if (metas.length === 0) continue;
          payload[k] = { metas: rand() < 0.3 ? [...metas].reverse() : [...metas] };
        }
        steps.push({ op: 'state', payload: sortKeysDeep(payload) });
      } else {
        const joins = Object.create(null);
        const leaves = Object.create(null);
        const joinsCount = Math.floor(rand() * 3);
        for (let j = 0; j < joinsCount; ++j) {
          const k = pick(keyPool);
          const meta = newMeta();
          (truth[k] ||= []).push(meta);
          (joins[k] ||= { metas: [] }).metas.push(meta);
        }
        const leavesCount = Math.floor(rand() * 3);
        for (let j = 0; j < leavesCount; ++j) {
          const k = pick(keyPool);
          if (truth[k] && truth[k].length > 0 && rand() < 0.85) {
            const meta = truth[k].splice(Math.floor(rand() * truth[k].length), 1)[0];
            if (joins[k]) continue; // keep joins and leaves of one key apart, as Phoenix does
            (leaves[k] ||= { metas: [] }).metas.push(meta);
          } else if (!joins[k]) {
            (leaves[k] ||= { metas: [] }).metas.push({ phx_ref: `bogus${nextRef++}` });
          }
        }
        steps.push({ op: 'diff', payload: sortKeysDeep({ joins, leaves }) });
      }
    }
    cases.push({ name: `random ${seed}/${c}`, steps });
  }
  return cases;
}

/** Every case with phoenix.js's recorded behaviour. */
export function reference() {
  const cases = [...handWrittenCases, ...randomCases()].map(({ name, steps }) => {
    const sorted = steps.map((s) => (s.payload ? { ...s, payload: sortKeysDeep(s.payload) } : s));
    return { name, steps: sorted, expected: runCase(sorted) };
  });
  return { phoenix: '1.8.16', cases };
}

/** The C++ header that embeds reference() for the unit test. */
export function header(json) {
  const text = JSON.stringify(json);
  // Raw string pieces stay well under compilers' string literal limits.
  const pieces = [];
  for (let i = 0; i < text.length; i += 2000) pieces.push(text.slice(i, i + 2000));
  return (
    '// Generated by tests/node/support/presence_reference.mjs --header; do not edit.\n' +
    "// phoenix.js's Presence run over the sequences in that script: the expected\n" +
    '// behaviour of plume::client::Presence (tests/unit/client_presence.cpp).\n' +
    '#pragma once\n\n' +
    '#include <string>\n\n' +
    'namespace plume::test {\n\n' +
    'inline std::string client_presence_reference() {\n' +
    '    // clang-format off\n' +
    '    static const char* const pieces[] = {\n' +
    pieces.map((piece) => `        R"plume(${piece})plume",\n`).join('') +
    '    };\n' +
    '    // clang-format on\n' +
    '    std::string out;\n' +
    '    for (const char* piece : pieces)\n' +
    '        out += piece;\n' +
    '    return out;\n' +
    '}\n\n' +
    '}  // namespace plume::test\n'
  );
}

/** The JSON embedded in a header written by header(). */
export function parseHeader(text) {
  const pieces = [...text.matchAll(/R"plume\(([\s\S]*?)\)plume"/g)].map((match) => match[1]);
  return JSON.parse(pieces.join(''));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const json = reference();
  const at = process.argv.indexOf('--header');
  if (at >= 0) writeFileSync(process.argv[at + 1], header(json));
  else process.stdout.write(JSON.stringify(json, null, 1) + '\n');
}
