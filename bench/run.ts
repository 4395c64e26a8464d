// `npm run bench -- <name> [--json] [--time MS]`: newts's benchmarks. Each prints
// its figures for people, or with --json one JSON object on stdout.
import { parseArgs } from "node:util";
import { formatIpc, runIpc } from "./ipc.ts";
import { formatStack, runStack } from "./stack.ts";
import { formatRecvfrom, runRecvfrom } from "./recvfrom.ts";
import { formatApps, runApps } from "./apps.ts";

const BENCHES: Record<
  string,
  { about: string; run: (o: { timeMs: number; progress: (l: string) => void }) => Promise<unknown>; format: (r: never) => string; defaultTimeMs?: number }
> = {
  ipc: { about: "round trip: polled channel, channel with sleep/wake, kernel sendrec", run: runIpc, format: formatIpc },
  recvfrom: { about: "Table 5.1: nonblocking recvfrom with no data: kernel IPC, channel, user space, Linux", run: runRecvfrom, format: formatRecvfrom },
  stack: { about: "bulk TCP: Linux<->newts over TAP, newts->newts over dgram; split vs single stack", run: (o) => runStack({ ...o, bytes: mb * 1e6 }), format: formatStack },
  apps: { about: "httpd req/s (20 B, 11 kB; 1/8/64 conns) and memcached gets/s: fast, syscall, Linux; Table 5.2", run: runApps, format: formatApps, defaultTimeMs: 8000 },
};

const USAGE = `usage: npm run bench -- <name> [--json] [--time MS]

benchmarks:
${Object.entries(BENCHES).map(([n, b]) => `  ${n.padEnd(10)} ${b.about}`).join("\n")}

options:
  --json      print the figures as one JSON object (progress goes to stderr)
  --time MS   measuring time per figure (default 1000; apps: 8000 per cell, wrk takes whole seconds)
  --mb N      megabytes per transfer, for stack (default 20)`;

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg} (try --help)\n`);
  process.exit(2);
}

let mb = 20;
let parsed;
try {
  parsed = parseArgs({
    args: process.argv.slice(2),
    options: { json: { type: "boolean" }, time: { type: "string" }, mb: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
} catch (e) {
  fail((e as Error).message.split("\n")[0]!);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals.length !== 1) fail(positionals.length === 0 ? "which benchmark?" : "one benchmark at a time");
const b = BENCHES[positionals[0]!];
if (!b) fail(`unknown benchmark '${positionals[0]}'`);
const timeMs = values.time === undefined ? (b.defaultTimeMs ?? 1000) : Number(values.time);
if (values.mb !== undefined) {
  mb = Number(values.mb);
  if (!(mb >= 1 && mb <= 10_000)) fail(`--mb wants a number of megabytes from 1 to 10000, not '${values.mb}'`);
}
if (!Number.isInteger(timeMs) || timeMs < 50 || timeMs > 600_000) fail(`--time wants whole milliseconds from 50 to 600000, not '${values.time}'`);

const progress = (line: string) => process.stderr.write(line + "\n");
const r = await b.run({ timeMs, progress });
if (values.json) console.log(JSON.stringify(r));
else console.log(b.format(r as never));
process.exit(0);
