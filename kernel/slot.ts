// An entry of the kernel's process table (one per endpoint) and the shared memory it
// holds across restarts, and a row of `ps`.
import type { MessagePort, Worker } from "node:worker_threads";
import { MAX_ENDPOINTS } from "../lib/ipc/calls.ts";
import { createDoorbell, Waker } from "../lib/ipc/doorbell.ts";
import type { MsgRing } from "../lib/ipc/ring.ts";
import { PCB, PCB_BYTES, PSTATE_NAMES } from "../lib/sys/pcb.ts";
import type { ChannelOpts } from "../lib/sys/proc.ts";
import { STORE_BYTES } from "../lib/sys/store.ts";
import { kcallsOf, type BootEntry } from "./table.ts";

/** A row of `ps`. */
export interface ProcRow {
  ep: number;
  name: string;
  kind: string;
  pid: number;
  tid: number;
  cpus: number[];
  state: string;
  generation: number;
  restarts: number;
  msgsIn: number;
  msgsOut: number;
  wakes: number;
  denied: number;
  rejected: number;
  exitStatus?: number;
}

export type SlotState = "new" | "starting" | "running" | "dead" | "restarting" | "exited";

export interface Slot {
  ep: number;
  entry: BootEntry;
  ipc: Set<number>;
  kcalls: Set<number>;
  worker: Worker | null;
  gen: number;
  pid: number;
  state: SlotState;
  restarts: number;
  inbox: MsgRing | null;
  outbox: MsgRing | null;
  doorbellSab: SharedArrayBuffer;
  waker: Waker;
  notifySab: SharedArrayBuffer;
  notifyBits: Int32Array;
  pcbSab: SharedArrayBuffer;
  pcb: Int32Array;
  /** Survives restarts: the server's own snapshot of what it must not lose. */
  storeSab: SharedArrayBuffer;
  grantPort: MessagePort | null;
  backlog: Uint8Array[];
  pendingCall: { target: number; id: number } | null;
  msgsIn: number;
  msgsOut: number;
  denied: number;
  rejected: number;
  tid: number;
  cpus: number[];
  lastError?: string;
  exitStatus?: number;
  onExit: Array<() => void>;
  onReady: Array<(err?: Error) => void>;
  /** Channels and pools this process holds: re-granted to each new generation (docs/design.md §6). */
  resources: Resource[];
  /** Grants made before the process was started: posted when its grant port exists. */
  earlyGrants: Array<{ id: number; sab: SharedArrayBuffer; meta: Record<string, unknown> }>;
}

/** What survives a process's restart: the shared memory it was given. */
export type Resource =
  | { kind: "chan"; chan: number; peer: number; opts: ChannelOpts; tx: SharedArrayBuffer; rx: SharedArrayBuffer; peerDoorbell: SharedArrayBuffer }
  | { kind: "pool"; pool: number; owner: number; sab: SharedArrayBuffer }
  /** Memory this process made and granted to `to` (socket arenas). */
  | { kind: "sab"; to: number; sab: SharedArrayBuffer; meta: Record<string, unknown> };

/** A slot for `entry` at endpoint `ep`, not started: its doorbell, notify bits, PCB and store. */
export function newSlot(ep: number, entry: BootEntry): Slot {
  const doorbellSab = createDoorbell();
  const notifySab = new SharedArrayBuffer(MAX_ENDPOINTS / 8);
  const pcbSab = new SharedArrayBuffer(PCB_BYTES);
  return {
    ep, entry, ipc: new Set(), kcalls: kcallsOf(entry), worker: null, gen: -1, pid: 0, state: "new", restarts: 0,
    inbox: null, outbox: null, doorbellSab, waker: new Waker(doorbellSab), notifySab,
    notifyBits: new Int32Array(notifySab), pcbSab, pcb: new Int32Array(pcbSab),
    storeSab: new SharedArrayBuffer(entry.kind === "server" ? STORE_BYTES : 64), grantPort: null, backlog: [],
    pendingCall: null, msgsIn: 0, msgsOut: 0, denied: 0, rejected: 0, tid: 0, cpus: [], onExit: [], onReady: [], resources: [], earlyGrants: [],
  };
}

/** The state `ps` shows: a running process's own state from its PCB, else the slot's. */
export function shownState(s: Slot): string {
  return s.state === "running" ? (PSTATE_NAMES[Atomics.load(s.pcb, PCB.STATE)] ?? "running") : s.state;
}
