// A tiny Phoenix-protocol (V2 JSON) server built only on `ws`, independent of
// plume's server code, for testing plume's C++ client against it.
//
//   const server = await startV2Server();
//   server.socketUrl                       // ws://127.0.0.1:PORT/socket
//   server.closeAll(1011, 'bye')           // forced close with a code
//   server.broadcast('room:1', 'news', {n: 1})
//   server.push('room:1', 'hello', {})     // tagged with each connection's join_ref
//   server.answerHeartbeats = false        // play dead
//   await server.stop()
//
// Channel behaviour: phx_join → ok {joined: topic, join: n}; "echo" → ok with
// the payload; "fail" → error; "shout" → broadcast to every joiner;
// "close_me" → the server closes the connection with payload.code;
// phx_leave → ok, then phx_close; anything for a topic not joined → the
// "unmatched topic" error with a null join_ref, as Phoenix answers.
// Everything received is recorded in `server.log` (an Inbox of
// {type: 'connect'|'message'|'close', ...}).
import { WebSocketServer } from 'ws';
import { Inbox } from './servers.mjs';

export async function startV2Server({ port = 0 } = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const actualPort = wss.address().port;
  const log = new Inbox('v2 server');
  const clients = new Set(); // {ws, joined: Map(topic -> join_ref)}
  let joins = 0;

  const server = {
    port: actualPort,
    socketUrl: `ws://127.0.0.1:${actualPort}/socket`,
    log,
    answerHeartbeats: true,
    clients,
    closeAll(code, reason = '') {
      for (const c of clients) c.ws.close(code, reason);
    },
    broadcast(topic, event, payload) {
      const frame = JSON.stringify([null, null, topic, event, payload]);
      for (const c of clients) if (c.joined.has(topic)) c.ws.send(frame);
    },
    push(topic, event, payload) {
      for (const c of clients) {
        if (c.joined.has(topic)) c.ws.send(JSON.stringify([c.joined.get(topic), null, topic, event, payload]));
      }
    },
    async stop() {
      for (const c of clients) c.ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve()));
    },
  };

  wss.on('connection', (ws, req) => {
    const url = new URL(req.url, 'http://localhost');
    const query = Object.fromEntries(url.searchParams);
    log.push({ type: 'connect', path: url.pathname, query, protocol: ws.protocol });
    if (url.pathname !== '/socket/websocket' || query.vsn !== '2.0.0') {
      ws.close(1008, 'wrong path or vsn');
      return;
    }
    const client = { ws, joined: new Map() };
    clients.add(client);
    const send = (msg) => ws.send(JSON.stringify(msg));
    const reply = ([joinRef, ref, topic], status, response = {}) =>
      send([joinRef, ref, topic, 'phx_reply', { status, response }]);

    ws.on('close', (code) => {
      clients.delete(client);
      log.push({ type: 'close', code });
    });
    ws.on('message', (data, isBinary) => {
      let msg;
      try {
        msg = isBinary ? null : JSON.parse(data.toString());
      } catch {
        msg = null;
      }
      if (!Array.isArray(msg) || msg.length < 5) {
        log.push({ type: 'garbage', data: data.toString() });
        return;
      }
      const [joinRef, ref, topic, event, payload] = msg;
      log.push({ type: 'message', joinRef, ref, topic, event, payload });
      if (topic === 'phoenix' && event === 'heartbeat') {
        if (server.answerHeartbeats) send([null, ref, 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
        return;
      }
      if (event === 'phx_join') {
        joins += 1;
        client.joined.set(topic, joinRef ?? ref);
        reply(msg, 'ok', { joined: topic, join: joins });
        return;
      }
      if (!client.joined.has(topic)) {
        send([null, ref, topic, 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
        return;
      }
      const current = client.joined.get(topic);
      if (joinRef && joinRef !== current) return; // an earlier join: dropped, as Phoenix does
      switch (event) {
        case 'phx_leave':
          client.joined.delete(topic);
          reply(msg, 'ok');
          send([current, current, topic, 'phx_close', {}]);
          break;
        case 'echo':
          reply(msg, 'ok', payload);
          break;
        case 'fail':
          reply(msg, 'error', { reason: 'asked' });
          break;
        case 'shout':
          server.broadcast(topic, 'shout', payload);
          break;
        case 'close_me':
          ws.close(payload.code ?? 1000, 'requested');
          break;
        default:
          reply(msg, 'error', { reason: 'unknown event' });
      }
    });
  });
  return server;
}
