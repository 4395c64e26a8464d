// `npm run bench -- apps`: the ported servers under load, from one run:
// requests/s of apps/httpd.ts for a 20 B and an 11 kB file at 1, 8 and 64 keep-alive
// connections (wrk), and gets/s of apps/memcached.ts (bench/memc-load.ts), each on newts
// fast sockets, newts syscall sockets and the Linux backend; with every row the server's
// Table 5.2 figures (libc/counters.ts) for that workload alone (the counters read with
// `ctl stats` before and after it, and subtracted).
//
// Paths. newts fast and syscall: one machine per backend; as root it is wired to a TAP
// device whose Linux end is in a namespace this benchmark makes (and removes), and the load
// generator runs in that namespace against 10.0.2.15; not root, the hostfwd wire forwards
// 127.0.0.1:PORT into newts and the load generator runs here. Linux backend: the same apps
// in a newts machine (no wire), but their sockets are the host's: they listen on
// 127.0.0.1 and the load generator runs in the root namespace (no TAP hop, no newts stack).
//
// Each cell measures for --time (default 8000 ms; wrk takes whole seconds), after one
// second of warm-up per file and per server. Every process and namespace started is
// stopped on the way out, also on an error, SIGINT or SIGTERM.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Machine, ROOT } from "../kernel/boot.ts";
import { cleanupNetns } from "../drivers/backends/netns.ts";
import { table52, type ProcSockStats, type Table52 } from "../libc/counters.ts";
import type { SocketCallStats, SocketStats } from "../libc/api.ts";
import { haveTool } from "../lib/sys/needs.ts";
import { freePort } from "../lib/sys/hostport.ts";

export interface AppsOptions {
  timeMs: number;
  progress: (line: string) => void;
}

export const BACKENDS = ["fast", "syscall", "linux"] as const;
export type AppsBackend = (typeof BACKENDS)[number];

const FILES = [
  { path: "/20b.txt", label: "httpd 20 B" },
  { path: "/11k.bin", label: "httpd 11 kB" },
] as const;
const CONNS = [1, 8, 64] as const;
/** memcached load: connections, gets in flight per connection, value size, keys. */
const MEMC = { conns: 32, depth: 4, size: 1024, keys: 1000 } as const;
const WARM_S = 1;

// Named after this process, so that two runs (or a newts of someone else's on "nt-apps") do
// not take each other's namespace away: NetnsTap removes one of the same name at boot.
const NS = `nt-apps-${process.pid}`;
const DEV = `ntapps${process.pid % 100_000}`;
const GUEST = "10.0.2.15";
const BUN = join(ROOT, "node_modules/.bin/bun");
const MEMC_LOAD = join(ROOT, "bench/memc-load.ts");

export interface AppsRow {
  backend: AppsBackend;
  /** "httpd 20 B", "httpd 11 kB", "memcached get". */
  workload: string;
  conns: number;
  /** Requests (httpd) or gets (memcached) per second. */
  perS: number;
  requests: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx/3xx answers; for memcached, bad or missing answers and lost connections. */
  errors: number;
  errorDetail: string;
  ms: number;
  /** The server's socket calls during this cell, and its Table 5.2 (percent; null where no such calls). */
  calls: number;
  syscalls: number;
  userspace: number;
  table52: Table52;
  /** Why the cell has no figure (the load generator failed, or the server is gone); the run goes on. */
  failed?: string;
  /** With failed: the machine's last lines from rs and the apps. */
  log?: string[];
}

export interface AppsResult {
  bench: "apps";
  unit: string;
  wire: "tap" | "hostfwd";
  path: string[];
  cellMs: number;
  load: { httpd: string; memcached: string };
  skipped: string[];
  rows: AppsRow[];
}

// ---- child processes (tracked, so that every one is killed on the way out)

const children = new Set<ChildProcess>();
/** Set on SIGINT/SIGTERM: nothing new is started while the run winds down. */
let stopping = false;

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** Runs argv (inside namespace `ns` when given); killed after timeoutMs. */
function run(argv: string[], ns: string | null, timeoutMs: number): Promise<Ran> {
  if (stopping) return Promise.reject(new Error("stopping"));
  const [cmd, ...args] = ns ? ["ip", "netns", "exec", ns, ...argv] : argv;
  const c = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(c);
  let out = "";
  let err = "";
  c.stdout!.on("data", (d) => (out += d));
  c.stderr!.on("data", (d) => (err += d));
  const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) => {
    c.on("error", (e) => (err += String(e)));
    c.on("close", (code) => {
      clearTimeout(t);
      children.delete(c);
      resolve({ code, out, err });
    });
  });
}

