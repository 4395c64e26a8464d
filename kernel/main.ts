// `npm start`: boots newts on this machine's cores and serves the control socket.
import { parseArgs } from "node:util";
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { parseRules } from "../lib/net/pf/rules.ts";
import { parseHostfwd } from "../drivers/backends/hostfwd.ts";
import { Machine, parseAppSpec, type AppSpec } from "./boot.ts";
import { ctlRequest, defaultCtlPath, type CtlReply, type CtlRequest } from "./ctlproto.ts";

const USAGE = `usage: npm start -- [options]

Boots newts: the kernel worker, the servers of the boot table (rs, syscall, nic,
pf, ip, udp, tcp), then the apps. By default the apps are sysinfo, httpd (port 80,
the sample site in www/) and memcached (port 11211), on newts fast sockets, and the
host reaches them on 127.0.0.1:8080 and 127.0.0.1:11311 (--hostfwd defaults).

options:
  --app "NAME ARGS"   start apps/NAME.ts with ARGS (repeatable)
  --no-apps           start no apps
  --net SPEC          the wire under the NIC (default hostfwd):
                        tap[,ns=newts,dev=newts0,addr=10.0.2.2/24]  a TAP device whose Linux
                          end lives in a network namespace newts creates (root): then
                          'ip netns exec newts ping 10.0.2.15' reaches newts
                        dgram,local=PORT,remote=PORT  frames as UDP datagrams on loopback
                          (two newts instances); add ,loss=R,dup=R,reorder=R,corrupt=R,seed=N
                        hostfwd[,net=10.0.2.0/24,host=10.0.2.2,guest=10.0.2.15]  user-mode
                          networking, no root: the wire plays the gateway 10.0.2.2 (ARP,
                          ping) and forwards the --hostfwd ports; no connections out
                          (the default)
  --hostfwd tcp:HOSTPORT:GUESTPORT  forward 127.0.0.1:HOSTPORT on this machine to
                        newts's GUESTPORT (repeatable; hostfwd wire only)
  --pcap FILE         record the NIC's frames (tcpdump -r FILE reads it)
  --addr A.B.C.D/N    newts's address (default 10.0.2.15/24)
  --gw A.B.C.D        default gateway (default 10.0.2.2)
  --stack MODE        split (a server per layer, the default) or single (the
                        whole stack in one server, the paper's combined stack)
  --pf FILE           packet filter rules (see lib/net/pf/rules.ts; default: pass all)
  --ctl PATH          control socket path (default: $NEWTS_CTL or ${defaultCtlPath()})
  --quiet             print only the boot summary and errors
  -h, --help          this text

control it from another terminal: npm run ctl -- ps | kill NAME | hang NAME |
restart NAME | spawn NAME ARGS | stats [NAME] | shutdown   (ps --json for JSON)`;

/** What a newcomer's `npm start` runs: the ported web server and cache on newts fast sockets. */
const DEFAULT_APPS: AppSpec[] = [
  { name: "sysinfo", args: [] },
  { name: "httpd", args: ["--port", "80"] },
  { name: "memcached", args: ["-p", "11211"] },
];
/** ... and how the host reaches them (hostfwd wire): 127.0.0.1:8080 -> httpd, 127.0.0.1:11311 -> memcached. */
const DEFAULT_HOSTFWD = ["tcp:8080:80", "tcp:11311:11211"];

