// `npm run bench -- stack`: bulk TCP throughput through newts's stack, from one run:
// Linux -> newts and newts -> Linux over a TAP device (root), and newts -> newts
// over a dgram link between two machines; each with the split stack (a server per
// layer) and the single stack (one server). The apps are nc, whose sockets move
// their data by kernel message (libc/net.ts: a system call per 8 KiB, forwarded by
// the syscall server), so these figures are bounded by system calls, not the stack.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Machine, ROOT } from "../kernel/boot.ts";
import { lacking } from "../lib/sys/needs.ts";

export interface StackOptions {
  timeMs: number;
  progress: (line: string) => void;
  /** Bytes per transfer. */
  bytes?: number;
}

interface Row {
  path: string;
  stack: "split" | "single";
  bytes: number;
  ms: number;
  mbPerS: number;
}

const NS = "nt-bench";
const BUN = join(ROOT, "node_modules/.bin/bun");

function inNs(argv: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  const c = spawn("ip", ["netns", "exec", NS, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  c.stdout!.on("data", (d) => (out += d));
  c.stderr!.on("data", (d) => (out += d));
  const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
  return new Promise((r) => c.on("close", (code) => (clearTimeout(t), r({ code, out }))));
}

const row = (path: string, stack: Row["stack"], bytes: number, ms: number): Row => ({ path, stack, bytes, ms, mbPerS: bytes / 1e6 / (ms / 1000) });

async function overTap(stack: Row["stack"], bytes: number, o: StackOptions): Promise<Row[]> {
  const m = await Machine.boot({ apps: [], stack, net: `tap,ns=${NS},dev=ntbench0,addr=10.0.2.2/24` });
  try {
    o.progress(`stack ${stack}: Linux -> newts over TAP, ${bytes / 1e6} MB...`);
    const sink = await m.spawn("nc", ["-l", "7001", "--sink"]);
    await new Promise((r) => setTimeout(r, 200));
    const src = await inNs([BUN, join(ROOT, "bench/ns-source.ts"), "10.0.2.15", "7001", String(bytes)], 300_000);
    if (src.code !== 0) throw new Error(`Linux sender failed: ${src.out}`);
    const got = await m.waitApp(sink, 300_000);
    const rin = got.result as { bytes: number; ms: number };
    if (rin.bytes !== bytes) throw new Error(`newts received ${rin.bytes} of ${bytes} bytes`);
    o.progress(`stack ${stack}: newts -> Linux over TAP, ${bytes / 1e6} MB...`);
    const srv = await m.spawn("nc", ["-l", "7002", "--http", "--size", String(bytes)]);
    await new Promise((r) => setTimeout(r, 200));
    const c = await inNs(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", "http://10.0.2.15:7002/"], 300_000);
    const [n, secs] = c.out.trim().split(" ").map(Number);
    if (n !== bytes) throw new Error(`curl got ${n} of ${bytes} bytes: ${c.out}`);
    await m.waitApp(srv, 10_000);
    return [row("Linux -> newts (TAP)", stack, bytes, rin.ms), row("newts -> Linux (TAP)", stack, bytes, secs! * 1000)];
  } finally {
    await m.shutdown();
  }
}

async function overDgram(stack: Row["stack"], bytes: number, o: StackOptions): Promise<Row> {
  o.progress(`stack ${stack}: newts -> newts over dgram, ${bytes / 1e6} MB...`);
  const pa = 30000 + Math.floor(Math.random() * 20000);
  const a = await Machine.boot({ apps: [], stack, net: `dgram,local=${pa},remote=${pa + 1}`, addr: "10.0.2.15/24" });
  let b: Machine | undefined;
  try {
    b = await Machine.boot({ apps: [], stack, net: `dgram,local=${pa + 1},remote=${pa}`, addr: "10.0.2.16/24", mac: "52:54:00:12:34:57" });
    const sink = await b.spawn("nc", ["-l", "7003", "--sink"]);
    await new Promise((r) => setTimeout(r, 200));
    const src = await a.spawn("nc", ["10.0.2.16", "7003", "--size", String(bytes)]);
    await a.waitApp(src, 300_000);
    const got = (await b.waitApp(sink, 300_000)).result as { bytes: number; ms: number };
    if (got.bytes !== bytes) throw new Error(`received ${got.bytes} of ${bytes} bytes`);
    return row("newts -> newts (dgram)", stack, bytes, got.ms);
  } finally {
    await b?.shutdown();
    await a.shutdown();
  }
}

export async function runStack(o: StackOptions) {
  const bytes = o.bytes ?? 20_000_000;
  const tapWhy = lacking({ root: true, tun: true, tools: ["ip", "curl"] }, "bench stack over TAP");
  const rows: Row[] = [];
  for (const stack of ["split", "single"] as const) {
    if (!tapWhy) rows.push(...(await overTap(stack, bytes, o)));
    rows.push(await overDgram(stack, bytes, o));
  }
  return { bench: "stack", unit: "MB/s (10^6 bytes per second)", bytes, skipped: tapWhy ? [tapWhy] : [], rows };
}

export function formatStack(r: Awaited<ReturnType<typeof runStack>>): string {
  const paths = [...new Set(r.rows.map((x) => x.path))];
  const cell = (p: string, s: string) => r.rows.find((x) => x.path === p && x.stack === s);
  const lines = [
    `bulk TCP, ${r.bytes / 1e6} MB per transfer (apps use sockets by system call)`,
    `${"path".padEnd(26)} ${"split MB/s".padStart(11)} ${"single MB/s".padStart(12)} ${"single/split".padStart(13)}`,
  ];
  for (const p of paths) {
    const a = cell(p, "split");
    const b = cell(p, "single");
    lines.push(
      `${p.padEnd(26)} ${(a ? a.mbPerS.toFixed(1) : "-").padStart(11)} ${(b ? b.mbPerS.toFixed(1) : "-").padStart(12)} ${(a && b ? (b.mbPerS / a.mbPerS).toFixed(2) + "x" : "-").padStart(13)}`,
    );
  }
  for (const s of r.skipped) lines.push(s);
  return lines.join("\n");
}
