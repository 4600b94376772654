// Raw RFC 6455 / RFC 7692 wire helpers for the conformance suite.
//
// Everything here is deliberately written from the RFCs rather than taken from
// a WebSocket library, so that the suite can put malformed octets on the wire
// (reserved bits, reserved opcodes, oversized control frames, bogus lengths)
// and can judge exactly what the server sends back:
//
//   - frame encoding: masking, 7/16/64-bit payload lengths, RSV bits, FIN,
//     arbitrary (even lying) declared lengths
//   - an incremental frame parser that records every deviation of the peer
//     (masked server frames, non-minimal length encodings, ...)
//   - a strict, incremental UTF-8 scanner that reports the exact octet at
//     which a streaming validator must reject the input (for fail-fast tests)
//   - permessage-deflate (RFC 7692): extension header parsing, offer/response
//     validation, message compression/decompression with context takeover
//     and window limits. zlib does not enforce the LZ77 window size inside a
//     single inflate call, so negotiated server_max_window_bits < 15 are
//     checked with a small DEFLATE decoder written here (inflateRawStrict).

import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { isUtf8 } from 'node:buffer';

export const OP = Object.freeze({ CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa });
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const EMPTY = Buffer.alloc(0);

/** Bytes from a "binary string" (each char code 0..255 is one octet), like Python 2 str literals. */
export const bytes = (s) => Buffer.from(s, 'latin1');

/** Anything payload-like to a Buffer: Buffer | Uint8Array | string (UTF-8) | number[] | undefined. */
export function toBuf(x) {
  if (x === undefined || x === null) return EMPTY;
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (Array.isArray(x)) return Buffer.from(x);
  throw new TypeError(`cannot make a payload from ${typeof x}`);
}

/** `n` octets made by repeating `pattern` (Autobahn's payload/payload_len). */
export function repeatTo(pattern, n) {
  const p = toBuf(pattern);
  const out = Buffer.allocUnsafe(n);
  if (n === 0) return out;
  if (p.length === 0) throw new Error('empty pattern');
  let filled = Math.min(p.length, n);
  p.copy(out, 0, 0, filled);
  while (filled < n) {
    const k = Math.min(filled, n - filled);
    out.copy(out, filled, 0, k);
    filled += k;
  }
  return out;
}

