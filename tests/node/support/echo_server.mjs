// Starts plume's echo_server example for the Node interop tests.
//
//   const server = await startEcho(['--max-message', '1024']);
//   ... new WebSocket(server.url) ...
//   await server.stop();
//
// The binary comes from env PLUME_ECHO_BIN (CTest sets it). Spawning, the
// listening-line wait and stopping by PID are servers.mjs's startServer; this
// only adds the echo server's URL (any path is a WebSocket there).
import { startServer } from './servers.mjs';

/**
 * Spawns the echo server and resolves once it prints its listening line.
 *
 * @param {string[]} args extra command-line arguments
 * @param {{startTimeoutMs?: number}} [options]
 * @returns the startServer() handle, with `url` = ws://HOST:PORT/
 */
export async function startEcho(args = [], options = {}) {
  const server = await startServer('PLUME_ECHO_BIN', args, options);
  return { ...server, url: `ws://${server.host}:${server.port}/` };
}
