// RFC 6455 / RFC 7692 conformance cases, modelled on the Autobahn|Testsuite
// fuzzingclient (crossbario/autobahn-testsuite, autobahntestsuite/case/*.py).
//
// Case numbering follows Autobahn: 1.1.1-1.2.8, 2.1-2.11, 3.1-3.7, 4.1.1-4.2.5,
// 5.1-5.20, 6.1.1-6.23.7, 7.1.1-7.13.2, 9.1.1-9.8.6, 12.1.1-12.5.18,
// 13.1.1-13.7.18, with the same payloads. Additions (not in Autobahn) are:
//   6.x.y-split  the 6.x.y UTF-8 sequence sent as two fragments, split at every
//                octet position; for invalid sequences each split runs on its
//                own connection and also measures fail-fast (see below)
//   9.9.x        limits around --max-message (oversized frames, lying lengths)
//   13.8.x       plain "permessage-deflate" offer (client uses context takeover)
//   13.9.x       client_max_window_bits=9..15
//   13.10.x      server_max_window_bits=9..15 (window use verified octet-exact)
//   13.11.x      RFC 7692 section 7.2.3 wire examples and deflate error cases
//   13.12.x      invalid offers the server must decline (RFC 7692 section 5)
//
// Outcomes use Autobahn's meaning: OK; NON-STRICT (legal but not the preferred
// behaviour, e.g. invalid UTF-8 rejected only once the whole message arrived);
// INFORMATIONAL (behaviour not defined by the RFC, reported only);
// UNIMPLEMENTED (optional feature not offered: permessage-deflate declined);
// FAILED.
//
// Judging (Autobahn's rules, see Case.onConnectionLost):
//   - the events received (messages, pongs, pings) must equal one of the
//     expected lists exactly, octet for octet;
//   - for "fail the connection" cases the server must close with one of the
//     expected codes or at least drop TCP; if it does nothing it FAILS; a close
//     frame without a status code counts as a wrong code here (stricter than
//     Autobahn, which accepts an empty close);
//   - for normal cases the closing handshake must complete: the server answers
//     our close (with 1000/the echoed code or no code) and then closes TCP;
//   - every server frame is checked: unmasked, RSV bits only as negotiated,
//     known opcodes, minimal length encoding, control frames <= 125 octets and
//     unfragmented, valid UTF-8 in text messages and close reasons, valid close
//     codes, nothing after the server's close frame.
//
// No fixed sleeps: Autobahn's "wait 1 s, then look" steps are replaced by
// events. To see what the server sent in reply to some traffic we send a ping
// afterwards and wait for its pong (servers process frames in order). To test
// fail-fast on invalid UTF-8 across frames we send the offending fragment
// followed by a ping: a fail-fast server closes instead of answering the ping.
// Only 6.4.3/6.4.4 (invalid UTF-8 in the middle of one frame, where no ping
// can be inserted) wait a bounded time (--failfast-wait) for the close.

import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import * as F from './frames.mjs';

const { OP, bytes, toBuf, repeatTo } = F;
const EMPTY = Buffer.alloc(0);

export const OUTCOMES = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED'];
const RANK = { OK: 0, UNIMPLEMENTED: 1, INFORMATIONAL: 1, 'NON-STRICT': 2, FAILED: 3 };
export const worst = (a, b) => (RANK[b] > RANK[a] ? b : a);

export const DEFAULT_TIMEOUTS = Object.freeze({
  handshake: 5000, // opening handshake
  resp: 5000,      // an expected echo / pong / close reply
  fail: 3000,      // the server failing the connection
  eof: 2000,       // TCP close after the closing handshake
  failfast: 500,   // 6.4.3/6.4.4 only: how long to wait for a mid-frame fail-fast
});

export class HandshakeError extends Error {}

// ---------------------------------------------------------------------------
// A raw WebSocket client connection

export class Client {
  constructor(url, { offers = null, T = DEFAULT_TIMEOUTS } = {}) {
    const u = new URL(url);
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    // wss://: the same bytes inside TLS (the server's certificate is not
    // checked: the suite tests WebSocket, and the tests make their own).
    this.secure = u.protocol === 'wss:';
    this.port = Number(u.port || (this.secure ? 443 : 80));
    this.path = (u.pathname || '/') + (u.search || '');
    this.hostHeader = u.host;
    this.offers = offers;
    this.T = T;
    this.log = [];
    this.seq = 0;
    this.violations = [];
    this.waiters = [];
    this.closeSent = null;
    this.closeRecv = null;
    this.eof = false;
    this.eofBy = null;
    this.killedByClient = false;
    this.droppedByClient = false;
    this.msg = null;
    this.msgCount = 0;
    this.lastMsg = null;
    this.pmd = null;
    this.codec = null;
    this.barrierSeq = 0;
    this.allowedCloseCodes = [];
    this.response = null;
    this.sock = null;
    this.keepData = true;
    // This end masks what it sends and expects the peer's frames unmasked
    // (the fuzzing server for client testees flips both: see fuzzing_server.mjs).
    this.mask = true;
    this.expectMasked = false;
  }

  open(timeout = this.T.handshake) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const sock = this.secure
        ? tls.connect({ host: this.host, port: this.port, rejectUnauthorized: false })
        : net.connect({ host: this.host, port: this.port });
      this.sock = sock;
      sock.setNoDelay(true);
      let buf = EMPTY;
      let done = false;
      const fail = (msg) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        this.eof = true;
        reject(new HandshakeError(msg));
      };
      const timer = setTimeout(() => fail(`no handshake response within ${timeout} ms`), timeout);
      sock.on(this.secure ? 'secureConnect' : 'connect', () => {
        const lines = [
          `GET ${this.path} HTTP/1.1`,
          `Host: ${this.hostHeader}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${key}`,
          'Sec-WebSocket-Version: 13',
        ];
        if (this.offers && this.offers.length) lines.push(`Sec-WebSocket-Extensions: ${this.offers.map(F.formatOffer).join(', ')}`);
        sock.write(lines.join('\r\n') + '\r\n\r\n');
      });
      const onData = (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length > 65536) fail('handshake response header larger than 64 KiB');
          return;
        }
        sock.removeListener('data', onData);
        const head = buf.subarray(0, end).toString('latin1');
        const rest = buf.subarray(end + 4);
        const [statusLine, ...hl] = head.split('\r\n');
        const headers = {};
        for (const l of hl) {
          const i = l.indexOf(':');
          if (i <= 0) continue;
          const k = l.slice(0, i).trim().toLowerCase();
          const v = l.slice(i + 1).trim();
          headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
        }
        const m = /^HTTP\/1\.1 (\d{3})(?: |$)/.exec(statusLine);
        this.response = { status: m ? Number(m[1]) : 0, statusLine, headers };
        if (!m || m[1] !== '101') return fail(`server answered "${statusLine}" instead of 101 Switching Protocols`);
        if ((headers.upgrade || '').toLowerCase() !== 'websocket') return fail(`bad Upgrade header ${JSON.stringify(headers.upgrade)}`);
        if (!(headers.connection || '').toLowerCase().split(',').map((s) => s.trim()).includes('upgrade')) return fail(`bad Connection header ${JSON.stringify(headers.connection)}`);
        if (headers['sec-websocket-accept'] !== F.acceptKey(key)) return fail(`wrong Sec-WebSocket-Accept ${JSON.stringify(headers['sec-websocket-accept'])}`);
        if (headers['sec-websocket-protocol'] !== undefined) return fail('server selected a subprotocol although none was requested');
        const ext = headers['sec-websocket-extensions'];
        if (ext !== undefined) {
          if (!this.offers || !this.offers.length) return fail(`server sent "Sec-WebSocket-Extensions: ${ext}" although no extension was offered`);
          const v = F.validatePmdResponse(this.offers, ext);
          if (!v.ok) return fail(`invalid permessage-deflate negotiation: ${v.error}`);
          if (v.agreed) {
            this.pmd = v.agreed;
            this.codec = new F.PmdCodec(v.agreed);
          }
        }
        done = true;
        clearTimeout(timer);
        this._attach(rest);
        resolve(this);
      };
      sock.on('data', onData);
      sock.on('error', (e) => fail(`socket error during the opening handshake: ${e.code || e.message}`));
      sock.on('close', () => fail('connection closed during the opening handshake'));
    });
  }

  _attach(rest) {
    this.parser = new F.FrameParser((f) => this._onFrame(f), (e) => this._violation(e));
    this.sock.on('data', (d) => this.parser.push(d));
    this.sock.on('end', () => this._onEof());
    this.sock.on('close', () => this._onEof());
    this.sock.on('error', (e) => { this.sockError = e.code || e.message; });
    if (rest.length) this.parser.push(rest);
  }

  _push(ev) {
    ev.seq = ++this.seq;
    this.log.push(ev);
    this._notify();
  }

  _notify() {
    if (this.waiters.length === 0) return;
    for (const w of [...this.waiters]) {
      if (w.pred()) {
        clearTimeout(w.timer);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(true);
      }
    }
  }

  _violation(msg) {
    if (this.violations.length < 8 && !this.violations.includes(msg)) this.violations.push(msg);
    // like any client, fail the connection on a protocol error (the case is FAILED anyway)
    if (this.parser) this.parser.dead = true;
    this.kill();
  }

  _onEof() {
    if (this.eof) return;
    this.eof = true;
    this.eofBy = this.killedByClient ? 'client' : 'server';
    this._push({ t: 'eof' });
  }

  _onFrame(f) {
    const op = f.opcode;
    if (this.closeRecv) {
      this._violation(`server sent a frame (opcode ${op}) after its close frame`);
      return;
    }
    if (f.masked !== this.expectMasked) this._violation(`server frame (opcode ${op}) is ${f.masked ? 'masked' : 'not masked'}`);
    if (!f.minimal) this._violation(`server frame (opcode ${op}) uses a non-minimal ${f.lengthForm}-bit length for ${f.length} octets`);
    const dataStart = op === OP.TEXT || op === OP.BINARY;
    const allowedRsv = this.pmd && dataStart ? 4 : 0;
    if (f.rsv & ~allowedRsv) this._violation(`server frame (opcode ${op}) has RSV bits 0x${(f.rsv << 4).toString(16)} set${this.pmd ? '' : ' without a negotiated extension'}`);
    if (op >= 8) {
      if (!f.fin) this._violation(`server sent a fragmented control frame (opcode ${op})`);
      if (f.length > 125) this._violation(`server sent a control frame (opcode ${op}) with ${f.length} > 125 octets`);
    }
    switch (op) {
      case OP.PING:
        this._push({ t: 'ping', data: f.payload });
        if (!this.closeSent && !this.eof) this.write(F.encodeFrame({ opcode: OP.PONG, payload: f.payload, mask: this.mask }));
        return;
      case OP.PONG: {
        const barrier = f.payload.length > 0 && f.payload.toString('latin1').startsWith('conformance-barrier-');
        this._push({ t: 'pong', data: f.payload, barrier });
        return;
      }
      case OP.CLOSE: {
        let code = null;
        let reason = EMPTY;
        if (f.payload.length === 1) this._violation('server close frame has a 1-octet payload');
        if (f.payload.length >= 2) {
          code = f.payload.readUInt16BE(0);
          reason = f.payload.subarray(2);
          if (!F.isValidWireCloseCode(code) && !this.allowedCloseCodes.includes(code)) this._violation(`server sent close code ${code}, which must not be used on the wire`);
          if (!F.isValidUtf8(reason)) this._violation('server close reason is not valid UTF-8');
        }
        const ev = { t: 'close', code, reason: reason.toString('utf8') };
        this.closeRecv = ev;
        if (!this.closeSent && !this.eof) {
          // answer the close (echoing the code, as Autobahn does)
          this.closeSent = { auto: true, seq: this.seq };
          this.write(F.encodeFrame({ opcode: OP.CLOSE, payload: code === null ? EMPTY : F.closePayload(code), mask: this.mask }));
        }
        this._push(ev);
        return;
      }
      case OP.TEXT:
      case OP.BINARY:
        if (this.msg) this._violation(`server started a new data frame (opcode ${op}) inside a fragmented message`);
        this.msg = { opcode: op, compressed: (f.rsv & 4) !== 0 && !!this.pmd, parts: [f.payload], frames: 1, size: f.length };
        break;
      case OP.CONT:
        if (!this.msg) {
          this._violation('server sent a continuation frame without a message in progress');
          return;
        }
        this.msg.parts.push(f.payload);
        this.msg.frames++;
        this.msg.size += f.length;
        break;
      default:
        this._violation(`server sent a frame with reserved opcode ${op}`);
        return;
    }
    if (!f.fin) return;
    const m = this.msg;
    this.msg = null;
    let data = m.parts.length === 1 ? m.parts[0] : Buffer.concat(m.parts, m.size);
    let wire = data.length;
    if (m.compressed) {
      try {
        data = this.codec.decompress(data);
      } catch (e) {
        this._violation(`server compressed message cannot be decompressed: ${e.message}`);
        return;
      }
    }
    if (m.opcode === OP.TEXT && !F.isValidUtf8(data)) this._violation('server sent a text message that is not valid UTF-8');
    this.msgCount++;
    const ev = { t: 'message', opcode: m.opcode, data, frames: m.frames, compressed: m.compressed, wire };
    this.lastMsg = ev;
    this._push(ev);
    if (!this.keepData) ev.data = { length: data.length, equals: () => false };
    this.lastData = data;
  }

  // --- sending ---------------------------------------------------------------

  get serverGone() {
    return !!this.closeRecv || this.eof;
  }

  write(buf) {
    const s = this.sock;
    if (!s || s.destroyed || this.eof || s.writableEnded) return Promise.resolve(false);
    return new Promise((res) => {
      try {
        s.write(buf, (err) => res(!err));
      } catch {
        res(false);
      }
    });
  }

  async writeChopped(buf, size) {
    for (let off = 0; off < buf.length; off += size) {
      if (this.serverGone) return false;
      if (!(await this.write(buf.subarray(off, off + size)))) return false;
    }
    return true;
  }

  /**
   * Send frames (specs for F.encodeFrame, or ready Buffers).
   *   default    all frames in one write ("one chop")
   *   sync:true  one write per frame, each awaited ("frame-wise chops")
   *   chop:n     every frame written in pieces of n octets ("octet-wise chops")
   */
  async send(frames, { sync = false, chop = 0 } = {}) {
    const list = Array.isArray(frames) ? frames : [frames];
    const bufs = list.map((f) => (Buffer.isBuffer(f) ? f : F.encodeFrame({ mask: this.mask, ...f })));
    if (!sync && !chop) return this.write(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
    for (const b of bufs) {
      if (this.serverGone) return false;
      if (chop) {
        if (!(await this.writeChopped(b, chop))) return false;
      } else if (!(await this.write(b))) return false;
    }
    return true;
  }

  /** Send a whole message, optionally fragmented and/or compressed. */
  async sendMessage(opcode, payload, { fragmentSize = 0, compress = false, sync = false, chop = 0 } = {}) {
    let p = toBuf(payload);
    let rsv = 0;
    if (compress) {
      p = this.codec.compress(p);
      rsv = 4;
    }
    return this.send(F.fragmentMessage(opcode, p, fragmentSize, { rsvFirst: rsv }), { sync, chop });
  }

  /** Start the closing handshake (marks the connection as closed by us). */
  async sendClose(code, reason, opts) {
    return this.sendCloseRaw(F.closePayload(code, reason), opts);
  }

  async sendCloseRaw(payload, { chop = 0 } = {}) {
    if (!this.closeSent) this.closeSent = { auto: false, seq: this.seq };
    return this.send({ opcode: OP.CLOSE, payload }, { chop });
  }

  // --- waiting ---------------------------------------------------------------

  waitFor(pred, timeout) {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, timeout);
      this.waiters.push(w);
    });
  }

  /** Ping with a unique payload and wait for its pong (or the server closing). */
  async barrier(timeout = this.T.resp) {
    const id = `conformance-barrier-${++this.barrierSeq}`;
    await this.send({ opcode: OP.PING, payload: id });
    const got = () => this.log.some((e) => e.t === 'pong' && e.barrier && e.data.toString('latin1') === id);
    const ok = await this.waitFor(() => got() || this.serverGone, timeout);
    return got() ? 'pong' : ok ? 'closed' : 'timeout';
  }

  /** Events the case is judged on: messages, pings and (non-barrier) pongs before the server's close. */
  observed() {
    const lim = this.closeRecv ? this.closeRecv.seq : Infinity;
    return this.log.filter((e) => e.seq < lim && (e.t === 'message' || e.t === 'ping' || (e.t === 'pong' && !e.barrier)));
  }

  get closedByMe() {
    if (this.closeSent && !this.closeSent.auto) return true;
    return this.killedByClient && !this.closeRecv;
  }

  /** After close frames were exchanged: wait for the server to close TCP; otherwise drop it. */
  async finish() {
    if (this.eof) return;
    if (this.closeRecv || this.closeSent) {
      await this.waitFor(() => this.eof, this.T.eof);
      if (!this.eof) {
        this.droppedByClient = true;
        this.kill();
      }
    } else {
      this.kill();
    }
  }

  kill() {
    if (!this.eof) this.killedByClient = true;
    if (this.sock && !this.sock.destroyed) this.sock.destroy();
    this._onEof();
  }
}

