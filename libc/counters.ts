// libc's socket-call counters, shared by every backend (design §5: "every libc call is
// counted: total, resolved in user space, would-block, and system calls by kind"), and the
// paper's Table 5.2 computed from them.
//
// Per call kind (CALLS, indexed by K) six counts, each a Float64Array cell bumped with a
// plain store: calls, userspace (resolved with no system call), syscalls (system calls the
// call made), wouldBlock (EAGAIN or EINPROGRESS), blocked (the call had to sleep: for
// select/poll/epoll_wait, a select that blocked) and errors (any other errno).
//
// Inside a newts process the counters live in the process's PCB (lib/sys/pcb.ts: the
// layout is there), so the kernel reads them for `ctl stats` without asking the app, which
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
import type { SocketCallStats, SocketStats } from "./api.ts";
import { self } from "../lib/sys/current.ts";
import {
  PCB, PCB_BASE_BYTES, PCB_BYTES, SOCK_DATA, SOCK_FIELDS, SOCK_MAGIC_V1, SOCK_MAX_KINDS, SockField,
} from "../lib/sys/pcb.ts";

/** Every call of the SocketApi, in counter order (the PCB layout depends on it: append only). */
export const CALLS = [
  "socket", "bind", "listen", "accept", "accept4", "connect", "read", "write", "readv", "writev",
  "recv", "send", "recvfrom", "sendto", "shutdown", "close", "fcntl", "setsockopt", "getsockopt",
  "getsockname", "getpeername", "select", "poll", "epoll_create1", "epoll_ctl", "epoll_wait",
] as const;
export type Call = (typeof CALLS)[number];
/** Call name -> counter index. */
export const K = Object.fromEntries(CALLS.map((n, i) => [n, i])) as Record<Call, number>;

if (CALLS.length > SOCK_MAX_KINDS) throw new Error("libc/counters.ts: more calls than the PCB has room for");

/** Backend names by the code kept in the PCB (code 0: unknown). */
export const SOCK_BACKENDS = ["?", "linux", "newts", "newts-syscall"] as const;

export function backendCode(name: string): number {
  const i = (SOCK_BACKENDS as readonly string[]).indexOf(name);
  return i > 0 ? i : 0;
}

/** The kinds Table 5.2 groups: "select" is any of select/poll/epoll_wait, "read" any of read/recv/recvfrom/readv. */
export const SELECTS: readonly number[] = [K.select, K.poll, K.epoll_wait];
export const ACCEPTS: readonly number[] = [K.accept, K.accept4];
export const READS: readonly number[] = [K.read, K.recv, K.recvfrom, K.readv];

/** Marks the area taken while its header is being written (readers wait for SOCK_MAGIC_V1). */
const CLAIMING = -1;

/** The six counter arrays over an area with the PCB's layout. */
function views(buf: ArrayBufferLike): Float64Array[] {
  const out: Float64Array[] = [];
  for (let f = 0; f < SOCK_FIELDS; f++) out.push(new Float64Array(buf, SOCK_DATA + f * SOCK_MAX_KINDS * 8, SOCK_MAX_KINDS));
  return out;
}

function snapshotOf(v: Float64Array[], kinds: number): SocketStats {
  const s: SocketStats = { calls: {}, total: 0, syscalls: 0, userspace: 0, wouldBlock: 0, errors: 0, blocked: 0, kinds: {} };
  for (let k = 0; k < kinds; k++) {
    const c: SocketCallStats = {
      calls: v[SockField.CALLS]![k]!,
      userspace: v[SockField.USERSPACE]![k]!,
      syscalls: v[SockField.SYSCALLS]![k]!,
      wouldBlock: v[SockField.WOULDBLOCK]![k]!,
      blocked: v[SockField.BLOCKED]![k]!,
      errors: v[SockField.ERRORS]![k]!,
    };
    if (c.calls + c.userspace + c.syscalls + c.wouldBlock + c.blocked + c.errors === 0) continue;
    const name = k < CALLS.length ? CALLS[k]! : `call${k}`;
    if (c.calls > 0) s.calls[name] = c.calls;
    s.kinds![name] = c;
    s.total += c.calls;
    s.userspace += c.userspace;
    s.syscalls += c.syscalls;
    s.wouldBlock += c.wouldBlock;
    s.blocked! += c.blocked;
    s.errors += c.errors;
  }
  return s;
}

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
    const v = views(buf);
    this.nCalls = v[SockField.CALLS]!;
    this.nUser = v[SockField.USERSPACE]!;
    this.nSys = v[SockField.SYSCALLS]!;
    this.nAgain = v[SockField.WOULDBLOCK]!;
    this.nBlocked = v[SockField.BLOCKED]!;
    this.nErrors = v[SockField.ERRORS]!;
    this.all = new Float64Array(buf, SOCK_DATA, SOCK_FIELDS * SOCK_MAX_KINDS);
    const hdr = new Int32Array(buf, 0, PCB_BASE_BYTES / 4 + 4);
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
    const hdr = new Int32Array(pcb, 0, PCB_BASE_BYTES / 4 + 4);
    if (Atomics.compareExchange(hdr, PCB.SOCK_MAGIC, 0, CLAIMING) === 0) return new SockCounters(pcb, backend);
  }
  return new SockCounters(null, backend);
}

