// The recording of phoenix.js's Presence that tests/unit/client_presence.cpp
// checks plume's client Presence against (tests/support/client_presence_reference.hpp)
// must be what phoenix.js does today: this re-runs phoenix.js's Presence over
// the same sequences and compares. After a phoenix upgrade that changes
// behaviour, regenerate the header:
//   node support/presence_reference.mjs --header ../support/client_presence_reference.hpp
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { reference, parseHeader } from './support/presence_reference.mjs';

const headerPath = new URL('../support/client_presence_reference.hpp', import.meta.url);

it('the embedded recording equals what phoenix.js produces now', () => {
  const embedded = parseHeader(readFileSync(headerPath, 'utf8'));
  const fresh = reference();
  const pkg = new URL('./node_modules/phoenix/package.json', import.meta.url);
  const installed = JSON.parse(readFileSync(pkg, 'utf8')).version;
  assert.equal(embedded.phoenix, installed, 'recorded with another phoenix version');
  assert.equal(embedded.cases.length, fresh.cases.length);
  for (let i = 0; i < fresh.cases.length; i++) {
    assert.deepEqual(embedded.cases[i], fresh.cases[i], `case ${fresh.cases[i].name}`);
  }
});

it('the sequences exercise joins, leaves, held diffs and key order', () => {
  const { cases } = reference();
  const events = cases.flatMap((c) => c.expected);
  assert.ok(cases.length >= 30);
  assert.ok(events.some((e) => e.type === 'join' && e.current !== null), 'a join to an existing key');
  assert.ok(events.some((e) => e.type === 'leave' && e.current.metas.length === 0), 'a last leave');
  assert.ok(events.some((e) => e.type === 'leave' && e.current.metas.length > 0), 'a partial leave');
  assert.ok(events.some((e) => e.type === 'step' && e.pending), 'a held diff');
  assert.ok(
    events.some((e) => e.type === 'step' && e.keys.join() === '1,2,9,10,4294967294,alice,007,zed,4294967295'),
    'array-index keys first'
  );
});
