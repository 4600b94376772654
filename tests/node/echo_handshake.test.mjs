// Raw-socket tests of plume's echo_server HTTP upgrade (RFC 6455 §4) and of
// the first frames after it, written byte by byte with node:net so that
// nothing is normalised by a client library.
//
// Run: PLUME_ECHO_BIN=build/dev/examples/echo/echo_server node --test echo_handshake.test.mjs
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { startEcho } from './support/echo_server.mjs';
import { serverPerSuite, withTimeout } from './support/servers.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

const STATUS = {
  101: 'HTTP/1.1 101 Switching Protocols',
  400: 'HTTP/1.1 400 Bad Request',
  408: 'HTTP/1.1 408 Request Timeout',
  426: 'HTTP/1.1 426 Upgrade Required',
  431: 'HTTP/1.1 431 Request Header Fields Too Large',
};

// ---------------------------------------------------------------- helpers

function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

function newKey() {
  return crypto.randomBytes(16).toString('base64');
}

function upgradeRequest({ path = '/', key = newKey(), extra = [], method = 'GET' } = {}) {
  return [
    `${method} ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
    ...extra,
    '',
    '',
  ].join('\r\n');
}

/** Builds a request from header lines; `null` entries are left out. */
function request(lines) {
  return lines.filter((l) => l !== null).join('\r\n') + '\r\n\r\n';
}

const openConns = new Set();

/** A raw TCP connection that buffers everything it receives. */
class RawConn {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.error = null;
    this.listeners = new Set();
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.notify();
    });
    // A reset after the response is still "the server closed the connection".
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.ended = true;
      openConns.delete(this);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    openConns.add(this);
  }

  static connect(port, timeoutMs = 5000) {
    return withTimeout(
      new Promise((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.setNoDelay(true);
        socket.once('connect', () => {
          socket.removeListener('error', reject);
          resolve(new RawConn(socket));
        });
        socket.once('error', reject);
      }),
      timeoutMs,
      `TCP connection to port ${port}`
    );
  }

  notify() {
    for (const l of [...this.listeners]) l();
  }

  /** Waits until `take(buf, ended)` returns something other than undefined. */
  waitFor(take, timeoutMs, what) {
    return withTimeout(
      new Promise((resolve, reject) => {
        const check = () => {
          let v;
          try {
            v = take(this.buf, this.ended);
          } catch (err) {
            this.listeners.delete(check);
            reject(err);
            return;
          }
          if (v !== undefined) {
            this.listeners.delete(check);
            resolve(v);
          }
        };
        this.listeners.add(check);
        check();
      }),
      timeoutMs,
      what
    ).catch((err) => {
      throw new Error(`${err.message}; received so far: ${JSON.stringify(this.buf.toString('latin1').slice(0, 500))}` +
        `${this.ended ? ' (connection closed)' : ''}`);
    });
  }

  write(bytes) {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Reads the HTTP response head; the bytes after it stay in `buf`. */
  readHead(timeoutMs = 5000) {
    return this.waitFor(
      (buf, ended) => {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (ended) throw new Error(`connection closed before a complete response head: ${JSON.stringify(buf.toString('latin1'))}`);
          return undefined;
        }
        const head = buf.subarray(0, end).toString('latin1');
        this.buf = buf.subarray(end + 4);
        return parseHead(head);
      },
      timeoutMs,
      'the HTTP response head'
    );
  }

  /** Resolves once the server has closed the connection (FIN or RST). */
  waitEnd(timeoutMs = 5000) {
    return this.waitFor((_, ended) => (ended ? true : undefined), timeoutMs, 'the server to close the connection');
  }

  /** Reads one WebSocket frame sent by the server. */
  readFrame(timeoutMs = 5000) {
    return this.waitFor(
      (buf, ended) => {
        const f = decodeFrame(buf);
        if (!f) {
          if (ended) throw new Error(`connection closed before a complete frame (${buf.length} bytes pending)`);
          return undefined;
        }
        this.buf = buf.subarray(f.size);
        return f;
      },
      timeoutMs,
      'a WebSocket frame'
    );
  }

  destroy() {
    this.socket.destroy();
  }
}

afterEach(() => {
  for (const c of openConns) c.destroy();
  openConns.clear();
});

function parseHead(head) {
  assert.ok(!/(^|[^\r])\n/.test(head), `response head has a bare LF: ${JSON.stringify(head)}`);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = lines.map((line) => {
    const i = line.indexOf(':');
    assert.ok(i > 0, `malformed response header line ${JSON.stringify(line)}`);
    return [line.slice(0, i), line.slice(i + 1).trim()];
  });
  const all = (name) => headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  const one = (name) => {
    const v = all(name);
    assert.ok(v.length <= 1, `header ${name} appears ${v.length} times: ${JSON.stringify(head)}`);
    return v[0];
  };
  return { head, statusLine, headers, all, one };
}

function decodeFrame(buf) {
  if (buf.length < 2) return null;
  const b0 = buf[0];
  const b1 = buf[1];
  let len = b1 & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  let key = null;
  if (masked) {
    if (buf.length < off + 4) return null;
    key = buf.subarray(off, off + 4);
    off += 4;
  }
  if (buf.length < off + len) return null;
  let payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) payload = payload.map((b, i) => b ^ key[i & 3]);
  return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload, size: off + len };
}

function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true } = {}) {
  payload = Buffer.from(payload);
  const len = payload.length;
  let header;
  if (len < 126) {
    header = Buffer.from([0, len]);
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, payload]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  return Buffer.concat([header, key, payload.map((b, i) => b ^ key[i & 3])]);
}

function closeCodeOf(f) {
  return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
}

/** Asserts a valid 101 for `key`. */
function assertSwitching(res, key) {
  assert.equal(res.statusLine, STATUS[101], `status line; full head: ${JSON.stringify(res.head)}`);
  assert.equal((res.one('Upgrade') ?? '').toLowerCase(), 'websocket', 'Upgrade header');
  const conn = (res.one('Connection') ?? '').split(',').map((t) => t.trim().toLowerCase());
  assert.ok(conn.includes('upgrade'), `Connection header "${res.one('Connection')}" must contain "Upgrade"`);
  assert.equal(res.one('Sec-WebSocket-Accept'), acceptFor(key), 'Sec-WebSocket-Accept');
}

/** After a 101: one masked text frame must come back unmasked, same payload. */
async function assertEchoes(conn, text = 'hello after upgrade') {
  await conn.write(frame(0x1, Buffer.from(text)));
  const f = await conn.readFrame();
  assert.equal(f.opcode, 0x1, `echo opcode ${f.opcode}`);
  assert.equal(f.fin, true);
  assert.equal(f.masked, false, 'server frames must not be masked');
  assert.equal(f.payload.toString(), text);
}

/** Sends `req` and expects an error response with `status` and a closed connection. */
async function expectRejected(port, req, status) {
  const conn = await RawConn.connect(port);
  await conn.write(req);
  const res = await conn.readHead();
  const expected = Array.isArray(status) ? status : [status];
  assert.ok(
    expected.map((s) => STATUS[s]).includes(res.statusLine),
    `expected ${expected.map((s) => STATUS[s]).join(' or ')}, got ${JSON.stringify(res.statusLine)}; head ${JSON.stringify(res.head)}`
  );
  assert.equal(res.one('Sec-WebSocket-Accept'), undefined, 'an error response must not carry Sec-WebSocket-Accept');
  await conn.waitEnd(5000);
  return res;
}

// ------------------------------------------------------------------ tests

describe('echo_server HTTP upgrade (raw sockets)', () => {
  const server = serverPerSuite(() => startEcho([]));

  describe('successful upgrades', () => {
    it('computes the RFC 6455 example Accept value with SHA-1', () => {
      assert.equal(acceptFor(RFC_KEY), RFC_ACCEPT);
    });

    it('answers the RFC 6455 example key with 101 and the RFC Accept value', async () => {
      const conn = await RawConn.connect(server.port);
      await conn.write(upgradeRequest({ key: RFC_KEY, path: '/chat' }));
      const res = await conn.readHead();
      assertSwitching(res, RFC_KEY);
      assert.equal(res.one('Sec-WebSocket-Accept'), RFC_ACCEPT);
      assert.equal(res.one('Sec-WebSocket-Extensions'), undefined, 'no extension was offered');
      assert.equal(res.one('Sec-WebSocket-Protocol'), undefined, 'no subprotocol was requested');
      assert.equal(conn.buf.length, 0, 'nothing may follow the 101 before the client speaks');
      await assertEchoes(conn);
    });

    it('answers 20 random keys with their own Accept values', async () => {
      for (let i = 0; i < 20; i++) {
        const key = newKey();
        const conn = await RawConn.connect(server.port);
        await conn.write(upgradeRequest({ key }));
        assertSwitching(await conn.readHead(), key);
        conn.destroy();
      }
    });

    it('treats header names case-insensitively', async () => {
      for (const transform of [(s) => s.toLowerCase(), (s) => s.toUpperCase()]) {
        const key = newKey();
        const req = request([
          'GET / HTTP/1.1',
          `${transform('Host')}: 127.0.0.1`,
          `${transform('Upgrade')}: WebSocket`,
          `${transform('Connection')}: UPGRADE`,
          `${transform('Sec-WebSocket-Key')}: ${key}`,
          `${transform('Sec-WebSocket-Version')}: 13`,
        ]);
        const conn = await RawConn.connect(server.port);
        await conn.write(req);
        assertSwitching(await conn.readHead(), key);
        await assertEchoes(conn);
      }
    });

    for (const connection of ['keep-alive, Upgrade', 'Upgrade, keep-alive', 'keep-alive,upgrade', 'close , Upgrade']) {
      it(`accepts "Connection: ${connection}"`, async () => {
        const key = newKey();
        const req = request(['GET / HTTP/1.1', 'Host: x', 'Upgrade: websocket', `Connection: ${connection}`,
          `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13']);
        const conn = await RawConn.connect(server.port);
        await conn.write(req);
        assertSwitching(await conn.readHead(), key);
        await assertEchoes(conn);
      });
    }

    for (const path of ['/', '/chat', '/a/b/c/', '/socket/websocket?vsn=2.0.0', '/?a=1&b=2&c', '/path?token=abc%3D%3D&x=%20y', '/x?']) {
      it(`accepts the request target ${path}`, async () => {
        const key = newKey();
        const conn = await RawConn.connect(server.port);
        await conn.write(upgradeRequest({ key, path }));
        assertSwitching(await conn.readHead(), key);
        await assertEchoes(conn);
      });
    }

    it('accepts odd but legal header whitespace (no space, several spaces)', async () => {
      const key = newKey();
      const req = request([
        'GET /ws?q=1 HTTP/1.1',
        'Host:127.0.0.1:80',
        'Upgrade:websocket',
        'Connection:    Upgrade   ',
        `Sec-WebSocket-Key:  ${key}   `,
        'Sec-WebSocket-Version:13 ',
        'X-Empty:',
        'X-Spaces:    ',
        'User-Agent: plume-tests/1.0 (raw socket)',
      ]);
      const conn = await RawConn.connect(server.port);
      await conn.write(req);
      assertSwitching(await conn.readHead(), key);
      await assertEchoes(conn);
    });

    it('accepts horizontal tabs as optional whitespace around header values', async () => {
      const key = newKey();
      const req = request([
        'GET / HTTP/1.1',
        'Host:\t127.0.0.1',
        'Upgrade:\twebsocket\t',
        'Connection: \t Upgrade \t',
        `Sec-WebSocket-Key:\t  ${key} \t`,
        'Sec-WebSocket-Version:\t13\t',
      ]);
      const conn = await RawConn.connect(server.port);
      await conn.write(req);
      assertSwitching(await conn.readHead(), key);
      await assertEchoes(conn);
    });

    it('accepts extra headers (Origin, User-Agent, Cookie, Sec-WebSocket-Extensions for an unknown extension)', async () => {
      const key = newKey();
      const conn = await RawConn.connect(server.port);
      await conn.write(upgradeRequest({
        key,
        extra: ['Origin: http://example.test', 'User-Agent: raw', 'Cookie: a=b; c=d', 'Sec-WebSocket-Extensions: x-unknown-ext; foo=1',
          'Accept-Encoding: gzip', 'Cache-Control: no-cache', 'Pragma: no-cache'],
      }));
      const res = await conn.readHead();
      assertSwitching(res, key);
      assert.equal(res.one('Sec-WebSocket-Extensions'), undefined, 'an unknown extension must not be accepted');
      await assertEchoes(conn);
    });

    it('handles a request that arrives one byte at a time', { timeout: 30000 }, async () => {
      const key = newKey();
      const req = Buffer.from(upgradeRequest({ key, path: '/slowly?x=1' }));
      const conn = await RawConn.connect(server.port);
      for (let i = 0; i < req.length; i++) {
        await conn.write(req.subarray(i, i + 1));
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(conn.ended, false, `server closed the connection after ${i + 1} of ${req.length} bytes`);
        if (i < req.length - 1) assert.equal(conn.buf.length, 0, `server answered after only ${i + 1} of ${req.length} bytes`);
      }
      assertSwitching(await conn.readHead(), key);
      await assertEchoes(conn);
    });

    it('keeps a frame that arrives in the same packet as the request', async () => {
      const key = newKey();
      const conn = await RawConn.connect(server.port);
      await conn.write(Buffer.concat([Buffer.from(upgradeRequest({ key })), frame(0x1, Buffer.from('early bird'))]));
      assertSwitching(await conn.readHead(), key);
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0x1);
      assert.equal(f.payload.toString(), 'early bird');
    });

    it('accepts request headers just under 16 KiB', async () => {
      const key = newKey();
      const conn = await RawConn.connect(server.port);
      await conn.write(upgradeRequest({ key, extra: ['X-Padding: ' + 'p'.repeat(15000)] }));
      assertSwitching(await conn.readHead(), key);
      await assertEchoes(conn);
    });

    it('serves several upgrades on separate connections at the same time', async () => {
      const conns = await Promise.all(Array.from({ length: 10 }, () => RawConn.connect(server.port)));
      const keys = conns.map(() => newKey());
      await Promise.all(conns.map((c, i) => c.write(upgradeRequest({ key: keys[i] }))));
      const heads = await Promise.all(conns.map((c) => c.readHead()));
      heads.forEach((h, i) => assertSwitching(h, keys[i]));
      await Promise.all(conns.map((c, i) => assertEchoes(c, `conn ${i}`)));
    });
  });

  describe('rejected requests', () => {
    const base = (over = {}) => {
      const h = {
        line: 'GET / HTTP/1.1',
        host: 'Host: 127.0.0.1',
        upgrade: 'Upgrade: websocket',
        connection: 'Connection: Upgrade',
        key: `Sec-WebSocket-Key: ${newKey()}`,
        version: 'Sec-WebSocket-Version: 13',
        ...over,
      };
      return request([h.line, h.host, h.upgrade, h.connection, h.key, h.version]);
    };

    const badKeys = {
      'no Sec-WebSocket-Key': null,
      'an empty Sec-WebSocket-Key': 'Sec-WebSocket-Key: ',
      'a Sec-WebSocket-Key that is not base64': 'Sec-WebSocket-Key: this is not base64!!!!',
      'a Sec-WebSocket-Key of 15 bytes': `Sec-WebSocket-Key: ${crypto.randomBytes(15).toString('base64')}`,
      'a Sec-WebSocket-Key of 17 bytes': `Sec-WebSocket-Key: ${crypto.randomBytes(17).toString('base64')}`,
      'a Sec-WebSocket-Key of 16 bytes without padding': `Sec-WebSocket-Key: ${newKey().replace(/=+$/, '')}`,
    };
    for (const [name, keyLine] of Object.entries(badKeys)) {
      it(`answers ${name} with 400 and closes`, async () => {
        await expectRejected(server.port, base({ key: keyLine }), 400);
      });
    }

    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS']) {
      it(`answers an upgrade with method ${method} with 400 and closes`, async () => {
        await expectRejected(server.port, base({ line: `${method} / HTTP/1.1` }), 400);
      });
    }

    const malformed = {
      'a request line with only a method': 'GET',
      'a request line without an HTTP version': 'GET /',
      'a request line that is not HTTP': 'HELLO THERE FRIEND AGAIN',
      'a request line with a non-HTTP protocol': 'GET / FTP/1.1',
    };
    for (const [name, line] of Object.entries(malformed)) {
      it(`answers ${name} with 400 and closes`, async () => {
        await expectRejected(server.port, base({ line }), 400);
      });
    }

    it('answers a header line without a colon with 400 and closes', async () => {
      await expectRejected(server.port, base({ host: 'Host 127.0.0.1' }), 400);
    });

    for (const version of ['8', '14', '12', 'abc']) {
      it(`answers Sec-WebSocket-Version ${version} with 426 and "Sec-WebSocket-Version: 13"`, async () => {
        const res = await expectRejected(server.port, base({ version: `Sec-WebSocket-Version: ${version}` }), 426);
        assert.deepEqual(res.all('Sec-WebSocket-Version'), ['13'], `head ${JSON.stringify(res.head)}`);
      });
    }

    it('answers a missing Sec-WebSocket-Version with 400 or 426 and closes', async () => {
      await expectRejected(server.port, base({ version: null }), [400, 426]);
    });

    it('answers a plain GET without Upgrade with 426 and closes', async () => {
      await expectRejected(server.port, request(['GET / HTTP/1.1', 'Host: 127.0.0.1', 'Accept: */*']), 426);
    });

    it('answers "Upgrade: h2c" with 426 and closes', async () => {
      await expectRejected(server.port, base({ upgrade: 'Upgrade: h2c', connection: 'Connection: Upgrade, HTTP2-Settings' }), 426);
    });

    it('names websocket in the Upgrade header of a 426 for a plain GET (RFC 7231 §6.5.15)', async () => {
      const res = await expectRejected(server.port, request(['GET / HTTP/1.1', 'Host: 127.0.0.1']), 426);
      assert.equal((res.one('Upgrade') ?? '').toLowerCase(), 'websocket', `head ${JSON.stringify(res.head)}`);
    });

    it('answers a Connection header without "Upgrade" with 400 or 426 and closes', async () => {
      await expectRejected(server.port, base({ connection: 'Connection: keep-alive' }), [400, 426]);
    });

    it('answers a 17 KiB header with 431 and closes', async () => {
      const req = upgradeRequest({ extra: ['X-Big: ' + 'b'.repeat(17 * 1024)] });
      await expectRejected(server.port, req, 431);
    });

    it('answers 40 headers totalling 20 KiB with 431 and closes', async () => {
      const extra = Array.from({ length: 40 }, (_, i) => `X-Header-${i}: ` + 'h'.repeat(500));
      await expectRejected(server.port, upgradeRequest({ extra }), 431);
    });

    it('answers 431 once the headers pass 16 KiB, without waiting for the end of the request', async () => {
      const conn = await RawConn.connect(server.port);
      await conn.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ' + 'e'.repeat(20 * 1024));
      const res = await conn.readHead(5000);
      assert.equal(res.statusLine, STATUS[431], `head ${JSON.stringify(res.head)}`);
      await conn.waitEnd(5000);
    });

    it('does not accept a second request on the connection of an error response', async () => {
      const conn = await RawConn.connect(server.port);
      const key = newKey();
      await conn.write(request(['GET / HTTP/1.1', 'Host: x']) + upgradeRequest({ key }));
      const res = await conn.readHead();
      assert.equal(res.statusLine, STATUS[426]);
      await conn.waitEnd(5000);
      assert.ok(!conn.buf.toString('latin1').includes('101'), `a 101 followed the error response: ${JSON.stringify(conn.buf.toString('latin1'))}`);
    });
  });

  describe('first frames after the upgrade', () => {
    async function upgraded() {
      const key = newKey();
      const conn = await RawConn.connect(server.port);
      await conn.write(upgradeRequest({ key }));
      assertSwitching(await conn.readHead(), key);
      return conn;
    }

    it('echoes text and binary frames unmasked', async () => {
      const conn = await upgraded();
      await assertEchoes(conn, 'text');
      const bin = crypto.randomBytes(70000);
      await conn.write(frame(0x2, bin));
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0x2);
      assert.equal(f.masked, false);
      assert.ok(f.payload.equals(bin), 'binary payload');
    });

    it('answers an unmasked frame right after the upgrade with close 1002 and closes TCP', async () => {
      const conn = await upgraded();
      await conn.write(frame(0x1, Buffer.from('not masked'), { mask: false }));
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0x8, `expected a close frame, got opcode ${f.opcode} (${JSON.stringify(f.payload.toString())})`);
      assert.equal(f.masked, false);
      assert.equal(closeCodeOf(f), 1002, `close code ${closeCodeOf(f)}`);
      await conn.waitEnd(5000);
    });

    it('answers close 1000 with close 1000 and then closes TCP itself', async () => {
      const conn = await upgraded();
      await conn.write(frame(0x8, Buffer.from([0x03, 0xe8])));
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0x8);
      assert.equal(closeCodeOf(f), 1000);
      // We do not close our side: the server must.
      await conn.waitEnd(5000);
    });

    it('answers an empty close with an empty close or 1000', async () => {
      const conn = await upgraded();
      await conn.write(frame(0x8));
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0x8);
      assert.ok(f.payload.length === 0 || closeCodeOf(f) === 1000, `close payload ${f.payload.toString('hex')}`);
      await conn.waitEnd(5000);
    });

    it('sends nothing after its close frame, even if the client sends data', async () => {
      const conn = await upgraded();
      await conn.write(Buffer.concat([frame(0x8, Buffer.from([0x0f, 0xa0])), frame(0x1, Buffer.from('after close'))]));
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0x8);
      assert.equal(closeCodeOf(f), 4000);
      await conn.waitEnd(5000);
      assert.equal(conn.buf.length, 0, `bytes after the close frame: ${conn.buf.toString('hex')}`);
    });

    it('answers a ping sent right after the upgrade with a pong', async () => {
      const conn = await upgraded();
      await conn.write(frame(0x9, Buffer.from('raw ping')));
      const f = await conn.readFrame();
      assert.equal(f.opcode, 0xa);
      assert.equal(f.payload.toString(), 'raw ping');
    });
  });
});

