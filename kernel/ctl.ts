// `npm run ctl -- <cmd>`: talks to a running newts over its control socket.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { ctlRequest, defaultCtlPath } from "./ctlproto.ts";
import { formatPs } from "./psformat.ts";
import { formatStats, formatStatsKinds } from "./statsformat.ts";
import type { ProcSockStats } from "../lib/sys/counters.ts";
import type { ProcRow } from "./kernel.ts";

const USAGE = `usage: npm run ctl -- [--ctl PATH] [--json] <command> [args]

commands:
  ps                 processes: endpoint, name, cpu, state, restarts, messages, wake-ups
  kill NAME          terminate a process's worker (rs restarts servers)
  hang NAME          make a process stop answering (rs must catch it by heartbeat)
  restart NAME       restart a server now
  spawn NAME ARGS    start apps/NAME.ts
  ping NAME          round trip to a server through the kernel
  kstats             kernel counters
  stats [NAME]       socket calls of each process that used sockets, as the paper's Table 5.2
                     (user space %, selects that block, selects/all calls, accepts and reads
                     that would block, system calls); with NAME also its calls by kind
  pf show            packet filter rules with counters, and states
  pf load FILE       replace the rules (states are kept)
  pf flush           drop every state
  stat NAME          a server's own counters (nic, ip, tcp, udp, pf)
  shutdown           stop newts`;

const COMMANDS: Record<string, [number, number]> = {
  ps: [0, 0], pf: [1, 2], stat: [1, 1], kill: [1, 1], hang: [1, 1], restart: [1, 1], spawn: [1, 64], ping: [1, 1], kstats: [0, 0], stats: [0, 1], shutdown: [0, 0],
};

function fail(msg: string, code = 2): never {
  process.stderr.write(`ctl: ${msg}\n`);
  process.exit(code);
}

// Options come before the command; everything after it belongs to the command
// (so `ctl spawn nc -l 8080` passes -l to nc).
const argv = process.argv.slice(2);
let split = argv.length;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === "--ctl") i++;
  else if (!a.startsWith("-")) {
    split = i;
    break;
  }
}
let parsed;
try {
  parsed = parseArgs({
    args: argv.slice(0, split),
    options: { ctl: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    allowPositionals: false,
    strict: true,
  });
} catch (e) {
  fail(`${(e as Error).message.split("\n")[0]} (try --help)`);
}
const { values } = parsed;
const positionals = argv.slice(split);
if (positionals.length > 0 && positionals.at(-1) === "--json") {
  positionals.pop(); // `ctl ps --json` reads naturally too
  values.json = true;
}
if (values.help || positionals.length === 0) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}
const [cmd, ...args] = positionals as [string, ...string[]];
const arity = COMMANDS[cmd];
if (!arity) fail(`unknown command '${cmd}' (try --help)`);
if (args.length < arity[0] || args.length > arity[1]) fail(`${cmd} takes ${arity[0] === arity[1] ? arity[0] : `${arity[0]}..${arity[1]}`} argument(s)`);

const path = values.ctl ?? defaultCtlPath();
let req = { cmd, args };
if (cmd === "pf") {
  // pf CMD [FILE]: the rules file is read here, so the path is the caller's
  const [sub, file] = args as [string, string | undefined];
  if (!["show", "load", "flush"].includes(sub)) fail(`pf ${sub}: expected show, load FILE or flush`);
  if (sub === "load" && !file) fail("pf load needs a rules file");
  let text: string | undefined;
  if (file) {
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      fail(`cannot read ${file}: ${(e as Error).message}`, 1);
    }
  }
  req = { cmd: "srv", args: ["pf", sub, ...(text === undefined ? [] : [text])] };
}
if (cmd === "stat") req = { cmd: "srv", args: [args[0]!, "show"] };
const reply = await ctlRequest(path, req).catch((e: Error) => fail(e.message, 1));
if (!reply.ok) fail(reply.error, 1);
if (values.json) console.log(JSON.stringify(reply.data));
else if (cmd === "ps") console.log(formatPs(reply.data as ProcRow[]));
else if (cmd === "stats" && args.length === 1) console.log(formatStatsKinds((reply.data as ProcSockStats[])[0]!));
else if (cmd === "stats") console.log(formatStats(reply.data as ProcSockStats[]));
else if (typeof reply.data === "string") console.log(reply.data);
else console.log(JSON.stringify(reply.data, null, 2));
