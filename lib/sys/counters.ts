// The socket-call counters' side of the PCB (lib/sys/pcb.ts has the offsets): which call
// kind each counter index is, which backend each code is, and the reader the kernel uses
// for `ctl stats` (the counts of one process, its paper's Table 5.2). libc/counters.ts is
// the writing side: the process bumps these counters on its hot path.
//
// Per call kind (CALLS, indexed by K) six counts (SockField): calls, userspace (resolved
// with no system call), syscalls (system calls the call made), wouldBlock (EAGAIN or
// EINPROGRESS), blocked (the call had to sleep: for select/poll/epoll_wait, a select that
// blocked) and errors (any other errno).
import {
  PCB, PCB_BASE_BYTES, PCB_BYTES, SOCK_DATA, SOCK_FIELDS, SOCK_MAGIC_V1, SOCK_MAX_KINDS, SockField,
} from "./pcb.ts";

/** Every call of libc's socket API, in counter order (the PCB layout depends on it: append only). */
export const CALLS = [
  "socket", "bind", "listen", "accept", "accept4", "connect", "read", "write", "readv", "writev",
  "recv", "send", "recvfrom", "sendto", "shutdown", "close", "fcntl", "setsockopt", "getsockopt",
  "getsockname", "getpeername", "select", "poll", "epoll_create1", "epoll_ctl", "epoll_wait",
] as const;
export type Call = (typeof CALLS)[number];
/** Call name -> counter index. */
export const K = Object.fromEntries(CALLS.map((n, i) => [n, i])) as Record<Call, number>;

if (CALLS.length > SOCK_MAX_KINDS) throw new Error("lib/sys/counters.ts: more calls than the PCB has room for");

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

/** The counters of one kind of call (the fields of SocketStats, for one call name). */
export interface SocketCallStats {
  calls: number;
  userspace: number;
  syscalls: number;
  wouldBlock: number;
  blocked: number;
  errors: number;
}

/**
 * Call counters, to compare backends (the columns of the paper's Table 5.2).
 * calls: by call name ("recv", "epoll_wait", ...); total: their sum; syscalls: system calls
 * made (Linux: every call is one, a few retried ones more; newts: only the slow paths);
 * userspace: calls resolved with no system call; wouldBlock: calls that failed with EAGAIN
 * (or EINPROGRESS); errors: calls that threw any other errno; blocked: calls that had to
 * sleep (for select/poll/epoll_wait: the selects that blocked); kinds: every counter by call
 * name, for the names called at least once.
 */
export interface SocketStats {
  calls: Record<string, number>;
  total: number;
  syscalls: number;
  userspace: number;
  wouldBlock: number;
  errors: number;
  blocked?: number;
  kinds?: Record<string, SocketCallStats>;
}

/** The six counter arrays (SockField order) over an area with the PCB's layout. */
export function counterViews(buf: ArrayBufferLike): Float64Array[] {
  const out: Float64Array[] = [];
  for (let f = 0; f < SOCK_FIELDS; f++) out.push(new Float64Array(buf, SOCK_DATA + f * SOCK_MAX_KINDS * 8, SOCK_MAX_KINDS));
  return out;
}

/** The counter header's Int32 cells (PCB.SOCK_MAGIC, SOCK_BACKEND, SOCK_KINDS) over an area with the PCB's layout. */
export function counterHeader(buf: ArrayBufferLike): Int32Array {
  return new Int32Array(buf, 0, PCB_BASE_BYTES / 4 + 4);
}

/** The counters of the first `kinds` call kinds in `v` (counterViews), with their totals. */
export function snapshotOf(v: Float64Array[], kinds: number): SocketStats {
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

/** The counters in a PCB, or null where no backend has claimed its area. */
export function readPcbCounters(pcb: SharedArrayBuffer): { backend: string; stats: SocketStats } | null {
  if (pcb.byteLength < PCB_BYTES) return null;
  const hdr = counterHeader(pcb);
  if (Atomics.load(hdr, PCB.SOCK_MAGIC) !== SOCK_MAGIC_V1) return null;
  const backend = SOCK_BACKENDS[Atomics.load(hdr, PCB.SOCK_BACKEND)] ?? "?";
  const kinds = Math.min(SOCK_MAX_KINDS, Math.max(0, Atomics.load(hdr, PCB.SOCK_KINDS)));
  return { backend, stats: snapshotOf(counterViews(pcb), kinds) };
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

/** One process's row of `ctl stats` (the kernel reads it out of the PCB). */
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