describe('echo_server --handshake-timeout 1 (raw sockets)', () => {
  const server = serverPerSuite(() => startEcho(['--handshake-timeout', '1']));

  /** The connection must be closed after ~1 s; any response before that must be a 408. */
  async function expectTimedOut(conn, t0) {
    await conn.waitEnd(6000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 900, `closed after only ${elapsed} ms`);
    if (conn.buf.length) {
      const text = conn.buf.toString('latin1');
      assert.ok(text.startsWith(STATUS[408] + '\r\n'), `unexpected response before the close: ${JSON.stringify(text.slice(0, 200))}`);
    }
  }

  it('closes a connection that sends nothing', { timeout: 15000 }, async () => {
    const t0 = Date.now();
    const conn = await RawConn.connect(server.port);
    await expectTimedOut(conn, t0);
  });

  it('closes a connection whose request stops half-way', { timeout: 15000 }, async () => {
    const t0 = Date.now();
    const conn = await RawConn.connect(server.port);
    await conn.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    await expectTimedOut(conn, t0);
  });

  it('closes a connection that trickles its request too slowly to finish in time', { timeout: 20000 }, async () => {
    const t0 = Date.now();
    const conn = await RawConn.connect(server.port);
    const req = Buffer.from(upgradeRequest());
    // One byte every 100 ms: the full request would take well over 10 s.
    let i = 0;
    const trickle = setInterval(() => {
      if (conn.ended || i >= req.length) return clearInterval(trickle);
      conn.socket.write(req.subarray(i, i + 1));
      i++;
    }, 100);
    try {
      await expectTimedOut(conn, t0);
      assert.ok(i < req.length, 'the whole request was sent before the server closed');
      assert.ok(Date.now() - t0 < 6000);
    } finally {
      clearInterval(trickle);
    }
  });

  it('still upgrades a request that completes in time', async () => {
    const key = newKey();
    const conn = await RawConn.connect(server.port);
    await conn.write(upgradeRequest({ key }));
    assertSwitching(await conn.readHead(), key);
    await assertEchoes(conn);
  });

  it('does not apply the handshake timeout to an upgraded connection', { timeout: 15000 }, async () => {
    const key = newKey();
    const conn = await RawConn.connect(server.port);
    await conn.write(upgradeRequest({ key }));
    assertSwitching(await conn.readHead(), key);
    const t0 = Date.now();
    let i = 0;
    // Echo a message every 200 ms for 2.5 s: 2.5 handshake timeouts.
    while (Date.now() - t0 < 2500) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await assertEchoes(conn, `still open ${i++}`);
    }
    assert.equal(conn.ended, false);
  });
});

describe('echo_server --idle-timeout 1 (raw sockets)', () => {
  const server = serverPerSuite(() => startEcho(['--idle-timeout', '1']));

  it('sends close 1001 "idle timeout" and closes TCP even if the client never answers', { timeout: 30000 }, async () => {
    const key = newKey();
    const conn = await RawConn.connect(server.port);
    await conn.write(upgradeRequest({ key }));
    assertSwitching(await conn.readHead(), key);
    const f = await conn.readFrame(8000);
    assert.equal(f.opcode, 0x8, `expected a close frame, got opcode ${f.opcode}`);
    assert.equal(closeCodeOf(f), 1001);
    assert.equal(f.payload.subarray(2).toString(), 'idle timeout');
    // No close reply from us: the server's close timeout must still end it.
    await conn.waitEnd(20000);
  });
});
