// `npm run bench -- ipc`: the three ways a message crosses between two processes,
// from one run: a polled channel hand-off, a channel hand-off with sleep and wake,
// and a kernel sendrec (an app's system call through the kernel to a server).
import { Worker } from "node:worker_threads";
import { createDoorbell } from "../lib/ipc/doorbell.ts";
import { createSlotRingBuffer } from "../lib/ipc/ring.ts";
import { getAffinity, loadLibc } from "../lib/sys/ffi.ts";
import { Machine } from "../kernel/boot.ts";
import type { MicroFigure } from "./micro.ts";

export interface IpcOptions {
  timeMs: number;
  progress: (line: string) => void;
}

async function channel(mode: "poll" | "sleep", o: IpcOptions, lock: SharedArrayBuffer, cpus: number[]) {
  const a = createSlotRingBuffer(64, 8);
  const b = createSlotRingBuffer(64, 8);
  const ca = createDoorbell();
  const cb = createDoorbell();
  const stop = new SharedArrayBuffer(4);
  const common = { mode, stop, lock, timeMs: o.timeMs };
  const echo = new Worker(new URL("./ipc-peer.ts", import.meta.url), {
    workerData: { ...common, role: "echo", tx: b, rx: a, mine: cb, theirs: ca, cpu: cpus[1 % cpus.length] },
  });
  const client = new Worker(new URL("./ipc-peer.ts", import.meta.url), {
    workerData: { ...common, role: "client", tx: a, rx: b, mine: ca, theirs: cb, cpu: cpus[0] },
  });
  const result = (w: Worker) =>
    new Promise<{ fig?: MicroFigure; cpus: number[]; wakes?: number }>((res, rej) => {
      w.on("message", res);
      w.on("error", rej);
      w.on("exit", (c) => rej(new Error(`bench worker exited with ${c}`)));
    });
  try {
    const [c, e] = await Promise.all([result(client), result(echo)]);
    return { ...c.fig!, clientCpus: c.cpus, echoCpus: e.cpus };
  } finally {
    Atomics.store(new Int32Array(stop), 0, 1);
    await Promise.all([client.terminate(), echo.terminate()]);
  }
}

export async function runIpc(o: IpcOptions) {
  const lock = new SharedArrayBuffer(64);
  loadLibc(new Int32Array(lock, 0, 1));
  const cpus = getAffinity();
  o.progress(`ipc: polled channel hand-off (${o.timeMs} ms)...`);
  const polled = await channel("poll", o, lock, cpus);
  o.progress(`ipc: channel hand-off with sleep and wake (${o.timeMs} ms)...`);
  const sleepWake = await channel("sleep", o, lock, cpus);
  o.progress(`ipc: kernel sendrec (boots newts, ${o.timeMs} ms)...`);
  const m = await Machine.boot({ apps: [] });
  let sendrec: MicroFigure;
  try {
    const e = await m.run("bench/ipc-app.ts", [String(o.timeMs)], 60_000);
    if (e.status !== 0 || e.error) throw new Error(`ipc-app failed: ${e.error}`);
    sendrec = (e.result as { getpid: MicroFigure }).getpid;
  } finally {
    await m.shutdown();
  }
  return {
    bench: "ipc",
    cpus,
    unit: "ns per round trip",
    polledChannel: polled,
    sleepWakeChannel: sleepWake,
    kernelSendrec: sendrec,
    ratios: {
      sleepWakeOverPolled: sleepWake.meanNs / polled.meanNs,
      sendrecOverPolled: sendrec.meanNs / polled.meanNs,
      sendrecOverSleepWake: sendrec.meanNs / sleepWake.meanNs,
    },
  };
}

export function formatIpc(r: Awaited<ReturnType<typeof runIpc>>): string {
  const row = (name: string, f: MicroFigure) =>
    `${name.padEnd(34)} ${f.meanNs.toFixed(0).padStart(10)} ${f.p50Ns.toFixed(0).padStart(10)} ${f.p99Ns.toFixed(0).padStart(10)} ${("±" + f.rme.toFixed(1) + "%").padStart(8)} ${String(f.ops).padStart(10)}`;
  return [
    `IPC round trips on CPUs {${r.cpus.join(",")}} (client and server pinned to different CPUs where there are two)`,
    `${"path".padEnd(34)} ${"mean ns".padStart(10)} ${"p50 ns".padStart(10)} ${"p99 ns".padStart(10)} ${"rme".padStart(8)} ${"ops".padStart(10)}`,
    row("channel, polled hand-off", r.polledChannel),
    row("channel, sleep and futex wake", r.sleepWakeChannel),
    row("kernel sendrec (getpid syscall)", r.kernelSendrec),
    "",
    `sleep+wake / polled   ${r.ratios.sleepWakeOverPolled.toFixed(1)}x`,
    `sendrec / polled      ${r.ratios.sendrecOverPolled.toFixed(1)}x`,
    `sendrec / sleep+wake  ${r.ratios.sendrecOverSleepWake.toFixed(1)}x`,
  ].join("\n");
}
