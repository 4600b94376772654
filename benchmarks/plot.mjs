#!/usr/bin/env node
// benchmarks/plot.mjs — reads the raw results of benchmarks/compare.sh
// (build/compare/results.csv), prints every run's figures with the medians and
// the plume/uWS ratios, and writes SVG charts (no dependencies):
//
//   node benchmarks/plot.mjs [build/compare/results.csv] [docs/benchmarks]
//
//   fanout.svg      fan-out deliveries/s against subscribers, plume and uWS
//   fanout_p99.svg  fan-out p99 push-to-delivery latency against subscribers
//   memory.svg      bytes per joined idle connection (15,000 joined)
//   rpc.svg         echo round trips/s and ping RPC replies/s
import fs from 'node:fs';
import path from 'node:path';

const [input = 'build/compare/results.csv', outDir = 'docs/benchmarks'] = process.argv.slice(2);

// ------------------------------------------------------------------ data --

const text = fs.readFileSync(input, 'utf8');
const meta = {};
const rows = [];
for (const line of text.split('\n')) {
  if (!line.trim()) continue;
  if (line.startsWith('#')) {
    const m = line.match(/^#\s*([^:]+?):\s*(.*)$/);
    if (m) meta[m[1]] = m[2];
    continue;
  }
  if (line.startsWith('workload,')) continue;
  const [workload, server, threads, subscribers, run, metric, value] = line.split(',');
  if (value === undefined || value === '') continue;
  rows.push({ workload, server, threads: +threads, n: +subscribers, run: +run, metric, value: +value });
}
const date = (meta.date || '').match(/\d{4}-\d{2}-\d{2}/)?.[0] ?? new Date().toISOString().slice(0, 10);
const machine = meta.machine ?? 'unknown machine';

const values = (q) =>
  rows
    .filter((r) => Object.entries(q).every(([k, v]) => r[k] === v))
    .sort((a, b) => a.run - b.run)
    .map((r) => r.value);
const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (v, digits = 0) =>
  Number.isFinite(v)
    ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
const servers = ['plume', 'uws'];
const label = { plume: 'plume', uws: 'uWS' };

// ----------------------------------------------------------------- table --

const lines = [];
const say = (s = '') => lines.push(s);
say(`plume vs uWebSockets, ${meta.date ?? date}`);
say(`machine: ${machine}; runs: ${meta.runs ?? '?'}`);

function table(title, q, metrics) {
  if (!rows.some((r) => r.workload === q.workload && r.threads === q.threads && r.n === q.n))
    return;
  say();
  say(title);
  const other = servers.map((s) => values({ ...q, server: s, metric: 'other_load_pct' }));
  if (other.some((o) => o.length))
    say(`  (other processes' load, % of one core: plume runs ${other[0].join(' / ') || '—'}, uWS runs ${other[1].join(' / ') || '—'})`);
  say(`  ${'figure'.padEnd(30)} ${'plume runs'.padEnd(30)} ${'uWS runs'.padEnd(30)} ${'plume'.padStart(10)} ${'uWS'.padStart(10)}  plume/uWS`);
  for (const [metric, name, better, digits = 0] of metrics) {
    const runs = servers.map((s) => values({ ...q, server: s, metric }));
    if (!runs[0].length && !runs[1].length) continue;
    const med = runs.map(median);
    const ratio = med[0] / med[1];
    const note = better === 'higher' ? 'higher is better' : better === 'lower' ? 'lower is better' : 'must be 0';
    say(
      `  ${name.padEnd(30)} ${runs[0].map((v) => fmt(v, digits)).join(' / ').padEnd(30)} ${runs[1]
        .map((v) => fmt(v, digits))
        .join(' / ')
        .padEnd(30)} ${fmt(med[0], digits).padStart(10)} ${fmt(med[1], digits).padStart(10)}  ${
        better === 'zero' ? '' : Number.isFinite(ratio) ? ratio.toFixed(2) : '—'
      } (${note})`,
    );
  }
}

const fanoutMetrics = [
  ['deliveries_per_s', 'deliveries/s', 'higher'],
  ['p99_us', 'p99 latency (us)', 'lower'],
  ['server_us_per_delivery', 'server CPU us/delivery', 'lower', 2],
  ['lost_messages', 'messages lost', 'zero'],
];
const fanoutN = 10000;
table(`fan-out: ${fmt(fanoutN)} subscribers, server --threads 1`, { workload: 'fanout', threads: 1, n: fanoutN }, fanoutMetrics);
table(`fan-out: ${fmt(fanoutN)} subscribers, server --threads 2`, { workload: 'fanout', threads: 2, n: fanoutN }, fanoutMetrics);
if (rows.some((r) => r.workload === 'fanout' && r.threads === 2)) {
  say();
  say('fan-out scaling, --threads 2 / --threads 1 (median deliveries/s)');
  for (const s of servers) {
    const one = median(values({ workload: 'fanout', server: s, threads: 1, n: fanoutN, metric: 'deliveries_per_s' }));
    const two = median(values({ workload: 'fanout', server: s, threads: 2, n: fanoutN, metric: 'deliveries_per_s' }));
    say(`  ${label[s].padEnd(6)} ${fmt(one)} -> ${fmt(two)}: x${(two / one).toFixed(2)}`);
  }
}
const memoryN = rows.find((r) => r.workload === 'memory')?.n;
table(`memory and joins: ${fmt(memoryN)} subscribers joined to room:lobby`, { workload: 'memory', threads: 1, n: memoryN }, [
  ['bytes_per_joined_conn', 'bytes per joined idle conn', 'lower'],
  ['joins_per_s', 'joins/s', 'higher'],
]);
table('ping RPC: 100 sockets, one ping in flight each', { workload: 'ping', threads: 1, n: 100 }, [
  ['replies_per_s', 'replies/s', 'higher'],
  ['p99_us', 'p99 latency (us)', 'lower', 1],
  ['server_us_per_reply', 'server CPU us/reply', 'lower', 2],
]);
table('echo: 100 connections, 64-byte binary messages', { workload: 'echo', threads: 1, n: 100 }, [
  ['round_trips_per_s', 'round trips/s', 'higher'],
  ['p99_us', 'p99 latency (us)', 'lower', 1],
  ['server_us_per_round_trip', 'server CPU us/round trip', 'lower', 2],
]);

// The sweep: its own runs, plus the fan-out workload's (--threads 1) at its size.
const sweepRows = rows.filter((r) => (r.workload === 'sweep' || r.workload === 'fanout') && r.threads === 1);
const sweepN = [...new Set(sweepRows.map((r) => r.n))].sort((a, b) => a - b);
const sweep = (s, n, metric) =>
  median(sweepRows.filter((r) => r.server === s && r.n === n && r.metric === metric).map((r) => r.value));
if (sweepN.length > 1) {
  say();
  say('fan-out sweep, server --threads 1 (medians)');
  say(`  ${'subscribers'.padStart(11)} ${'plume del/s'.padStart(12)} ${'uWS del/s'.padStart(12)} ${'ratio'.padStart(6)}   ${'plume p99 us'.padStart(12)} ${'uWS p99 us'.padStart(12)} ${'ratio'.padStart(6)}`);
  for (const n of sweepN) {
    const [pr, ur] = servers.map((s) => sweep(s, n, 'deliveries_per_s'));
    const [pp, up] = servers.map((s) => sweep(s, n, 'p99_us'));
    say(
      `  ${fmt(n).padStart(11)} ${fmt(pr).padStart(12)} ${fmt(ur).padStart(12)} ${(pr / ur).toFixed(2).padStart(6)}   ${fmt(pp).padStart(12)} ${fmt(up).padStart(12)} ${(pp / up).toFixed(2).padStart(6)}`,
    );
  }
}
const failed = rows.filter((r) => r.metric === 'ok' && r.value !== 1);
if (failed.length) {
  say();
  say(`FAILED runs (exit status not 0; see build/compare/logs): ${failed.map((r) => `${r.workload}/${r.server}/t${r.threads}/n${r.n}/run ${r.run}`).join(', ')}`);
}
console.log(lines.join('\n'));

// ------------------------------------------------------------------ SVG --

const colors = { plume: '#2563eb', uws: '#ea580c' };
const W = 720;
const H = 440;
const M = { top: 116, right: 28, bottom: 62, left: 86 };
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const runs = Math.max(...rows.map((r) => r.run), 1);
const subtitle = `${date} · ${machine} · median of ${runs} run${runs === 1 ? '' : 's'}`;

/// Round tick steps (1, 2, 5 × 10^k) from 0 to at least `max`.
function ticks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  if (out[out.length - 1] < max) out.push(+(out[out.length - 1] + step).toPrecision(12));
  return out;
}
const short = (v) =>
  v >= 1e6 ? `${+(v / 1e6).toPrecision(3)}M` : v >= 1e3 ? `${+(v / 1e3).toPrecision(3)}k` : `${+v.toPrecision(3)}`;

