// RFC 6455 / RFC 7692 conformance of plume's echo server (examples/echo),
// using the Autobahn-style suite in ./conformance (see run.mjs for the
// standalone runner and reference_server.mjs for the ws-based reference).
//
// The server from PLUME_ECHO_BIN is started twice:
//   plain:   default options (permessage-deflate off, default --max-message
//            of 16 MiB, so 9.1.6/9.2.6 are echoed exactly at the limit)
//   deflate: --deflate --max-message 8 MiB (so 9.x.6 and 9.9.x/13.11.14 check
//            the 1009 path, with and without compression)
//   tls:     the deflate configuration over wss:// (TLS 1.3, a certificate
//            made by scripts/make-cert.sh): every case again, inside TLS
// Every case must be OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED; any
// FAILED case fails the test. The report (summary + every case that is not
// OK) is printed; the full per-case report is written next to the build
// (PLUME_BUILD_DIR/conformance-<mode>.txt) when PLUME_BUILD_DIR is set.
//
// Environment: PLUME_ECHO_BIN (required, else the tests are skipped),
// PLUME_CONFORMANCE_CASES (optional case filter, e.g. "1.*,6.4.*"),
// PLUME_CONFORMANCE_TIMEOUT_SCALE (optional, e.g. 3 under sanitizers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { runSuite, startServer, stopServer, summarize, formatLine, writeReportFile } from './conformance/run.mjs';
import { makeCert } from './support/servers.mjs';

const bin = process.env.PLUME_ECHO_BIN;
const skip = !bin ? 'PLUME_ECHO_BIN is not set' : !fs.existsSync(bin) ? `PLUME_ECHO_BIN ${bin} does not exist` : false;
const scale = Number(process.env.PLUME_CONFORMANCE_TIMEOUT_SCALE || 1);

const tlsArgs = () => {
  const c = makeCert();
  return ['--tls-cert', c.cert, '--tls-key', c.key];
};
const MODES = [
  { name: 'plain', args: () => [], deflate: false, maxMessage: 16 * 1024 * 1024 },
  { name: 'deflate', args: () => ['--deflate', '--max-message', String(8 * 1024 * 1024)], deflate: true, maxMessage: 8 * 1024 * 1024 },
  { name: 'tls', args: () => ['--deflate', '--max-message', String(8 * 1024 * 1024), ...tlsArgs()], deflate: true, maxMessage: 8 * 1024 * 1024 },
];

for (const mode of MODES) {
  test(`echo_server RFC 6455/7692 conformance (${mode.name})`, { skip, timeout: 240000 * scale }, async () => {
    const args = mode.args();
    const server = await startServer(bin, ['--host', '127.0.0.1', '--port', '0', ...args]);
    let results;
    const t0 = Date.now();
    try {
      results = await runSuite({
        url: server.url,
        deflate: mode.deflate,
        maxMessage: mode.maxMessage,
        cases: process.env.PLUME_CONFORMANCE_CASES,
        timeoutScale: scale,
        server, // enables crash detection and the final SIGTERM check (S.1)
      });
    } finally {
      await stopServer(server);
    }
    const s = summarize(results);
    // UNIMPLEMENTED is expected for every 12.x/13.x case without --deflate; only list it in deflate mode
    const notOk = results.filter((r) => r.outcome !== 'OK' && (mode.deflate || r.outcome !== 'UNIMPLEMENTED'));
    const report = [
      `# conformance (${mode.name}): ${bin} ${args.join(' ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      ...notOk.map((r) => formatLine(r)),
      s.text,
    ].join('\n');
    console.log(report);
    writeReportFile(`conformance-${mode.name}.txt`, results, s);
    const failed = results.filter((r) => r.outcome === 'FAILED');
    if (failed.length) {
      const tail = server.output().split('\n').slice(-20).join('\n');
      assert.fail(`${failed.length} conformance case(s) FAILED (${mode.name}):\n${failed.map((r) => formatLine(r)).join('\n')}${tail ? `\n--- last server output ---\n${tail}` : ''}`);
    }
  });
}
