// Interop tests: plume's echo_server driven by the independent `ws` client.
//
// Run: PLUME_ECHO_BIN=build/dev/examples/echo/echo_server node --test echo_ws.test.mjs
// (cwd tests/node, after `npm ci`). Every wait is on an event, bounded by a
// timeout; every server is started on 127.0.0.1 and stopped by PID.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { startEcho } from './support/echo_server.mjs';
import { serverPerSuite, withTimeout } from './support/servers.mjs';

const KiB = 1024;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------- helpers

const openClients = new Set();

/** A ws client that queues every message, pong and the close, so none is missed. */
class Client {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.pongs = [];
    this.errors = [];
    this.received = 0; // messages received
    this.receivedBytes = 0;
    this.waiters = [];
    this.pongWaiters = [];
    this.closeInfo = null;
    ws.on('message', (data, isBinary) => {
      this.received++;
      this.receivedBytes += data.length;
      const msg = { data, isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(msg);
      else this.messages.push(msg);
    });
    ws.on('pong', (data) => {
      const w = this.pongWaiters.shift();
      if (w) w(data);
      else this.pongs.push(data);
    });
    ws.on('error', (err) => this.errors.push(err));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        openClients.delete(this);
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) {
          w.reject(new Error(`connection closed (code ${code}, reason "${reason}") while waiting for a message${this.errorText()}`));
        }
        resolve(this.closeInfo);
      });
    });
    openClients.add(this);
  }

  errorText() {
    return this.errors.length ? `; ws client errors: ${this.errors.map((e) => e.message).join('; ')}` : '';
  }

  static open(url, options = {}, timeoutMs = 5000) {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const client = new Client(ws);
    ws.once('upgrade', (res) => {
      client.upgradeHeaders = res.headers;
    });
    const opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (req, res) =>
        reject(new Error(`handshake rejected: HTTP ${res.statusCode} ${res.statusMessage}`))
      );
      ws.once('error', reject);
      ws.once('close', (code) => reject(new Error(`closed (${code}) before open`)));
    });
    return withTimeout(opened, timeoutMs, `connection to ${url}`).catch((err) => {
      ws.terminate();
      throw err;
    });
  }

  next(timeoutMs = 5000) {
    if (this.messages.length) return Promise.resolve(this.messages.shift());
    if (this.closeInfo) {
      return Promise.reject(new Error(`connection already closed (code ${this.closeInfo.code}, reason "${this.closeInfo.reason}")${this.errorText()}`));
    }
    let waiter;
    const p = new Promise((resolve, reject) => {
      waiter = { resolve, reject };
      this.waiters.push(waiter);
    });
    return withTimeout(p, timeoutMs, 'an echoed message').catch((err) => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
      throw err;
    });
  }

  nextPong(timeoutMs = 5000) {
    if (this.pongs.length) return Promise.resolve(this.pongs.shift());
    let waiter;
    const p = new Promise((resolve) => {
      waiter = resolve;
      this.pongWaiters.push(waiter);
    });
    return withTimeout(p, timeoutMs, 'a pong').catch((err) => {
      const i = this.pongWaiters.indexOf(waiter);
      if (i >= 0) this.pongWaiters.splice(i, 1);
      throw err;
    });
  }

  waitClose(timeoutMs = 5000) {
    return withTimeout(this.closed, timeoutMs, 'the connection to close');
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Writes raw bytes on the socket, below ws's framing. */
  writeRaw(bytes) {
    return new Promise((resolve, reject) => {
      this.ws._socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }
}

afterEach(() => {
  for (const c of openClients) c.ws.terminate();
  openClients.clear();
});

/** A masked (client-to-server) frame, built by hand. */
function frame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0, mask = true } = {}) {
  payload = Buffer.from(payload);
  const len = payload.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([header, payload]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

function closePayload(code, reason = Buffer.alloc(0)) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

function textOfSize(n, seed = 0) {
  // printable ASCII, not a single repeated byte, so misplaced chunks show.
  const bytes = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) bytes[i] = 32 + ((i * 7 + seed) % 95);
  return bytes.toString('latin1');
}

function describeSize(n) {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} bytes`;
}

/** Asserts two buffers are equal without dumping megabytes on failure. */
function assertSameBytes(actual, expected, what) {
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  assert.fail(
    `${what}: got ${actual.length} bytes, expected ${expected.length}; first difference at offset ${i}`
  );
}

async function expectEcho(client, data, isBinary, timeoutMs = 10000) {
  await client.send(data, { binary: isBinary });
  const msg = await client.next(timeoutMs);
  assert.equal(msg.isBinary, isBinary, `echo opcode: expected ${isBinary ? 'binary' : 'text'}`);
  assertSameBytes(msg.data, Buffer.from(data), 'echoed payload');
}

/** Sends a raw frame that ws refuses to produce; expects the server's close code. */
async function expectProtocolClose(url, bytes, expectedCode) {
  const c = await Client.open(url);
  await c.writeRaw(bytes);
  const { code, reason } = await c.waitClose(5000);
  assert.equal(
    code,
    expectedCode,
    `expected the server to close with ${expectedCode}, got ${code} (reason "${reason}")${c.errorText()}`
  );
  assert.equal(c.received, 0, 'no message should have been echoed');
}

const SIZES = [0, 125, 126, 65535, 65536, 1 * MiB, 8 * MiB];

// ------------------------------------------------------------------ tests

describe('echo_server (default options) with the ws client', () => {
  const server = serverPerSuite(() => startEcho([]));

  describe('text and binary echo', () => {
    for (const size of SIZES) {
      it(`echoes a ${describeSize(size)} text message as text`, { timeout: 30000 }, async () => {
        const c = await Client.open(server.url);
        await expectEcho(c, textOfSize(size, size), false, 20000);
      });
    }
    for (const size of SIZES) {
      it(`echoes a ${describeSize(size)} binary message as binary`, { timeout: 30000 }, async () => {
        const c = await Client.open(server.url);
        await expectEcho(c, crypto.randomBytes(size), true, 20000);
      });
    }

    it('echoes the sizes one after another on one connection', { timeout: 60000 }, async () => {
      const c = await Client.open(server.url);
      for (const size of SIZES) {
        await expectEcho(c, crypto.randomBytes(size), true, 20000);
        await expectEcho(c, textOfSize(size, 3), false, 20000);
      }
    });

    it('echoes UTF-8 multibyte text unchanged', { timeout: 30000 }, async () => {
      const c = await Client.open(server.url);
      const samples = [
        'héllo wörld — ñ ç ß ø å',
        'Ελληνικά Русский עברית العربية',
        '日本語のテキスト 中文 한국어',
        'emoji 🎉🚀👩‍👩‍👧‍👦 and 𝄞 (4-byte) \u{10FFFF}',
        '\u0000 nul, \u007f del, \u0080 and \uFFFD replacement, \uFEFF bom',
        '🎉'.repeat(40000) + 'é'.repeat(20000) + '日'.repeat(30000), // > 64 KiB of multibyte
      ];
      for (const s of samples) {
        await c.send(s);
        const m = await c.next();
        assert.equal(m.isBinary, false);
        assert.equal(m.data.toString('utf8'), s);
      }
    });

    it('echoes 1000 pipelined messages in order, keeping each opcode', { timeout: 30000 }, async () => {
      const c = await Client.open(server.url);
      const sent = [];
      for (let i = 0; i < 1000; i++) {
        const isBinary = i % 3 === 0;
        const body = `message #${i} ` + 'x'.repeat(i % 200);
        const data = isBinary ? Buffer.from(body) : body;
        sent.push({ body, isBinary });
        c.ws.send(data, { binary: isBinary });
      }
      for (let i = 0; i < 1000; i++) {
        const m = await c.next();
        assert.equal(m.data.toString(), sent[i].body, `message ${i} out of order or corrupted`);
        assert.equal(m.isBinary, sent[i].isBinary, `message ${i} opcode`);
      }
    });
  });

  describe('fragmented messages', () => {
    it('reassembles a text message sent in 3 fragments', async () => {
      const c = await Client.open(server.url);
      c.ws.send('Hello, ', { fin: false });
      c.ws.send('fragmented ', { fin: false });
      c.ws.send('world!', { fin: true });
      const m = await c.next();
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'Hello, fragmented world!');
      assert.equal(c.messages.length, 0);
    });

    it('reassembles a binary message with an empty fragment in the middle', async () => {
      const c = await Client.open(server.url);
      const parts = [crypto.randomBytes(10), Buffer.alloc(0), crypto.randomBytes(300), crypto.randomBytes(70000)];
      parts.forEach((p, i) => c.ws.send(p, { binary: true, fin: i === parts.length - 1 }));
      const m = await c.next();
      assert.equal(m.isBinary, true);
      assertSameBytes(m.data, Buffer.concat(parts), 'reassembled message');
    });

    it('reassembles text whose UTF-8 sequences are split across fragments', async () => {
      const c = await Client.open(server.url);
      const s = 'a€b🎉c日';
      const bytes = Buffer.from(s);
      // Split inside every multibyte character: one byte per fragment.
      for (let i = 0; i < bytes.length; i++) {
        c.ws.send(bytes.subarray(i, i + 1), { binary: false, fin: i === bytes.length - 1 });
      }
      const m = await c.next();
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), s);
    });

    it('answers pings interleaved between fragments and still reassembles', async () => {
      const c = await Client.open(server.url);
      c.ws.send('first|', { fin: false });
      c.ws.ping('between-1');
      c.ws.send('second|', { fin: false });
      c.ws.ping('between-2');
      c.ws.send('third', { fin: true });
      // Pings that arrive together may share one pong (RFC 6455 5.5.3, and
      // plume keeps at most one pong waiting): between-1 may be skipped,
      // between-2 is always answered, and never before between-1.
      let pong = (await c.nextPong()).toString();
      if (pong === 'between-1') pong = (await c.nextPong()).toString();
      assert.equal(pong, 'between-2');
      const m = await c.next();
      assert.equal(m.data.toString(), 'first|second|third');
    });

    it('reassembles a 4 MiB message sent as 1 MiB fragments', { timeout: 30000 }, async () => {
      const c = await Client.open(server.url);
      const parts = [0, 1, 2, 3].map(() => crypto.randomBytes(MiB));
      parts.forEach((p, i) => c.ws.send(p, { binary: true, fin: i === 3 }));
      const m = await c.next(20000);
      assertSameBytes(m.data, Buffer.concat(parts), 'reassembled 4 MiB message');
    });

    it('echoes messages sent after a fragmented one', async () => {
      const c = await Client.open(server.url);
      c.ws.send('frag-a', { fin: false });
      c.ws.send('frag-b', { fin: true });
      c.ws.send('whole');
      assert.equal((await c.next()).data.toString(), 'frag-afrag-b');
      assert.equal((await c.next()).data.toString(), 'whole');
    });
  });

  describe('ping and pong', () => {
    for (const [name, payload] of [
      ['an empty payload', Buffer.alloc(0)],
      ['a text payload', Buffer.from('hello-ping')],
      ['a 125-byte binary payload', crypto.randomBytes(125)],
    ]) {
      it(`answers a ping with ${name} with a pong carrying the same payload`, async () => {
        const c = await Client.open(server.url);
        c.ws.ping(payload);
        const pong = await c.nextPong();
        assertSameBytes(pong, payload, 'pong payload');
      });
    }

    it('answers 100 pipelined pings in order, the last one always', async () => {
      // RFC 6455 5.5.3: a pong may answer only the most recent ping; plume
      // keeps at most one pong waiting per connection (a ping flood cannot
      // grow its memory), so pings that arrive together share one answer.
      const c = await Client.open(server.url);
      for (let i = 0; i < 100; i++) c.ws.ping(`p${i}`);
      let last = -1;
      while (last < 99) {
        const pong = (await c.nextPong()).toString();
        assert.match(pong, /^p\d+$/);
        const i = Number(pong.slice(1));
        assert.ok(i > last, `pong ${pong} after p${last}: out of order or repeated`);
        last = i;
      }
    });

    it('does not echo a ping as a message', async () => {
      const c = await Client.open(server.url);
      c.ws.ping('not-a-message');
      c.ws.send('after-ping');
      assert.equal((await c.next()).data.toString(), 'after-ping');
      assert.equal((await c.nextPong()).toString(), 'not-a-message');
    });
  });

  describe('close handshake', () => {
    for (const code of [1000, 1001, 3000, 4000, 4999]) {
      it(`echoes close code ${code}`, async () => {
        const c = await Client.open(server.url);
        c.ws.close(code, `bye ${code}`);
        const info = await c.waitClose(5000);
        assert.equal(info.code, code, `server answered ${info.code} (reason "${info.reason}")${c.errorText()}`);
      });
    }

    it('answers an empty close with an empty close or 1000', async () => {
      const c = await Client.open(server.url);
      c.ws.close();
      const info = await c.waitClose(5000);
      // ws reports an empty close payload as 1005.
      assert.ok([1005, 1000].includes(info.code), `server answered ${info.code}${c.errorText()}`);
    });

    it('delivers the echoes of messages sent before the close', async () => {
      const c = await Client.open(server.url);
      c.ws.send('one');
      c.ws.send('two');
      c.ws.close(1000);
      assert.equal((await c.next()).data.toString(), 'one');
      assert.equal((await c.next()).data.toString(), 'two');
      assert.equal((await c.waitClose()).code, 1000);
    });

    // ws refuses to send these, so the close frames are written raw.
    for (const code of [1005, 1006, 999, 5000, 0, 1004, 1015, 1016, 2999]) {
      it(`answers an invalid close code ${code} with 1002`, async () => {
        await expectProtocolClose(server.url, frame(0x8, closePayload(code)), 1002);
      });
    }

    it('answers a 1-byte close payload with 1002', async () => {
      await expectProtocolClose(server.url, frame(0x8, Buffer.from([0x03])), 1002);
    });

    it('answers invalid UTF-8 in a close reason with 1007', async () => {
      await expectProtocolClose(server.url, frame(0x8, closePayload(1000, Buffer.from([0xce, 0xba, 0xff, 0xfe]))), 1007);
    });
  });

  describe('protocol errors', () => {
    const invalidUtf8 = {
      'a bad continuation byte': [0xc3, 0x28],
      'an overlong encoding': [0xc0, 0xaf],
      'a UTF-16 surrogate': [0xed, 0xa0, 0x80],
      'a code point above U+10FFFF': [0xf4, 0x90, 0x80, 0x80],
      'a truncated sequence at the end': [0x61, 0xe2, 0x82],
    };
    for (const [name, bytes] of Object.entries(invalidUtf8)) {
      it(`answers a text message with ${name} with 1007`, async () => {
        await expectProtocolClose(server.url, frame(0x1, Buffer.from([0x68, 0x69, ...bytes])), 1007);
      });
    }

    it('answers a fragmented text message with invalid UTF-8 with 1007', async () => {
      const bytes = Buffer.concat([
        frame(0x1, Buffer.from('valid '), { fin: false }),
        frame(0x0, Buffer.from([0xed, 0xa0]), { fin: false }),
        frame(0x0, Buffer.from([0x80, 0x61]), { fin: true }),
      ]);
      await expectProtocolClose(server.url, bytes, 1007);
    });

    for (const rsv of [4, 2, 1]) {
      it(`answers a frame with reserved bits ${rsv.toString(2).padStart(3, '0')} set with 1002`, async () => {
        await expectProtocolClose(server.url, frame(0x1, Buffer.from('rsv'), { rsv }), 1002);
      });
    }

    for (const opcode of [0x3, 0x7, 0xb, 0xf]) {
      it(`answers an unknown opcode 0x${opcode.toString(16)} with 1002`, async () => {
        await expectProtocolClose(server.url, frame(opcode, Buffer.from('?')), 1002);
      });
    }

    it('answers a fragmented ping with 1002', async () => {
      await expectProtocolClose(server.url, frame(0x9, Buffer.from('frag'), { fin: false }), 1002);
    });

    it('answers a 126-byte ping with 1002', async () => {
      await expectProtocolClose(server.url, frame(0x9, Buffer.alloc(126, 0x61)), 1002);
    });

    it('answers a 126-byte close frame with 1002', async () => {
      await expectProtocolClose(server.url, frame(0x8, closePayload(1000, Buffer.alloc(124, 0x61))), 1002);
    });

    it('answers a continuation frame with no message to continue with 1002', async () => {
      await expectProtocolClose(server.url, frame(0x0, Buffer.from('orphan')), 1002);
    });

    it('answers a new data frame inside a fragmented message with 1002', async () => {
      const bytes = Buffer.concat([frame(0x1, Buffer.from('start'), { fin: false }), frame(0x1, Buffer.from('again'))]);
      await expectProtocolClose(server.url, bytes, 1002);
    });
  });

  describe('limits', () => {
    it('echoes a message of exactly 16 MiB (the default limit)', { timeout: 60000 }, async () => {
      const c = await Client.open(server.url);
      await expectEcho(c, crypto.randomBytes(16 * MiB), true, 30000);
    });

    it('closes with 1009 a message over the default 16 MiB limit', { timeout: 60000 }, async () => {
      const c = await Client.open(server.url);
      c.ws.send(crypto.randomBytes(16 * MiB + 1), () => {});
      const info = await c.waitClose(30000);
      assert.equal(info.code, 1009, `server answered ${info.code} (reason "${info.reason}")${c.errorText()}`);
      assert.equal(c.received, 0);
    });
  });

  describe('permessage-deflate without --deflate', () => {
    it('is not negotiated when the client offers it', async () => {
      const c = await Client.open(server.url, { perMessageDeflate: true });
      const header = c.upgradeHeaders['sec-websocket-extensions'];
      assert.equal(header, undefined, `response carries Sec-WebSocket-Extensions: ${header}`);
      assert.equal(c.ws.extensions, '', `negotiated "${c.ws.extensions}"`);
      await expectEcho(c, 'a'.repeat(10000), false);
    });
  });
});

