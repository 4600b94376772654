// Plumbing shared by the conformance scripts (run.mjs, fuzzing_server.mjs,
// reference_server.mjs), kept here so that each parses its options, keeps a
// child's output and runs as a script the same way.

import { pathToFileURL } from 'node:url';

/**
 * Walks the command-line arguments: `handle(arg, value)` is called for each,
 * where value() takes the next argument as the option's value (throwing
 * "<arg> needs a value" when there is none); `handle` returns false for an
 * argument it does not know, which throws "unknown argument <arg>".
 */
export function parseArgv(argv, handle) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (handle(a, value) === false) throw new Error(`unknown argument ${a}`);
  }
}

/**
 * Keeps the last 400 lines a child process writes, prefixed "[stdout] " or
 * "[stderr] ", for failure messages; returns output(), those lines joined.
 */
export function keepOutput(proc) {
  const lines = [];
  const keep = (prefix) => (d) => {
    for (const l of d.toString().split('\n')) if (l) lines.push(prefix + l);
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  proc.stdout.on('data', keep('[stdout] '));
  proc.stderr.on('data', keep('[stderr] '));
  return () => lines.join('\n');
}

/** Runs main() when the module at `moduleUrl` is the script node was started with; a throw exits 2. */
export function runIfMain(moduleUrl, main) {
  if (process.argv[1] && moduleUrl === pathToFileURL(process.argv[1]).href) {
    main().catch((e) => {
      console.error(e.stack || e.message);
      process.exit(2);
    });
  }
}