function killChildren(): void {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
}

// ---- helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** Waits for app `name` to print its "listening on" line. */
async function listening(m: Machine, name: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (m.logs.some((l) => l.startsWith(`${name}: listening on `))) return;
    const gone = m.exits.find((e) => e.name === name);
    if (gone) throw new Error(`${name} exited: ${JSON.stringify(gone)}\n${m.logs.filter((l) => l.startsWith(name)).join("\n")}`);
    await sleep(50);
  }
  throw new Error(`${name} did not start:\n${m.logs.slice(-20).join("\n")}`);
}

const FIELDS: (keyof SocketCallStats)[] = ["calls", "userspace", "syscalls", "wouldBlock", "blocked", "errors"];

/** after - before, as SocketStats (for table52). */
function diffStats(before: ProcSockStats | undefined, after: ProcSockStats | undefined): SocketStats {
  const s: SocketStats = { calls: {}, total: 0, syscalls: 0, userspace: 0, wouldBlock: 0, errors: 0, blocked: 0, kinds: {} };
  for (const [name, a] of Object.entries(after?.kinds ?? {})) {
    const b = before?.kinds[name];
    const d = {} as SocketCallStats;
    for (const f of FIELDS) d[f] = a[f] - (b?.[f] ?? 0);
    s.kinds![name] = d;
    if (d.calls > 0) s.calls[name] = d.calls;
    s.total += d.calls;
    s.userspace += d.userspace;
    s.syscalls += d.syscalls;
    s.wouldBlock += d.wouldBlock;
    s.blocked! += d.blocked;
    s.errors += d.errors;
  }
  return s;
}

async function statsOf(m: Machine, name: string): Promise<ProcSockStats | undefined> {
  return (await m.sockStats(name)).find((r) => r.name === name);
}

/** What wrk printed: requests, requests/s and the errors. */
function parseWrk(text: string): { requests: number; perS: number; ms: number; errors: number; detail: string } | null {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const n = /(\d+) requests in ([\d.]+)(us|ms|s|m)\b/.exec(text);
  if (!rps || !n) return null;
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[n[3] as "us" | "ms" | "s" | "m"];
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const [c, r, w, t] = sock ? sock.slice(1).map(Number) : [0, 0, 0, 0];
  const parts = [c ? `connect ${c}` : "", r ? `read ${r}` : "", w ? `write ${w}` : "", t ? `timeout ${t}` : "", non2xx ? `non-2xx/3xx ${non2xx}` : ""];
  return {
    requests: Number(n[1]),
    perS: Number(rps[1]),
    ms: Number(n[2]) * unit,
    errors: c! + r! + w! + t! + non2xx,
    detail: parts.filter((x) => x).join(", "),
  };
}

/**
 * The row of a cell whose load generator failed: why, whether the server is still there,
 * which processes rs restarted, and the machine's last lines from rs and about apps.
 */
async function failedRow(backend: AppsBackend, workload: string, conns: number, e: unknown, m: Machine, app: string): Promise<AppsRow> {
  const gone = m.exits.find((x) => x.name === app);
  const why = (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 300);
  const notes: string[] = [];
  if (gone) notes.push(`${app} exited (status ${gone.status}${gone.error ? `: ${gone.error}` : ""})`);
  try {
    const restarted = (await m.ps()).filter((p) => p.restarts > 0 || (p.name === app && p.state !== "running"));
    for (const p of restarted) notes.push(`${p.name}: ${p.state}, ${p.restarts} restarts`);
  } catch {
    notes.push("the machine does not answer ps");
  }
  const log = m.logs.filter((l) => /^rs: |^\[machine\]|^(httpd|memcached)[.0-9]*: (?!listening)/.test(l)).slice(-8);
  return {
    backend, workload, conns, perS: 0, requests: 0, errors: 0, errorDetail: "", ms: 0, calls: 0, syscalls: 0, userspace: 0,
    table52: { userspacePct: null, selectBlockPct: null, selectPerCallPct: null, acceptAgainPct: null, readAgainPct: null },
    failed: [why, ...notes].join("; "),
    log,
  };
}