describe('echo_server --max-message 1024', () => {
  const server = serverPerSuite(() => startEcho(['--max-message', '1024']));

  it('echoes a message of exactly 1024 bytes', async () => {
    const c = await Client.open(server.url);
    await expectEcho(c, textOfSize(1024), false);
    await expectEcho(c, crypto.randomBytes(1024), true);
  });

  for (const [name, data] of [
    ['a 2000-byte text message', textOfSize(2000)],
    ['a 2000-byte binary message', crypto.randomBytes(2000)],
    ['a 1025-byte binary message', crypto.randomBytes(1025)],
  ]) {
    it(`closes with 1009 on ${name}`, async () => {
      const c = await Client.open(server.url);
      await expectEcho(c, 'small first', false);
      c.ws.send(data, () => {});
      const info = await c.waitClose(5000);
      assert.equal(info.code, 1009, `server answered ${info.code} (reason "${info.reason}")${c.errorText()}`);
      assert.equal(c.received, 1, 'the oversized message must not be echoed');
    });
  }

  it('closes with 1009 on a fragmented message totalling 1500 bytes (each fragment 500)', async () => {
    const c = await Client.open(server.url);
    for (let i = 0; i < 3; i++) c.ws.send(crypto.randomBytes(500), { binary: true, fin: i === 2 }, () => {});
    const info = await c.waitClose(5000);
    assert.equal(info.code, 1009, `server answered ${info.code} (reason "${info.reason}")${c.errorText()}`);
    assert.equal(c.received, 0);
  });

  it('keeps other connections open when one is closed with 1009', async () => {
    const good = await Client.open(server.url);
    const bad = await Client.open(server.url);
    bad.ws.send(crypto.randomBytes(5000), () => {});
    assert.equal((await bad.waitClose()).code, 1009);
    await expectEcho(good, 'still here', false);
  });
});

