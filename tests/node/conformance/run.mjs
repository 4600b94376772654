#!/usr/bin/env node
// Standalone runner for the RFC 6455 / RFC 7692 conformance cases.
//
//   node tests/node/conformance/run.mjs --bin <echo_server> [--max-message N] [--deflate] [--cases 1.*,6.*]
//   node tests/node/conformance/run.mjs --url ws://127.0.0.1:PORT/ [--max-message N] [--deflate] ...
//
// --bin starts the server itself (--host 127.0.0.1 --port 0, plus --deflate /
// --max-message when given) and parses "listening on ws://HOST:PORT/" from its
// stdout; a .mjs/.js --bin is run with node (e.g. reference_server.mjs). With
// --url, tell the runner how the server is configured (--deflate,
// --max-message) since the expected results depend on it.
//
// Other options:
//   --cases LIST        comma-separated ids or globs (* matches anything): 1.*,6.4.*,9.1.6
//   --full              Autobahn's full message counts for 12.x/13.x (1000 per case; slow)
//   --deflate-budget N  quick mode: octets per 12/13 case (default 262144)
//   --deflate-count N   quick mode: at most N messages per 12/13 case (default 200)
//   --timeout-scale X   multiply every timeout (slow machines, sanitizers)
//   --failfast-wait MS  6.4.3/6.4.4 wait for a mid-frame fail-fast close (default 500)
//   --server-arg ARG    extra argument for --bin (repeatable)
//   --verbose           print details of OK cases too (timings, negotiated parameters)
//   --json FILE         write all results as JSON
//   --list              list the cases and exit
// Prints one line per case ("1.1.1 OK", "6.4.1 NON-STRICT <why>") and a summary
// per outcome and group; exits 1 if any case FAILED.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCases, Client, DEFAULT_TIMEOUTS, HandshakeError, OUTCOMES } from './cases.mjs';
import { OP } from './frames.mjs';
import { keepOutput, parseArgv, runIfMain } from './script.mjs';

export const DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024;