// ---------------------------------------------------------------------------
// Judging

const msg = (opcode, data) => ({ t: 'message', opcode, data: toBuf(data) });
const TEXT = (d) => msg(OP.TEXT, d);
const BIN = (d) => msg(OP.BINARY, d);
const PONG = (d) => ({ t: 'pong', data: toBuf(d) });

function eventsMatch(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].t !== b[i].t) return false;
    if (a[i].t === 'message' && a[i].opcode !== b[i].opcode) return false;
    if (a[i].data.length !== b[i].data.length || !a[i].data.equals(b[i].data)) return false;
  }
  return true;
}

function preview(buf) {
  if (!buf || buf.length === undefined) return '';
  if (buf.length === 0) return '';
  if (buf.length > 24) return ` ${buf.length} octets`;
  const s = buf.toString('latin1');
  return /^[\x20-\x7e]*$/.test(s) ? ` "${s}"` : ` 0x${buf.toString('hex')}`;
}

function describe(events) {
  if (!events.length) return 'nothing';
  return events.map((e) => {
    if (e.t === 'message') return `${e.opcode === OP.TEXT ? 'text' : 'binary'}${preview(e.data)}${e.data.length === 0 ? ' (empty)' : ''}`;
    return `${e.t}${preview(e.data)}`;
  }).join(', ');
}

const serverCloseText = (c) => {
  if (c.closeRecv) return c.closeRecv.code === null ? 'a close frame without status code' : `close ${c.closeRecv.code}${c.closeRecv.reason ? ` "${c.closeRecv.reason.slice(0, 60)}"` : ''}`;
  if (c.eofBy === 'server') return 'a TCP close without close frame';
  return 'no close';
};

/**
 * close: { byClient, codes, requireClean }
 * Returns null if the close behaviour is right, else a description.
 */
function judgeClose(c, close) {
  const T = c.T;
  if (close.byClient !== c.closedByMe) {
    if (!close.byClient) return `server did not fail the connection (expected close ${close.codes.join('/')} or a TCP drop within ${T.fail} ms)`;
    return `server closed the connection itself (${serverCloseText(c)}) where a clean, client-initiated close was expected`;
  }
  if (c.closeRecv) {
    const code = c.closeRecv.code;
    if (code === null) {
      if (!close.codes.includes(1000)) return `server sent a close frame without status code; expected ${close.codes.join(' or ')}`;
    } else if (!close.codes.includes(code)) {
      return `server closed with ${code}${c.closeRecv.reason ? ` ("${c.closeRecv.reason.slice(0, 60)}")` : ''} instead of ${close.codes.join(' or ')}`;
    }
  }
  if (c.killedByClient) {
    if (c.closeRecv) return `server did not close the TCP connection within ${T.eof} ms after the closing handshake`;
    return `server neither answered our close frame nor closed the TCP connection`;
  }
  if (close.requireClean && !c.closeRecv) return `server dropped TCP without answering the close frame`;
  return null;
}

function judge(c, { expect = { OK: [] }, close, failNote }) {
  if (c.violations.length) return { outcome: 'FAILED', detail: `protocol violation by the server: ${c.violations.join('; ')}` };
  let behavior = 'FAILED';
  const obs = expect ? c.observed() : [];
  if (expect) {
    for (const k of ['OK', 'NON-STRICT', 'INFORMATIONAL']) {
      if (expect[k] && eventsMatch(obs, expect[k])) { behavior = k; break; }
    }
  } else behavior = 'OK';
  const closeErr = judgeClose(c, close);
  const problems = [];
  if (closeErr) problems.push(closeErr);
  if (behavior === 'FAILED') problems.push(`expected to receive ${describe(expect.OK)}, got ${describe(obs)}`);
  if (problems.length) return { outcome: 'FAILED', detail: (failNote ? failNote + ': ' : '') + problems.join('; ') };
  if (behavior === 'NON-STRICT') return { outcome: behavior, detail: expect.nonStrictNote || `received ${describe(obs)} (Autobahn's non-strict alternative)` };
  // for anything but a plain 1000 close, say what the server did (shown with --verbose)
  const plain = close.byClient && close.codes.length === 1 && close.codes[0] === 1000;
  return { outcome: behavior, detail: plain ? '' : `server: ${serverCloseText(c)}` };
}

const CLEAN = { byClient: true, codes: [1000], requireClean: true };
const FAIL = (...codes) => ({ byClient: false, codes, requireClean: false });
const PROTO = FAIL(1002);

function maxLen(expect) {
  return Math.max(0, ...Object.values(expect).filter(Array.isArray).map((l) => l.length));
}

/**
 * Autobahn's standard case shape: send some traffic, then
 *  - byClient: wait for the expected events, check for extras with a ping
 *    barrier, close with 1000 and expect a clean closing handshake;
 *  - otherwise: wait for the server to fail the connection.
 */
async function standard(ctx, { offers = null, send, expect = { OK: [] }, close = CLEAN, waitMs, setup }) {
  const c = await ctx.connect(offers);
  if (setup) setup(c);
  await send(c);
  const T = c.T;
  if (close.byClient) {
    const n = maxLen(expect);
    await c.waitFor(() => c.observed().length >= n || c.serverGone, waitMs ?? T.resp);
    if (!c.closeSent && !c.serverGone) await c.barrier();
    if (!c.closeSent && !c.serverGone) await c.sendClose(1000);
    await c.waitFor(() => c.serverGone, T.resp);
  } else {
    await c.waitFor(() => c.serverGone, waitMs ?? T.fail);
  }
  await c.finish();
  return judge(c, { expect, close });
}

// ---------------------------------------------------------------------------
// Case table

const HELLO = 'Hello, world!';
const KOSME = bytes('\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5');
const BAD_UTF8 = bytes('\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64');
const fr = (opcode, payload, extra = {}) => ({ opcode, payload: toBuf(payload), ...extra });

