// Starts plume's echo_server example for the Node interop tests.
//
//   const server = await startEcho(['--max-message', '1024']);
//   ... new WebSocket(server.url) ...
//   await server.stop();
//
// The binary comes from env PLUME_ECHO_BIN (CTest sets it). It is always
// started on 127.0.0.1 with `--port 0`, and the URL is read from the stdout
// line containing `listening on ws://HOST:PORT/`. Every process started here
// is killed by PID when the test process exits, whatever happened.
import { spawn } from 'node:child_process';

const LISTEN_RE = /listening on ws:\/\/(\[[^\]]+\]|[^:/\s]+):(\d+)\//;
const live = new Set();

process.on('exit', () => {
  for (const proc of live) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** The echo_server binary to test, from env PLUME_ECHO_BIN. */
export function echoBinary() {
  const bin = process.env.PLUME_ECHO_BIN;
  if (!bin) {
    throw new Error(
      'PLUME_ECHO_BIN is not set: point it at the echo_server binary ' +
        '(e.g. build/dev/examples/echo/echo_server)'
    );
  }
  return bin;
}

/**
 * Spawns the echo server and resolves once it prints its listening line.
 *
 * @param {string[]} args extra command-line arguments
 * @param {{startTimeoutMs?: number}} [options]
 * @returns {Promise<{url: string, host: string, port: number, proc: import('node:child_process').ChildProcess,
 *   exited: Promise<{code: number|null, signal: string|null}>, output: () => string,
 *   stop: (signal?: string, timeoutMs?: number) => Promise<{code: number|null, signal: string|null}>}>}
 */
export function startEcho(args = [], { startTimeoutMs = 10000 } = {}) {
  const bin = echoBinary();
  const fullArgs = ['--port', '0'];
  if (!args.includes('--host')) fullArgs.push('--host', '127.0.0.1');
  fullArgs.push(...args);

  const proc = spawn(bin, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);

  let stdout = '';
  let stderr = '';
  const output = () =>
    `command: ${bin} ${fullArgs.join(' ')}\n--- stdout ---\n${stdout.slice(-4000)}` +
    `\n--- stderr ---\n${stderr.slice(-4000)}`;

  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });

  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`echo_server did not start: ${why}\n${output()}`));
    };
    const timer = setTimeout(
      () => fail(`no "listening on ws://HOST:PORT/" line on stdout within ${startTimeoutMs} ms`),
      startTimeoutMs
    );

    proc.once('error', (err) => fail(`spawn failed: ${err.message}`));
    proc.once('exit', (code, signal) => fail(`exited early (code ${code}, signal ${signal})`));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (stderr.length > 65536) stderr = stderr.slice(-16384);
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.length > 65536) stdout = stdout.slice(-16384);
      if (settled) return;
      const m = LISTEN_RE.exec(stdout);
      if (!m) return;
      settled = true;
      clearTimeout(timer);
      const host = m[1];
      const port = Number(m[2]);
      const stop = async (signal = 'SIGTERM', timeoutMs = 10000) => {
        if (proc.exitCode === null && proc.signalCode === null) {
          try {
            process.kill(proc.pid, signal);
          } catch {
            // already gone
          }
        }
        let killTimer;
        const killed = new Promise((res) => {
          killTimer = setTimeout(() => {
            try {
              process.kill(proc.pid, 'SIGKILL');
            } catch {
              // already gone
            }
            res(null);
          }, timeoutMs);
        });
        const first = await Promise.race([exited, killed]);
        clearTimeout(killTimer);
        if (first === null) {
          await exited;
          throw new Error(`echo_server did not exit within ${timeoutMs} ms of ${signal}; killed\n${output()}`);
        }
        return first;
      };
      resolve({ url: `ws://${host}:${port}/`, host, port, proc, exited, output, stop });
    });
  });
}