function frame(title, sub, body) {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="13">
  <rect width="${W}" height="${H}" fill="#ffffff"/>
  <text x="${W / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold" fill="#111827">${esc(title)}</text>
  <text x="${W / 2}" y="48" text-anchor="middle" font-size="12" fill="#4b5563">${esc(subtitle)}</text>
  <text x="${W / 2}" y="65" text-anchor="middle" font-size="12" fill="#4b5563">${esc(sub)}</text>
${body}
</svg>
`;
}

function axes(yTicks, yMax, yLabel, xLabel) {
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const y1 = M.top;
  const y = (v) => y0 - ((y0 - y1) * v) / yMax;
  let s = '';
  for (const t of yTicks) {
    s += `  <line x1="${x0}" x2="${x1}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e7eb"/>\n`;
    s += `  <text x="${x0 - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" fill="#374151">${esc(short(t))}</text>\n`;
  }
  s += `  <line x1="${x0}" x2="${x0}" y1="${y1}" y2="${y0}" stroke="#374151"/>\n`;
  s += `  <line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="#374151"/>\n`;
  s += `  <text transform="translate(22 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" fill="#111827">${esc(yLabel)}</text>\n`;
  if (xLabel) s += `  <text x="${(x0 + x1) / 2}" y="${H - 16}" text-anchor="middle" fill="#111827">${esc(xLabel)}</text>\n`;
  return { s, y, x0, x1, y0, y1 };
}

function legend(names) {
  let s = '';
  let x = M.left + 12;
  for (const name of names) {
    s += `  <rect x="${x}" y="${M.top - 34}" width="14" height="14" rx="2" fill="${colors[name]}"/>\n`;
    s += `  <text x="${x + 20}" y="${M.top - 22}" fill="#111827">${esc(label[name] === 'uWS' ? 'uWebSockets v20.79.0 (uws_phoenix)' : 'plume (examples/chat, examples/echo)')}</text>\n`;
    x += 290;
  }
  return s;
}

function lineChart({ title, yLabel, metric, file, scale = 1 }) {
  const xs = sweepN;
  const series = servers.map((s) => ({ s, points: xs.map((n) => [n, sweep(s, n, metric) * scale]).filter(([, v]) => Number.isFinite(v)) }));
  const yMax0 = Math.max(...series.flatMap((d) => d.points.map(([, v]) => v)), 0);
  const yTicks = ticks(yMax0 * 1.05);
  const yMax = yTicks[yTicks.length - 1];
  const xMax = ticks(Math.max(...xs))[ticks(Math.max(...xs)).length - 1];
  const a = axes(yTicks, yMax, yLabel, 'subscribers joined to one topic');
  const x = (n) => a.x0 + ((a.x1 - a.x0) * n) / xMax;
  let s = a.s;
  for (const t of ticks(Math.max(...xs))) {
    s += `  <line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${a.y0}" y2="${a.y0 + 5}" stroke="#374151"/>\n`;
    s += `  <text x="${x(t).toFixed(1)}" y="${a.y0 + 20}" text-anchor="middle" fill="#374151">${esc(short(t))}</text>\n`;
  }
  for (const { s: name, points } of series) {
    if (!points.length) continue;
    const d = points.map(([n, v], i) => `${i ? 'L' : 'M'}${x(n).toFixed(1)},${a.y(v).toFixed(1)}`).join(' ');
    s += `  <path d="${d}" fill="none" stroke="${colors[name]}" stroke-width="2.5"/>\n`;
    for (const [n, v] of points) {
      s += `  <circle cx="${x(n).toFixed(1)}" cy="${a.y(v).toFixed(1)}" r="4.5" fill="${colors[name]}" stroke="#ffffff" stroke-width="1.5"><title>${esc(`${label[name]}: ${fmt(n)} subscribers, ${fmt(v)}`)}</title></circle>\n`;
    }
  }
  s += legend(servers);
  const sub = `server --threads 1, 64-byte bodies, all pushed at once, ${short(+(meta.deliveries ?? 2e6))} deliveries per run`;
  fs.writeFileSync(path.join(outDir, file), frame(title, sub, s));
}

