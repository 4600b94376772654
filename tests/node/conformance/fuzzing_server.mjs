#!/usr/bin/env node
// Client-side RFC 6455 / RFC 7692 conformance: a fuzzing server in the manner
// of Autobahn|Testsuite's `wstest -m fuzzingserver`. The WebSocket client under
// test (the testee) connects to it:
//
//   GET /getCaseCount                   one text message with the number of cases, then close
//   GET /runCase?case=N&agent=A         case N (1-based): the server plays it, the client echoes
//   GET /updateReports?agent=A          close; the run is over
//
// The cases are those of cases.mjs (the server-side suite) mirrored: this
// server sends unmasked frames and expects every client frame masked, and it
// closes TCP first after a closing handshake (RFC 6455 7.1.1), so the client
// must close after it. Invalid-UTF-8 "-split" cases, which open one connection
// per split position in the server suite, become one case per split here
// ("6.3.1-split.7"). Groups 12/13 are mirrored for permessage-deflate (this
// server compresses and verifies the client's compressed echoes, window bits
// and context takeover octet-exact), and group C holds client-only cases:
// masking (C.1), the opening handshake (C.2), deflate negotiation (C.3),
// closing TCP (C.4).
//
// Written on raw `net` sockets with the helpers of frames.mjs, like the rest
// of the suite: no WebSocket library sits between the testee and the judge.
//
// Standalone:
//   node tests/node/conformance/fuzzing_server.mjs --bin build/examples/echo_client/echo_client
//        [--deflate] [--max-message N] [--cases 1.*,C.*] [--timeout-scale X] [--verbose]
//   node tests/node/conformance/fuzzing_server.mjs --port 9001 [--deflate] ...   (serve one testee run, until /updateReports)
//   ... --tls-cert cert.pem --tls-key key.pem   (wss://: every case inside TLS; the testee must trust the certificate)
// --deflate / --max-message describe the testee (and are passed to --bin): the
// expected results depend on them. Exits 1 if any case FAILED.

import net from 'node:net';
import tls from 'node:tls';
import fsys from 'node:fs';
import { spawn } from 'node:child_process';
import * as F from './frames.mjs';
import * as C from './cases.mjs';
import { caseFilter, summarize, formatLine, DEFAULT_MAX_MESSAGE } from './run.mjs';
import { keepOutput, parseArgv, runIfMain } from './script.mjs';

const { OP } = F;
const EMPTY = Buffer.alloc(0);

/**
 * The cases' texts name the peer under test "server" and the tester "client";
 * here the roles are the other way round.
 */
export function swapRoles(text) {
  const map = { server: 'client', client: 'server', Server: 'Client', Client: 'Server', servers: 'clients', clients: 'servers' };
  // quoted text (close reasons, headers) is the peer's own and stays as it is
  return text.replace(/"[^"]*"|\b(servers?|clients?|Servers?|Clients?)\b/g, (w) => map[w] ?? w);
}

// ---------------------------------------------------------------------------
// The server end of one connection, with the judging interface of cases.mjs's Client

export class Peer extends C.Client {
  constructor(sock, T) {
    super('ws://127.0.0.1/', { T });
    this.sock = sock;
    this.mask = false;        // server frames are never masked ...
    this.expectMasked = true; // ... client frames always are (RFC 6455 5.1)
    this.maskKeys = [];
  }

  _onFrame(f) {
    if (f.masked && this.maskKeys.length < 10000) this.maskKeys.push(f.maskKey);
    super._onFrame(f);
  }

  /** The server closes TCP first (RFC 6455 7.1.1); the client must follow. */
  async finish() {
    if (this.eof) return;
    if (this.closeRecv || this.closeSent) {
      this.sock.end();
      await this.waitFor(() => this.eof, this.T.eof);
      if (!this.eof) {
        this.droppedByClient = true;
        this.kill();
      }
    } else {
      this.kill();
    }
  }
}

// ---------------------------------------------------------------------------
// HTTP

function readHead(sock, timeout) {
  return new Promise((resolve, reject) => {
    let buf = EMPTY;
    const done = (err, v) => {
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.removeListener('close', onClose);
      if (err) reject(err);
      else resolve(v);
    };
    const timer = setTimeout(() => done(new Error('no request head')), timeout);
    const onClose = () => done(new Error('closed before the request head'));
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 65536) done(new Error('request head larger than 64 KiB'));
        return;
      }
      sock.pause();
      const [line, ...hl] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = {};
      const counts = {};
      for (const l of hl) {
        const i = l.indexOf(':');
        if (i <= 0) continue;
        const k = l.slice(0, i).trim().toLowerCase();
        const v = l.slice(i + 1).trim();
        headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
        counts[k] = (counts[k] ?? 0) + 1;
      }
      const [method, target, version] = line.split(' ');
      done(null, { req: { line, method, target: target ?? '/', version, headers, counts }, rest: buf.subarray(end + 4) });
    };
    sock.on('data', onData);
    sock.on('close', onClose);
  });
}