// ------------------------------------------------------- permessage-deflate

function compressibleText(n) {
  const words = ['plume', 'phoenix', 'channel', 'presence', 'pubsub', 'socket', 'topic', 'join', 'leave', 'heartbeat'];
  const out = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const w = `{"event":"${words[i % words.length]}","ref":${i % 97},"payload":{}}\n`;
    out.push(w);
    len += w.length;
  }
  return out.join('').slice(0, n);
}

/** Echoes one message and returns how many bytes crossed the socket each way. */
async function echoCountingBytes(c, data, isBinary, timeoutMs = 20000) {
  const sock = c.ws._socket;
  const w0 = sock.bytesWritten;
  const r0 = sock.bytesRead;
  await expectEcho(c, data, isBinary, timeoutMs);
  return { written: sock.bytesWritten - w0, read: sock.bytesRead - r0 };
}

describe('echo_server --deflate with the ws client', () => {
  const server = serverPerSuite(() => startEcho(['--deflate']));

  async function openDeflate(pmd = {}) {
    const c = await Client.open(server.url, { perMessageDeflate: pmd });
    c.extHeader = c.upgradeHeaders['sec-websocket-extensions'];
    return c;
  }

  it('negotiates permessage-deflate', async () => {
    const c = await openDeflate(true);
    assert.equal(c.ws.extensions, 'permessage-deflate', `negotiated "${c.ws.extensions}"`);
    assert.match(c.extHeader ?? '', /^permessage-deflate(\s*;|$)/);
  });

  it('still serves clients that do not offer permessage-deflate', async () => {
    const c = await Client.open(server.url, { perMessageDeflate: false });
    assert.equal(c.ws.extensions, '');
    await expectEcho(c, compressibleText(100000), false);
  });

  it('echoes a 1 MiB compressible text message and compresses it both ways', { timeout: 30000 }, async () => {
    const c = await openDeflate(true);
    const text = compressibleText(MiB);
    const { written, read } = await echoCountingBytes(c, text, false);
    assert.ok(written < MiB / 10, `client sent ${written} bytes for 1 MiB (ws did not compress?)`);
    assert.ok(read < MiB / 10, `server sent ${read} bytes for a 1 MiB highly compressible echo: not compressed`);
  });

  it('echoes a 1 MiB incompressible binary message', { timeout: 30000 }, async () => {
    const c = await openDeflate(true);
    await echoCountingBytes(c, crypto.randomBytes(MiB), true);
  });

  it('echoes an 8 MiB compressible message', { timeout: 60000 }, async () => {
    const c = await openDeflate(true);
    await echoCountingBytes(c, Buffer.from(compressibleText(8 * MiB)), true, 40000);
  });

  it('echoes a sequence of similar messages (context takeover) both ways', { timeout: 30000 }, async () => {
    const c = await openDeflate(true);
    for (let i = 0; i < 200; i++) {
      const size = [0, 1, 100, 1500, 5000, 20000][i % 6];
      await expectEcho(c, compressibleText(size + i).slice(i % 7), i % 2 === 1);
    }
    for (let i = 0; i < 20; i++) await expectEcho(c, crypto.randomBytes(3000 + i), true);
  });

  it('echoes 500 pipelined compressed messages in order', { timeout: 30000 }, async () => {
    const c = await openDeflate(true);
    const sent = [];
    for (let i = 0; i < 500; i++) {
      const s = `${i}:` + compressibleText(1500 + (i % 50));
      sent.push(s);
      c.ws.send(s);
    }
    for (let i = 0; i < 500; i++) assert.equal((await c.next()).data.toString(), sent[i], `message ${i}`);
  });

  it('echoes a compressed message sent in fragments', { timeout: 30000 }, async () => {
    const c = await openDeflate(true);
    const parts = [compressibleText(50000), compressibleText(3000), crypto.randomBytes(20000).toString('base64')];
    parts.forEach((p, i) => c.ws.send(p, { fin: i === parts.length - 1 }));
    const m = await c.next(10000);
    assert.equal(m.data.toString(), parts.join(''));
  });

  it('accepts uncompressed messages on a deflate connection', async () => {
    const c = await openDeflate(true);
    await c.send(compressibleText(10000), { compress: false });
    assert.equal((await c.next()).data.toString(), compressibleText(10000));
    await c.send(Buffer.from('x'.repeat(5000)), { compress: false, binary: true });
    assert.equal((await c.next()).data.toString(), 'x'.repeat(5000));
  });

  const variants = [
    ['serverNoContextTakeover', { serverNoContextTakeover: true }],
    ['clientNoContextTakeover', { clientNoContextTakeover: true }],
    ['serverMaxWindowBits 10', { serverMaxWindowBits: 10 }],
    ['serverMaxWindowBits 9', { serverMaxWindowBits: 9 }],
    ['clientMaxWindowBits 9', { clientMaxWindowBits: 9 }],
    [
      'all of them',
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
    ],
  ];
  for (const [name, opts] of variants) {
    it(`negotiates and echoes with ${name}`, { timeout: 30000 }, async () => {
      const c = await openDeflate(opts);
      assert.equal(c.ws.extensions, 'permessage-deflate', `negotiated "${c.ws.extensions}"`);
      const header = c.extHeader ?? '';
      if (opts.serverNoContextTakeover) {
        assert.match(header, /server_no_context_takeover/, `response "${header}" must confirm server_no_context_takeover`);
      }
      if (opts.serverMaxWindowBits) {
        const m = /server_max_window_bits\s*=\s*"?(\d+)/.exec(header);
        assert.ok(m, `response "${header}" must carry server_max_window_bits`);
        assert.ok(Number(m[1]) <= opts.serverMaxWindowBits && Number(m[1]) >= 8, `server_max_window_bits=${m[1]}`);
      }
      const big = compressibleText(MiB);
      const { read } = await echoCountingBytes(c, big, false);
      assert.ok(read < MiB / 5, `server sent ${read} bytes for a 1 MiB compressible echo: not compressed`);
      await echoCountingBytes(c, crypto.randomBytes(MiB), true);
      // Repeated messages exercise the (lack of) context takeover.
      for (let i = 0; i < 30; i++) await expectEcho(c, compressibleText(4000 + i * 100), i % 2 === 0);
      await expectEcho(c, crypto.randomBytes(200000), true);
    });
  }
});

