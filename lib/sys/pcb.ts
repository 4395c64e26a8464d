// The process control block: one small SAB per endpoint that the process writes
// and the kernel and rs read (heartbeat, state, thread id, pinned CPU set, and
// libc's socket-call counters). It is kept across restarts of the same endpoint;
// the kernel clears all of it on respawn. An app's endpoint is never reused, so the
// kernel can still read an exited app's last counters.
//
//   Int32 [0] HEARTBEAT  bumped by the process's loops (rs watches it move)
//         [1] STATE      PState below
//         [2] TID        Linux thread id (gettid)
//         [3] CPUS_LO    CPU affinity read back with sched_getaffinity, bits 0..31
//         [4] CPUS_HI    bits 32..63
//         [5] WAKES      futex wake-ups that ended a wait (counted by the process)
//         [6] LOOPS      main-loop iterations (diagnostics)
//         [7] GEN        generation (restart count of this endpoint), set by the kernel
//         [8..15]        reserved (the first 64 bytes are the original PCB)
//
// libc's socket-call counters, from byte 64 (written by libc/counters.ts, read by
// lib/sys/counters.ts). The process writes them with plain stores (no atomics on the
// hot path); readers take each Float64 as it is (an aligned 8-byte store does not tear on x86-64 or arm64, and a count
// read while the process runs may be one behind).
//
//   Int32 [16] SOCK_MAGIC    SOCK_MAGIC_V1 once libc's socket API claimed the area
//                            (Atomics.compareExchange from 0: one owner per process); 0: unused
//         [17] SOCK_BACKEND  which backend counts here (lib/sys/counters.ts: SOCK_BACKENDS)
//         [18] SOCK_KINDS    call kinds in use (<= SOCK_MAX_KINDS; lib/sys/counters.ts: CALLS)
//         [19]               reserved
//   Float64 from byte SOCK_DATA: SOCK_FIELDS arrays of SOCK_MAX_KINDS counts, one array
//         per field (SockField), indexed by call kind:
//         byte SOCK_DATA + (field * SOCK_MAX_KINDS + kind) * 8

/** Bytes of the original PCB (the Int32 cells above). */
export const PCB_BASE_BYTES = 64;
export const PCB = {
  HEARTBEAT: 0, STATE: 1, TID: 2, CPUS_LO: 3, CPUS_HI: 4, WAKES: 5, LOOPS: 6, GEN: 7,
  SOCK_MAGIC: PCB_BASE_BYTES / 4, SOCK_BACKEND: PCB_BASE_BYTES / 4 + 1, SOCK_KINDS: PCB_BASE_BYTES / 4 + 2,
} as const;

/** "SKC" and layout version 1. */
export const SOCK_MAGIC_V1 = 0x534b4301;
/** Room for this many call kinds per field (26 are used today). */
export const SOCK_MAX_KINDS = 32;
/** The counter arrays, in layout order. */
export const SockField = { CALLS: 0, USERSPACE: 1, SYSCALLS: 2, WOULDBLOCK: 3, BLOCKED: 4, ERRORS: 5 } as const;
export const SOCK_FIELDS = Object.keys(SockField).length;
/** Byte offset of the first Float64 counter (8-aligned, after the counter header's four Int32 cells). */
export const SOCK_DATA = PCB_BASE_BYTES + 16;

export const PCB_BYTES = SOCK_DATA + SOCK_FIELDS * SOCK_MAX_KINDS * 8;

export const PState = {
  STARTING: 0,
  RUNNING: 1, // polling or handling
  BLOCKED: 2, // waiting in a call or for messages
  HUNG: 3, // told to hang (fault injection)
  EXITED: 4,
} as const;

export const PSTATE_NAMES = ["starting", "running", "blocked", "hung", "exited"];

export function cpuListFromMask(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 32; i++) if ((lo >>> i) & 1) out.push(i);
  for (let i = 0; i < 32; i++) if ((hi >>> i) & 1) out.push(32 + i);
  return out;
}