/** Autobahn's UTF-8 test sequences (case6_x_x.py createUtf8TestSequences), groups 6.5 .. 6.23. */
export function utf8TestSequences() {
  const seqs = [];
  const add = (title, list) => seqs.push([title, list.map(([v, s]) => [v, typeof s === 'string' ? bytes(s) : s])]);
  add('Some valid UTF-8 sequences', [[true, 'hello\x24world'], [true, 'hello\xC2\xA2world'], [true, 'hello\xE2\x82\xACworld'], [true, 'hello\xF0\xA4\xAD\xA2world'], [true, KOSME]]);
  const pre = [];
  for (let i = 1; i <= KOSME.length; i++) pre.push([F.utf8Scan(KOSME.subarray(0, i)).valid, KOSME.subarray(0, i)]);
  add('All prefixes of a valid UTF-8 string that contains multi-byte code points', pre);
  add('First possible sequence of a certain length', [[true, '\x00'], [true, '\xc2\x80'], [true, '\xe0\xa0\x80'], [true, '\xf0\x90\x80\x80']]);
  add('First possible sequence length 5/6 (invalid codepoints)', [[false, '\xf8\x88\x80\x80\x80'], [false, '\xfc\x84\x80\x80\x80\x80']]);
  add('Last possible sequence of a certain length', [[true, '\x7f'], [true, '\xdf\xbf'], [true, '\xef\xbf\xbf'], [true, '\xf4\x8f\xbf\xbf']]);
  add('Last possible sequence length 4/5/6 (invalid codepoints)', [[false, '\xf7\xbf\xbf\xbf'], [false, '\xfb\xbf\xbf\xbf\xbf'], [false, '\xfd\xbf\xbf\xbf\xbf\xbf']]);
  add('Other boundary conditions', [[true, '\xed\x9f\xbf'], [true, '\xee\x80\x80'], [true, '\xef\xbf\xbd'], [true, '\xf4\x8f\xbf\xbf'], [false, '\xf4\x90\x80\x80']]);
  let s = '';
  for (let i = 0x80; i < 0xbf; i++) s += String.fromCharCode(i);
  add('Unexpected continuation bytes', [[false, '\x80'], [false, '\xbf'], [false, '\x80\xbf'], [false, '\x80\xbf\x80'], [false, '\x80\xbf\x80\xbf'], [false, '\x80\xbf\x80\xbf\x80'], [false, '\x80\xbf\x80\xbf\x80\xbf'], [false, s]]);
  const lonely = [];
  for (const [a, b] of [[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]]) {
    let t = '';
    for (let i = a; i < b; i++) t += String.fromCharCode(i) + ' ';
    lonely.push([false, t]);
  }
  add('Lonely start characters', lonely);
  const k = ['\xc0', '\xe0\x80', '\xf0\x80\x80', '\xf8\x80\x80\x80', '\xfc\x80\x80\x80\x80', '\xdf', '\xef\xbf', '\xf7\xbf\xbf', '\xfb\xbf\xbf\xbf', '\xfd\xbf\xbf\xbf\xbf'];
  add('Sequences with last continuation byte missing', k.map((x) => [false, x]));
  add('Concatenation of incomplete sequences', [[false, k.join('')]]);
  add('Impossible bytes', [[false, '\xfe'], [false, '\xff'], [false, '\xfe\xfe\xff\xff']]);
  add('Examples of an overlong ASCII character', [[false, '\xc0\xaf'], [false, '\xe0\x80\xaf'], [false, '\xf0\x80\x80\xaf'], [false, '\xf8\x80\x80\x80\xaf'], [false, '\xfc\x80\x80\x80\x80\xaf']]);
  add('Maximum overlong sequences', [[false, '\xc1\xbf'], [false, '\xe0\x9f\xbf'], [false, '\xf0\x8f\xbf\xbf'], [false, '\xf8\x87\xbf\xbf\xbf'], [false, '\xfc\x83\xbf\xbf\xbf\xbf']]);
  add('Overlong representation of the NUL character', [[false, '\xc0\x80'], [false, '\xe0\x80\x80'], [false, '\xf0\x80\x80\x80'], [false, '\xf8\x80\x80\x80\x80'], [false, '\xfc\x80\x80\x80\x80\x80']]);
  add('Single UTF-16 surrogates', ['\xed\xa0\x80', '\xed\xad\xbf', '\xed\xae\x80', '\xed\xaf\xbf', '\xed\xb0\x80', '\xed\xbe\x80', '\xed\xbf\xbf'].map((x) => [false, x]));
  add('Paired UTF-16 surrogates', ['\xed\xa0\x80\xed\xb0\x80', '\xed\xa0\x80\xed\xbf\xbf', '\xed\xad\xbf\xed\xb0\x80', '\xed\xad\xbf\xed\xbf\xbf', '\xed\xae\x80\xed\xb0\x80', '\xed\xae\x80\xed\xbf\xbf', '\xed\xaf\xbf\xed\xb0\x80', '\xed\xaf\xbf\xed\xbf\xbf'].map((x) => [false, x]));
  const nc = [[true, '\xef\xbf\xbe'], [true, '\xef\xbf\xbf']];
  for (const z1 of ['\xf0', '\xf1', '\xf2', '\xf3', '\xf4']) {
    for (const z2 of ['\x8f', '\x9f', '\xaf', '\xbf']) {
      if (z1 === '\xf4' && z2 !== '\x8f') continue;
      for (const z3 of ['\xbe', '\xbf']) {
        const zz = z1 + z2 + '\xbf' + z3;
        if (zz !== '\xf0\x8f\xbf\xbe' && zz !== '\xf0\x8f\xbf\xbf') nc.push([true, zz]);
      }
    }
  }
  add('Non-character code points (valid UTF-8)', nc);
  add('Unicode specials (i.e. replacement char)', ['\xef\xbf\xb9', '\xef\xbf\xba', '\xef\xbf\xbb', '\xef\xbf\xbc', '\xef\xbf\xbd', '\xef\xbf\xbe', '\xef\xbf\xbf'].map((x) => [true, x]));
  return seqs;
}

/**
 * Send a text message as two fragments split at every octet position.
 * Valid payload: one connection, every split must be echoed intact.
 * Invalid payload: one connection per split; after the first fragment a ping
 * probes whether the server already failed (fail-fast); the message must
 * end in 1007 (or a TCP drop) in any case.
 */
async function utf8Split(ctx, payload, valid) {
  const n = payload.length;
  if (valid) {
    const expectList = [];
    const c = await ctx.connect();
    for (let i = 1; i <= n; i++) {
      const frames = [fr(OP.TEXT, payload.subarray(0, i), { fin: false }), fr(OP.CONT, payload.subarray(i), { fin: true })];
      await c.send(frames);
      expectList.push(TEXT(payload));
    }
    const res = await (async () => {
      await c.waitFor(() => c.observed().length >= expectList.length || c.serverGone, c.T.resp);
      if (!c.serverGone) await c.barrier();
      if (!c.serverGone) await c.sendClose(1000);
      await c.waitFor(() => c.serverGone, c.T.resp);
      await c.finish();
      return judge(c, { expect: { OK: expectList }, close: CLEAN });
    })();
    return res;
  }
  const slow = [];
  const early = [];
  for (let i = 1; i <= n; i++) {
    const r = await utf8SplitAt(ctx, payload, i);
    if (r.outcome === 'FAILED') return r;
    if (r.slow) slow.push(i);
    if (r.early) early.push(i);
  }
  const k = F.utf8Scan(payload).invalidAt;
  if (slow.length) {
    return { outcome: 'NON-STRICT', detail: `not fail-fast: the first fragment already contained the invalid octet at index ${k}, but the server answered a ping and only failed after the complete message (split positions ${compactRanges(slow)})` };
  }
  return { outcome: 'OK', detail: early.length ? `note: failed before the invalid octet arrived at split positions ${compactRanges(early)}` : '' };
}

/**
 * One connection of utf8Split for an invalid payload: the first `i` octets as
 * a fragment, a ping probing fail-fast, then the rest. Returns a result plus
 * slow (the server waited for the whole message although the invalid octet
 * had arrived) and early (it failed before the invalid octet arrived).
 */
export async function utf8SplitAt(ctx, payload, i) {
  const n = payload.length;
  const k = F.utf8Scan(payload).invalidAt; // -1: only detectable at the end of the message
  const c = await ctx.connect();
  await c.send(fr(OP.TEXT, payload.subarray(0, i), { fin: false }));
  const probe = await c.barrier();
  const failedAfterFirst = probe !== 'pong';
  if (probe === 'timeout') {
    c.kill();
    return { outcome: 'FAILED', detail: `split at octet ${i}: server neither answered a ping nor failed after the first fragment` };
  }
  let slow = false;
  let early = false;
  if (!failedAfterFirst) {
    await c.send(fr(OP.CONT, payload.subarray(i), { fin: true }));
    await c.waitFor(() => c.serverGone, c.T.fail);
    slow = k >= 0 && k < i;
  } else early = k < 0 || k >= i;
  await c.finish();
  const r = judge(c, { expect: { OK: [] }, close: FAIL(1007) });
  if (r.outcome === 'FAILED') return { outcome: 'FAILED', detail: `split at octet ${i} of ${n} (0x${payload.subarray(0, i).toString('hex')} | 0x${payload.subarray(i).toString('hex')}): ${r.detail}` };
  if (slow) return { outcome: 'NON-STRICT', slow, detail: `not fail-fast: the first fragment already contained the invalid octet at index ${k}, but the server answered a ping and only failed after the complete message` };
  return { outcome: 'OK', early, detail: early ? 'note: failed before the invalid octet arrived' : r.detail };
}

function compactRanges(list) {
  const out = [];
  for (let i = 0; i < list.length; i++) {
    let j = i;
    while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
    out.push(i === j ? `${list[i]}` : `${list[i]}-${list[j]}`);
    i = j;
  }
  return out.join(',');
}

/** 6.4.1/6.4.2: three fragments, fail-fast probed with pings between them. */
async function failFastFrames(ctx, p1, p2, p3) {
  const c = await ctx.connect();
  await c.send(fr(OP.TEXT, p1, { fin: false }));
  const a = await c.barrier();
  if (a !== 'pong') {
    await c.finish();
    const r = judge(c, { expect: { OK: [] }, close: FAIL(1007) });
    return { outcome: 'FAILED', detail: `server failed after the first fragment, which is valid UTF-8 (${r.detail || serverCloseText(c)})` };
  }
  await c.send(fr(OP.CONT, p2, { fin: false }));
  const b = await c.barrier();
  let fast = b !== 'pong';
  if (!fast) {
    await c.send(fr(OP.CONT, p3, { fin: true }));
    await c.waitFor(() => c.serverGone, c.T.fail);
  }
  await c.finish();
  const r = judge(c, { expect: { OK: [] }, close: FAIL(1007) });
  if (r.outcome !== 'OK') return r;
  return fast ? r : { outcome: 'NON-STRICT', detail: 'not fail-fast: the server answered a ping sent after the fragment that made the message invalid and failed only after the last fragment' };
}

/** 6.4.3/6.4.4: one frame, payload written in three chops; fail-fast needs a bounded wait. */
async function failFastChops(ctx, p1, p2, p3) {
  const c = await ctx.connect();
  const total = p1.length + p2.length + p3.length;
  const key = crypto.randomBytes(4);
  const hdr = F.encodeHeader({ opcode: OP.TEXT, length: total, maskKey: key, mask: c.mask });
  const masked = (p, off) => (c.mask ? F.maskInPlace(Buffer.from(p), key, off) : p);
  await c.write(Buffer.concat([hdr, masked(p1, 0)]));
  if (await c.waitFor(() => c.serverGone, c.T.failfast)) {
    await c.finish();
    return { outcome: 'FAILED', detail: `server failed after the first chop, which is valid UTF-8 (${serverCloseText(c)})` };
  }
  await c.write(masked(p2, p1.length));
  const fast = await c.waitFor(() => c.serverGone, c.T.failfast);
  if (!fast) {
    await c.write(masked(p3, p1.length + p2.length));
    await c.waitFor(() => c.serverGone, c.T.fail);
  }
  await c.finish();
  const r = judge(c, { expect: { OK: [] }, close: FAIL(1007) });
  if (r.outcome !== 'OK') return r;
  return fast ? r : { outcome: 'NON-STRICT', detail: `not fail-fast: no close within ${c.T.failfast} ms after the chop that made the frame invalid; failed only after the complete frame` };
}