describe('echo_server --deflate --max-message 1024', () => {
  const server = serverPerSuite(() => startEcho(['--deflate', '--max-message', '1024']));

  it('echoes a compressed message that inflates to exactly 1024 bytes', async () => {
    const c = await Client.open(server.url, { perMessageDeflate: { threshold: 0 } });
    assert.equal(c.ws.extensions, 'permessage-deflate');
    await expectEcho(c, 'a'.repeat(1024), false);
  });

  it('closes with 1009 a compressed message that inflates past the limit (small on the wire)', async () => {
    const c = await Client.open(server.url, { perMessageDeflate: { threshold: 0 } });
    assert.equal(c.ws.extensions, 'permessage-deflate');
    const w0 = c.ws._socket.bytesWritten;
    c.ws.send('a'.repeat(1024 * 1024), () => {});
    const info = await c.waitClose(5000);
    assert.ok(c.ws._socket.bytesWritten - w0 < 1024 * 4, 'the test message should have been small on the wire');
    assert.equal(info.code, 1009, `server answered ${info.code} (reason "${info.reason}")${c.errorText()}`);
    assert.equal(c.received, 0);
  });
});

// ------------------------------------------------------------ idle timeout

describe('echo_server --idle-timeout 1', () => {
  const server = serverPerSuite(() => startEcho(['--idle-timeout', '1']));

  it('closes a silent connection with 1001 "idle timeout" after about 1 s', { timeout: 15000 }, async () => {
    const c = await Client.open(server.url);
    const t0 = Date.now();
    const info = await c.waitClose(8000);
    const elapsed = Date.now() - t0;
    assert.equal(info.code, 1001, `closed with ${info.code} (reason "${info.reason}")${c.errorText()}`);
    assert.equal(info.reason, 'idle timeout');
    assert.ok(elapsed >= 900, `closed after only ${elapsed} ms`);
  });

  it('keeps open a connection that keeps pinging, then closes it once it stops', { timeout: 20000 }, async () => {
    const c = await Client.open(server.url);
    const t0 = Date.now();
    // One ping every 250 ms, paced by the pongs; 12 rounds ≈ 3 s = 3 idle periods.
    for (let i = 0; i < 12; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      assert.equal(c.closeInfo, null, `closed after ${Date.now() - t0} ms despite pings: ${JSON.stringify(c.closeInfo)}`);
      c.ws.ping(`keepalive ${i}`);
      assert.equal((await c.nextPong(2000)).toString(), `keepalive ${i}`);
    }
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    const info = await c.waitClose(8000);
    assert.equal(info.code, 1001);
  });

  it('keeps open a connection that keeps sending messages', { timeout: 20000 }, async () => {
    const c = await Client.open(server.url);
    for (let i = 0; i < 12; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      await expectEcho(c, `tick ${i}`, false, 2000);
    }
    assert.equal(c.ws.readyState, WebSocket.OPEN);
  });
});