/** The counters in a PCB, or null where no backend has claimed its area. */
export function readPcbCounters(pcb: SharedArrayBuffer): { backend: string; stats: SocketStats } | null {
  if (pcb.byteLength < PCB_BYTES) return null;
  const hdr = new Int32Array(pcb, 0, PCB_BASE_BYTES / 4 + 4);
  if (Atomics.load(hdr, PCB.SOCK_MAGIC) !== SOCK_MAGIC_V1) return null;
  const backend = SOCK_BACKENDS[Atomics.load(hdr, PCB.SOCK_BACKEND)] ?? "?";
  const kinds = Math.min(SOCK_MAX_KINDS, Math.max(0, Atomics.load(hdr, PCB.SOCK_KINDS)));
  return { backend, stats: snapshotOf(views(pcb), kinds) };
}

/**
 * The paper's Table 5.2 (§5.8.1) for one process, in percent; null where the denominator
 * is 0 (no such calls). userspacePct: calls handled in user space, of all calls;
 * selectBlockPct: selects (select/poll/epoll_wait) that blocked, of all selects;
 * selectPerCallPct: selects of all calls; acceptAgainPct: accepts (accept/accept4) that
 * would block (EAGAIN), of all accepts; readAgainPct: reads (read/recv/recvfrom/readv)
 * that would block, of all reads.
 */
export interface Table52 {
  userspacePct: number | null;
  selectBlockPct: number | null;
  selectPerCallPct: number | null;
  acceptAgainPct: number | null;
  readAgainPct: number | null;
}

const pct = (n: number, d: number): number | null => (d > 0 ? (100 * n) / d : null);

function sum(s: SocketStats, ks: readonly number[], field: keyof SocketCallStats): number {
  let n = 0;
  for (const k of ks) n += s.kinds?.[CALLS[k]!]?.[field] ?? 0;
  return n;
}

export function table52(s: SocketStats): Table52 {
  const selects = sum(s, SELECTS, "calls");
  return {
    userspacePct: pct(s.userspace, s.total),
    selectBlockPct: pct(sum(s, SELECTS, "blocked"), selects),
    selectPerCallPct: pct(selects, s.total),
    acceptAgainPct: pct(sum(s, ACCEPTS, "wouldBlock"), sum(s, ACCEPTS, "calls")),
    readAgainPct: pct(sum(s, READS, "wouldBlock"), sum(s, READS, "calls")),
  };
}

/** One process's row of `ctl stats` (kernel/kernel.ts reads it out of the PCB). */
export interface ProcSockStats {
  name: string;
  ep: number;
  /** The process's state in `ps` (an exited app keeps its last counters). */
  state: string;
  backend: string;
  /** Calls by name (only those made), and their sum. */
  calls: Record<string, number>;
  total: number;
  userspace: number;
  syscalls: number;
  wouldBlock: number;
  blocked: number;
  errors: number;
  /** Every counter by call name. */
  kinds: Record<string, SocketCallStats>;
  table52: Table52;
}

/** The `ctl stats` row of a process from its PCB; null where it has not used the socket API. */
export function procSockStats(name: string, ep: number, state: string, pcb: SharedArrayBuffer): ProcSockStats | null {
  const r = readPcbCounters(pcb);
  if (!r) return null;
  const s = r.stats;
  return {
    name, ep, state, backend: r.backend, calls: s.calls, total: s.total, userspace: s.userspace, syscalls: s.syscalls,
    wouldBlock: s.wouldBlock, blocked: s.blocked ?? 0, errors: s.errors, kinds: s.kinds ?? {}, table52: table52(s),
  };
}
