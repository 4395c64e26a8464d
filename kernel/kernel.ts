// The kernel worker: process table, IPC routing with permission checks, grants,
// channels, process start, kill and restart. It runs an event-loop-friendly
// polling loop so that worker `error`/`exit` events and the machine's requests
// reach it between rounds.
//
// This file keeps the loop and the worker entry, and wires the parts, one job each:
//   procs.ts    process lifecycle: spawn, exit, kill, restart, apps, boot, shutdown
//   route.ts    message routing: outboxes to inboxes, ACLs, validation, backlogs
//   kcalls.ts   kernel calls: the call table
//   grants.ts   grants, channels, pools, and re-granting them after a restart
//   control.ts  the machine's requests: ps, stats, kill, restart, ...
//   state.ts    the state they share (process table, pending bitmap, kinfo, counters)
//   slot.ts     a process table entry
import { parentPort, workerData } from "node:worker_threads";
import { loadLibc } from "../lib/sys/ffi.ts";
import type { ProcRow } from "./slot.ts";
import { KernelState, type KernelInit } from "./state.ts";
import { Router } from "./route.ts";
import { Grants } from "./grants.ts";
import { Procs } from "./procs.ts";
import { Control } from "./control.ts";
import { kernelCall, type KernelParts } from "./kcalls.ts";

export type { ProcRow } from "./slot.ts";
export type { KernelInit } from "./state.ts";

const KERNEL_SPIN = 200;
const KERNEL_SLEEP_MS = 20;

/** The kernel: its state, its parts wired together, and its loop. */
class Kernel extends KernelState implements KernelParts {
  readonly router: Router = new Router(this, (from, m) => kernelCall(this, from, m));
  readonly grants: Grants = new Grants(this, this.router);
  readonly procs: Procs = new Procs(this, this.router, this.grants);
  readonly control: Control = new Control(this, this.procs, this.router);

  ps(): ProcRow[] {
    return this.control.ps();
  }

  // ---- the loop ----------------------------------------------------------------

  private anyPending(): boolean {
    for (let w = 0; w < this.pending.length; w++) if (Atomics.load(this.pending, w) !== 0) return true;
    return false;
  }

  /** One round: every outbox with pending work, then every backlog. */
  private round(): number {
    let n = 0;
    for (let w = 0; w < this.pending.length; w++) {
      if (Atomics.load(this.pending, w) === 0) continue;
      const bits = Atomics.exchange(this.pending, w, 0);
      for (let b = 0; b < 32; b++) {
        if ((bits >>> b) & 1) {
          const s = this.slots[w * 32 + b];
          if (s) n += this.router.drainOutbox(s);
        }
      }
    }
    for (const s of this.slots) if (s && s.backlog.length > 0 && this.router.flushBacklog(s)) n++;
    return n;
  }

  async loop(): Promise<void> {
    let idle = 0;
    let lastYield = performance.now();
    while (!this.stopping) {
      this.stats.rounds++;
      if (this.round() > 0) {
        idle = 0;
        // Let worker events and the machine's requests in now and then.
        if (performance.now() - lastYield > 2) {
          await new Promise((r) => setImmediate(r));
          lastYield = performance.now();
        }
        continue;
      }
      if (++idle < KERNEL_SPIN) continue;
      idle = 0;
      this.stats.sleeps++;
      await this.doorbell.sleepAsync(() => this.anyPending(), KERNEL_SLEEP_MS);
      lastYield = performance.now();
    }
  }
}

// ---- worker entry ------------------------------------------------------------------

if (parentPort && workerData && (workerData as { kernel?: boolean }).kernel) {
  const kinit = (workerData as { init: KernelInit }).init;
  loadLibc(new Int32Array(kinit.machine, 0, 1)); // wakers may write a driver's eventfd
  const kernel = new Kernel(kinit);
  const port = parentPort;
  port.on("message", (m: { op: string; id?: number; cmd?: string; args?: string[] }) => {
    if (m.op === "ctl") {
      kernel.control.run(m.cmd ?? "", m.args ?? []).then(
        (data) => port.postMessage({ op: "ctl-reply", id: m.id, ok: true, data }),
        (e: Error) => port.postMessage({ op: "ctl-reply", id: m.id, ok: false, error: e.message }),
      );
    } else if (m.op === "shutdown") {
      void kernel.procs.shutdown().then(() => port.postMessage({ op: "down" }));
    }
  });
  void kernel.loop();
  kernel.procs.boot().then(
    () => port.postMessage({ op: "booted", procs: kernel.ps() }),
    (e: Error) => port.postMessage({ op: "boot-failed", error: e.message }),
  );
}