// ------------------------------------------------------------- slow reader

describe('echo_server --max-send-queue 262144 (slow reader policy)', () => {
  const server = serverPerSuite(() => startEcho(['--max-send-queue', String(256 * KiB)]));

  it('closes a client that stops reading, while another client echoes normally', { timeout: 120000 }, async (t) => {
    const slow = await Client.open(server.url);
    const good = await Client.open(server.url);
    slow.ws._socket.pause();

    let slowDone = false;
    slow.closed.then(() => {
      slowDone = true;
    });

    // The well-behaved client echoes round trips throughout, each within 5 s.
    let goodRounds = 0;
    let goodTarget = Infinity;
    const roundWaiters = [];
    const goodLoop = (async () => {
      while (goodRounds < goodTarget) {
        const payload = `good ${goodRounds} ` + 'g'.repeat(4000);
        good.ws.send(payload);
        const m = await good.next(5000);
        assert.equal(m.data.toString(), payload, `good client round ${goodRounds}`);
        goodRounds++;
        for (const w of roundWaiters.filter((x) => goodRounds >= x.n)) w.resolve();
      }
    })();
    goodLoop.catch(() => {});
    const goodReaches = (n, what) =>
      withTimeout(
        Promise.race([goodLoop.then(() => assert.ok(goodRounds >= n)), new Promise((resolve) => roundWaiters.push({ n, resolve }))]),
        30000,
        what
      );

    // Flood the server with echo-able messages from the client that does not read.
    const chunk = crypto.randomBytes(64 * KiB);
    const cap = 96 * MiB;
    let sent = 0;
    while (sent < cap && !slowDone) {
      const err = await withTimeout(
        new Promise((resolve) => slow.ws.send(chunk, { binary: true }, resolve)),
        15000,
        `the server to keep reading from the slow client (${sent} bytes written so far)`
      );
      if (err) break;
      sent += chunk.length;
    }
    t.diagnostic(`slow client wrote ${sent} bytes with reading paused; closed meanwhile: ${slowDone}`);

    // While the slow client is still stuck, the good one keeps echoing.
    await goodReaches(goodRounds + 10, 'the good client to echo 10 more rounds while the slow client is stuck');

    // Read again: the server must have given up on this connection.
    if (!slowDone) slow.ws._socket.resume();
    const info = await slow.waitClose(20000).catch((err) => {
      throw new Error(
        `${err.message}: after ${sent} bytes sent with reading paused the slow client received ` +
          `${slow.receivedBytes} bytes of echoes and is still open (expected close 1008 or termination)`
      );
    });
    t.diagnostic(`slow client: close ${info.code} "${info.reason}", ${slow.receivedBytes} bytes of echoes received`);
    assert.ok(
      info.code === 1008 || info.code === 1006,
      `slow client closed with ${info.code} (reason "${info.reason}"), expected 1008 or a terminated connection (1006)`
    );
    if (info.code === 1008) assert.equal(info.reason, 'send queue overflow');
    assert.ok(slow.receivedBytes < sent, `slow client got all ${sent} bytes echoed back; nothing was dropped`);

    // The other client keeps working afterwards.
    goodTarget = goodRounds + 20;
    await withTimeout(goodLoop, 30000, 'the good client to finish its rounds');
    assert.equal(good.ws.readyState, WebSocket.OPEN, 'good client was closed');
    good.ws.close(1000);
    assert.equal((await good.waitClose()).code, 1000);
  });
});