// ---- one backend

interface Target {
  /** Namespace the load generator runs in (TAP), or null (root namespace). */
  ns: string | null;
  httpHost: string;
  httpPort: number;
  memcHost: string;
  memcPort: number;
}

interface BackendRun {
  backend: AppsBackend;
  wire: "tap" | "hostfwd";
  cellS: number;
  cellMs: number;
  wrk: boolean;
  o: AppsOptions;
  setMachine: (m: Machine | null) => void;
}

async function runBackend(r: BackendRun): Promise<AppsRow[]> {
  const { backend, o } = r;
  const rows: AppsRow[] = [];
  let m: Machine;
  let t: Target;
  if (backend === "linux") {
    m = await Machine.boot({ apps: [] });
    t = { ns: null, httpHost: "127.0.0.1", httpPort: freePort(), memcHost: "127.0.0.1", memcPort: freePort() };
  } else if (r.wire === "tap") {
    m = await Machine.boot({ apps: [], net: `tap,ns=${NS},dev=${DEV},addr=10.0.2.2/24` });
    t = { ns: NS, httpHost: GUEST, httpPort: 80, memcHost: GUEST, memcPort: 11211 };
  } else {
    const hp = freePort();
    const mp = freePort();
    m = await Machine.boot({ apps: [], hostfwd: [`tcp:${hp}:80`, `tcp:${mp}:11211`] });
    t = { ns: null, httpHost: "127.0.0.1", httpPort: hp, memcHost: "127.0.0.1", memcPort: mp };
  }
  r.setMachine(m);
  try {
    const linux = backend === "linux";
    const httpd = await m.spawn("httpd", ["--sockets", backend, ...(linux ? ["--addr", "127.0.0.1"] : []), "--port", String(linux ? t.httpPort : 80)]);
    const memcached = await m.spawn("memcached", ["--sockets", backend, ...(linux ? ["-l", "127.0.0.1"] : []), "-p", String(linux ? t.memcPort : 11211)]);
    await listening(m, httpd);
    await listening(m, memcached);

    if (r.wrk) {
      const wrk = async (file: string, conns: number, secs: number) => {
        const url = `http://${t.httpHost}:${t.httpPort}${file}`;
        const argv = ["wrk", "-c", String(conns), "-t", String(Math.min(conns, 2)), "-d", `${secs}s`, "--timeout", "2s", url];
        const res = await run(argv, t.ns, secs * 1000 + 30_000);
        const w = parseWrk(res.out);
        if (!w) throw new Error(`wrk ${argv.slice(1).join(" ")} failed (exit ${res.code}): ${(res.err || res.out).trim()}`);
        return w;
      };
      for (const f of FILES) {
        o.progress(`apps: ${backend}: ${f.label}: warm-up (${WARM_S} s, 8 connections)...`);
        await wrk(f.path, 8, WARM_S).catch((e: Error) => stopping || o.progress(`apps: ${backend}: ${f.label}: warm-up failed: ${e.message.split("\n")[0]}`));
        for (const c of CONNS) {
          const before = await statsOf(m, httpd);
          let w: NonNullable<ReturnType<typeof parseWrk>>;
          try {
            w = await wrk(f.path, c, r.cellS);
          } catch (e) {
            rows.push(await failedRow(backend, f.label, c, e, m, httpd));
            if (!stopping) o.progress(`apps: ${backend}: ${f.label}, ${c} conn: FAILED: ${rows.at(-1)!.failed}`);
            continue;
          }
          const d = diffStats(before, await statsOf(m, httpd));
          rows.push({
            backend, workload: f.label, conns: c, perS: w.perS, requests: w.requests, errors: w.errors, errorDetail: w.detail, ms: w.ms,
            calls: d.total, syscalls: d.syscalls, userspace: d.userspace, table52: table52(d),
          });
          o.progress(`apps: ${backend}: ${f.label}, ${c} conn: ${w.perS.toFixed(0)} req/s${w.errors ? `, ${w.errors} errors (${w.detail})` : ""}`);
        }
      }
    }

    const memc = (ms: number, preload: boolean) =>
      run(
        [BUN, MEMC_LOAD, t.memcHost, String(t.memcPort), "--conns", String(MEMC.conns), "--depth", String(MEMC.depth), "--size", String(MEMC.size),
          "--keys", String(MEMC.keys), "--ms", String(ms), ...(preload ? ["--preload"] : [])],
        t.ns,
        ms + 30_000,
      );
    const parseMemc = (res: Ran) => {
      const line = res.out.trim().split("\n").pop() ?? "";
      try {
        return JSON.parse(line) as { gets: number; errors: number; misses: number; closedEarly: number; ms: number; getsPerS: number };
      } catch {
        const said = (res.err || res.out).trim().split("\n");
        throw new Error(`memc-load failed (exit ${res.code}): ${said.find((l) => l.startsWith("memc-load:") || l.startsWith("error:")) ?? said.at(-1)}`);
      }
    };
    if (!stopping) o.progress(`apps: ${backend}: memcached: preload ${MEMC.keys} x ${MEMC.size} B, warm-up (${WARM_S} s)...`);
    try {
      parseMemc(await memc(WARM_S * 1000, true));
      const before = await statsOf(m, memcached);
      const g = parseMemc(await memc(r.cellMs, false));
      const d = diffStats(before, await statsOf(m, memcached));
      const detail = [g.misses ? `misses ${g.misses}` : "", g.closedEarly ? `connections lost ${g.closedEarly}` : ""].filter((x) => x).join(", ");
      rows.push({
        backend, workload: "memcached get", conns: MEMC.conns, perS: g.getsPerS, requests: g.gets, errors: g.errors, errorDetail: detail, ms: g.ms,
        calls: d.total, syscalls: d.syscalls, userspace: d.userspace, table52: table52(d),
      });
      o.progress(`apps: ${backend}: memcached get, ${MEMC.conns} conn: ${g.getsPerS.toFixed(0)} gets/s${g.errors ? `, ${g.errors} errors (${detail})` : ""}`);
    } catch (e) {
      rows.push(await failedRow(backend, "memcached get", MEMC.conns, e, m, memcached));
      if (!stopping) o.progress(`apps: ${backend}: memcached get: FAILED: ${rows.at(-1)!.failed}`);
    }
  } finally {
    killChildren();
    await m.shutdown();
    r.setMachine(null);
  }
  return rows;
}