function fail(msg: string): never {
  process.stderr.write(`newts: ${msg} (try --help)\n`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        app: { type: "string", multiple: true },
        "no-apps": { type: "boolean" },
        ctl: { type: "string" },
        net: { type: "string" },
        hostfwd: { type: "string", multiple: true },
        pcap: { type: "string" },
        addr: { type: "string" },
        gw: { type: "string" },
        pf: { type: "string" },
        stack: { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail((e as Error).message.split("\n")[0]!);
  }
}

const opts = parse();
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
if (opts["no-apps"] && opts.app) fail("--app and --no-apps exclude each other");
const apps: AppSpec[] = [];
for (const a of opts.app ?? []) {
  const spec = parseAppSpec(a);
  if (!spec) fail(`bad --app value '${a}': expected "NAME ARGS" with NAME of letters, digits, _ . / -`);
  if (!spec.name.includes("/") && !existsSync(new URL(`../apps/${spec.name}.ts`, import.meta.url))) {
    fail(`--app ${spec.name}: no such app (apps/${spec.name}.ts)`);
  }
  apps.push(spec);
}
const ctlPath = opts.ctl ?? defaultCtlPath();
if (opts.addr !== undefined && !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(opts.addr)) fail(`--addr ${opts.addr}: expected A.B.C.D/N`);
if (opts.gw !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(opts.gw)) fail(`--gw ${opts.gw}: expected A.B.C.D`);
if (opts.net !== undefined && !/^(none|tap|dgram|hostfwd)(,|$)/.test(opts.net)) fail(`--net ${opts.net}: expected none, tap[,...], dgram,local=P,remote=P or hostfwd[,...]`);
for (const r of opts.hostfwd ?? []) {
  const f = parseHostfwd(r);
  if (typeof f === "string") fail(`--${f}`);
}
if (opts.hostfwd && opts.net !== undefined && !opts.net.startsWith("hostfwd")) fail(`--hostfwd needs --net hostfwd, not ${opts.net}`);
if (opts.stack !== undefined && opts.stack !== "split" && opts.stack !== "single") fail(`--stack ${opts.stack}: expected split or single`);
let pfRules: string | undefined;
if (opts.pf !== undefined) {
  try {
    pfRules = readFileSync(opts.pf, "utf8");
  } catch (e) {
    fail(`--pf ${opts.pf}: ${(e as Error).message}`);
  }
  const r = parseRules(pfRules);
  if (!r.ok) fail(`--pf ${opts.pf}: line ${r.errors[0]!.line}: ${r.errors[0]!.message}`);
}

// A control socket left by a newts that died is removed; a live one means "already running".
if (existsSync(ctlPath)) {
  const alive = await ctlRequest(ctlPath, { cmd: "ps", args: [] }, 500).then(() => true, () => false);
  if (alive) {
    process.stderr.write(`newts: already running (control socket ${ctlPath}); stop it with: npm run ctl -- shutdown\n`);
    process.exit(1);
  }
  unlinkSync(ctlPath);
}

const quiet = !!opts.quiet;
const defaultApps = !opts["no-apps"] && apps.length === 0;
const netSpec = opts.net ?? "hostfwd";
// The default apps get the default forwards unless the user chose the forwards.
const hostfwd = opts.hostfwd ?? (defaultApps && netSpec.startsWith("hostfwd") ? DEFAULT_HOSTFWD : undefined);
const t0 = performance.now();
const machine = await Machine.boot({
  apps: opts["no-apps"] ? [] : apps.length > 0 ? apps : DEFAULT_APPS,
  // User-mode networking needs no root, so it is what a newcomer gets.
  net: netSpec,
  hostfwd,
  pcap: opts.pcap,
  addr: opts.addr,
  gateway: opts.gw,
  pfRules,
  stack: opts.stack as "split" | "single" | undefined,
  onLog: (line) => {
    if (!quiet || line.includes("crash") || line.includes("fail")) console.log(line);
  },
}).catch((e: Error) => {
  process.stderr.write(`newts: ${e.message}\n`);
  process.exit(e.message.startsWith("netdev:") ? 2 : 1);
});
console.log(`newts booted in ${(performance.now() - t0).toFixed(0)} ms; control socket ${ctlPath}`);
for (const rule of hostfwd ?? []) {
  const [, host, guest] = rule.split(":");
  const what = guest === "80" ? `  e.g. curl http://127.0.0.1:${host}/` : guest === "11211" ? `  e.g. printf 'set k 0 0 2\\r\\nhi\\r\\nget k\\r\\n' | nc -q1 127.0.0.1 ${host}` : "";
  console.log(`forwarding 127.0.0.1:${host} -> newts port ${guest}${what}`);
}
console.log(`try: npm run ctl -- ps    npm run ctl -- stats    (Ctrl-C or 'npm run ctl -- shutdown' stops it)`);

let stopping = false;
async function stop(why: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`newts: ${why}; shutting down`);
  const hard = setTimeout(() => process.exit(0), 1900);
  await machine.shutdown();
  server.stop(true);
  try {
    unlinkSync(ctlPath);
  } catch {
    /* already gone */
  }
  clearTimeout(hard);
  process.exit(0);
}

async function handle(req: CtlRequest): Promise<CtlReply> {
  if (req.cmd === "shutdown") {
    setTimeout(() => void stop("shutdown requested"), 10);
    return { ok: true, data: "shutting down" };
  }
  try {
    return { ok: true, data: await machine.ctl(req.cmd, req.args) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

const server = Bun.listen<{ buf: string }>({
  unix: ctlPath,
  socket: {
    open(s) {
      s.data = { buf: "" };
    },
    data(s, d) {
      s.data.buf += d.toString();
      if (s.data.buf.length > 65536) {
        s.end(JSON.stringify({ ok: false, error: "request too long" }) + "\n");
        return;
      }
      const nl = s.data.buf.indexOf("\n");
      if (nl < 0) return;
      let req: CtlRequest;
      try {
        const j = JSON.parse(s.data.buf.slice(0, nl)) as Partial<CtlRequest>;
        if (typeof j.cmd !== "string" || (j.args !== undefined && !Array.isArray(j.args))) throw new Error("expected {cmd, args}");
        req = { cmd: j.cmd, args: (j.args ?? []).map(String) };
      } catch (e) {
        s.end(JSON.stringify({ ok: false, error: `bad request: ${(e as Error).message}` }) + "\n");
        return;
      }
      void handle(req).then((r) => s.end(JSON.stringify(r) + "\n"));
    },
  },
});

process.on("SIGINT", () => void stop("interrupted"));
process.on("SIGTERM", () => void stop("terminated"));

// Apps' exit statuses on the console.
void (async () => {
  for (;;) {
    const before = machine.exits.length;
    await new Promise((r) => setTimeout(r, 200));
    for (const e of machine.exits.slice(before)) console.log(`[machine] app ${e.name} (ep ${e.ep}) exited with status ${e.status}`);
    if (stopping) return;
  }
})();