// ------------------------------------------------------------ shutdown

describe('echo_server shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    it(`sends 1001 to every open connection on ${signal} and exits with 0`, { timeout: 30000 }, async () => {
      const server = await startEcho([]);
      try {
        const clients = await Promise.all([0, 1, 2].map(() => Client.open(server.url)));
        await expectEcho(clients[0], 'before shutdown', false);
        process.kill(server.proc.pid, signal);
        const infos = await Promise.all(clients.map((c) => c.waitClose(10000)));
        infos.forEach((info, i) =>
          assert.equal(info.code, 1001, `client ${i} closed with ${info.code} (reason "${info.reason}")${clients[i].errorText()}`)
        );
        const exit = await withTimeout(server.exited, 10000, 'echo_server to exit');
        assert.deepEqual(exit, { code: 0, signal: null }, `exit: ${JSON.stringify(exit)}\n${server.output()}`);
      } finally {
        await server.stop('SIGKILL').catch(() => {});
      }
    });
  }

  it('exits with 0 on SIGTERM despite a half-sent handshake and a client that never reads', { timeout: 60000 }, async () => {
    const server = await startEcho([]);
    const raw = net.connect({ host: '127.0.0.1', port: server.port });
    raw.on('error', () => {});
    try {
      await withTimeout(new Promise((resolve) => raw.once('connect', resolve)), 5000, 'raw connection');
      raw.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
      const normal = await Client.open(server.url);
      const deaf = await Client.open(server.url);
      deaf.ws._socket.pause(); // never sees nor answers the server's close
      await expectEcho(normal, 'before shutdown', false);
      process.kill(server.proc.pid, 'SIGTERM');
      const info = await normal.waitClose(10000);
      assert.equal(info.code, 1001, `closed with ${info.code} (reason "${info.reason}")`);
      const exit = await withTimeout(server.exited, 30000, 'echo_server to exit although one client never answers the close');
      assert.deepEqual(exit, { code: 0, signal: null }, `exit: ${JSON.stringify(exit)}\n${server.output()}`);
    } finally {
      raw.destroy();
      await server.stop('SIGKILL').catch(() => {});
    }
  });

  it('exits with 0 on SIGTERM with no connections', { timeout: 30000 }, async () => {
    const server = await startEcho([]);
    try {
      const exit = await server.stop('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, `exit: ${JSON.stringify(exit)}\n${server.output()}`);
    } finally {
      await server.stop('SIGKILL').catch(() => {});
    }
  });
});