const tokens = (v) => (v ?? '').toLowerCase().split(',').map((s) => s.trim()).filter(Boolean);

/** RFC 6455 4.1: what a client's opening handshake must contain. */
export function checkClientRequest(req) {
  const p = [];
  if (req.method !== 'GET') p.push(`method ${req.method} instead of GET`);
  if (req.version !== 'HTTP/1.1') p.push(`${req.version} instead of HTTP/1.1`);
  if (!req.headers.host) p.push('no Host header');
  if (!tokens(req.headers.upgrade).includes('websocket')) p.push(`Upgrade header ${JSON.stringify(req.headers.upgrade)}`);
  if (!tokens(req.headers.connection).includes('upgrade')) p.push(`Connection header ${JSON.stringify(req.headers.connection)}`);
  if (req.headers['sec-websocket-version'] !== '13' || req.counts['sec-websocket-version'] !== 1) p.push(`Sec-WebSocket-Version ${JSON.stringify(req.headers['sec-websocket-version'])}`);
  const key = req.headers['sec-websocket-key'];
  if (!key || req.counts['sec-websocket-key'] !== 1 || !/^[A-Za-z0-9+/]{22}==$/.test(key)) p.push(`Sec-WebSocket-Key ${JSON.stringify(key)} is not base64 of 16 octets`);
  return p;
}

/** The client's first valid permessage-deflate offer: { params: Map, raw } or null. */
export function clientPmdOffer(req) {
  const raw = req.headers['sec-websocket-extensions'];
  if (!raw) return null;
  let exts;
  try {
    exts = F.parseExtensions(raw);
  } catch {
    return { invalid: `unparseable Sec-WebSocket-Extensions ${JSON.stringify(raw)}`, raw };
  }
  for (const e of exts) {
    if (e.name.toLowerCase() !== 'permessage-deflate') continue;
    const params = new Map();
    let bad = null;
    for (const [k0, v] of e.params) {
      const k = k0.toLowerCase();
      if (params.has(k)) bad = `duplicate ${k}`;
      else if (k === 'server_no_context_takeover' || k === 'client_no_context_takeover') { if (v !== null) bad = `${k}=${v}`; }
      else if (k === 'server_max_window_bits') { if (!/^(8|9|1[0-5])$/.test(v ?? '')) bad = `${k}=${v}`; }
      else if (k === 'client_max_window_bits') { if (v !== null && !/^(8|9|1[0-5])$/.test(v)) bad = `${k}=${v}`; }
      else bad = `unknown parameter ${k}`;
      params.set(k, v);
    }
    if (bad) return { invalid: `invalid permessage-deflate offer (${bad}): ${raw}`, raw };
    return { params, raw };
  }
  return null;
}

/**
 * The server's answer to the client's offer. want: { serverNoContextTakeover,
 * clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits,
 * ignoreRequests (omit a requested server_no_context_takeover) }.
 * Returns { header, agreed } or null when the offer cannot carry `want`.
 */
export function pmdResponse(offer, want) {
  const p = offer.params;
  const parts = ['permessage-deflate'];
  const snct = !!want.serverNoContextTakeover || (p.has('server_no_context_takeover') && !want.ignoreRequests);
  const cnct = !!want.clientNoContextTakeover;
  let smwb = want.serverMaxWindowBits;
  if (p.has('server_max_window_bits')) smwb = Math.min(smwb ?? 15, Number(p.get('server_max_window_bits')));
  let cmwb;
  if (want.clientMaxWindowBits !== undefined) {
    if (!p.has('client_max_window_bits')) return null; // not allowed in the response (RFC 7692 7.1.2.2)
    const cap = p.get('client_max_window_bits');
    cmwb = Math.min(want.clientMaxWindowBits, cap === null ? 15 : Number(cap));
  }
  if (snct) parts.push('server_no_context_takeover');
  if (cnct) parts.push('client_no_context_takeover');
  if (smwb !== undefined) parts.push(`server_max_window_bits=${smwb}`);
  if (cmwb !== undefined) parts.push(`client_max_window_bits=${cmwb}`);
  const header = parts.join('; ');
  let clientBits = cmwb ?? 15;
  if (p.get('client_max_window_bits')) clientBits = Math.min(clientBits, Number(p.get('client_max_window_bits')));
  return {
    header,
    agreed: {
      serverNoContextTakeover: snct,
      clientNoContextTakeover: cnct || p.has('client_no_context_takeover'),
      serverMaxWindowBits: smwb ?? 15,
      clientMaxWindowBits: clientBits,
      response: header,
    },
  };
}

/** PmdCodec is written for the client side; the server's view swaps the directions. */
function serverCodec(a) {
  return new F.PmdCodec({
    clientNoContextTakeover: a.serverNoContextTakeover,
    clientMaxWindowBits: a.serverMaxWindowBits,
    serverNoContextTakeover: a.clientNoContextTakeover,
    serverMaxWindowBits: a.clientMaxWindowBits,
  });
}

