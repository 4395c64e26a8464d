// The kernel worker: process table, IPC routing with permission checks, grants,
// channels, process start, kill and restart. It runs an event-loop-friendly
// polling loop so that worker `error`/`exit` events and the machine's requests
// reach it between rounds.
//
// This file keeps the kernel's shared state, the loop and the worker entry, and wires
// the parts, one job each:
//   procs.ts    process lifecycle: spawn, exit, kill, restart, apps, boot, shutdown
//   route.ts    message routing: outboxes to inboxes, ACLs, validation, backlogs
//   kcalls.ts   kernel calls: the call table
//   grants.ts   grants, channels, pools, and re-granting them after a restart
//   control.ts  the machine's requests: ps, stats, kill, restart, ...
//   slot.ts     a process table entry
import { parentPort, workerData } from "node:worker_threads";
import { loadLibc } from "../lib/sys/ffi.ts";
import { createDoorbell, Doorbell } from "../lib/ipc/doorbell.ts";
import { MAX_ENDPOINTS } from "../lib/ipc/calls.ts";
import { createKinfo } from "../lib/sys/kinfo.ts";
import type { BootEntry } from "./table.ts";
import type { ProcRow, Slot } from "./slot.ts";
import { Procs } from "./procs.ts";
import { Router } from "./route.ts";
import { Grants } from "./grants.ts";
import { Control } from "./control.ts";

export type { ProcRow } from "./slot.ts";

export interface KernelInit {
  root: string;
  servers: BootEntry[];
  apps: BootEntry[];
  machine: SharedArrayBuffer;
  cpusAllowed: number[];
  /** Per-server configuration from the command line (the wire for nic, addresses for ip, rules for pf). */
  config: Record<string, Record<string, unknown>>;
  release: string;
  bootEpochMs: number;
}

const KERNEL_SPIN = 200;
const KERNEL_SLEEP_MS = 20;

/** The kernel's state, shared by its parts, and its loop. */
export class Kernel {
  readonly init: KernelInit;
  readonly slots: (Slot | undefined)[] = new Array(MAX_ENDPOINTS);
  readonly byName = new Map<string, number>();
  readonly doorbellSab = createDoorbell();
  readonly doorbell = new Doorbell(this.doorbellSab);
  /** One bit per endpoint: its outbox has messages (set by the sender). */
  readonly pendingSab = new SharedArrayBuffer(MAX_ENDPOINTS / 8);
  readonly pending = new Int32Array(this.pendingSab);
  readonly kinfoSab = createKinfo();
  readonly kinfo = new Int32Array(this.kinfoSab);
  /** Set by shutdown: nothing is restarted or reported any more. */
  stopping = false;
  readonly stats = { routed: 0, rejected: 0, denied: 0, rounds: 0, sleeps: 0 };

  readonly procs = new Procs(this);
  readonly router = new Router(this);
  readonly grants = new Grants(this);
  readonly control = new Control(this);

  constructor(init: KernelInit) {
    this.init = init;
  }

  /** A message to the machine (main thread). */
  host(msg: unknown): void {
    parentPort?.postMessage(msg);
  }

  log(line: string): void {
    this.host({ op: "log", line });
  }

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
