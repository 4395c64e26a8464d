// Helpers for tests that boot a whole machine.
import { readdirSync, readFileSync } from "node:fs";
import type { Machine } from "../../kernel/boot.ts";
import type { ProcRow } from "../../kernel/kernel.ts";

/**
 * Threads of newts in this process: the kernel worker and every process worker (named
 * NAME#GENERATION). The runtime's own helpers (JIT, collector, thread pool) come and
 * go on their own and are not counted.
 */
export function threadCount(): number {
  let n = 0;
  for (const t of readdirSync("/proc/self/task")) {
    try {
      const comm = readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim();
      if (comm === "kernel" || /#\d+$/.test(comm)) n++;
    } catch {
      // the thread exited while we looked
    }
  }
  return n;
}

/** CPU time (utime + stime, clock ticks) of one thread of this process. */
export function threadTicks(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
}

export async function row(m: Machine, name: string): Promise<ProcRow> {
  const r = (await m.ps()).find((p) => p.name === name);
  if (!r) throw new Error(`no process ${name}`);
  return r;
}

/** Polls `ping NAME` until it answers; returns milliseconds until then. */
export async function untilAnswers(m: Machine, name: string, limitMs = 5000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    try {
      await m.ctl("ping", [name, "200"]);
      return performance.now() - t0;
    } catch (e) {
      if (performance.now() - t0 > limitMs) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until tcp has a listener on `port` (an app just spawned may not have called
 * listen yet: a client that connects first is refused). Fails, saying so, after limitMs.
 */
export async function untilListening(m: Machine, port: number, limitMs = 10_000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const st = (await m.ctl("srv", ["tcp", "show"])) as { listeners?: Record<string, unknown> };
    if (st.listeners && String(port) in st.listeners) return;
    if (performance.now() - t0 > limitMs) throw new Error(`nothing listened on tcp port ${port} within ${limitMs} ms`);
    await sleep(20);
  }
}

/** Waits until udp has a socket bound to `port`; fails, saying so, after limitMs. */
export async function untilBound(m: Machine, port: number, limitMs = 10_000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const st = (await m.ctl("srv", ["udp", "show"])) as { bound?: number[] };
    if (st.bound?.includes(port)) return;
    if (performance.now() - t0 > limitMs) throw new Error(`nothing was bound to udp port ${port} within ${limitMs} ms`);
    await sleep(20);
  }
}
