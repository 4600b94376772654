#!/usr/bin/env node
// Reference echo server built on the `ws` package (which passes Autobahn),
// with the same command-line contract as plume's examples/echo server. It is
// used to validate the conformance harness itself:
//
//   node reference_server.mjs [--host 127.0.0.1] [--port 9001] [--max-message BYTES]
//        [--deflate] [--idle-timeout S] [--handshake-timeout S]
//        [--max-send-queue BYTES] [--threads N]
//
// Prints "listening on ws://HOST:PORT/" once ready. Echoes text/binary
// messages with the same opcode; ping/pong/close handling and the 1002/1007/
// 1009 failures are ws's own. SIGTERM/SIGINT close every connection with 1001
// and exit 0. --max-send-queue and --threads are accepted and ignored.

import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgv } from './script.mjs';

// resolve `ws` from tests/node/node_modules whatever the cwd is
const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const o = { host: '127.0.0.1', port: 9001, maxMessage: 16 * 1024 * 1024, deflate: false, idleTimeout: 0, handshakeTimeout: 10 };
  parseArgv(argv, (a, val) => {
    switch (a) {
      case '--host': o.host = val(); break;
      case '--port': o.port = Number(val()); break;
      case '--max-message': o.maxMessage = Number(val()); break;
      case '--deflate': o.deflate = true; break;
      case '--idle-timeout': o.idleTimeout = Number(val()); break;
      case '--handshake-timeout': o.handshakeTimeout = Number(val()); break;
      case '--max-send-queue': val(); break;
      case '--threads': val(); break;
      case '-h': case '--help':
        console.log('usage: reference_server.mjs [--host H] [--port P] [--max-message BYTES] [--deflate] [--idle-timeout S] [--handshake-timeout S] [--max-send-queue BYTES] [--threads N]');
        process.exit(0);
        break;
      default: return false;
    }
  });
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`reference_server: ${e.message}`);
  process.exit(2);
}

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
  res.end('WebSocket upgrade required\n');
});

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: opts.maxMessage,
  // threshold 0: compress every message, so the harness' inflater is exercised
  perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
});

// handshake timeout: drop sockets that do not complete an upgrade in time
server.on('connection', (socket) => {
  if (opts.handshakeTimeout > 0) {
    const t = setTimeout(() => socket.destroy(), opts.handshakeTimeout * 1000);
    socket.once('close', () => clearTimeout(t));
    socket.upgradedTimer = t;
  }
});

server.on('upgrade', (req, socket, head) => {
  clearTimeout(socket.upgradedTimer);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws, req) => {
  if (opts.idleTimeout > 0) {
    const sock = req.socket;
    sock.setTimeout(opts.idleTimeout * 1000);
    sock.on('timeout', () => {
      ws.close(1001, 'idle timeout');
      setTimeout(() => ws.terminate(), 2000).unref();
    });
  }
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {}); // ws already sent the right close code
});

server.listen(opts.port, opts.host, () => {
  const { address, port } = server.address();
  const host = address.includes(':') ? `[${address}]` : address;
  console.log(`reference echo server (ws) listening on ws://${host}:${port}/`);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close();
  const clients = [...wss.clients];
  for (const ws of clients) ws.close(1001, 'server shutting down');
  const done = () => process.exit(0);
  if (clients.length === 0) return done();
  let open = clients.length;
  for (const ws of clients) ws.once('close', () => { if (--open === 0) done(); });
  setTimeout(() => { for (const ws of wss.clients) ws.terminate(); done(); }, 3000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
