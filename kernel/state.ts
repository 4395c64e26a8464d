// The kernel's shared state: its configuration, the process table, the pending
// bitmap the senders set, the process information table, its counters, and its
// messages to the machine. Every part of the kernel (procs, route, grants, control,
// kcalls) works on it.
import { parentPort } from "node:worker_threads";
import { createDoorbell, Doorbell } from "../lib/ipc/doorbell.ts";
import { MAX_ENDPOINTS } from "../lib/ipc/calls.ts";
import { createKinfo } from "../lib/sys/kinfo.ts";
import type { BootEntry } from "./table.ts";
import type { Slot } from "./slot.ts";

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

export class KernelState {
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
}