/** Group 9: one (possibly large) message, echo or 1009 beyond --max-message. */
async function bigMessage(ctx, { opcode, payload, fragmentSize = 0, chop = 0 }) {
  const n = payload.length;
  const tooBig = n > ctx.maxMessage;
  const c = await ctx.connect();
  const t0 = process.hrtime.bigint();
  const T = c.T;
  const wait = T.resp + Math.ceil(n / (1 << 20)) * 1500 + (chop ? Math.ceil(n / chop) * 0.2 : 0) + (fragmentSize ? Math.ceil(n / fragmentSize) * 0.02 : 0);
  const sending = c.send(F.fragmentMessage(opcode, payload, fragmentSize), { chop });
  if (tooBig) {
    await c.waitFor(() => c.serverGone, wait);
    await c.finish();
    await sending;
    const r = judge(c, { expect: { OK: [] }, close: FAIL(1009) });
    if (r.outcome === 'OK') r.detail = `${n} > --max-message ${ctx.maxMessage}: ${serverCloseText(c)}`;
    return r;
  }
  c.keepData = false;
  await c.waitFor(() => c.msgCount >= 1 || c.serverGone, wait);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await sending;
  let mismatch = null;
  if (c.msgCount >= 1) {
    const got = c.lastData;
    if (c.lastMsg.opcode !== opcode) mismatch = `echo has opcode ${c.lastMsg.opcode} instead of ${opcode}`;
    else if (got.length !== n) mismatch = `echo has ${got.length} octets instead of ${n}`;
    else if (!got.equals(payload)) mismatch = 'echo differs from the message sent';
  }
  if (!c.serverGone) await c.sendClose(1000);
  await c.waitFor(() => c.serverGone, T.resp);
  await c.finish();
  const r = judge(c, { expect: null, close: CLEAN });
  if (r.outcome === 'FAILED') return r;
  if (c.msgCount < 1) return { outcome: 'FAILED', detail: `no echo of the ${n}-octet message within ${Math.round(wait)} ms` };
  if (mismatch) return { outcome: 'FAILED', detail: mismatch };
  return { outcome: 'OK', detail: `${ms.toFixed(0)} ms` };
}

/** 9.7/9.8: round trips of small messages. */
async function roundTrips(ctx, { opcode, len, count }) {
  const payload = repeatTo(opcode === OP.TEXT ? '*' : '\xfe', len);
  const pl = opcode === OP.TEXT ? payload : Buffer.alloc(len, 0xfe);
  if (len > ctx.maxMessage) return bigMessage(ctx, { opcode, payload: pl });
  const c = await ctx.connect();
  c.keepData = false;
  const t0 = process.hrtime.bigint();
  let err = null;
  for (let i = 0; i < count && !err; i++) {
    await c.send(fr(opcode, pl));
    const ok = await c.waitFor(() => c.msgCount > i || c.serverGone, c.T.resp);
    if (!ok || c.msgCount <= i) err = `no echo for message ${i + 1} of ${count}`;
    else if (c.lastMsg.opcode !== opcode || !c.lastData.equals(pl)) err = `echo ${i + 1} differs (opcode ${c.lastMsg.opcode}, ${c.lastData.length} octets)`;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!c.serverGone) await c.sendClose(1000);
  await c.waitFor(() => c.serverGone, c.T.resp);
  await c.finish();
  const r = judge(c, { expect: null, close: CLEAN });
  if (r.outcome === 'FAILED') return r;
  if (err) return { outcome: 'FAILED', detail: err };
  return { outcome: 'OK', detail: `${count} round trips in ${ms.toFixed(0)} ms` };
}

// ---------------------------------------------------------------------------
// permessage-deflate test data (deterministic stand-ins for Autobahn's
// testdata files, with similar size and compressibility)

function wordsCorpus(seed, size, words, sep, lineLen) {
  const r = F.prng(seed);
  let out = '';
  let line = '';
  while (out.length < size) {
    const w = words[r() % words.length];
    line += (line ? sep : '') + (r() % 9 === 0 ? w[0].toUpperCase() + w.slice(1) : w);
    if (line.length > lineLen) {
      out += line + (r() % 5 === 0 ? '!\n' : r() % 3 === 0 ? ',\n' : '\n');
      if (r() % 7 === 0) out += '\n';
      line = '';
    }
  }
  return out;
}

const corpora = {};
export function getCorpus(name) {
  if (corpora[name]) return corpora[name];
  let c;
  if (name === 'json') {
    const r = F.prng(11);
    const first = ['Ada', 'Grace', 'Linus', 'Zoë', 'José', 'Łukasz', 'Søren', 'Chloé', 'Dmitri', 'Ngozi', 'Hiroshi', 'Ångström', 'Björk', 'Renée', 'Юлия', 'Μαρία'];
    const last = ['Lovelace', 'Hopper', 'Torvalds', 'Müller', 'García', 'Nowak', 'Kierkegaard', 'Dubois', 'Ivanov', 'Okafor', 'Tanaka', 'Øster'];
    const tags = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing', 'elit', 'sed', 'eiusmod', 'tempor', 'incididunt'];
    const items = [];
    let size = 2;
    for (let i = 0; size < 194000; i++) {
      const o = {
        _id: (r().toString(16) + r().toString(16)).padStart(16, '0'),
        index: i,
        guid: crypto.createHash('md5').update(String(i)).digest('hex'),
        isActive: (r() & 1) === 1,
        balance: `$${(r() % 4000) + 1000}.${String(r() % 100).padStart(2, '0')}`,
        age: 20 + (r() % 50),
        eyeColor: ['blue', 'brown', 'green'][r() % 3],
        name: `${first[r() % first.length]} ${last[r() % last.length]}`,
        company: tags[r() % tags.length].toUpperCase(),
        email: `user${i}@example.com`,
        phone: `+1 (${800 + (r() % 199)}) ${100 + (r() % 899)}-${1000 + (r() % 8999)}`,
        about: Array.from({ length: 12 + (r() % 20) }, () => tags[r() % tags.length]).join(' ') + '.',
        registered: `2014-0${1 + (r() % 9)}-1${r() % 9}T0${r() % 9}:2${r() % 9}:00 -01:00`,
        latitude: ((r() % 180000000) / 1e6 - 90).toFixed(6),
        longitude: ((r() % 360000000) / 1e6 - 180).toFixed(6),
        tags: Array.from({ length: 7 }, () => tags[r() % tags.length]),
        friends: Array.from({ length: 3 }, (_, k) => ({ id: k, name: `${first[r() % first.length]} ${last[r() % last.length]}` })),
        greeting: 'Hello! You have ' + (r() % 10) + ' unread messages.',
      };
      const s = JSON.stringify(o, null, 2);
      items.push(s);
      size += s.length + 2;
    }
    c = { desc: 'Large JSON data file (generated stand-in for data1.json)', binary: false, data: Buffer.from(`[${items.join(',\n')}]`) };
  } else if (name === 'html') {
    const r = F.prng(12);
    const words = ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'über', 'naïve', 'café', 'résumé', 'data', 'socket', 'frame'];
    let s = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Test page</title>\n<link rel="stylesheet" href="/static/site.css">\n</head>\n<body>\n';
    for (let i = 0; s.length < 83700; i++) {
      s += `<div class="section section-${i % 7}" id="s${i}">\n  <h2>${words[r() % words.length]} ${words[r() % words.length]}</h2>\n`;
      s += `  <p>${Array.from({ length: 20 + (r() % 30) }, () => words[r() % words.length]).join(' ')}.</p>\n`;
      s += `  <ul>\n${Array.from({ length: 3 + (r() % 4) }, (_, k) => `    <li><a href="/page/${i}/${k}?ref=nav&amp;id=${r() % 1000}">${words[r() % words.length]}</a></li>`).join('\n')}\n  </ul>\n`;
      if (i % 5 === 0) s += `  <table>\n${Array.from({ length: 4 }, () => `    <tr><td>${r() % 1000}</td><td>${words[r() % words.length]}</td><td>${(r() % 10000) / 100}</td></tr>`).join('\n')}\n  </table>\n`;
      s += '</div>\n';
    }
    s += '</body>\n</html>\n';
    c = { desc: 'Large HTML file (generated stand-in for data1.html)', binary: false, data: Buffer.from(s) };
  } else if (name === 'faust') {
    const words = ['habe', 'nun', 'ach', 'philosophie', 'juristerei', 'und', 'medizin', 'leider', 'auch', 'theologie', 'durchaus', 'studiert', 'mit', 'heißem', 'bemühn', 'da', 'steh', 'ich', 'nun', 'armer', 'tor', 'bin', 'so', 'klug', 'als', 'wie', 'zuvor', 'heiße', 'magister', 'doktor', 'gar', 'schüler', 'welt', 'daß', 'für', 'über', 'gretchen', 'mephistopheles', 'der', 'die', 'das', 'nicht'];
    c = { desc: "Human readable text, Goethe's Faust I style German (generated stand-in for pg2229.txt)", binary: true, data: Buffer.from(wordsCorpus(13, 222200, words, ' ', 48)).subarray(0, 222218) };
  } else if (name === 'lena') {
    const w = 512;
    const h = 512;
    const hdr = Buffer.alloc(54 + 1024);
    hdr.write('BM', 0, 'latin1');
    hdr.writeUInt32LE(hdr.length + w * h, 2);
    hdr.writeUInt32LE(hdr.length, 10);
    hdr.writeUInt32LE(40, 14);
    hdr.writeInt32LE(w, 18);
    hdr.writeInt32LE(h, 22);
    hdr.writeUInt16LE(1, 26);
    hdr.writeUInt16LE(8, 28);
    hdr.writeUInt32LE(w * h, 34);
    hdr.writeUInt32LE(256, 46);
    for (let i = 0; i < 256; i++) hdr.writeUInt32LE(i * 0x010101, 54 + 4 * i);
    const px = Buffer.alloc(w * h);
    const r = F.prng(14);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = 128 + 60 * Math.sin(x / 23) * Math.cos(y / 17) + 40 * Math.sin((x + 2 * y) / 41) + ((r() % 25) - 12);
        px[y * w + x] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
    c = { desc: 'Picture, bitmap 512x512 8-bit grey (generated stand-in for lena512.bmp)', binary: true, data: Buffer.concat([hdr, px]) };
  } else if (name === 'pdf') {
    const r = F.prng(15);
    const parts = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
    let size = parts[0].length;
    for (let obj = 1; size < 1042328; obj++) {
      if (obj % 4 === 0) {
        const t = Buffer.from(`${obj} 0 obj\n<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /MediaBox [0 0 612 792] /Contents ${obj + 1} 0 R >>\nendobj\n`);
        parts.push(t);
        size += t.length;
      } else {
        const n = 2000 + (r() % 12000);
        const head = Buffer.from(`${obj} 0 obj\n<< /Length ${n} /Filter /FlateDecode >>\nstream\n`);
        const body = F.randomBytes(n, 1000 + obj);
        const tail = Buffer.from('\nendstream\nendobj\n');
        parts.push(head, body, tail);
        size += head.length + n + tail.length;
      }
    }
    c = { desc: 'A larger PDF-like file, mostly incompressible (generated stand-in)', binary: true, data: Buffer.concat(parts).subarray(0, 1042328) };
  } else throw new Error(`unknown corpus ${name}`);
  c.name = name;
  corpora[name] = c;
  return c;
}