export function acceptKey(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** XOR `buf` in place with the 4-octet `key`, as if `buf` started at payload offset `offset`. */
export function maskInPlace(buf, key, offset = 0) {
  const n = buf.length;
  let i = 0;
  const pre = Math.min(n, (4 - (buf.byteOffset & 3)) & 3);
  for (; i < pre; i++) buf[i] ^= key[(offset + i) & 3];
  const words = (n - i) >>> 2;
  if (words >= 4) {
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    const kb = new Uint8Array(4);
    for (let j = 0; j < 4; j++) kb[j] = key[(offset + i + j) & 3];
    const kw = new Uint32Array(kb.buffer)[0];
    for (let w = 0; w < words; w++) u32[w] ^= kw;
    i += words << 2;
  }
  for (; i < n; i++) buf[i] ^= key[(offset + i) & 3];
  return buf;
}

/**
 * Frame header octets. `length` may be a number or a BigInt and may differ from
 * the payload actually sent (used for lying/oversized length tests).
 * lengthForm: 'auto' (minimal), 7, 16 or 64 forces an encoding.
 */
export function encodeHeader({ fin = true, rsv = 0, opcode, length, mask = true, maskKey, lengthForm = 'auto' }) {
  const len = typeof length === 'bigint' ? length : BigInt(length);
  let form = lengthForm;
  if (form === 'auto') form = len <= 125n ? 7 : len <= 0xffffn ? 16 : 64;
  const extra = form === 7 ? 0 : form === 16 ? 2 : 8;
  const h = Buffer.alloc(2 + extra + (mask ? 4 : 0));
  h[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (form === 7) h[1] = Number(len);
  else if (form === 16) { h[1] = 126; h.writeUInt16BE(Number(len), 2); }
  else { h[1] = 127; h.writeBigUInt64BE(len, 2); }
  if (mask) {
    h[1] |= 0x80;
    (maskKey ?? crypto.randomBytes(4)).copy(h, 2 + extra);
  }
  return h;
}

/**
 * A complete frame as one Buffer. rsv is the 3-bit RSV field as an integer
 * (RSV1 = 4, RSV2 = 2, RSV3 = 1), like Autobahn's `rsv` argument.
 */
export function encodeFrame({ fin = true, rsv = 0, opcode, payload, mask = true, maskKey, lengthForm = 'auto' }) {
  const p = toBuf(payload);
  const key = mask ? (maskKey ?? crypto.randomBytes(4)) : undefined;
  const h = encodeHeader({ fin, rsv, opcode, length: p.length, mask, maskKey: key, lengthForm });
  const out = Buffer.allocUnsafe(h.length + p.length);
  h.copy(out, 0);
  p.copy(out, h.length);
  if (mask) maskInPlace(out.subarray(h.length), key);
  return out;
}

/** Split a message payload into frames of at most `fragmentSize` octets (0 = one frame). */
export function fragmentMessage(opcode, payload, fragmentSize = 0, { rsvFirst = 0 } = {}) {
  const p = toBuf(payload);
  if (!fragmentSize || p.length <= fragmentSize) return [{ fin: true, rsv: rsvFirst, opcode, payload: p }];
  const frames = [];
  for (let off = 0; off < p.length; off += fragmentSize) {
    const last = off + fragmentSize >= p.length;
    frames.push({ fin: last, rsv: off === 0 ? rsvFirst : 0, opcode: off === 0 ? opcode : OP.CONT, payload: p.subarray(off, off + fragmentSize) });
  }
  return frames;
}

/** Close frame payload: code (optional) + reason (Buffer or string). */
export function closePayload(code, reason) {
  if (code === undefined || code === null) return EMPTY;
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/** Close codes an endpoint may put on the wire (RFC 6455 7.4 + IANA registry 1012-1014). */
export function isValidWireCloseCode(code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * Incremental frame parser for octets received from the server.
 * onFrame(frame) gets {fin, rsv, opcode, masked, maskKey, length, lengthForm,
 * minimal, payload}; onError(message) is called once for an unparseable
 * stream (after which the parser stops).
 */
export class FrameParser {
  constructor(onFrame, onError, { maxFrame = 2 ** 31 } = {}) {
    this.onFrame = onFrame;
    this.onError = onError;
    this.maxFrame = maxFrame;
    this.chunks = [];
    this.avail = 0;
    this.hdr = null;
    this.parts = [];
    this.need = 0;
    this.dead = false;
  }

  _take(n) {
    // remove and return exactly n octets from the queue
    if (n === 0) return EMPTY;
    const first = this.chunks[0];
    if (first.length === n) { this.chunks.shift(); this.avail -= n; return first; }
    if (first.length > n) { this.chunks[0] = first.subarray(n); this.avail -= n; return first.subarray(0, n); }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
    }
    this.avail -= n;
    return out;
  }

  _peek(n) {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const b = this._take(n);
    this.chunks.unshift(b);
    this.avail += n;
    return b;
  }

  push(chunk) {
    if (this.dead || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.avail += chunk.length;
    for (;;) {
      if (this.dead) return;
      if (!this.hdr) {
        if (this.avail < 2) return;
        const b = this._peek(2);
        const len7 = b[1] & 0x7f;
        const masked = (b[1] & 0x80) !== 0;
        const hlen = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
        if (this.avail < hlen) return;
        const h = this._take(hlen);
        let length;
        let lengthForm = 7;
        let minimal = true;
        let off = 2;
        if (len7 === 126) {
          length = h.readUInt16BE(2); lengthForm = 16; off = 4;
          minimal = length > 125;
        } else if (len7 === 127) {
          const big = h.readBigUInt64BE(2); lengthForm = 64; off = 10;
          if (big >> 63n) { this.dead = true; this.onError(`64-bit payload length with the most significant bit set (${big})`); return; }
          if (big > BigInt(this.maxFrame)) { this.dead = true; this.onError(`frame announces ${big} payload octets (more than this client accepts)`); return; }
          length = Number(big);
          minimal = length > 0xffff;
        } else {
          length = len7;
        }
        this.hdr = {
          fin: (h[0] & 0x80) !== 0,
          rsv: (h[0] >> 4) & 7,
          opcode: h[0] & 0x0f,
          masked,
          maskKey: masked ? Buffer.from(h.subarray(off, off + 4)) : null,
          length,
          lengthForm,
          minimal,
        };
        this.need = length;
        this.parts = [];
      }
      // payload
      while (this.need > 0 && this.avail > 0) {
        const c = this.chunks[0];
        const k = Math.min(c.length, this.need);
        this.parts.push(this._take(k));
        this.need -= k;
      }
      if (this.need > 0) return;
      const f = this.hdr;
      this.hdr = null;
      f.payload = this.parts.length === 1 ? Buffer.from(this.parts[0]) : Buffer.concat(this.parts, f.length);
      this.parts = [];
      if (f.masked) maskInPlace(f.payload, f.maskKey);
      this.onFrame(f);
    }
  }
}

// ---------------------------------------------------------------------------
// UTF-8

/**
 * Strict incremental UTF-8 scan (RFC 3629, Unicode table 3-7: no overlongs,
 * no surrogates, nothing above U+10FFFF). Returns
 *   { valid, complete, invalidAt }
 * invalidAt = index of the first octet at which a streaming validator must
 * reject the input (-1 if none); complete = the input ends on a code point
 * boundary. valid = invalidAt === -1 && complete.
 */
export function utf8Scan(buf, start = 0, state = null) {
  let need = state ? state.need : 0;   // continuation octets still expected
  let lo = state ? state.lo : 0x80;    // allowed range for the next continuation octet
  let hi = state ? state.hi : 0xbf;
  for (let i = start; i < buf.length; i++) {
    const b = buf[i];
    if (need === 0) {
      if (b < 0x80) continue;
      if (b >= 0xc2 && b <= 0xdf) { need = 1; lo = 0x80; hi = 0xbf; }
      else if (b === 0xe0) { need = 2; lo = 0xa0; hi = 0xbf; }
      else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) { need = 2; lo = 0x80; hi = 0xbf; }
      else if (b === 0xed) { need = 2; lo = 0x80; hi = 0x9f; }
      else if (b === 0xf0) { need = 3; lo = 0x90; hi = 0xbf; }
      else if (b >= 0xf1 && b <= 0xf3) { need = 3; lo = 0x80; hi = 0xbf; }
      else if (b === 0xf4) { need = 3; lo = 0x80; hi = 0x8f; }
      else return { valid: false, complete: false, invalidAt: i };
    } else {
      if (b < lo || b > hi) return { valid: false, complete: false, invalidAt: i };
      need--; lo = 0x80; hi = 0xbf;
    }
  }
  return { valid: need === 0, complete: need === 0, invalidAt: -1, state: { need, lo, hi } };
}

/** Full-message UTF-8 validity (fast path through Node's simdutf). */
export function isValidUtf8(buf) {
  return isUtf8 ? isUtf8(buf) : utf8Scan(buf).valid;
}

// ---------------------------------------------------------------------------
// Sec-WebSocket-Extensions (RFC 6455 9.1) and permessage-deflate (RFC 7692)

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parse a Sec-WebSocket-Extensions value into
 * [{ name, params: [[key, value|null, quoted]] }]. Throws on syntax errors.
 */
export function parseExtensions(value) {
  const out = [];
  // split on commas / semicolons outside quoted strings
  const items = [];
  let cur = '';
  let inQ = false;
  let esc = false;
  const segs = [[]];
  for (const ch of value) {
    if (inQ) {
      cur += ch;
      if (esc) esc = false;
      else if (ch === '\\') esc = true;
      else if (ch === '"') inQ = false;
      continue;
    }
    if (ch === '"') { inQ = true; cur += ch; continue; }
    if (ch === ';') { segs[segs.length - 1].push(cur); cur = ''; continue; }
    if (ch === ',') { segs[segs.length - 1].push(cur); cur = ''; segs.push([]); continue; }
    cur += ch;
  }
  if (inQ) throw new Error('unterminated quoted-string');
  segs[segs.length - 1].push(cur);
  for (const seg of segs) {
    const parts = seg.map((s) => s.trim());
    if (parts.length === 1 && parts[0] === '') continue; // empty list element (allowed by #rule)
    const name = parts[0];
    if (!TOKEN_RE.test(name)) throw new Error(`bad extension token ${JSON.stringify(name)}`);
    const params = [];
    for (const p of parts.slice(1)) {
      const eq = p.indexOf('=');
      if (eq < 0) {
        if (!TOKEN_RE.test(p)) throw new Error(`bad parameter ${JSON.stringify(p)}`);
        params.push([p, null, false]);
        continue;
      }
      const k = p.slice(0, eq).trim();
      let v = p.slice(eq + 1).trim();
      let quoted = false;
      if (!TOKEN_RE.test(k)) throw new Error(`bad parameter name ${JSON.stringify(k)}`);
      if (v.startsWith('"')) {
        if (!v.endsWith('"') || v.length < 2) throw new Error(`bad quoted value ${JSON.stringify(v)}`);
        v = v.slice(1, -1).replace(/\\(.)/g, '$1');
        quoted = true;
      }
      if (!TOKEN_RE.test(v)) throw new Error(`bad parameter value ${JSON.stringify(v)}`);
      params.push([k, v, quoted]);
    }
    items.push({ name, params });
  }
  for (const it of items) out.push(it);
  return out;
}

/**
 * A permessage-deflate offer as the client sends it. Fields:
 *   serverNoContextTakeover, clientNoContextTakeover: boolean
 *   serverMaxWindowBits: number | undefined
 *   clientMaxWindowBits: true (no value) | number | undefined
 *   raw: a literal header string, for deliberately invalid offers
 */
export function formatOffer(o) {
  if (o.raw) return o.raw;
  let s = 'permessage-deflate';
  if (o.clientNoContextTakeover) s += '; client_no_context_takeover';
  if (o.clientMaxWindowBits === true) s += '; client_max_window_bits';
  else if (typeof o.clientMaxWindowBits === 'number') s += `; client_max_window_bits=${o.clientMaxWindowBits}`;
  if (o.serverNoContextTakeover) s += '; server_no_context_takeover';
  if (typeof o.serverMaxWindowBits === 'number') s += `; server_max_window_bits=${o.serverMaxWindowBits}`;
  return s;
}

function windowBitsValue(v) {
  return v !== null && /^(8|9|1[0-5])$/.test(v) ? Number(v) : NaN;
}

/**
 * Check the server's Sec-WebSocket-Extensions response against the offers
 * (RFC 7692 sections 5, 7.1). Returns { ok, error?, agreed?, offerIndex? }.
 * agreed = { serverNoContextTakeover, clientNoContextTakeover,
 *            serverMaxWindowBits, clientMaxWindowBits } (window bits default 15).
 */
export function validatePmdResponse(offers, headerValue) {
  let exts;
  try {
    exts = parseExtensions(headerValue);
  } catch (e) {
    return { ok: false, error: `unparseable Sec-WebSocket-Extensions ${JSON.stringify(headerValue)}: ${e.message}` };
  }
  if (exts.length === 0) return { ok: true, agreed: null };
  if (exts.length > 1) return { ok: false, error: `server accepted ${exts.length} extensions (${headerValue}); only one permessage-deflate was offered` };
  const ext = exts[0];
  if (ext.name.toLowerCase() !== 'permessage-deflate') return { ok: false, error: `server accepted an extension that was not offered: ${ext.name}` };
  const seen = new Set();
  const r = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: undefined, clientMaxWindowBits: undefined };
  for (const [k0, v] of ext.params) {
    const k = k0.toLowerCase();
    if (seen.has(k)) return { ok: false, error: `duplicate parameter ${k} in response` };
    seen.add(k);
    if (k === 'server_no_context_takeover' || k === 'client_no_context_takeover') {
      if (v !== null) return { ok: false, error: `${k} must not have a value (got ${v})` };
      r[k === 'server_no_context_takeover' ? 'serverNoContextTakeover' : 'clientNoContextTakeover'] = true;
    } else if (k === 'server_max_window_bits' || k === 'client_max_window_bits') {
      const n = windowBitsValue(v);
      if (Number.isNaN(n)) return { ok: false, error: `${k} in a response needs a value 8..15 (got ${v === null ? 'no value' : v})` };
      r[k === 'server_max_window_bits' ? 'serverMaxWindowBits' : 'clientMaxWindowBits'] = n;
    } else {
      return { ok: false, error: `unknown parameter ${k} in response` };
    }
  }
  // the response must be acceptable for at least one (valid) offer
  const reasons = [];
  for (let i = 0; i < offers.length; i++) {
    const o = offers[i];
    if (o.raw) continue; // deliberately invalid offers must never be accepted
    const why = [];
    if (o.serverNoContextTakeover && !r.serverNoContextTakeover) why.push('offer requested server_no_context_takeover but the response lacks it');
    if (typeof o.serverMaxWindowBits === 'number' && !(r.serverMaxWindowBits <= o.serverMaxWindowBits)) why.push(`offer requested server_max_window_bits=${o.serverMaxWindowBits} but the response has ${r.serverMaxWindowBits ?? 'none'}`);
    if (r.clientMaxWindowBits !== undefined && o.clientMaxWindowBits === undefined) why.push('response has client_max_window_bits although the offer did not include it');
    if (why.length === 0) {
      let clientBits = r.clientMaxWindowBits ?? 15;
      if (typeof o.clientMaxWindowBits === 'number') clientBits = Math.min(clientBits, o.clientMaxWindowBits);
      return {
        ok: true,
        offerIndex: i,
        agreed: {
          serverNoContextTakeover: r.serverNoContextTakeover,
          // the client honours its own hint as well (RFC 7692 7.1.1.2)
          clientNoContextTakeover: r.clientNoContextTakeover || !!o.clientNoContextTakeover,
          serverMaxWindowBits: r.serverMaxWindowBits ?? 15,
          clientMaxWindowBits: clientBits,
          response: headerValue,
        },
      };
    }
    reasons.push(`offer ${i + 1}: ${why.join('; ')}`);
  }
  return { ok: false, error: `response "${headerValue}" matches none of the offers (${reasons.join(' | ') || 'all offers were invalid and had to be declined'})` };
}

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * Per-connection permessage-deflate codec (client side).
 *   compress(msg)   -> payload to send with RSV1 (trailing 00 00 ff ff removed)
 *   decompress(buf) -> message (throws with a descriptive Error on violations)
 * Client context takeover is implemented with a preset dictionary holding the
 * previous 2^clientMaxWindowBits message octets, server context with the
 * previous output, so both directions are stateless zlib calls.
 */
export class PmdCodec {
  constructor(agreed) {
    this.a = agreed;
    this.txHistory = EMPTY;
    this.rxHistory = EMPTY;
  }

  static _keep(hist, add, bits) {
    const w = 1 << bits;
    if (add.length >= w) return Buffer.from(add.subarray(add.length - w));
    const h = Buffer.concat([hist, add]);
    return h.length > w ? Buffer.from(h.subarray(h.length - w)) : h;
  }

  compress(msg, { level = zlib.constants.Z_DEFAULT_COMPRESSION } = {}) {
    const bits = this.a.clientMaxWindowBits;
    const opts = { finishFlush: zlib.constants.Z_SYNC_FLUSH, windowBits: Math.max(bits, 9), level };
    // zlib cannot deflate raw streams with an 8-bit window: use stored blocks
    if (bits < 9) opts.level = 0;
    const useCtx = !this.a.clientNoContextTakeover && this.txHistory.length > 0;
    if (useCtx) opts.dictionary = this.txHistory;
    let out = zlib.deflateRawSync(msg, opts);
    if (out.length >= 4 && out.subarray(out.length - 4).equals(TAIL)) out = out.subarray(0, out.length - 4);
    if (!this.a.clientNoContextTakeover) this.txHistory = PmdCodec._keep(this.txHistory, msg, bits);
    return out;
  }

  decompress(payload, { maxOutput = Infinity } = {}) {
    const bits = this.a.serverMaxWindowBits;
    const hist = this.a.serverNoContextTakeover ? EMPTY : this.rxHistory;
    const input = Buffer.concat([payload, TAIL]);
    let out;
    if (bits < 15) {
      out = inflateRawStrict(input, { history: hist, maxDistance: 1 << bits, maxOutput });
    } else {
      const opts = { finishFlush: zlib.constants.Z_SYNC_FLUSH, windowBits: 15 };
      if (maxOutput !== Infinity) opts.maxOutputLength = Math.max(1, maxOutput);
      if (hist.length) opts.dictionary = hist;
      try {
        out = zlib.inflateRawSync(input, opts);
      } catch (e) {
        if (hist.length === 0 && /distance too far back/.test(e.message)) {
          throw new Error(this.a.serverNoContextTakeover
            ? 'compressed message references data of an earlier message although server_no_context_takeover was agreed'
            : `invalid DEFLATE data: ${e.message}`);
        }
        throw new Error(`invalid DEFLATE data: ${e.message}`);
      }
    }
    if (!this.a.serverNoContextTakeover) this.rxHistory = PmdCodec._keep(this.rxHistory, out, 15);
    return out;
  }
}

// ---------------------------------------------------------------------------
// A small strict DEFLATE (RFC 1951) decoder, used only to verify that the
// server honours a negotiated server_max_window_bits < 15: it rejects any
// back-reference further than `maxDistance` (zlib does not check this).
// Decoding stops after a BFINAL block or when the input ends exactly at a
// block boundary (the 00 00 ff ff tail appended for RFC 7692 decompression).

const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

function buildHuffman(lengths) {
  // table: map (len<<16 | code reversed) -> symbol, via per-length arrays (puff style)
  const count = new Uint16Array(16);
  for (const l of lengths) count[l]++;
  count[0] = 0;
  const offs = new Uint16Array(16);
  for (let i = 1; i < 16; i++) offs[i] = offs[i - 1] + count[i - 1];
  const symbol = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) if (lengths[s]) symbol[offs[lengths[s]]++] = s;
  return { count, symbol };
}

let FIXED_LIT = null;
let FIXED_DIST = null;

export function inflateRawStrict(input, { history = EMPTY, maxDistance = 32768, maxOutput = Infinity } = {}) {
  let pos = 0;
  let bitbuf = 0;
  let bitcnt = 0;
  const need = (n) => {
    while (bitcnt < n) {
      if (pos >= input.length) throw new Error('invalid DEFLATE data: truncated stream');
      bitbuf |= input[pos++] << bitcnt;
      bitcnt += 8;
    }
  };
  const bits = (n) => {
    if (n === 0) return 0;
    need(n);
    const v = bitbuf & ((1 << n) - 1);
    bitbuf >>>= n;
    bitcnt -= n;
    return v;
  };
  const decode = (h) => {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len < 16; len++) {
      code |= bits(1);
      const c = h.count[len];
      if (code - c < first) return h.symbol[index + (code - first)];
      index += c;
      first += c;
      first <<= 1;
      code <<= 1;
    }
    throw new Error('invalid DEFLATE data: bad Huffman code');
  };
  let out = Buffer.allocUnsafe(Math.max(1024, history.length + input.length * 4));
  history.copy(out, 0);
  let n = history.length;
  const base = history.length;
  const ensure = (k) => {
    if (n + k - base > maxOutput) throw new Error(`decompressed message exceeds ${maxOutput} octets`);
    if (n + k <= out.length) return;
    const nb = Buffer.allocUnsafe(Math.max(out.length * 2, n + k));
    out.copy(nb, 0, 0, n);
    out = nb;
  };
  for (;;) {
    // stop at end of input on a block boundary (after the sync-flush tail)
    if (pos >= input.length && bitcnt < 3) break;
    const final = bits(1);
    const type = bits(2);
    if (type === 0) {
      bitbuf = 0; bitcnt = 0;
      if (pos + 4 > input.length) throw new Error('invalid DEFLATE data: truncated stored block');
      const len = input[pos] | (input[pos + 1] << 8);
      const nlen = input[pos + 2] | (input[pos + 3] << 8);
      pos += 4;
      if (len !== (~nlen & 0xffff)) throw new Error('invalid DEFLATE data: stored block length check failed');
      if (pos + len > input.length) throw new Error('invalid DEFLATE data: truncated stored block');
      ensure(len);
      input.copy(out, n, pos, pos + len);
      n += len;
      pos += len;
    } else if (type === 1 || type === 2) {
      let lit;
      let dist;
      if (type === 1) {
        if (!FIXED_LIT) {
          const l = new Array(288);
          for (let i = 0; i < 144; i++) l[i] = 8;
          for (let i = 144; i < 256; i++) l[i] = 9;
          for (let i = 256; i < 280; i++) l[i] = 7;
          for (let i = 280; i < 288; i++) l[i] = 8;
          FIXED_LIT = buildHuffman(l);
          FIXED_DIST = buildHuffman(new Array(30).fill(5));
        }
        lit = FIXED_LIT; dist = FIXED_DIST;
      } else {
        const nlen = bits(5) + 257;
        const ndist = bits(5) + 1;
        const ncode = bits(4) + 4;
        if (nlen > 286 || ndist > 30) throw new Error('invalid DEFLATE data: bad code counts');
        const cl = new Array(19).fill(0);
        for (let i = 0; i < ncode; i++) cl[CL_ORDER[i]] = bits(3);
        const clh = buildHuffman(cl);
        const lengths = [];
        while (lengths.length < nlen + ndist) {
          const sym = decode(clh);
          if (sym < 16) lengths.push(sym);
          else if (sym === 16) {
            if (lengths.length === 0) throw new Error('invalid DEFLATE data: repeat with no previous length');
            const prev = lengths[lengths.length - 1];
            for (let r = 3 + bits(2); r > 0; r--) lengths.push(prev);
          } else if (sym === 17) { for (let r = 3 + bits(3); r > 0; r--) lengths.push(0); }
          else { for (let r = 11 + bits(7); r > 0; r--) lengths.push(0); }
        }
        if (lengths.length > nlen + ndist) throw new Error('invalid DEFLATE data: too many code lengths');
        lit = buildHuffman(lengths.slice(0, nlen));
        dist = buildHuffman(lengths.slice(nlen));
      }
      for (;;) {
        const sym = decode(lit);
        if (sym < 256) { ensure(1); out[n++] = sym; continue; }
        if (sym === 256) break;
        const li = sym - 257;
        if (li >= 29) throw new Error('invalid DEFLATE data: bad length symbol');
        const len = LEN_BASE[li] + bits(LEN_EXTRA[li]);
        const ds = decode(dist);
        if (ds >= 30) throw new Error('invalid DEFLATE data: bad distance symbol');
        const d = DIST_BASE[ds] + bits(DIST_EXTRA[ds]);
        if (d > maxDistance) throw new Error(`back-reference distance ${d} exceeds the negotiated LZ77 window of ${maxDistance} octets`);
        if (d > n) throw new Error(`back-reference distance ${d} reaches before the available history (${n} octets)`);
        ensure(len);
        for (let k = 0; k < len; k++, n++) out[n] = out[n - d];
      }
    } else {
      throw new Error('invalid DEFLATE data: reserved block type 3');
    }
    if (final) break;
  }
  return Buffer.from(out.subarray(base, n));
}

// ---------------------------------------------------------------------------
// Deterministic test data

/** mulberry32 PRNG: returns () => uint32 */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export function randomBytes(n, seed) {
  const r = prng(seed);
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE(r(), i);
  for (; i < n; i++) b[i] = r() & 0xff;
  return b;
}