// ---------------------------------------------------------------------------
// Client-only cases (texts written from this side: "client" is the testee)

const T_ = (r) => ({ ...r, detail: swapRoles(r.detail ?? '') });

/** Answers the upgrade with `response` (string) and watches whether the client opens anyway. */
async function badHandshake(ctx, makeResponse) {
  const { sock, req } = ctx.raw();
  const accept = F.acceptKey(req.headers['sec-websocket-key'] ?? '');
  const got = [];
  let closed = false;
  const w = new C.Client('ws://127.0.0.1/', { T: ctx.T }); // only for waitFor()
  sock.on('data', (d) => { got.push(d); w._notify(); });
  sock.on('end', () => { closed = true; w._notify(); });
  sock.on('close', () => { closed = true; w._notify(); });
  sock.on('error', () => {});
  sock.resume();
  sock.write(makeResponse(accept, req));
  // a client that opened would answer the ping and echo the message
  sock.write(Buffer.concat([F.encodeFrame({ opcode: OP.PING, payload: 'are you open?', mask: false }), F.encodeFrame({ opcode: OP.TEXT, payload: 'echo me', mask: false })]));
  await w.waitFor(() => closed || got.length > 0, ctx.T.fail);
  if (!closed) await w.waitFor(() => closed, 200);
  sock.destroy();
  if (got.length) {
    const frames = [];
    const p = new F.FrameParser((f) => frames.push(f), () => {});
    for (const d of got) p.push(d);
    const what = frames.length ? frames.map((f) => `opcode ${f.opcode}${f.payload.length ? ` "${f.payload.toString('latin1').slice(0, 40)}"` : ''}`).join(', ') : `${Buffer.concat(got).length} octets`;
    return { outcome: 'FAILED', detail: `client opened the connection despite the bad handshake: it sent ${what}` };
  }
  if (!closed) return { outcome: 'FAILED', detail: `client neither failed the connection nor closed TCP within ${ctx.T.fail} ms` };
  return { outcome: 'OK', detail: 'client closed TCP without sending a frame' };
}

const RESP = (lines) => `${lines.join('\r\n')}\r\n\r\n`;
const good101 = (accept, extra = []) => RESP(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, ...extra]);

/** Echo round trips through a connection opened with `connectSpec`. */
async function echoAfterOpen(ctx, connectSpec, messages = [C.TEXT(C.HELLO)]) {
  const c = await ctx.connect(connectSpec);
  await c.waitFor(() => c.observed().length >= messages.length || c.serverGone, c.T.resp);
  if (!c.serverGone) await c.barrier();
  await C.closeCleanly(c);
  return T_(C.judge(c, { expect: { OK: messages }, close: C.CLEAN }));
}