/** The namespace and device, if a machine stopped half-way left them (a no-op normally). */
function removeNetns(): void {
  try {
    cleanupNetns(NS, DEV);
  } catch {
    // nothing more to do on the way out
  }
}

// ---- the benchmark

export async function runApps(o: AppsOptions): Promise<AppsResult> {
  const cellS = Math.max(1, Math.round(o.timeMs / 1000));
  const skipped: string[] = [];
  const root = process.getuid?.() === 0;
  const tapWhy = !root ? "not root" : !existsSync("/dev/net/tun") ? "no /dev/net/tun" : !haveTool("ip") ? "no ip (Debian iproute2)" : null;
  const wire = tapWhy ? "hostfwd" : "tap";
  const wrk = haveTool("wrk");
  if (!wrk) skipped.push("httpd rows skipped: needs wrk (Debian wrk)");

  let current: Machine | null = null;
  stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    o.progress(`apps: ${sig}: stopping the load generator and the machine...`);
    killChildren();
    const m = current;
    void (m ? m.shutdown() : Promise.resolve())
      .catch(() => {})
      .finally(() => {
        killChildren();
        if (wire === "tap") removeNetns();
        process.exit(sig === "SIGINT" ? 130 : 143);
      });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const rows: AppsRow[] = [];
  try {
    for (const backend of BACKENDS) {
      o.progress(`apps: ${backend}: booting${backend === "linux" ? " (apps on the host's sockets, 127.0.0.1)" : wire === "tap" ? ` (TAP, load from namespace ${NS})` : " (hostfwd wire)"}...`);
      rows.push(
        ...(await runBackend({ backend, wire, cellS, cellMs: o.timeMs, wrk, o, setMachine: (m) => (current = m) })),
      );
    }
  } catch (e) {
    // After a signal the handler cleans up and exits; the failures it caused are no news.
    if (stopping) await new Promise(() => {});
    throw e;
  } finally {
    killChildren();
    await (current as Machine | null)?.shutdown();
    if (wire === "tap") removeNetns();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const path =
    wire === "tap"
      ? [
          `newts fast, syscall: server in newts at ${GUEST}; load generator in namespace ${NS}, over a TAP device`,
          "linux: the same apps on the host's sockets, on 127.0.0.1; load generator in the root namespace (no TAP hop, no newts stack)",
        ]
      : [
          `newts fast, syscall: through the hostfwd wire (127.0.0.1:PORT -> newts, user-mode TCP on the host side; ${tapWhy}, so no TAP)`,
          "linux: the same apps on the host's sockets, on 127.0.0.1; load generator in the root namespace (no newts stack)",
        ];
  return {
    bench: "apps",
    unit: "requests/s (httpd), gets/s (memcached)",
    wire,
    path,
    cellMs: o.timeMs,
    load: {
      httpd: `wrk -c N -t min(N,2) -d ${cellS}s, keep-alive (httpd defaults: epoll, at most 100 requests per connection)`,
      memcached: `bench/memc-load.ts: ${MEMC.conns} connections x ${MEMC.depth} pipelined text gets, ${MEMC.size} B values, ${MEMC.keys} keys, ${o.timeMs} ms (memcached defaults: epoll)`,
    },
    skipped,
    rows,
  };
}

const pctText = (x: number | null) => (x === null ? "-" : `${x.toFixed(2)} %`);
/** A ratio with two significant digits at least (0.0039x, not 0.00x). */
const ratioText = (x: number) => `${x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}x`;

export function formatApps(r: AppsResult): string {
  const head = [
    "backend".padEnd(8), "workload".padEnd(14), "conns".padStart(5), "req/s".padStart(10), "errors".padStart(7),
    "user space".padStart(11), "select blocks".padStart(14), "read EAGAIN".padStart(12), "syscalls/req".padStart(13),
  ].join(" ");
  const lines = [
    `httpd and memcached under load, one run (${r.unit}; Table 5.2 columns: the server's socket calls during that cell)`,
    ...r.path,
    `httpd: ${r.load.httpd}`,
    `memcached: ${r.load.memcached}`,
    "",
    head,
  ];
  let last = "";
  for (const x of r.rows) {
    if (last && last !== x.backend) lines.push("");
    last = x.backend;
    lines.push(
      [
        x.backend.padEnd(8), x.workload.padEnd(14), String(x.conns).padStart(5), (x.failed ? "failed" : x.perS.toFixed(0)).padStart(10), String(x.errors).padStart(7),
        pctText(x.table52.userspacePct).padStart(11), pctText(x.table52.selectBlockPct).padStart(14), pctText(x.table52.readAgainPct).padStart(12),
        (x.requests > 0 ? (x.syscalls / x.requests).toFixed(2) : "-").padStart(13),
      ].join(" "),
    );
  }
  // fast against the other two, per workload
  const cell = (b: string, w: string, c: number) => r.rows.find((x) => x.backend === b && x.workload === w && x.conns === c);
  const ratios: string[] = [];
  for (const x of r.rows.filter((y) => y.backend === "fast")) {
    const s = cell("syscall", x.workload, x.conns);
    const l = cell("linux", x.workload, x.conns);
    const q = (a: AppsRow | undefined) => (a && !a.failed && !x.failed && a.perS > 0 ? ratioText(x.perS / a.perS) : "-");
    ratios.push(`${x.workload.padEnd(14)} ${String(x.conns).padStart(5)} ${q(s).padStart(13)} ${q(l).padStart(11)}`);
  }
  if (ratios.length) lines.push("", `${"workload".padEnd(14)} ${"conns".padStart(5)} ${"fast/syscall".padStart(13)} ${"fast/linux".padStart(11)}`, ...ratios);
  const bad = r.rows.filter((x) => x.errors > 0 || x.failed);
  if (bad.length) {
    lines.push("", "errors:");
    for (const x of bad) {
      lines.push(`  ${x.backend} ${x.workload} ${x.conns} conn: ${x.failed ? `failed: ${x.failed}` : `${x.errors}${x.errorDetail ? ` (${x.errorDetail})` : ""}`}`);
      for (const l of x.log ?? []) lines.push(`    | ${l}`);
    }
  }
  for (const s of r.skipped) lines.push(s);
  return lines.join("\n");
}