// ------------------------------------------------------------ concurrency

for (const extra of [[], ['--threads', '2']]) {
  describe(`echo_server ${extra.join(' ') || '(default threads)'} with 50 concurrent clients`, () => {
    const server = serverPerSuite(() => startEcho(extra));

    it('echoes 100 messages for each of 50 concurrent clients, in order and without cross-talk', { timeout: 60000 }, async () => {
      const clients = await Promise.all(Array.from({ length: 50 }, () => Client.open(server.url, {}, 10000)));
      await Promise.all(
        clients.map(async (c, ci) => {
          const sent = [];
          for (let j = 0; j < 100; j++) {
            const body = `client ${ci} message ${j} ` + 'z'.repeat((ci * 31 + j * 17) % 3000);
            const isBinary = (ci + j) % 2 === 0;
            sent.push({ body, isBinary });
            c.ws.send(isBinary ? Buffer.from(body) : body, { binary: isBinary });
          }
          for (let j = 0; j < 100; j++) {
            const m = await c.next(20000);
            assert.equal(m.data.toString(), sent[j].body, `client ${ci} message ${j}`);
            assert.equal(m.isBinary, sent[j].isBinary, `client ${ci} message ${j} opcode`);
          }
        })
      );
      await Promise.all(
        clients.map(async (c) => {
          c.ws.close(1000);
          assert.equal((await c.waitClose(10000)).code, 1000);
        })
      );
    });
  });
}