function barChart({ title, sub, yLabel, groups, file, digits = 0 }) {
  const all = groups.flatMap((g) => g.values.map((v) => v.value)).filter(Number.isFinite);
  const yTicks = ticks(Math.max(...all, 0) * 1.12);
  const yMax = yTicks[yTicks.length - 1];
  const a = axes(yTicks, yMax, yLabel, '');
  let s = a.s;
  const groupW = (a.x1 - a.x0) / groups.length;
  const barW = Math.min(90, (groupW * 0.7) / servers.length);
  groups.forEach((g, gi) => {
    const cx = a.x0 + groupW * (gi + 0.5);
    s += `  <text x="${cx.toFixed(1)}" y="${a.y0 + 22}" text-anchor="middle" fill="#111827">${esc(g.label)}</text>\n`;
    if (g.note) s += `  <text x="${cx.toFixed(1)}" y="${a.y0 + 40}" text-anchor="middle" font-size="11" fill="#4b5563">${esc(g.note)}</text>\n`;
    g.values.forEach((v, i) => {
      if (!Number.isFinite(v.value)) return;
      const bx = cx - (barW * servers.length) / 2 + i * barW + 4;
      const by = a.y(v.value);
      s += `  <rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 8).toFixed(1)}" height="${(a.y0 - by).toFixed(1)}" fill="${colors[v.server]}"><title>${esc(`${label[v.server]}: ${fmt(v.value, digits)}`)}</title></rect>\n`;
      s += `  <text x="${(bx + (barW - 8) / 2).toFixed(1)}" y="${(by - 6).toFixed(1)}" text-anchor="middle" font-size="12" fill="#111827">${esc(fmt(v.value, digits))}</text>\n`;
    });
  });
  s += legend(servers);
  fs.writeFileSync(path.join(outDir, file), frame(title, sub, s));
}

