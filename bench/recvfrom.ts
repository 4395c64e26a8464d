// `npm run bench -- recvfrom`: the paper's Table 5.1 in one run — the cost of a
// nonblocking recvfrom on an empty UDP socket: by kernel IPC (a system call through
// the kernel to the syscall server and udp), through a polled channel to a server,
// in user space on newts's exposed socket buffer, and on Linux (the Linux backend
// through bun:ffi, and a C reference when a C compiler is there).
import { Worker } from "node:worker_threads";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Machine, ROOT } from "../kernel/boot.ts";
import { getAffinity, loadLibc } from "../lib/sys/ffi.ts";
import { createSlotRingBuffer } from "../lib/ipc/ring.ts";
import type { MicroFigure } from "./micro.ts";

export interface RecvfromOptions {
  timeMs: number;
  progress: (line: string) => void;
}

function run(file: string, data: Record<string, unknown>): { done: Promise<unknown>; w: Worker } {
  const w = new Worker(new URL(file, import.meta.url), { workerData: data });
  const done = new Promise((res, rej) => {
    w.on("message", res);
    w.on("error", rej);
    w.on("exit", (c) => c !== 0 && rej(new Error(`${file} exited with ${c}`)));
  });
  return { done, w };
}

/** The C reference, compiled on first use into .newts/ (skipped without cc). */
function cReference(): { nsPerCall: number } | { skipped: string } {
  const out = join(ROOT, ".newts", "recvfrom-c");
  if (!existsSync(out)) {
    mkdirSync(join(ROOT, ".newts"), { recursive: true });
    const cc = spawnSync("cc", ["-O2", "-o", out, join(ROOT, "bench/c/recvfrom.c")], { encoding: "utf8" });
    if (cc.status !== 0) return { skipped: `C reference skipped: cc failed or missing (${(cc.stderr || cc.error?.message || "").trim()})` };
  }
  const r = spawnSync("taskset", ["-c", "0", out, "2000000"], { encoding: "utf8" });
  const r2 = r.status === 0 ? r : spawnSync(out, ["2000000"], { encoding: "utf8" });
  if (r2.status !== 0) return { skipped: `C reference failed: ${r2.stderr}` };
  return { nsPerCall: Number(r2.stdout.split(" ")[0]) };
}

export async function runRecvfrom(o: RecvfromOptions) {
  const lock = new SharedArrayBuffer(64);
  loadLibc(new Int32Array(lock, 0, 1));
  const cpus = getAffinity();
  const other = cpus[1 % cpus.length]!;
  const base = { timeMs: o.timeMs, lock, cpu: cpus[0]! };

  o.progress("recvfrom: user space (newts exposed socket buffer)...");
  const user = (await run("./recvfrom-worker.ts", { ...base, what: "user" }).done) as MicroFigure;
  o.progress("recvfrom: Linux (Linux backend through bun:ffi)...");
  const linux = (await run("./recvfrom-worker.ts", { ...base, what: "linux" }).done) as MicroFigure;

  o.progress("recvfrom: polled channel to a server...");
  const req = createSlotRingBuffer(64, 8);
  const ans = createSlotRingBuffer(64, 8);
  const stop = new SharedArrayBuffer(4);
  const peer = run("./recvfrom-peer.ts", { rx: req, tx: ans, stop, lock, cpu: other });
  const client = run("./recvfrom-worker.ts", { ...base, what: "channel", tx: req, rx: ans, stop });
  let channel: MicroFigure;
  try {
    channel = (await client.done) as MicroFigure;
    await peer.done;
  } finally {
    Atomics.store(new Int32Array(stop), 0, 1);
    await Promise.all([client.w.terminate(), peer.w.terminate()]);
  }

  o.progress("recvfrom: kernel IPC (boots newts)...");
  const m = await Machine.boot({ apps: [] });
  let kernel: MicroFigure;
  let libc: MicroFigure;
  let poll0: MicroFigure;
  let tryLibc: MicroFigure;
  let libcSyscalls: number;
  try {
    const e = await m.run("bench/recvfrom-app.ts", [String(o.timeMs)], 120_000);
    if (e.status !== 0 || e.error) throw new Error(`recvfrom app failed: ${e.error}`);
    const r = e.result as { kernel: MicroFigure; libc: MicroFigure; tryLibc: MicroFigure; poll: MicroFigure; syscallsDuring: number };
    tryLibc = r.tryLibc;
    kernel = r.kernel;
    libc = r.libc;
    poll0 = r.poll;
    libcSyscalls = r.syscallsDuring;
  } finally {
    await m.shutdown();
  }
  o.progress("recvfrom: C reference...");
  const c = cReference();
  return {
    bench: "recvfrom",
    unit: "ns per nonblocking recvfrom on an empty UDP socket",
    cpus,
    kernelIpc: kernel,
    channel,
    userSpace: user,
    libcApi: libc,
    libcTry: tryLibc,
    libcPoll0: poll0,
    libcSyscalls,
    linuxBackend: linux,
    linuxC: c,
    ratios: {
      linuxBackendOverUser: linux.meanNs / user.meanNs,
      linuxBackendOverLibcTry: linux.meanNs / tryLibc.meanNs,
      linuxCOverLibcTry: "nsPerCall" in c ? c.nsPerCall / tryLibc.meanNs : null,
      linuxCOverLibcPoll0: "nsPerCall" in c ? c.nsPerCall / poll0.meanNs : null,
      linuxCOverUser: "nsPerCall" in c ? c.nsPerCall / user.meanNs : null,
      kernelOverUser: kernel.meanNs / user.meanNs,
      channelOverUser: channel.meanNs / user.meanNs,
    },
  };
}

export function formatRecvfrom(r: Awaited<ReturnType<typeof runRecvfrom>>): string {
  const row = (name: string, ns: number, note = "") => `${name.padEnd(44)} ${ns.toFixed(1).padStart(12)}  ${note}`;
  const c = r.linuxC;
  return [
    "Table 5.1: a nonblocking recvfrom on an empty UDP socket (ns per call, mean)",
    row("kernel IPC (syscall -> syscall server -> udp)", r.kernelIpc.meanNs, `${(r.kernelIpc.meanNs / r.userSpace.meanNs).toFixed(0)}x user space`),
    row("channel (polled ring to a server and back)", r.channel.meanNs, `${(r.channel.meanNs / r.userSpace.meanNs).toFixed(0)}x user space`),
    row("user space (newts exposed socket buffer)", r.userSpace.meanNs, ""),
    row("user space through libc tryRecvfrom (-EAGAIN)", r.libcTry.meanNs, `${r.libcSyscalls} system calls in the run`),
    row("user space through libc recvfrom (EAGAIN thrown)", r.libcApi.meanNs, "a JS throw costs most of it"),
    row("user space through libc poll(timeout 0)", r.libcPoll0.meanNs, ""),
    row("Linux, Linux backend tryRecvfrom (bun:ffi)", r.linuxBackend.meanNs, `${(r.linuxBackend.meanNs / r.userSpace.meanNs).toFixed(0)}x user space, ${(r.linuxBackend.meanNs / r.libcTry.meanNs).toFixed(1)}x libc tryRecvfrom`),
    "nsPerCall" in c
      ? row("Linux, C reference", c.nsPerCall, `${(c.nsPerCall / r.userSpace.meanNs).toFixed(0)}x user space, ${(c.nsPerCall / r.libcTry.meanNs).toFixed(1)}x libc tryRecvfrom`)
      : c.skipped,
  ].join("\n");
}