/** Next LEN-octet slice of the corpus, wrapping around; text slices end on a UTF-8 boundary. */
function corpusSlicer(corpus) {
  let ptr = 0;
  const d = corpus.data;
  return (len) => {
    if (len === 0) return EMPTY;
    let out;
    if (ptr + len <= d.length) out = d.subarray(ptr, ptr + len);
    else out = Buffer.concat([d.subarray(ptr), d.subarray(0, (ptr + len) % d.length)]);
    if (!corpus.binary && !F.isValidUtf8(out)) {
      // the slice starts on a code point boundary; drop a truncated last sequence
      let end = out.length - 1;
      while (end > 0 && (out[end] & 0xc0) === 0x80) end--;
      out = out.subarray(0, end);
    }
    ptr = (ptr + out.length) % d.length;
    return out;
  };
}

// Autobahn case12_x_x.py MSG_SIZES: (payload length, message count, auto-fragment size)
const MSG_SIZES = [
  [16, 1000, 0], [64, 1000, 0], [256, 1000, 0], [1024, 1000, 0], [4096, 1000, 0], [8192, 1000, 0],
  [16384, 1000, 0], [32768, 1000, 0], [65536, 1000, 0], [131072, 1000, 0],
  [8192, 1000, 256], [16384, 1000, 256], [32768, 1000, 256], [65536, 1000, 256], [131072, 1000, 256],
  [131072, 1000, 1024], [131072, 1000, 4096], [131072, 1000, 32768],
];

// Autobahn's default client offer: PerMessageDeflateOffer() =
// "permessage-deflate; client_no_context_takeover; client_max_window_bits"
const AB = (extra = {}) => ({ clientNoContextTakeover: true, clientMaxWindowBits: true, ...extra });

function deflateNotNegotiated(ctx, c, { requireAccept }) {
  if (!ctx.deflate) return { outcome: 'UNIMPLEMENTED', detail: 'permessage-deflate not negotiated (server not in --deflate mode)' };
  if (requireAccept) return { outcome: 'FAILED', detail: `server in --deflate mode declined the offer "${c.offers.map(F.formatOffer).join(', ')}"` };
  return { outcome: 'UNIMPLEMENTED', detail: `server declined the offer "${c.offers.map(F.formatOffer).join(', ')}" (allowed by RFC 7692)` };
}

async function closeCleanly(c) {
  if (!c.closeSent && !c.serverGone) await c.sendClose(1000);
  await c.waitFor(() => c.serverGone, c.T.resp);
  await c.finish();
}

/** Open a connection with the offers and make sure the negotiation matches the server mode. */
async function pmdConnect(ctx, offers, { requireAccept }) {
  const c = await ctx.connect(offers);
  if (c.pmd && !ctx.deflate) {
    await closeCleanly(c);
    return { c, result: { outcome: 'FAILED', detail: `server negotiated "${c.pmd.response}" although it was not started with --deflate` } };
  }
  if (!c.pmd) {
    await closeCleanly(c);
    const r = judge(c, { expect: null, close: CLEAN });
    return { c, result: r.outcome === 'FAILED' ? r : deflateNotNegotiated(ctx, c, { requireAccept }) };
  }
  return { c, result: null };
}