fs.mkdirSync(outDir, { recursive: true });
const written = [];
if (sweepN.length > 1) {
  lineChart({ title: 'Channel fan-out: deliveries per second', yLabel: 'deliveries/s (higher is better)', metric: 'deliveries_per_s', file: 'fanout.svg' });
  lineChart({ title: 'Channel fan-out: p99 push-to-delivery latency', yLabel: 'p99 latency, ms (lower is better)', metric: 'p99_us', file: 'fanout_p99.svg', scale: 1e-3 });
  written.push('fanout.svg', 'fanout_p99.svg');
}
if (memoryN) {
  const m = (s) => median(values({ workload: 'memory', server: s, threads: 1, n: memoryN, metric: 'bytes_per_joined_conn' }));
  barChart({
    title: 'Server memory per joined idle connection',
    sub: `${fmt(memoryN)} sockets joined to room:lobby: server RSS growth / N`,
    yLabel: 'bytes per connection (lower is better)',
    groups: [{ label: `${fmt(memoryN)} joined idle Phoenix sockets`, values: servers.map((s) => ({ server: s, value: m(s) })) }],
    file: 'memory.svg',
  });
  written.push('memory.svg');
}
if (rows.some((r) => r.workload === 'echo' || r.workload === 'ping')) {
  const med = (workload, metric, s) => median(values({ workload, server: s, threads: 1, n: 100, metric }));
  barChart({
    title: 'Request/reply: echo round trips and Phoenix ping RPCs per second',
    sub: `100 connections, one message in flight each, server --threads 1`,
    yLabel: 'per second (higher is better)',
    groups: [
      { label: 'WebSocket echo', note: '64-byte binary messages', values: servers.map((s) => ({ server: s, value: med('echo', 'round_trips_per_s', s) })) },
      { label: 'Phoenix ping RPC', note: 'push "ping", reply ok with the payload', values: servers.map((s) => ({ server: s, value: med('ping', 'replies_per_s', s) })) },
    ],
    file: 'rpc.svg',
  });
  written.push('rpc.svg');
}
console.log(`\ncharts: ${written.map((f) => path.join(outDir, f)).join(', ') || 'none'}`);