function clientCases(opts) {
  const cases = [];
  const add = (id, desc, run) => cases.push({ id, desc, run, own: true });
  const fr = C.fr;

  // ---- C.1 masking
  add('C.1.1', 'Every client frame is masked, with a fresh masking key per frame (20 echoes and the close)', async (ctx) => {
    const c = await ctx.connect();
    const n = 20;
    let err = null;
    for (let i = 0; i < n && !err; i++) {
      const m = Buffer.from(`message ${i}: ${'*'.repeat(i * 7)}`);
      await c.send(fr(OP.TEXT, m));
      await c.waitFor(() => c.msgCount > i || c.serverGone, c.T.resp);
      if (c.msgCount <= i) err = `no echo for message ${i + 1}`;
    }
    await C.closeCleanly(c);
    const r = T_(C.judge(c, { expect: null, close: C.CLEAN }));
    if (r.outcome === 'FAILED') return r;
    if (err) return { outcome: 'FAILED', detail: err };
    const keys = c.maskKeys.map((k) => k.toString('hex'));
    const distinct = new Set(keys).size;
    if (distinct === 1) return { outcome: 'FAILED', detail: `all ${keys.length} client frames use the same masking key ${keys[0]} (RFC 6455 5.3: a fresh key per frame)` };
    let repeats = 0;
    for (let i = 1; i < keys.length; i++) if (keys[i] === keys[i - 1]) repeats++;
    if (distinct < keys.length) return { outcome: 'NON-STRICT', detail: `${keys.length} frames, only ${distinct} distinct masking keys (${repeats} consecutive repeats): keys look predictable` };
    if (keys.includes('00000000')) return { outcome: 'NON-STRICT', detail: 'a masking key is 00000000' };
    return { outcome: 'OK', detail: `${keys.length} frames, ${distinct} distinct masking keys` };
  });
  const masked = (id, desc, frames, close = C.PROTO) => add(id, desc, async (ctx) => {
    const c = await ctx.connect();
    await c.send(frames);
    if (close.byClient) await c.waitFor(() => c.serverGone, c.T.resp);
    else await c.waitFor(() => c.serverGone, c.T.fail);
    await c.finish();
    return T_(C.judge(c, { expect: { OK: [] }, close }));
  });
  masked('C.1.2', 'Masked text frame from the server: the client fails the connection with 1002', [fr(OP.TEXT, C.HELLO, { mask: true })]);
  masked('C.1.3', 'Masked ping from the server: 1002', [fr(OP.PING, 'masked ping', { mask: true })]);
  masked('C.1.4', 'Unmasked first fragment, masked continuation frame: 1002', [fr(OP.TEXT, 'fragment1', { fin: false }), fr(OP.CONT, 'fragment2', { mask: true })]);
  add('C.1.5', 'Masked close frame from the server: the client fails with 1002 instead of echoing 1000', async (ctx) => {
    const c = await ctx.connect();
    c.closeSent = { auto: false, seq: c.seq };
    await c.write(F.encodeFrame({ opcode: OP.CLOSE, payload: F.closePayload(1000), mask: true }));
    await c.waitFor(() => c.serverGone, c.T.resp);
    await c.finish();
    return T_(C.judge(c, { expect: { OK: [] }, close: { byClient: true, codes: [1002], requireClean: false } }));
  });

  // ---- C.2 opening handshake
  const bad = (id, desc, make) => add(id, `${desc}: the client must fail the connection, not open it`, (ctx) => badHandshake(ctx, make));
  // the Accept for RFC 6455's sample key, not for the client's
  bad('C.2.1', 'Wrong Sec-WebSocket-Accept', () => good101(F.acceptKey('dGhlIHNhbXBsZSBub25jZQ==')));
  bad('C.2.2', 'No Sec-WebSocket-Accept', () => RESP(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade']));
  bad('C.2.3', 'No Upgrade header', (a) => RESP(['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${a}`]));
  bad('C.2.4', 'Upgrade: h2c instead of websocket', (a) => RESP(['HTTP/1.1 101 Switching Protocols', 'Upgrade: h2c', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${a}`]));
  bad('C.2.5', 'No Connection header', (a) => RESP(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', `Sec-WebSocket-Accept: ${a}`]));
  bad('C.2.6', 'Connection: keep-alive (no upgrade token)', (a) => RESP(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: keep-alive', `Sec-WebSocket-Accept: ${a}`]));
  bad('C.2.7', 'HTTP 200 OK with every WebSocket header', (a) => good101(a).replace('101 Switching Protocols', '200 OK'));
  bad('C.2.8', 'HTTP 403 Forbidden', () => RESP(['HTTP/1.1 403 Forbidden', 'Content-Length: 0']));
  bad('C.2.9', 'HTTP 302 redirect to /elsewhere', () => RESP(['HTTP/1.1 302 Found', 'Location: /elsewhere', 'Content-Length: 0']));
  bad('C.2.10', 'Sec-WebSocket-Extensions: x-unknown-extension (never offered)', (a) => good101(a, ['Sec-WebSocket-Extensions: x-unknown-extension']));
  bad('C.2.11', 'Sec-WebSocket-Protocol: chat (the client offered no subprotocol)', (a) => good101(a, ['Sec-WebSocket-Protocol: chat']));
  bad('C.2.12', 'permessage-deflate with server_max_window_bits=7 (invalid, or never offered)', (a) => good101(a, ['Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7']));
  bad('C.2.13', 'permessage-deflate with an unknown parameter', (a) => good101(a, ['Sec-WebSocket-Extensions: permessage-deflate; x_unknown=1']));
  bad('C.2.14', 'Malformed status code ("HTTP/1.1 1O1", a letter O)', (a) => good101(a).replace('HTTP/1.1 101 Switching Protocols', 'HTTP/1.1 1O1 Switching Protocols'));
  add('C.2.15', 'A text frame in the same TCP segment as the 101 response: the client must echo it', (ctx) => echoAfterOpen(ctx, { piggyback: F.encodeFrame({ opcode: OP.TEXT, payload: C.HELLO, mask: false }) }));
  add('C.2.16', 'The 101 response written in 1-octet chops, then a text frame: the client opens and echoes it', (ctx) => echoAfterOpen(ctx, { chopHead: 1, piggyback: F.encodeFrame({ opcode: OP.TEXT, payload: C.HELLO, mask: false }) }));
  add('C.2.17', '"Upgrade: WebSocket", "Connection: keep-alive, Upgrade" (case-insensitive tokens): the client opens and echoes', (ctx) => echoAfterOpen(ctx, { headers: ['Upgrade: WebSocket', 'Connection: keep-alive, Upgrade'], piggyback: F.encodeFrame({ opcode: OP.TEXT, payload: C.HELLO, mask: false }) }));

  bad('C.2.18', 'A 101 response head of 1 MiB (a 1 MiB X-Padding header)', (a) => good101(a, [`X-Padding: ${'x'.repeat(1 << 20)}`]));

  // ---- C.3 permessage-deflate negotiation (only when the client offers it)
  const needOffer = (ctx) => {
    const o = ctx.offer;
    if (o && o.invalid) return { outcome: 'FAILED', detail: `client sent an ${o.invalid}` };
    if (!o) return { outcome: opts.deflate ? 'FAILED' : 'UNIMPLEMENTED', detail: opts.deflate ? 'client started with --deflate offered no permessage-deflate' : 'client offered no permessage-deflate' };
    if (!opts.deflate) return { outcome: 'FAILED', detail: `client offered "${o.raw}" although it was not started with --deflate` };
    return null;
  };
  add('C.3.1', 'Response omits server_no_context_takeover although the client requested it; the server then compresses with context takeover', async (ctx) => {
    const skip = needOffer(ctx);
    if (skip) return skip;
    if (!ctx.offer.params.has('server_no_context_takeover')) return { outcome: 'INFORMATIONAL', detail: `not applicable: the client's offer "${ctx.offer.raw}" does not request server_no_context_takeover` };
    const c = await ctx.connect({ pmd: { ignoreRequests: true } });
    const msgs = Array.from({ length: 5 }, () => Buffer.from('the same message with context takeover, again and again'));
    for (const m of msgs) await c.sendMessage(OP.TEXT, m, { compress: true });
    await c.waitFor(() => c.msgCount >= msgs.length || c.serverGone, c.T.resp);
    if (c.serverGone && !c.msgCount && !c.violations.length) {
      await c.finish();
      return { outcome: 'OK', detail: `client refused the response "${c.pmd.response}" (${swapRoles(C.serverCloseText(c))})` };
    }
    await C.closeCleanly(c);
    const r = T_(C.judge(c, { expect: { OK: msgs.map((m) => C.TEXT(m)) }, close: C.CLEAN }));
    if (r.outcome !== 'OK') return r;
    return { outcome: 'NON-STRICT', detail: `client accepted "${c.pmd.response}" (RFC 7692 7.1.1.1: a server accepts server_no_context_takeover only by echoing it) and inflated context-takeover messages correctly` };
  });
  add('C.3.2', 'Response client_max_window_bits=8: every back-reference of the client must stay within 256 octets', async (ctx) => {
    const skip = needOffer(ctx);
    if (skip) return skip;
    if (!ctx.offer.params.has('client_max_window_bits')) return { outcome: 'INFORMATIONAL', detail: `not applicable: the client's offer "${ctx.offer.raw}" has no client_max_window_bits` };
    // notes are swapped with the rest of the detail: "server" here names the client
    return T_(await C.deflateMix(ctx, { offers: { pmd: { clientMaxWindowBits: 8 } }, requireAccept: true, note: (a) => `server window ${a.clientMaxWindowBits} bits verified` }));
  });

  // ---- C.4 closing the TCP connection
  add('C.4.1', 'The server answers nothing after the closing handshake and keeps TCP open: the client waits for it (RFC 6455 7.1.1), then closes TCP after its own timeout', async (ctx) => {
    const c = await ctx.connect();
    await c.sendClose(1000);
    await c.waitFor(() => c.serverGone, c.T.resp);
    if (!c.closeRecv) {
      await c.finish();
      return T_(C.judge(c, { expect: null, close: C.CLEAN }));
    }
    const t0 = Date.now();
    const patience = ctx.clientCloseTimeout + c.T.fail;
    await c.waitFor(() => c.eof, patience);
    const waited = Date.now() - t0;
    if (!c.eof) {
      c.kill();
      return { outcome: 'FAILED', detail: `client kept the TCP connection open for ${patience} ms after the closing handshake` };
    }
    if (waited < 250) return { outcome: 'NON-STRICT', detail: `client closed TCP ${waited} ms after the closing handshake instead of waiting for the server to close it first` };
    return { outcome: 'OK', detail: `client closed TCP ${waited} ms after the closing handshake` };
  });
  add('C.4.2', 'The server sends a close frame and its FIN in one write: the client closes without a hang or a second close', async (ctx) => {
    const c = await ctx.connect();
    c.closeSent = { auto: false, seq: c.seq };
    c.sock.end(F.encodeFrame({ opcode: OP.CLOSE, payload: F.closePayload(1000, 'bye'), mask: false }));
    await c.waitFor(() => c.eof, c.T.resp);
    if (!c.eof) c.kill();
    if (c.violations.length) return T_(C.judge(c, { expect: null, close: C.CLEAN }));
    if (c.killedByClient) return { outcome: 'FAILED', detail: `client did not close TCP within ${c.T.resp} ms after the server's close and FIN` };
    if (c.closeRecv && c.closeRecv.code !== 1000) return { outcome: 'FAILED', detail: `client answered with close ${c.closeRecv.code} instead of echoing 1000` };
    return { outcome: 'OK', detail: c.closeRecv ? 'client echoed 1000, then closed TCP' : 'client closed TCP' };
  });
  return cases;
}

// ---------------------------------------------------------------------------
// The case list

/** Mirrored 12.x/13.x: the server compresses (corpus messages) and checks the client's compressed echoes. */
function deflateCases(opts) {
  const cases = [];
  const add = (id, desc, run) => cases.push({ id, desc, run, own: true });
  const run = (fn) => async (ctx) => {
    const o = ctx.offer;
    if (o && o.invalid) return { outcome: 'FAILED', detail: `client sent an ${o.invalid}` };
    if (!o) return opts.deflate ? { outcome: 'FAILED', detail: 'client started with --deflate offered no permessage-deflate' } : { outcome: 'UNIMPLEMENTED', detail: 'client offered no permessage-deflate (not started with --deflate)' };
    if (!opts.deflate) return { outcome: 'FAILED', detail: `client offered "${o.raw}" although it was not started with --deflate` };
    return T_(await fn(ctx));
  };
  ['json', 'lena', 'faust', 'html', 'pdf'].forEach((name, gi) => {
    C.MSG_SIZES.forEach(([len, count, frag], i) => {
      add(`12.${gi + 1}.${i + 1}`, `permessage-deflate: server sends ${name} corpus messages of ${len} octets${frag ? `, fragmented to ${frag}` : ''}, compressed; the client echoes`, run((ctx) => C.deflateEcho(ctx, { offers: { pmd: {} }, corpus: C.getCorpus(name), len, count, frag })));
    });
  });
  // Autobahn's fuzzingserver 13.x: the server's response asks the client for
  // no context takeover / a smaller window
  const params13 = [
    {},
    { clientNoContextTakeover: true },
    { clientMaxWindowBits: 9 },
    { clientMaxWindowBits: 15 },
    { clientNoContextTakeover: true, clientMaxWindowBits: 9 },
    { clientNoContextTakeover: true, clientMaxWindowBits: 15 },
    { serverMaxWindowBits: 9 },
  ];
  params13.forEach((want, gi) => {
    const what = Object.entries(want).map(([k, v]) => `${k}=${v}`).join(', ') || 'defaults';
    C.MSG_SIZES.forEach(([len, count, frag], i) => {
      add(`13.${gi + 1}.${i + 1}`, `Response (${what}): json messages of ${len} octets${frag ? `, fragmented to ${frag}` : ''}`, run((ctx) => C.deflateEcho(ctx, { offers: { pmd: want }, corpus: C.getCorpus('json'), len, count, frag })));
    });
  });
  // notes are swapped with the rest of the detail (run() applies T_): "server" there names the client
  for (let w = 9; w <= 15; w++) {
    add(`13.9.${w - 8}`, `Response client_max_window_bits=${w}: every back-reference of the client must stay within ${1 << w} octets`, run((ctx) => C.deflateMix(ctx, { offers: { pmd: { clientMaxWindowBits: w } }, requireAccept: true, note: (a) => `server window ${a.clientMaxWindowBits} bits verified` })));
  }
  for (let w = 9; w <= 15; w++) {
    add(`13.10.${w - 8}`, `Response server_max_window_bits=${w}: the server compresses with a ${w}-bit window and context takeover where allowed`, run((ctx) => C.deflateMix(ctx, { offers: { pmd: { serverMaxWindowBits: w } }, requireAccept: true, note: (a) => `client window ${a.serverMaxWindowBits} bits` })));
  }
  return cases;
}

/** Every case the fuzzing server plays, in order. */
export function buildClientCases(opts = {}) {
  const out = [];
  for (const cs of C.buildCases()) {
    if (/^1[23]\./.test(cs.id)) continue; // mirrored in deflateCases()
    if (cs.splitPayload) {
      const p = cs.splitPayload;
      for (let i = 1; i <= p.length; i++) {
        out.push({ id: `${cs.id}.${i}`, desc: `${cs.desc}: split after octet ${i} of ${p.length}`, run: (ctx) => C.utf8SplitAt(ctx, p, i) });
      }
      continue;
    }
    out.push(cs);
  }
  return [...out, ...deflateCases(opts), ...clientCases(opts)];
}

// ---------------------------------------------------------------------------
// The server

export class FuzzingServer {
  /**
   * opts: maxMessage, deflate (how the testee is configured), cases (filter),
   * full, deflateBudget, deflateCount, timeoutScale, onResult(result),
   * tls ({ cert, key }: PEM text; the server listens for wss://).
   */
  constructor(opts = {}) {
    this.opts = opts;
    const scale = opts.timeoutScale ?? 1;
    this.T = Object.fromEntries(Object.entries(C.DEFAULT_TIMEOUTS).map(([k, v]) => [k, Math.round(v * scale)]));
    this.scale = scale;
    const match = caseFilter(opts.cases);
    this.cases = buildClientCases(opts).filter((c) => match(c.id));
    this.results = new Map(); // case index -> result
    this.sockets = new Set();
    this.reportsUpdated = new Promise((res) => { this._reportsUpdated = res; });
    this.scheme = opts.tls ? 'wss' : 'ws';
    // Over TLS the cases see the decrypted stream: sock.end() is close_notify
    // then FIN, and a client's FIN (with or without close_notify) is 'end'.
    this.server = opts.tls
      ? tls.createServer({ cert: opts.tls.cert, key: opts.tls.key }, (s) => this._onConnection(s))
      : net.createServer((s) => this._onConnection(s));
    this.server.on('tlsClientError', () => {}); // a client that gave up during the TLS handshake
  }

  listen(port = 0, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const a = this.server.address();
        this.url = `${this.scheme}://${host}:${a.port}`;
        resolve(this.url);
      });
    });
  }

  close() {
    for (const s of this.sockets) s.destroy();
    return new Promise((res) => this.server.close(() => res()));
  }

  /** Results in case order; cases the client never ran are FAILED. */
  report() {
    return this.cases.map((cs, i) => this.results.get(i + 1) ?? { id: cs.id, desc: cs.desc, outcome: 'FAILED', detail: 'the client never ran this case', ms: 0 });
  }

  async _onConnection(sock) {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    sock.setNoDelay(true);
    let head;
    try {
      head = await readHead(sock, this.T.handshake);
    } catch {
      sock.destroy();
      return;
    }
    const { req, rest } = head;
    const url = new URL(req.target, 'http://fuzzing.invalid');
    const problems = checkClientRequest(req);
    if (url.pathname === '/getCaseCount' || url.pathname === '/updateReports') {
      const c = this._open(sock, req, rest, null);
      if (url.pathname === '/getCaseCount') await c.send({ opcode: OP.TEXT, payload: String(this.cases.length) });
      await C.closeCleanly(c);
      if (url.pathname === '/updateReports') this._reportsUpdated({ agent: url.searchParams.get('agent'), problems });
      return;
    }
    if (url.pathname !== '/runCase') {
      sock.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const n = Number(url.searchParams.get('case'));
    const cs = this.cases[n - 1];
    if (!Number.isInteger(n) || !cs) {
      sock.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    await this._runCase(n, cs, sock, req, rest, problems);
  }

  /** The 101 (with deflate as `spec.pmd` asks) and a Peer on the socket. */
  _open(sock, req, rest, spec) {
    const c = new Peer(sock, this.T);
    const offer = clientPmdOffer(req);
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${F.acceptKey(req.headers['sec-websocket-key'] ?? '')}`];
    if (spec && spec.headers) {
      lines.splice(1, 2, ...spec.headers);
    }
    c.offers = [{ raw: offer?.raw ?? '(no offer)' }];
    if (spec && spec.pmd && offer && !offer.invalid) {
      const r = pmdResponse(offer, spec.pmd);
      if (r) {
        lines.push(`Sec-WebSocket-Extensions: ${r.header}`);
        c.pmd = r.agreed;
        c.codec = serverCodec(r.agreed);
      }
    }
    c._attach(rest);
    sock.resume();
    const headBuf = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    const all = spec && spec.piggyback ? Buffer.concat([headBuf, spec.piggyback]) : headBuf;
    if (spec && spec.chopHead) {
      // write the head in pieces, then the frames; each write is its own segment (no delay)
      (async () => {
        for (let i = 0; i < headBuf.length; i += spec.chopHead) await c.write(headBuf.subarray(i, i + spec.chopHead));
        if (spec.piggyback) await c.write(spec.piggyback);
      })();
    } else {
      c.write(all);
    }
    return c;
  }

  async _runCase(n, cs, sock, req, rest, problems) {
    const t0 = process.hrtime.bigint();
    let peer = null;
    let rawUsed = false;
    const server = this;
    const ctx = {
      url: this.url,
      maxMessage: this.opts.maxMessage ?? DEFAULT_MAX_MESSAGE,
      deflate: !!this.opts.deflate,
      full: !!this.opts.full,
      deflateBudget: this.opts.deflateBudget ?? 256 * 1024,
      deflateCount: this.opts.deflateCount ?? 200,
      T: this.T,
      // how long the testee waits for the server to close TCP (plume's Options::close_timeout)
      clientCloseTimeout: this.opts.clientCloseTimeout ?? 5000,
      request: req,
      offer: clientPmdOffer(req),
      async connect(spec = null) {
        if (peer || rawUsed) throw new Error('the case opened a second connection; each case of the fuzzing server gets exactly one');
        peer = server._open(sock, req, rest, Array.isArray(spec) ? null : spec);
        return peer;
      },
      raw() {
        if (peer || rawUsed) throw new Error('the case opened a second connection');
        rawUsed = true;
        return { sock, req, rest };
      },
    };
    let r;
    let timer;
    const limit = (/^9\./.test(cs.id) ? 180000 : /^1[23]\./.test(cs.id) && ctx.full ? 600000 : 120000) * this.scale;
    try {
      r = await Promise.race([
        cs.run(ctx),
        new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`case did not finish within ${limit / 1000} s`)), limit); }),
      ]);
      if (!cs.own) r = T_(r);
    } catch (e) {
      r = { outcome: 'FAILED', detail: `${e.message}${!/did not finish/.test(e.message) ? ` (harness: ${e.stack.split('\n')[1]?.trim()})` : ''}` };
    } finally {
      clearTimeout(timer);
      if (peer && !peer.eof) peer.kill();
      if (!sock.destroyed) sock.destroy();
    }
    if (problems.length && r.outcome !== 'FAILED') r = { outcome: 'FAILED', detail: `opening handshake request: ${problems.join('; ')}` };
    const res = { id: cs.id, desc: cs.desc, outcome: r.outcome, detail: r.detail || '', ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    this.results.set(n, res);
    if (this.opts.onResult) this.opts.onResult(res);
  }
}

/**
 * Run a testee binary against a fresh fuzzing server (over TLS with opts.tls;
 * opts.caFile is then passed to the testee as --ca-file). Resolves
 * { results, exit, output } once the testee exits (or is killed after
 * `timeout` ms without finishing).
 */
export async function runTestee(bin, { args = [], timeout = 1800000, env = process.env, ...opts } = {}) {
  const fs = new FuzzingServer(opts);
  const url = await fs.listen(0, '127.0.0.1');
  const argv = ['--url', url, ...(opts.caFile ? ['--ca-file', opts.caFile] : []), ...args];
  if (opts.deflate) argv.push('--deflate');
  if (opts.maxMessage) argv.push('--max-message', String(opts.maxMessage));
  const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const output = keepOutput(proc);
  let timer;
  const exit = await new Promise((resolve) => {
    timer = setTimeout(() => { proc.kill('SIGKILL'); }, timeout);
    proc.once('error', (e) => resolve({ code: null, signal: null, error: e.message }));
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  let reports = null;
  fs.reportsUpdated.then((r) => { reports = r; });
  await new Promise((res) => setImmediate(res));
  await fs.close();
  return { url, argv, results: fs.report(), exit, reports, output };
}

function parseArgs(argv) {
  const o = { clientArgs: [] };
  parseArgv(argv, (a, val) => {
    switch (a) {
      case '--bin': o.bin = val(); break;
      case '--port': o.port = Number(val()); break;
      case '--max-message': o.maxMessage = Number(val()); break;
      case '--deflate': o.deflate = true; break;
      case '--cases': o.cases = val(); break;
      case '--full': o.full = true; break;
      case '--timeout-scale': o.timeoutScale = Number(val()); break;
      case '--client-arg': o.clientArgs.push(val()); break;
      case '--tls-cert': o.tlsCert = val(); break;
      case '--tls-key': o.tlsKey = val(); break;
      case '--verbose': case '-v': o.verbose = true; break;
      case '--list': o.list = true; break;
      case '-h': case '--help': o.help = true; break;
      default: return false;
    }
  });
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.help) {
    console.log('usage: fuzzing_server.mjs (--bin ECHO_CLIENT | --port N) [--deflate] [--max-message N] [--cases LIST] [--timeout-scale X] [--client-arg ARG] [--tls-cert PEM --tls-key PEM] [--verbose] [--list]');
    return;
  }
  if (o.list) {
    for (const c of new FuzzingServer(o).cases) console.log(`${c.id}  ${c.desc}`);
    return;
  }
  if (o.tlsCert || o.tlsKey) {
    o.tls = { cert: fsys.readFileSync(o.tlsCert), key: fsys.readFileSync(o.tlsKey) };
    o.caFile = o.tlsCert; // self-signed (scripts/make-cert.sh): the certificate is its own CA
  }
  const onResult = (r) => console.log(formatLine(r, o.verbose));
  let results;
  if (o.bin) {
    const run = await runTestee(o.bin, { ...o, args: o.clientArgs, onResult });
    console.log(`# testee ${o.bin} ${run.argv.join(' ')} exited with ${run.exit.code ?? run.exit.signal}`);
    results = run.results;
    if (run.exit.code !== 0) console.log(run.output().split('\n').slice(-20).join('\n'));
  } else {
    const fs = new FuzzingServer({ ...o, onResult });
    const url = await fs.listen(o.port ?? 9001, '127.0.0.1');
    console.log(`fuzzing server listening on ${url} (${fs.cases.length} cases); waiting for /updateReports`);
    await fs.reportsUpdated;
    results = fs.report();
    await fs.close();
  }
  const s = summarize(results);
  console.log(s.text);
  process.exitCode = s.total.FAILED ? 1 : 0;
}

runIfMain(import.meta.url, main);
