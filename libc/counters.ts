// libc's socket-call counters, shared by every backend (docs/design.md §5: "every libc call is
// counted: total, resolved in user space, would-block, and system calls by kind"): the
// writing side. Reading them back (and the paper's Table 5.2 computed from them) is
// lib/sys/counters.ts, beside the PCB layout, so that the kernel needs nothing of libc.
//
// Per call kind (CALLS, indexed by K) six counts, each a Float64Array cell bumped with a
// plain store: calls, userspace (resolved with no system call), syscalls (system calls the
// call made), wouldBlock (EAGAIN or EINPROGRESS), blocked (the call had to sleep: for
// select/poll/epoll_wait, a select that blocked) and errors (any other errno).
//
// Inside a newts process the counters live in the process's PCB (lib/sys/pcb.ts: the
// offsets are there; lib/sys/counters.ts: the call kinds), so the kernel reads them for `ctl stats` without asking the app, which
// may be busy in synchronous code. The first backend a process makes takes the PCB's area
// (processCounters); any later one in the same process counts in a private buffer of the
// same layout, and so does every backend outside newts (tests, bench workers).
//
// How a backend counts one call, on its hot path (k = K.recv, ...):
//   c.call(k)   once on entry, before anything can throw;
//   c.user(k)   the call was answered (or refused) with no system call;
//   c.sys(k)    each system call it makes (a retried one counts again);
//   c.again(k)  it throws EAGAIN/EINPROGRESS;  c.error(k) it throws any other errno;
//   c.block(k)  it is about to sleep (a select with nothing ready; a blocking read on an
//               empty socket): count once per call, not per wake-up.
import { self } from "../lib/sys/current.ts";
import { PCB, PCB_BYTES, SOCK_DATA, SOCK_FIELDS, SOCK_MAGIC_V1, SOCK_MAX_KINDS, SockField } from "../lib/sys/pcb.ts";
import { backendCode, CALLS, counterHeader, counterViews, snapshotOf, type SocketStats } from "../lib/sys/counters.ts";

// The layout's side (call kinds, backend codes, the PCB reader and Table 5.2) lives in
// lib/sys/counters.ts, where the kernel reads it; re-exported for libc's users.
export {
  ACCEPTS, backendCode, CALLS, K, procSockStats, READS, readPcbCounters, SELECTS, SOCK_BACKENDS, table52,
  type Call, type ProcSockStats, type Table52,
} from "../lib/sys/counters.ts";

/** Marks the area taken while its header is being written (readers wait for SOCK_MAGIC_V1). */
const CLAIMING = -1;

/** One backend's counters: in a PCB (shared with the kernel) or in a private buffer of the same layout. */
export class SockCounters {
  readonly backend: string;
  /** True when the counters are in a PCB the kernel reads. */
  readonly inPcb: boolean;
  private readonly nCalls: Float64Array;
  private readonly nUser: Float64Array;
  private readonly nSys: Float64Array;
  private readonly nAgain: Float64Array;
  private readonly nBlocked: Float64Array;
  private readonly nErrors: Float64Array;
  private readonly all: Float64Array;

  /**
   * Counts into `pcb` (a PCB, lib/sys/pcb.ts: its header is written and marked in use)
   * or, without one, into a private buffer. Nothing checks that the PCB's area is free:
   * processCounters does that.
   */
  constructor(pcb?: SharedArrayBuffer | null, backend = "") {
    this.backend = backend;
    this.inPcb = !!pcb;
    let buf: ArrayBufferLike;
    if (pcb) {
      if (pcb.byteLength < PCB_BYTES) throw new RangeError(`SockCounters: a PCB of ${pcb.byteLength} bytes has no counters area`);
      buf = pcb;
    } else buf = new ArrayBuffer(PCB_BYTES);
    const v = counterViews(buf);
    this.nCalls = v[SockField.CALLS]!;
    this.nUser = v[SockField.USERSPACE]!;
    this.nSys = v[SockField.SYSCALLS]!;
    this.nAgain = v[SockField.WOULDBLOCK]!;
    this.nBlocked = v[SockField.BLOCKED]!;
    this.nErrors = v[SockField.ERRORS]!;
    this.all = new Float64Array(buf, SOCK_DATA, SOCK_FIELDS * SOCK_MAX_KINDS);
    const hdr = counterHeader(buf);
    hdr[PCB.SOCK_BACKEND] = backendCode(backend);
    hdr[PCB.SOCK_KINDS] = CALLS.length;
    if (pcb) Atomics.store(hdr, PCB.SOCK_MAGIC, SOCK_MAGIC_V1);
    else hdr[PCB.SOCK_MAGIC] = SOCK_MAGIC_V1;
  }

  // ---- the hot path: one plain increment each

  call(k: number): void {
    this.nCalls[k]!++;
  }

  user(k: number): void {
    this.nUser[k]!++;
  }

  sys(k: number): void {
    this.nSys[k]!++;
  }

  again(k: number): void {
    this.nAgain[k]!++;
  }

  block(k: number): void {
    this.nBlocked[k]!++;
  }

  error(k: number): void {
    this.nErrors[k]!++;
  }

  // ---- reading

  /** Every counter by kind, with the totals. */
  snapshot(): SocketStats {
    return snapshotOf([this.nCalls, this.nUser, this.nSys, this.nAgain, this.nBlocked, this.nErrors], CALLS.length);
  }

  /** All counters to 0 (the PCB's header stays: the area is still in use). */
  reset(): void {
    this.all.fill(0);
  }
}

/** What processCounters needs of a Proc (lib/sys/proc.ts). */
export interface HasPcb {
  init: { pcb: SharedArrayBuffer };
}

/**
 * The counters for a backend made by this process: the PCB's counters area if this is
 * the process's first backend (so `ctl stats` shows it), else a private buffer. `proc`:
 * the process (default: the current one, self(); outside newts there is none, and the
 * counters are private); null: private.
 */
export function processCounters(backend: string, proc?: HasPcb | null): SockCounters {
  let pcb: SharedArrayBuffer | null = null;
  if (proc === undefined) {
    try {
      pcb = self().init.pcb;
    } catch {
      pcb = null; // not inside a newts process
    }
  } else pcb = proc?.init.pcb ?? null;
  if (pcb && pcb.byteLength >= PCB_BYTES) {
    const hdr = counterHeader(pcb);
    if (Atomics.compareExchange(hdr, PCB.SOCK_MAGIC, 0, CLAIMING) === 0) return new SockCounters(pcb, backend);
  }
  return new SockCounters(null, backend);
}