function globToRe(g) {
  return new RegExp(`^${g.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

export function caseFilter(spec) {
  if (!spec) return () => true;
  const res = spec.split(',').map((s) => s.trim()).filter(Boolean).map(globToRe);
  return (id) => res.some((re) => re.test(id));
}

/** Start an echo server binary; resolves { proc, url, output() } once it prints its URL. */
export function startServer(bin, args = [], { timeout = 20000, env = process.env } = {}) {
  const isScript = /\.(m?js|cjs)$/.test(bin);
  const cmd = isScript ? process.execPath : bin;
  const argv = isScript ? [bin, ...args] : args;
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const output = keepOutput(proc);
    let done = false;
    let outBuf = '';
    const server = {
      proc,
      url: null,
      output,
      exited: null,
      exitPromise: new Promise((res) => proc.once('exit', (code, signal) => { server.exited = { code, signal }; res(server.exited); })),
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`${bin} did not print "listening on ws://..." within ${timeout} ms\n${server.output()}`));
    }, timeout);
    proc.stdout.on('data', (d) => {
      if (done) return;
      outBuf += d.toString();
      const m = /listening on (wss?:\/\/[^\s]+)/.exec(outBuf);
      if (m) {
        done = true;
        clearTimeout(timer);
        server.url = m[1];
        resolve(server);
      }
    });
    proc.once('error', (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${e.message}`));
    });
    proc.once('exit', (code, signal) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${bin} exited (code ${code}, signal ${signal}) before listening\n${server.output()}`));
    });
  });
}

/** The server's exit status once it exits, or null if it is still running after `ms`. */
async function exitWithin(server, ms) {
  let t;
  const r = await Promise.race([server.exitPromise, new Promise((res) => { t = setTimeout(() => res(null), ms); })]);
  clearTimeout(t);
  return r;
}

/** SIGTERM, wait (bounded) for the exit, SIGKILL if needed. */
export async function stopServer(server, { timeout = 10000 } = {}) {
  if (!server || server.exited) return server?.exited ?? null;
  server.proc.kill('SIGTERM');
  const r = await exitWithin(server, timeout);
  if (r) return r;
  server.proc.kill('SIGKILL');
  const k = await server.exitPromise;
  return { ...k, timedOut: true };
}

/**
 * S.1: the SIGTERM contract of the echo servers: open connections receive
 * close 1001, the process exits with status 0.
 */
async function shutdownCase(ctx, server) {
  const c = await ctx.connect();
  await c.send({ opcode: OP.TEXT, payload: Buffer.from('before shutdown') });
  await c.waitFor(() => c.msgCount >= 1 || c.serverGone, c.T.resp);
  if (c.msgCount < 1) return { outcome: 'FAILED', detail: 'no echo before the shutdown test' };
  server.proc.kill('SIGTERM');
  await c.waitFor(() => c.serverGone, c.T.resp * 2);
  await c.finish();
  const exit = await exitWithin(server, 10000);
  const problems = [];
  if (!c.closeRecv) problems.push(c.eofBy === 'server' ? 'server dropped TCP without a close frame on SIGTERM' : 'no close frame after SIGTERM');
  else if (c.closeRecv.code !== 1001) problems.push(`close code ${c.closeRecv.code} instead of 1001 on SIGTERM`);
  if (c.droppedByClient) problems.push('server did not close TCP after the closing handshake');
  if (!exit) problems.push('process did not exit within 10 s of SIGTERM');
  else if (exit.code !== 0) problems.push(`process exited with code ${exit.code}${exit.signal ? `, signal ${exit.signal}` : ''} instead of 0`);
  if (c.violations.length) problems.push(`protocol violation by the server: ${c.violations.join('; ')}`);
  return problems.length ? { outcome: 'FAILED', detail: problems.join('; ') } : { outcome: 'OK', detail: 'close 1001, exit status 0' };
}

/**
 * Run the suite. Options: url, maxMessage, deflate, cases (filter string),
 * full, deflateBudget, deflateCount, timeoutScale, failfastWait, server
 * (from startServer: enables crash detection and the S.1 shutdown check),
 * onResult(result).
 */
export async function runSuite(opts) {
  const scale = opts.timeoutScale ?? 1;
  const T = Object.fromEntries(Object.entries(DEFAULT_TIMEOUTS).map(([k, v]) => [k, Math.round(v * scale)]));
  if (opts.failfastWait) T.failfast = opts.failfastWait;
  const match = caseFilter(opts.cases);
  const cases = buildCases().filter((c) => match(c.id));
  const server = opts.server ?? null;
  if (server && match('S.1')) cases.push({ id: 'S.1', desc: 'SIGTERM: connections get close 1001, the process exits 0', run: (ctx) => shutdownCase(ctx, server) });
  const results = [];
  let crashed = null;
  for (const cs of cases) {
    const clients = [];
    const ctx = {
      url: opts.url,
      maxMessage: opts.maxMessage ?? DEFAULT_MAX_MESSAGE,
      deflate: !!opts.deflate,
      full: !!opts.full,
      deflateBudget: opts.deflateBudget ?? 256 * 1024,
      deflateCount: opts.deflateCount ?? 200,
      T,
      async connect(offers = null) {
        const c = new Client(opts.url, { offers, T });
        clients.push(c);
        await c.open();
        return c;
      },
    };
    const t0 = process.hrtime.bigint();
    let r;
    if (crashed) {
      r = { outcome: 'FAILED', detail: `not run: the server process exited during ${crashed}` };
    } else {
      let timer;
      const limit = (/^9\./.test(cs.id) ? 180000 : /^1[23]\./.test(cs.id) && ctx.full ? 600000 : 120000) * scale;
      try {
        r = await Promise.race([
          cs.run(ctx),
          new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`case did not finish within ${limit / 1000} s`)), limit); }),
        ]);
      } catch (e) {
        r = { outcome: 'FAILED', detail: e instanceof HandshakeError ? `opening handshake failed: ${e.message}` : `${e.message}${e instanceof Error && !/did not finish/.test(e.message) ? ` (harness: ${e.stack.split('\n')[1]?.trim()})` : ''}` };
      } finally {
        clearTimeout(timer);
        for (const c of clients) if (!c.eof) c.kill();
      }
      if (server && server.exited && cs.id !== 'S.1') {
        crashed = cs.id;
        const ex = server.exited;
        r = { outcome: 'FAILED', detail: `server process exited (code ${ex.code}, signal ${ex.signal}) during this case${r.detail ? `; ${r.detail}` : ''}` };
      }
    }
    const res = { id: cs.id, desc: cs.desc, outcome: r.outcome, detail: r.detail || '', ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    results.push(res);
    if (opts.onResult) opts.onResult(res);
  }
  return results;
}

export function formatLine(r, verbose = false) {
  return `${r.id} ${r.outcome}${r.detail && (verbose || r.outcome !== 'OK') ? `  ${r.detail}` : ''}`;
}

/**
 * Writes every result (with its details) and the summary `s` of summarize()
 * to PLUME_BUILD_DIR/<fileName> when PLUME_BUILD_DIR is set, for reading
 * after a CTest run.
 */
export function writeReportFile(fileName, results, s) {
  if (!process.env.PLUME_BUILD_DIR) return;
  try {
    fs.writeFileSync(path.join(process.env.PLUME_BUILD_DIR, fileName), results.map((r) => formatLine(r, true)).join('\n') + '\n' + s.text + '\n');
  } catch {
    // the report file is a convenience only
  }
}

export function summarize(results) {
  const total = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
  const groups = new Map();
  for (const r of results) {
    total[r.outcome]++;
    const g = r.id.split('.')[0];
    if (!groups.has(g)) groups.set(g, Object.fromEntries(OUTCOMES.map((o) => [o, 0])));
    groups.get(g)[r.outcome]++;
  }
  const fmt = (counts) => OUTCOMES.filter((o) => counts[o]).map((o) => `${o} ${counts[o]}`).join(', ') || 'none';
  const lines = [`summary: ${results.length} cases: ${fmt(total)}`];
  for (const [g, counts] of groups) lines.push(`  group ${g.padEnd(2)}: ${fmt(counts)}`);
  return { total, text: lines.join('\n') };
}

function parseArgs(argv) {
  const o = { serverArgs: [] };
  parseArgv(argv, (a, val) => {
    switch (a) {
      case '--bin': o.bin = val(); break;
      case '--url': o.url = val(); break;
      case '--max-message': o.maxMessage = Number(val()); break;
      case '--deflate': o.deflate = true; break;
      case '--cases': o.cases = val(); break;
      case '--full': o.full = true; break;
      case '--deflate-budget': o.deflateBudget = Number(val()); break;
      case '--deflate-count': o.deflateCount = Number(val()); break;
      case '--timeout-scale': o.timeoutScale = Number(val()); break;
      case '--failfast-wait': o.failfastWait = Number(val()); break;
      case '--server-arg': o.serverArgs.push(val()); break;
      case '--verbose': case '-v': o.verbose = true; break;
      case '--json': o.json = val(); break;
      case '--list': o.list = true; break;
      case '-h': case '--help': o.help = true; break;
      default: return false;
    }
  });
  return o;
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
  if (o.help) {
    const src = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    console.log(src.slice(1, src.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    return;
  }
  if (o.list) {
    const match = caseFilter(o.cases);
    for (const c of buildCases()) if (match(c.id)) console.log(`${c.id}  ${c.desc}`);
    return;
  }
  if (!o.bin === !o.url) {
    console.error('give exactly one of --bin <echo_server> or --url ws://HOST:PORT/ (see --help)');
    process.exit(2);
  }
  let server = null;
  let url = o.url;
  if (o.bin) {
    const args = ['--host', '127.0.0.1', '--port', '0'];
    if (o.maxMessage) args.push('--max-message', String(o.maxMessage));
    if (o.deflate) args.push('--deflate');
    args.push(...o.serverArgs);
    server = await startServer(o.bin, args);
    url = server.url;
    console.log(`# server ${o.bin} ${args.join(' ')} -> ${url}`);
  }
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    if (server) await stopServer(server);
  };
  process.on('SIGINT', () => { cleanup().then(() => process.exit(130)); });
  process.on('SIGTERM', () => { cleanup().then(() => process.exit(143)); });
  const t0 = Date.now();
  let results;
  try {
    results = await runSuite({ ...o, url, server, onResult: (r) => console.log(formatLine(r, o.verbose)) });
  } finally {
    await cleanup();
  }
  const s = summarize(results);
  console.log(s.text);
  console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ url, deflate: !!o.deflate, maxMessage: o.maxMessage ?? DEFAULT_MAX_MESSAGE, results }, null, 1));
  process.exitCode = s.total.FAILED ? 1 : 0;
}

runIfMain(import.meta.url, main);