/** 12.x / 13.x: COUNT compressed messages of LEN octets, each echoed before the next one is sent. */
async function deflateEcho(ctx, { offers, corpus, len, count, frag, requireAccept = true }) {
  const { c, result } = await pmdConnect(ctx, offers, { requireAccept });
  if (result) return result;
  const n = ctx.full ? count : Math.min(ctx.deflateCount, count, Math.max(10, Math.floor(ctx.deflateBudget / Math.max(len, 1))));
  const next = corpusSlicer(corpus);
  const opcode = corpus.binary ? OP.BINARY : OP.TEXT;
  c.keepData = false;
  let err = null;
  let plain = 0;
  let wireOut = 0;
  let wireIn = 0;
  let compressedEchoes = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n && !err; i++) {
    const m = next(len);
    const payload = c.codec.compress(m);
    plain += m.length;
    wireOut += payload.length;
    await c.send(F.fragmentMessage(opcode, payload, frag, { rsvFirst: 4 }));
    const ok = await c.waitFor(() => c.msgCount > i || c.serverGone, c.T.resp);
    if (!ok || c.msgCount <= i) err = `no echo for message ${i + 1} of ${n} (${m.length} octets) within ${c.T.resp} ms${c.serverGone ? `; server sent ${serverCloseText(c)}` : ''}`;
    else if (c.lastMsg.opcode !== opcode) err = `echo ${i + 1} has opcode ${c.lastMsg.opcode} instead of ${opcode}`;
    else if (!c.lastData.equals(m)) err = `echo ${i + 1} differs from the message sent (${c.lastData.length} vs ${m.length} octets)`;
    else {
      wireIn += c.lastMsg.wire;
      if (c.lastMsg.compressed) compressedEchoes++;
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await closeCleanly(c);
  const r = judge(c, { expect: null, close: CLEAN });
  if (r.outcome === 'FAILED') return r;
  if (err) return { outcome: 'FAILED', detail: err };
  return { outcome: 'OK', detail: `${n} msgs in ${ms.toFixed(0)} ms; negotiated "${c.pmd.response}"; our ratio ${(wireOut / Math.max(plain, 1)).toFixed(3)}, server ratio ${(wireIn / Math.max(plain, 1)).toFixed(3)} (${compressedEchoes}/${n} echoes compressed)` };
}

/** A fixed mix of messages for the window-bits cases (13.9, 13.10). */
async function deflateMix(ctx, { offers, requireAccept, note }) {
  const { c, result } = await pmdConnect(ctx, offers, { requireAccept });
  if (result) return result;
  const json = corpusSlicer(getCorpus('json'));
  const faust = corpusSlicer(getCorpus('faust'));
  c.keepData = false;
  const plan = [[OP.TEXT, json, 16, 0], [OP.TEXT, json, 1024, 0], [OP.BINARY, faust, 4096, 0], [OP.TEXT, json, 65536, 0], [OP.BINARY, faust, 131072, 4096], [OP.TEXT, json, 32768, 0], [OP.BINARY, faust, 65536, 0], [OP.TEXT, json, 131072, 0]];
  let err = null;
  let i = 0;
  for (const [opcode, src, len, frag] of plan) {
    const m = src(len);
    await c.send(F.fragmentMessage(opcode, c.codec.compress(m), frag, { rsvFirst: 4 }));
    const ok = await c.waitFor(() => c.msgCount > i || c.serverGone, c.T.resp);
    if (!ok || c.msgCount <= i) { err = `no echo for message ${i + 1} (${len} octets)${c.serverGone ? `; server sent ${serverCloseText(c)}` : ''}`; break; }
    if (c.lastMsg.opcode !== opcode || !c.lastData.equals(m)) { err = `echo ${i + 1} differs from the message sent`; break; }
    i++;
  }
  await closeCleanly(c);
  const r = judge(c, { expect: null, close: CLEAN });
  if (r.outcome === 'FAILED') return r;
  if (err) return { outcome: 'FAILED', detail: err };
  return { outcome: 'OK', detail: `negotiated "${c.pmd.response}"${note ? `; ${note(c.pmd)}` : ''}` };
}

/** 13.11: literal compressed frames on a plain-offer connection. */
async function deflateRaw(ctx, { send, expect, close = CLEAN, needsClientContext = false }) {
  const { c, result } = await pmdConnect(ctx, [{}], { requireAccept: true });
  if (result) return result;
  if (needsClientContext && c.pmd.clientNoContextTakeover) {
    await closeCleanly(c);
    return { outcome: 'INFORMATIONAL', detail: `server imposed client_no_context_takeover ("${c.pmd.response}"); shared-window example not applicable` };
  }
  await send(c);
  if (close.byClient) {
    await c.waitFor(() => c.observed().length >= maxLen(expect) || c.serverGone, c.T.resp);
    if (!c.serverGone) await c.barrier();
    await closeCleanly(c);
  } else {
    await c.waitFor(() => c.serverGone, c.T.fail);
    await c.finish();
  }
  return judge(c, { expect, close });
}

/** 13.12: an invalid offer must not be accepted. */
async function mustDecline(ctx, offers) {
  let c;
  try {
    c = await ctx.connect(offers);
  } catch (e) {
    if (e instanceof HandshakeError && /invalid permessage-deflate negotiation/.test(e.message)) return { outcome: 'FAILED', detail: e.message };
    if (e instanceof HandshakeError && /instead of 101/.test(e.message)) {
      return { outcome: 'NON-STRICT', detail: `${e.message.replace(/^server answered /, 'server rejected the whole handshake: ')}; RFC 7692 section 5 asks to decline the offer and continue without the extension` };
    }
    throw e;
  }
  if (c.pmd) {
    await closeCleanly(c);
    return { outcome: 'FAILED', detail: `server accepted an invalid offer: "${c.pmd.response}"` };
  }
  await c.send(fr(OP.TEXT, HELLO));
  await c.waitFor(() => c.msgCount >= 1 || c.serverGone, c.T.resp);
  await closeCleanly(c);
  return judge(c, { expect: { OK: [TEXT(HELLO)] }, close: CLEAN });
}

// ---------------------------------------------------------------------------

/**
 * Build the case list. ctx (given to run()) carries: url, maxMessage,
 * deflate, full, deflateBudget, deflateCount, T and connect().
 */
export function buildCases() {
  const cases = [];
  // extra: splitPayload marks a case that opens one connection per split
  // position of an invalid UTF-8 payload (see utf8SplitAt)
  const add = (id, desc, run, extra = {}) => cases.push({ id, desc, run, ...extra });
  const std = (id, desc, spec) => add(id, desc, (ctx) => standard(ctx, spec));

  // ---- 1 Framing
  const sizes = [0, 125, 126, 127, 128, 65535, 65536];
  sizes.forEach((n, i) => {
    std(`1.1.${i + 1}`, `Send text message with payload length ${n}`, { send: (c) => c.send(fr(OP.TEXT, repeatTo('*', n))), expect: { OK: [TEXT(repeatTo('*', n))] } });
  });
  std('1.1.8', 'Send text message with payload length 65536, in chops of 997 octets', { send: (c) => c.send(fr(OP.TEXT, repeatTo('*', 65536)), { chop: 997 }), expect: { OK: [TEXT(repeatTo('*', 65536))] } });
  sizes.forEach((n, i) => {
    std(`1.2.${i + 1}`, `Send binary message with payload length ${n}`, { send: (c) => c.send(fr(OP.BINARY, Buffer.alloc(n, 0xfe))), expect: { OK: [BIN(Buffer.alloc(n, 0xfe))] } });
  });
  std('1.2.8', 'Send binary message with payload length 65536, in chops of 997 octets', { send: (c) => c.send(fr(OP.BINARY, Buffer.alloc(65536, 0xfe)), { chop: 997 }), expect: { OK: [BIN(Buffer.alloc(65536, 0xfe))] } });

  // ---- 2 Pings/Pongs
  std('2.1', 'Send ping without payload', { send: (c) => c.send(fr(OP.PING)), expect: { OK: [PONG('')] } });
  std('2.2', 'Send ping with small text payload', { send: (c) => c.send(fr(OP.PING, HELLO)), expect: { OK: [PONG(HELLO)] } });
  const bin8 = bytes('\x00\xff\xfe\xfd\xfc\xfb\x00\xff');
  std('2.3', 'Send ping with small binary (non UTF-8) payload', { send: (c) => c.send(fr(OP.PING, bin8)), expect: { OK: [PONG(bin8)] } });
  std('2.4', 'Send ping with binary payload of 125 octets', { send: (c) => c.send(fr(OP.PING, Buffer.alloc(125, 0xfe))), expect: { OK: [PONG(Buffer.alloc(125, 0xfe))] } });
  std('2.5', 'Send ping with binary payload of 126 octets', { send: (c) => c.send(fr(OP.PING, Buffer.alloc(126, 0xfe))), expect: { OK: [] }, close: PROTO });
  std('2.6', 'Send ping with binary payload of 125 octets, in octet-wise chops', { send: (c) => c.send(fr(OP.PING, Buffer.alloc(125, 0xfe)), { chop: 1 }), expect: { OK: [PONG(Buffer.alloc(125, 0xfe))] } });
  std('2.7', 'Send unsolicited pong without payload, then close', { send: async (c) => { await c.send(fr(OP.PONG)); await c.sendClose(1000); }, expect: { OK: [] } });
  std('2.8', 'Send unsolicited pong with payload, then close', { send: async (c) => { await c.send(fr(OP.PONG, 'unsolicited pong payload')); await c.sendClose(1000); }, expect: { OK: [] } });
  std('2.9', 'Send unsolicited pong with payload, then ping with payload', { send: (c) => c.send([fr(OP.PONG, 'unsolicited pong payload'), fr(OP.PING, 'ping payload')]), expect: { OK: [PONG('ping payload')] } });
  for (const [id, chop] of [['2.10', 0], ['2.11', 1]]) {
    add(id, `Send 10 pings with payload${chop ? ', in octet-wise chops' : ''}`, async (ctx) => {
      const pays = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
      const expect = { OK: pays.map(PONG) };
      const c = await ctx.connect();
      await c.send(pays.map((p) => fr(OP.PING, p)), { chop });
      await c.waitFor(() => c.observed().length >= 10 || c.serverGone, c.T.resp);
      if (!c.serverGone) await c.barrier();
      await closeCleanly(c);
      const obs = c.observed();
      // RFC 6455 5.5.3 lets a server answer only the most recent of several pings
      if (obs.length && obs.length < 10 && obs.every((e) => e.t === 'pong') && obs.at(-1).data.toString() === 'payload-9') {
        let j = 0;
        for (const e of obs) { while (j < 10 && pays[j] !== e.data.toString()) j++; j++; }
        if (j <= 10) {
          expect['NON-STRICT'] = obs;
          expect.nonStrictNote = `server answered only ${obs.length} of 10 pings (allowed by RFC 6455 5.5.3, but Autobahn expects a pong for every ping)`;
        }
      }
      return judge(c, { expect, close: CLEAN });
    });
  }

  // ---- 3 Reserved bits
  std('3.1', 'Send small text message with RSV = 1', { send: (c) => c.send(fr(OP.TEXT, HELLO, { rsv: 1 })), close: PROTO });
  const rsvSeq = (rsv, mode) => ({
    send: (c) => c.send([fr(OP.TEXT, HELLO), fr(OP.TEXT, HELLO, { rsv }), fr(OP.PING)], mode),
    expect: { OK: [TEXT(HELLO)], 'NON-STRICT': [] },
    close: PROTO,
  });
  std('3.2', 'Send small text message, then again with RSV = 2, then ping', rsvSeq(2, {}));
  std('3.3', 'Send small text message, then again with RSV = 3, then ping; frame-wise chops', rsvSeq(3, { sync: true }));
  std('3.4', 'Send small text message, then again with RSV = 4, then ping; octet-wise chops', rsvSeq(4, { chop: 1 }));
  std('3.5', 'Send small binary message with RSV = 5', { send: (c) => c.send(fr(OP.BINARY, bin8, { rsv: 5 })), close: PROTO });
  std('3.6', 'Send ping with RSV = 6', { send: (c) => c.send(fr(OP.PING, HELLO, { rsv: 6 })), close: PROTO });
  std('3.7', 'Send close with RSV = 7', { send: (c) => c.send(fr(OP.CLOSE, EMPTY, { rsv: 7 })), close: PROTO });

  // ---- 4 Opcodes
  const opSeq = (opcode, withPayload, mode) => ({
    send: (c) => c.send([fr(OP.TEXT, HELLO), fr(opcode, withPayload ? HELLO : EMPTY), fr(OP.PING)], mode),
    expect: { OK: [TEXT(HELLO)], 'NON-STRICT': [] },
    close: PROTO,
  });
  std('4.1.1', 'Send frame with reserved non-control opcode 3', { send: (c) => c.send(fr(3)), close: PROTO });
  std('4.1.2', 'Send frame with reserved non-control opcode 4 and non-empty payload', { send: (c) => c.send(fr(4, 'reserved opcode payload')), close: PROTO });
  std('4.1.3', 'Send small text message, then frame with reserved opcode 5, then ping', opSeq(5, false, {}));
  std('4.1.4', 'Send small text message, then frame with reserved opcode 6 and payload, then ping', opSeq(6, true, {}));
  std('4.1.5', 'Send small text message, then frame with reserved opcode 7 and payload, then ping; octet-wise chops', opSeq(7, true, { chop: 1 }));
  std('4.2.1', 'Send frame with reserved control opcode 11', { send: (c) => c.send(fr(11)), close: PROTO });
  std('4.2.2', 'Send frame with reserved control opcode 12 and non-empty payload', { send: (c) => c.send(fr(12, 'reserved opcode payload')), close: PROTO });
  std('4.2.3', 'Send small text message, then frame with reserved opcode 13, then ping', opSeq(13, false, {}));
  std('4.2.4', 'Send small text message, then frame with reserved opcode 14 and payload, then ping', opSeq(14, true, {}));
  std('4.2.5', 'Send small text message, then frame with reserved opcode 15 and payload, then ping; octet-wise chops', opSeq(15, true, { chop: 1 }));

  // ---- 5 Fragmentation
  const f12 = ['fragment1', 'fragment2'];
  std('5.1', 'Send ping fragmented into 2 fragments', { send: (c) => c.send([fr(OP.PING, 'fragment1', { fin: false }), fr(OP.CONT, 'fragment2')]), close: PROTO });
  std('5.2', 'Send pong fragmented into 2 fragments', { send: (c) => c.send([fr(OP.PONG, 'fragment1', { fin: false }), fr(OP.CONT, 'fragment2')]), close: PROTO });
  const two = [fr(OP.TEXT, f12[0], { fin: false }), fr(OP.CONT, f12[1])];
  std('5.3', 'Send text message fragmented into 2 fragments', { send: (c) => c.send(two), expect: { OK: [TEXT(f12.join(''))] } });
  std('5.4', 'Send text message fragmented into 2 fragments, frame-wise chops', { send: (c) => c.send(two, { sync: true }), expect: { OK: [TEXT(f12.join(''))] } });
  std('5.5', 'Send text message fragmented into 2 fragments, octet-wise chops', { send: (c) => c.send(two, { chop: 1 }), expect: { OK: [TEXT(f12.join(''))] } });
  const twoPing = [fr(OP.TEXT, f12[0], { fin: false }), fr(OP.PING, 'ping payload'), fr(OP.CONT, f12[1])];
  const expPing = { OK: [PONG('ping payload'), TEXT(f12.join(''))] };
  std('5.6', 'Send text message fragmented into 2 fragments, one ping with payload in-between', { send: (c) => c.send(twoPing), expect: expPing });
  std('5.7', 'Same as 5.6, frame-wise chops', { send: (c) => c.send(twoPing, { sync: true }), expect: expPing });
  std('5.8', 'Same as 5.6, octet-wise chops', { send: (c) => c.send(twoPing, { chop: 1 }), expect: expPing });
  const noCont = (fin) => [fr(OP.CONT, 'non-continuation payload', { fin }), fr(OP.TEXT, HELLO)];
  std('5.9', 'Send unfragmented text message after continuation frame with FIN = true, where there is nothing to continue, one chop', { send: (c) => c.send(noCont(true)), close: PROTO });
  std('5.10', 'Same as 5.9, frame-wise chops', { send: (c) => c.send(noCont(true), { sync: true }), close: PROTO });
  std('5.11', 'Same as 5.9, octet-wise chops', { send: (c) => c.send(noCont(true), { chop: 1 }), close: PROTO });
  std('5.12', 'Send unfragmented text message after continuation frame with FIN = false, where there is nothing to continue, one chop', { send: (c) => c.send(noCont(false)), close: PROTO });
  std('5.13', 'Same as 5.12, frame-wise chops', { send: (c) => c.send(noCont(false), { sync: true }), close: PROTO });
  std('5.14', 'Same as 5.12, octet-wise chops', { send: (c) => c.send(noCont(false), { chop: 1 }), close: PROTO });
  std('5.15', 'Send text message in 2 fragments, then continuation frame with FIN = false where there is nothing to continue, then unfragmented text message', {
    send: (c) => c.send([fr(OP.TEXT, 'fragment1', { fin: false }), fr(OP.CONT, 'fragment2'), fr(OP.CONT, 'fragment3', { fin: false }), fr(OP.TEXT, 'fragment4')]),
    expect: { OK: [TEXT('fragment1fragment2')], 'NON-STRICT': [] },
    close: PROTO,
  });
  const rep = (fin) => [0, 1].flatMap(() => [fr(OP.CONT, 'fragment1', { fin }), fr(OP.TEXT, 'fragment2', { fin: false }), fr(OP.CONT, 'fragment3')]);
  std('5.16', 'Repeated 2x: continuation frame with FIN = false (nothing to continue), then text message in 2 fragments', { send: (c) => c.send(rep(false)), close: PROTO });
  std('5.17', 'Repeated 2x: continuation frame with FIN = true (nothing to continue), then text message in 2 fragments', { send: (c) => c.send(rep(true)), close: PROTO });
  std('5.18', 'Send text message in 2 fragments with both frame opcodes set to text', { send: (c) => c.send([fr(OP.TEXT, 'fragment1', { fin: false }), fr(OP.TEXT, 'fragment2')]), close: PROTO });
  for (const [id, sync] of [['5.19', false], ['5.20', true]]) {
    const frags = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'];
    std(id, `Text message in 5 fragments with 2 pings in-between; the first pong is awaited before the rest is sent${sync ? '; frame-wise chops' : ''}`, {
      send: async (c) => {
        await c.send([fr(OP.TEXT, frags[0], { fin: false }), fr(OP.CONT, frags[1], { fin: false }), fr(OP.PING, 'pongme 1!')], { sync });
        // Autobahn waits 1 s here; the peer must answer the ping mid-message
        await c.waitFor(() => c.observed().length >= 1 || c.serverGone, c.T.resp);
        await c.send([fr(OP.CONT, frags[2], { fin: false }), fr(OP.CONT, frags[3], { fin: false }), fr(OP.PING, 'pongme 2!'), fr(OP.CONT, frags[4])], { sync });
      },
      expect: { OK: [PONG('pongme 1!'), PONG('pongme 2!'), TEXT(frags.join(''))] },
    });
  }

  // ---- 6 UTF-8 handling
  std('6.1.1', 'Send text message of length 0', { send: (c) => c.send(fr(OP.TEXT, EMPTY)), expect: { OK: [TEXT('')] } });
  std('6.1.2', 'Send fragmented text message, 3 fragments each of length 0', { send: (c) => c.send([fr(OP.TEXT, '', { fin: false }), fr(OP.CONT, '', { fin: false }), fr(OP.CONT, '')]), expect: { OK: [TEXT('')] } });
  std('6.1.3', 'Send fragmented text message, 3 fragments, first and last of length 0', { send: (c) => c.send([fr(OP.TEXT, '', { fin: false }), fr(OP.CONT, 'middle frame payload', { fin: false }), fr(OP.CONT, '')]), expect: { OK: [TEXT('middle frame payload')] } });
  const hello8 = Buffer.from('Hello-µ@ßöäüàá-UTF-8!!');
  std('6.2.1', 'Send a valid UTF-8 text message in one fragment', { send: (c) => c.send(fr(OP.TEXT, hello8)), expect: { OK: [TEXT(hello8)] } });
  std('6.2.2', 'Send a valid UTF-8 text message in two fragments, split on a code point boundary', { send: (c) => c.send([fr(OP.TEXT, 'Hello-µ@ßöä', { fin: false }), fr(OP.CONT, 'üàá-UTF-8!!')]), expect: { OK: [TEXT(hello8)] } });
  std('6.2.3', 'Send a valid UTF-8 text message in fragments of 1 octet', { send: (c) => c.send(F.fragmentMessage(OP.TEXT, hello8, 1)), expect: { OK: [TEXT(hello8)] } });
  std('6.2.4', 'Send a valid UTF-8 text message (kosme) in fragments of 1 octet', { send: (c) => c.send(F.fragmentMessage(OP.TEXT, KOSME, 1)), expect: { OK: [TEXT(KOSME)] } });
  std('6.3.1', 'Send invalid UTF-8 text message unfragmented', { send: (c) => c.send(fr(OP.TEXT, BAD_UTF8)), close: FAIL(1007) });
  add('6.3.1-split', 'Same payload as 6.3.1 as two fragments split at every octet position (fail-fast probed)', (ctx) => utf8Split(ctx, BAD_UTF8, false), { splitPayload: BAD_UTF8 });
  std('6.3.2', 'Send invalid UTF-8 text message in fragments of 1 octet', { send: (c) => c.send(F.fragmentMessage(OP.TEXT, BAD_UTF8, 1)), close: FAIL(1007) });
  const P1 = KOSME;
  const P2 = bytes('\xf4\x90\x80\x80');
  const P3 = bytes('edited');
  const P = Buffer.concat([P1, P2, P3]);
  add('6.4.1', 'Invalid UTF-8 text message in 3 fragments: valid, invalid (U+110000), valid; fail-fast probed with pings', (ctx) => failFastFrames(ctx, P1, P2, P3));
  add('6.4.2', 'Same as 6.4.1, the 2nd fragment is only the octet making the payload invalid', (ctx) => failFastFrames(ctx, P.subarray(0, 12), P.subarray(12, 13), P.subarray(13)));
  add('6.4.3', 'Same as 6.4.1, but 3 chops of one frame (bounded wait for the close)', (ctx) => failFastChops(ctx, P1, P2, P3));
  add('6.4.4', 'Same as 6.4.2, but 3 chops of one frame (bounded wait for the close)', (ctx) => failFastChops(ctx, P.subarray(0, 12), P.subarray(12, 13), P.subarray(13)));
  utf8TestSequences().forEach(([title, list], gi) => {
    list.forEach(([valid, payload], j) => {
      const id = `6.${gi + 5}.${j + 1}`;
      const hex = payload.length > 20 ? `${payload.length} octets` : `0x${payload.toString('hex')}`;
      std(id, `${title}: ${valid ? 'valid' : 'invalid'} UTF-8 text message in one frame (${hex})`, valid
        ? { send: (c) => c.send(fr(OP.TEXT, payload)), expect: { OK: [TEXT(payload)] } }
        : { send: (c) => c.send(fr(OP.TEXT, payload)), close: FAIL(1007) });
      add(`${id}-split`, `${title}: the 6.${gi + 5}.${j + 1} payload as two fragments split at every octet position${valid ? '' : ' (fail-fast probed)'}`, (ctx) => utf8Split(ctx, payload, valid), valid ? {} : { splitPayload: payload });
    });
  });

  // ---- 7 Close handling
  std('7.1.1', 'Send a message followed by a close frame', { send: (c) => c.send(fr(OP.TEXT, 'Hello World!')), expect: { OK: [TEXT('Hello World!')] } });
  std('7.1.2', 'Send two close frames', { send: async (c) => { await c.sendClose(1000); await c.send(fr(OP.CLOSE)); }, expect: { OK: [] } });
  std('7.1.3', 'Send a ping after the close frame', { send: async (c) => { await c.sendClose(1000); await c.send(fr(OP.PING)); }, expect: { OK: [] } });
  std('7.1.4', 'Send a text message after the close frame', { send: async (c) => { await c.sendClose(1000); await c.send(fr(OP.TEXT, 'Hello World!')); }, expect: { OK: [] } });
  std('7.1.5', 'Send message fragment 1, then close, then fragment 2', { send: async (c) => { await c.send(fr(OP.TEXT, 'fragment1', { fin: false })); await c.sendClose(1000); await c.send(fr(OP.CONT, 'fragment2')); }, expect: { OK: [] } });
  add('7.1.6', 'Send 256K message followed by close then a ping', async (ctx) => {
    const c = await ctx.connect();
    const big = repeatTo('BAsd7&jh23', 256 * 1024);
    await c.send([fr(OP.TEXT, big), fr(OP.TEXT, 'Hello World!')]);
    await c.sendClose(1000);
    await c.send(fr(OP.PING));
    await c.waitFor(() => c.serverGone, c.T.resp);
    await c.finish();
    const r = judge(c, { expect: null, close: CLEAN });
    const obs = c.observed();
    const what = obs.length === 2 ? 'both messages were echoed before the close' : obs.length ? `received ${describe(obs)} before the close` : 'the close was processed before the messages were echoed';
    if (c.violations.length || (!c.closeRecv && c.eofBy !== 'server')) return r.outcome === 'FAILED' ? r : { outcome: 'FAILED', detail: r.detail };
    return { outcome: 'INFORMATIONAL', detail: `${what}; ${serverCloseText(c)}${r.outcome === 'FAILED' ? ` (${r.detail})` : ''}` };
  });
  const closeStd = (payload, close = CLEAN) => ({ send: (c) => c.sendCloseRaw(payload), close });
  const BADC = (codes) => ({ byClient: true, codes, requireClean: false });
  std('7.3.1', 'Send a close frame with payload length 0 (no code, no reason)', closeStd(EMPTY));
  std('7.3.2', 'Send a close frame with payload length 1', closeStd(Buffer.from('a'), BADC([1002])));
  std('7.3.3', 'Send a close frame with payload length 2 (regular close with code)', closeStd(F.closePayload(1000)));
  std('7.3.4', 'Send a close frame with close code and close reason', closeStd(F.closePayload(1000, 'Hello World!')));
  std('7.3.5', 'Send a close frame with close code and close reason of maximum length (123)', closeStd(F.closePayload(1000, '*'.repeat(123))));
  std('7.3.6', 'Send a close frame with close code and close reason which is too long (124)', closeStd(F.closePayload(1000, '*'.repeat(124)), BADC([1002])));
  std('7.5.1', 'Send a close frame with invalid UTF-8 payload', closeStd(F.closePayload(1000, BAD_UTF8), BADC([1002, 1007])));
  [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
    std(`7.7.${i + 1}`, `Send close with valid close code ${code}`, closeStd(F.closePayload(code), { byClient: true, codes: [1000, code], requireClean: true }));
  });
  [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((code, i) => {
    std(`7.9.${i + 1}`, `Send close with invalid close code ${code}`, closeStd(F.closePayload(code), BADC([1002])));
  });
  [[1, 5000], [2, 65535]].forEach(([i, code]) => {
    add(`7.13.${i}`, `Send close with close code ${code}`, async (ctx) => {
      const c = await ctx.connect();
      c.allowedCloseCodes = [code];
      await c.sendCloseRaw(F.closePayload(code));
      await c.waitFor(() => c.serverGone, c.T.resp);
      await c.finish();
      const strict = judge(c, { expect: { OK: [] }, close: BADC([1002]) });
      if (strict.outcome === 'OK') return { outcome: 'OK', detail: `server treated ${code} as invalid: ${serverCloseText(c)}` };
      if (c.violations.length) return strict;
      return { outcome: 'INFORMATIONAL', detail: `undefined by RFC 6455 (Autobahn: informational); server answered with ${serverCloseText(c)}${c.droppedByClient ? ' and did not close TCP' : ''}` };
    });
  });

  // ---- 9 Limits / performance
  const M = 1 << 20;
  const K = 1 << 10;
  const big = [64 * K, 256 * K, M, 4 * M, 8 * M, 16 * M];
  const label = (n) => (n >= M ? `${n / M}M` : `${n / K}K`);
  big.forEach((n, i) => add(`9.1.${i + 1}`, `Send text message with payload of length ${label(n)}`, (ctx) => bigMessage(ctx, { opcode: OP.TEXT, payload: repeatTo('BAsd7&jh23', n) })));
  big.forEach((n, i) => add(`9.2.${i + 1}`, `Send binary message with payload of length ${label(n)}`, (ctx) => bigMessage(ctx, { opcode: OP.BINARY, payload: repeatTo(bytes('\x00\xfe\x23\xfa\xf0'), n) })));
  const fragSizes = [64, 256, K, 4 * K, 16 * K, 64 * K, 256 * K, M, 4 * M];
  fragSizes.forEach((fs, i) => add(`9.3.${i + 1}`, `Send fragmented text message of length 4M in fragments of ${fs}`, (ctx) => bigMessage(ctx, { opcode: OP.TEXT, payload: repeatTo('*', 4 * M), fragmentSize: fs })));
  fragSizes.forEach((fs, i) => add(`9.4.${i + 1}`, `Send fragmented binary message of length 4M in fragments of ${fs}`, (ctx) => bigMessage(ctx, { opcode: OP.BINARY, payload: Buffer.alloc(4 * M, 0xfe), fragmentSize: fs })));
  const chops = [64, 128, 256, 512, 1024, 2048];
  chops.forEach((ch, i) => add(`9.5.${i + 1}`, `Send text message of length 1M in chops of ${ch} octets`, (ctx) => bigMessage(ctx, { opcode: OP.TEXT, payload: repeatTo('BAsd7&jh23', M), chop: ch })));
  chops.forEach((ch, i) => add(`9.6.${i + 1}`, `Send binary message of length 1M in chops of ${ch} octets`, (ctx) => bigMessage(ctx, { opcode: OP.BINARY, payload: repeatTo(bytes('\x00\xfe\x23\xfa\xf0'), M), chop: ch })));
  [0, 16, 64, 256, 1024, 4096].forEach((len, i) => {
    add(`9.7.${i + 1}`, `Send 1000 text messages of payload size ${len}, one round trip each`, (ctx) => roundTrips(ctx, { opcode: OP.TEXT, len, count: 1000 }));
  });
  [0, 16, 64, 256, 1024, 4096].forEach((len, i) => {
    add(`9.8.${i + 1}`, `Send 1000 binary messages of payload size ${len}, one round trip each`, (ctx) => roundTrips(ctx, { opcode: OP.BINARY, len, count: 1000 }));
  });
  add('9.9.1', 'Text message of --max-message + 1 octets in one frame: close 1009', (ctx) => bigMessage(ctx, { opcode: OP.TEXT, payload: repeatTo('BAsd7&jh23', ctx.maxMessage + 1) }));
  add('9.9.2', 'Binary message of --max-message + 1 octets in 1 MiB fragments: close 1009', (ctx) => bigMessage(ctx, { opcode: OP.BINARY, payload: Buffer.alloc(ctx.maxMessage + 1, 0xfe), fragmentSize: Math.min(M, Math.max(1, ctx.maxMessage >> 2)) }));
  add('9.9.3', 'Frame with a 64-bit length that has the most significant bit set: close 1002 (or 1009)', (ctx) => standard(ctx, {
    send: (c) => c.write(Buffer.concat([F.encodeHeader({ opcode: OP.BINARY, length: (1n << 63n) + 5n, mask: c.mask }), Buffer.alloc(16)])),
    close: FAIL(1002, 1009),
  }));
  for (const [id, what, len] of [['9.9.4', '--max-message + 1', null], ['9.9.5', '2^62', 1n << 62n]]) {
    add(id, `Frame header announcing ${what} octets, followed by only 16 octets: close 1009 without waiting for the payload`, async (ctx) => {
      const c = await ctx.connect();
      await c.write(Buffer.concat([F.encodeHeader({ opcode: OP.BINARY, length: len ?? BigInt(ctx.maxMessage + 1), mask: c.mask }), Buffer.alloc(16)]));
      await c.waitFor(() => c.serverGone, c.T.fail);
      if (!c.serverGone) {
        c.kill();
        return { outcome: 'NON-STRICT', detail: `server did not fail a frame announcing more than --max-message (${ctx.maxMessage}) octets within ${c.T.fail} ms; it waits for the payload` };
      }
      await c.finish();
      return judge(c, { expect: { OK: [] }, close: FAIL(1009) });
    });
  }
  add('9.9.6', 'Binary message of exactly --max-message octets in 1 MiB fragments: echoed', (ctx) => {
    if (ctx.maxMessage > 64 * M) return { outcome: 'INFORMATIONAL', detail: `skipped: --max-message ${ctx.maxMessage} is too large to send` };
    return bigMessage(ctx, { opcode: OP.BINARY, payload: Buffer.alloc(ctx.maxMessage, 0x5a), fragmentSize: M });
  });

  // ---- 12 permessage-deflate, different payloads
  ['json', 'lena', 'faust', 'html', 'pdf'].forEach((name, gi) => {
    MSG_SIZES.forEach(([len, count, frag], i) => {
      add(`12.${gi + 1}.${i + 1}`, `permessage-deflate (Autobahn default offer): ${name} corpus, messages of ${len} octets${frag ? `, auto-fragmented to ${frag}` : ''}`, (ctx) => deflateEcho(ctx, { offers: [AB()], corpus: getCorpus(name), len, count, frag }));
    });
  });

  // ---- 13 permessage-deflate, different parameters (Autobahn's DEFLATE_PARAMS, json corpus)
  const params13 = [
    { offers: [AB()], requireAccept: true },
    { offers: [AB({ serverNoContextTakeover: true })], requireAccept: false },
    { offers: [AB({ serverMaxWindowBits: 9 })], requireAccept: false },
    { offers: [AB({ serverMaxWindowBits: 15 })], requireAccept: false },
    { offers: [AB({ serverNoContextTakeover: true, serverMaxWindowBits: 9 })], requireAccept: false },
    { offers: [AB({ serverNoContextTakeover: true, serverMaxWindowBits: 15 })], requireAccept: false },
    { offers: [AB({ serverNoContextTakeover: true, serverMaxWindowBits: 9 }), AB({ serverNoContextTakeover: true }), AB()], requireAccept: true },
    { offers: [{}], requireAccept: true }, // 13.8: plain "permessage-deflate"
  ];
  params13.forEach((p, gi) => {
    const offerText = p.offers.map(F.formatOffer).join(', ');
    MSG_SIZES.forEach(([len, count, frag], i) => {
      add(`13.${gi + 1}.${i + 1}`, `Offer "${offerText}": json messages of ${len} octets${frag ? `, auto-fragmented to ${frag}` : ''}`, (ctx) => deflateEcho(ctx, { offers: p.offers, corpus: getCorpus('json'), len, count, frag, requireAccept: p.requireAccept }));
    });
  });
  for (let w = 9; w <= 15; w++) {
    add(`13.9.${w - 8}`, `Offer "permessage-deflate; client_max_window_bits=${w}": client compresses with a ${w}-bit window and context takeover`, (ctx) => deflateMix(ctx, { offers: [{ clientMaxWindowBits: w }], requireAccept: true, note: (a) => `client window ${a.clientMaxWindowBits} bits` }));
  }
  for (let w = 9; w <= 15; w++) {
    add(`13.10.${w - 8}`, `Offer "permessage-deflate; server_max_window_bits=${w}": every back-reference of the server must stay within ${1 << w} octets`, (ctx) => deflateMix(ctx, { offers: [{ serverMaxWindowBits: w }], requireAccept: false, note: (a) => `server window ${a.serverMaxWindowBits} bits verified` }));
  }
  const H = (hex) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');
  const rawStd = (id, desc, spec) => add(id, desc, (ctx) => deflateRaw(ctx, spec));
  rawStd('13.11.1', 'RFC 7692 7.2.3.1: "Hello" compressed (f2 48 cd c9 c9 07 00)', { send: (c) => c.send(fr(OP.TEXT, H('f248cdc9c90700'), { rsv: 4 })), expect: { OK: [TEXT('Hello')] } });
  rawStd('13.11.2', 'RFC 7692 7.2.3.2: two "Hello" messages sharing the LZ77 window (client context takeover)', { needsClientContext: true, send: (c) => c.send([fr(OP.TEXT, H('f248cdc9c90700'), { rsv: 4 }), fr(OP.TEXT, H('f200110000'), { rsv: 4 })]), expect: { OK: [TEXT('Hello'), TEXT('Hello')] } });
  rawStd('13.11.3', 'RFC 7692 7.2.3.3: "Hello" in a DEFLATE block with BFINAL set (f3 48 cd c9 c9 07 00)', { send: (c) => c.send(fr(OP.TEXT, H('f348cdc9c90700'), { rsv: 4 })), expect: { OK: [TEXT('Hello')] } });
  rawStd('13.11.4', 'RFC 7692 7.2.3.4: compressed "Hello" in two fragments, RSV1 on the first only', { send: (c) => c.send([fr(OP.TEXT, H('f248cd'), { rsv: 4, fin: false }), fr(OP.CONT, H('c9c90700'))]), expect: { OK: [TEXT('Hello')] } });
  rawStd('13.11.5', 'RFC 7692 7.2.3.5: "Hello" in a DEFLATE block with no compression', { send: (c) => c.send(fr(OP.TEXT, H('000500faff48656c6c6f00'), { rsv: 4 })), expect: { OK: [TEXT('Hello')] } });
  rawStd('13.11.6', 'RFC 7692 7.2.3.6: empty compressed message (single 0x00 octet)', { send: (c) => c.send(fr(OP.BINARY, H('00'), { rsv: 4 })), expect: { OK: [BIN('')] } });
  rawStd('13.11.7', 'Uncompressed message (RSV1 clear) inside a permessage-deflate session', { send: (c) => c.send(fr(OP.TEXT, HELLO)), expect: { OK: [TEXT(HELLO)] } });
  rawStd('13.11.8', 'Compressed message in 3 fragments with a ping in-between', {
    send: (c) => {
      const p = c.codec.compress(Buffer.from('fragmented and compressed message, fragmented and compressed message'));
      const a = Math.floor(p.length / 3);
      return c.send([fr(OP.TEXT, p.subarray(0, a), { rsv: 4, fin: false }), fr(OP.CONT, p.subarray(a, 2 * a), { fin: false }), fr(OP.PING, 'ping payload'), fr(OP.CONT, p.subarray(2 * a))]);
    },
    expect: { OK: [PONG('ping payload'), TEXT('fragmented and compressed message, fragmented and compressed message')] },
  });
  rawStd('13.11.9', 'RSV1 set on a continuation frame: close 1002', { send: (c) => c.send([fr(OP.TEXT, H('f248cd'), { rsv: 4, fin: false }), fr(OP.CONT, H('c9c90700'), { rsv: 4 })]), expect: { OK: [] }, close: PROTO });
  rawStd('13.11.10', 'RSV1 set on a ping: close 1002', { send: (c) => c.send(fr(OP.PING, HELLO, { rsv: 4 })), expect: { OK: [] }, close: PROTO });
  rawStd('13.11.11', 'RSV2 set on a text frame in a permessage-deflate session: close 1002', { send: (c) => c.send(fr(OP.TEXT, HELLO, { rsv: 2 })), expect: { OK: [] }, close: PROTO });
  rawStd('13.11.12', 'Compressed text message that inflates to invalid UTF-8: close 1007', { send: (c) => c.send(fr(OP.TEXT, c.codec.compress(BAD_UTF8), { rsv: 4 })), expect: { OK: [] }, close: FAIL(1007) });
  rawStd('13.11.13', 'Corrupt DEFLATE data (reserved block type): close 1007 or 1002', { send: (c) => c.send(fr(OP.BINARY, H('ffffffff'), { rsv: 4 })), expect: { OK: [] }, close: FAIL(1007, 1002) });
  add('13.11.14', 'Compressed message that inflates beyond --max-message (zip bomb): close 1009', async (ctx) => {
    const { c, result } = await pmdConnect(ctx, [{}], { requireAccept: true });
    if (result) return result;
    const bomb = zlib.deflateRawSync(Buffer.alloc(ctx.maxMessage + 1), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
    await c.send(fr(OP.BINARY, bomb, { rsv: 4 }));
    await c.waitFor(() => c.serverGone, c.T.fail + Math.ceil(ctx.maxMessage / M) * 200);
    await c.finish();
    const r = judge(c, { expect: { OK: [] }, close: FAIL(1009) });
    if (r.outcome === 'OK') r.detail = `${bomb.length} compressed octets -> ${ctx.maxMessage + 1}: ${serverCloseText(c)}`;
    return r;
  });
  rawStd('13.11.15', '100 identical compressed messages with client context takeover (server inflater must keep its window)', {
    needsClientContext: true,
    send: async (c) => {
      for (let i = 0; i < 100; i++) await c.sendMessage(OP.TEXT, 'the same message, again and again and again', { compress: true });
    },
    expect: { OK: Array.from({ length: 100 }, () => TEXT('the same message, again and again and again')) },
  });
  const invalid = [
    ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7'],
    ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16'],
    ['client_max_window_bits=16', 'permessage-deflate; client_max_window_bits=16'],
    ['server_max_window_bits without value', 'permessage-deflate; server_max_window_bits'],
    ['unknown parameter', 'permessage-deflate; x_unknown_parameter'],
    ['duplicate parameter', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
    ['value on server_no_context_takeover', 'permessage-deflate; server_no_context_takeover=1'],
  ];
  invalid.forEach(([what, raw], i) => {
    add(`13.12.${i + 1}`, `Invalid offer (${what}) "${raw}": must be declined`, (ctx) => mustDecline(ctx, [{ raw }]));
  });
  add(`13.12.${invalid.length + 1}`, 'Invalid offer followed by a valid plain one: the first must be declined, the second may be accepted', async (ctx) => {
    let c;
    try {
      c = await ctx.connect([{ raw: 'permessage-deflate; server_max_window_bits=7' }, {}]);
    } catch (e) {
      if (e instanceof HandshakeError && /instead of 101/.test(e.message)) {
        return { outcome: 'NON-STRICT', detail: `${e.message.replace(/^server answered /, 'server rejected the whole handshake: ')}; RFC 7692 section 5 asks to decline the invalid offer and consider the next one` };
      }
      throw e;
    }
    if (c.pmd) await c.sendMessage(OP.TEXT, HELLO, { compress: true });
    else await c.send(fr(OP.TEXT, HELLO));
    await c.waitFor(() => c.msgCount >= 1 || c.serverGone, c.T.resp);
    await closeCleanly(c);
    const r = judge(c, { expect: { OK: [TEXT(HELLO)] }, close: CLEAN });
    if (r.outcome === 'OK') r.detail = c.pmd ? `accepted the second offer: "${c.pmd.response}"` : 'declined both offers';
    return r;
  });

  return cases;
}

export { judge, standard, closeCleanly, deflateEcho, deflateMix, deflateNotNegotiated, serverCloseText, describe, CLEAN, FAIL, PROTO, fr, TEXT, BIN, PONG, HELLO, MSG_SIZES };
