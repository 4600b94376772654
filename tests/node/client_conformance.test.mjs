// RFC 6455 / RFC 7692 conformance of plume's WebSocket CLIENT role: the
// fuzzing server in ./conformance/fuzzing_server.mjs (Autobahn's
// fuzzingserver mode: the server plays the cases, the client under test
// echoes) runs in-process on 127.0.0.1, and examples/echo_client connects
// to it once per case.
//
// Three runs, like conformance.test.mjs does for the server role:
//   plain:   echo_client with default options (no permessage-deflate,
//            --max-message 16 MiB, so 9.1.6/9.2.6 are echoed at the limit)
//   deflate: --deflate --max-message 8 MiB (mirrored 12.x/13.x; 9.x.6 and
//            9.9.x check the 1009 path)
//   tls:     the deflate configuration over wss://: the fuzzing server
//            listens with TLS (a certificate made by scripts/make-cert.sh)
//            and echo_client trusts it through --ca-file; every case again
// Any FAILED case fails the test. The summary and every case that is not OK
// are printed; the full report goes to
// PLUME_BUILD_DIR/client-conformance-<mode>.txt when PLUME_BUILD_DIR is set.
//
// Environment: PLUME_ECHO_CLIENT_BIN (required, else skipped),
// PLUME_CONFORMANCE_CASES (optional case filter, e.g. "1.*,C.*"),
// PLUME_CONFORMANCE_TIMEOUT_SCALE (optional, e.g. 3 under sanitizers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { runTestee } from './conformance/fuzzing_server.mjs';
import { summarize, formatLine, writeReportFile } from './conformance/run.mjs';
import { makeCert } from './support/servers.mjs';

const bin = process.env.PLUME_ECHO_CLIENT_BIN;
const skip = !bin ? 'PLUME_ECHO_CLIENT_BIN is not set' : !fs.existsSync(bin) ? `PLUME_ECHO_CLIENT_BIN ${bin} does not exist` : false;
const scale = Number(process.env.PLUME_CONFORMANCE_TIMEOUT_SCALE || 1);

const tlsOptions = () => {
  const c = makeCert(); // self-signed: the certificate is its own CA
  return { tls: { cert: c.ca, key: fs.readFileSync(c.key) }, caFile: c.cert };
};
const MODES = [
  { name: 'plain', deflate: false, maxMessage: 16 * 1024 * 1024 },
  { name: 'deflate', deflate: true, maxMessage: 8 * 1024 * 1024 },
  { name: 'tls', deflate: true, maxMessage: 8 * 1024 * 1024, tls: true },
];

for (const mode of MODES) {
  test(`echo_client RFC 6455/7692 client-side conformance (${mode.name})`, { skip, timeout: 600000 * scale }, async () => {
    const t0 = Date.now();
    const run = await runTestee(bin, {
      deflate: mode.deflate,
      maxMessage: mode.maxMessage,
      cases: process.env.PLUME_CONFORMANCE_CASES,
      timeoutScale: scale,
      timeout: 540000 * scale,
      ...(mode.tls ? tlsOptions() : {}),
    });
    const { results } = run;
    const s = summarize(results);
    // UNIMPLEMENTED is expected for 12.x/13.x/C.3 without --deflate; only list it in deflate mode
    const notOk = results.filter((r) => r.outcome !== 'OK' && (mode.deflate || r.outcome !== 'UNIMPLEMENTED'));
    const report = [
      `# client conformance (${mode.name}): ${bin} ${run.argv.join(' ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      ...notOk.map((r) => formatLine(r)),
      s.text,
    ].join('\n');
    console.log(report);
    writeReportFile(`client-conformance-${mode.name}.txt`, results, s);
    const tail = () => {
      const t = run.output().split('\n').slice(-20).join('\n');
      return t ? `\n--- last echo_client output ---\n${t}` : '';
    };
    assert.equal(run.exit.code, 0, `echo_client exited with ${run.exit.code ?? run.exit.signal}${tail()}`);
    assert.ok(run.reports, `echo_client did not request /updateReports${tail()}`);
    const failed = results.filter((r) => r.outcome === 'FAILED');
    if (failed.length) assert.fail(`${failed.length} client conformance case(s) FAILED (${mode.name}):\n${failed.map((r) => formatLine(r)).join('\n')}${tail()}`);
  });
}
