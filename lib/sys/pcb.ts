// The process control block: one small SAB per endpoint that the process writes
// and the kernel and rs read (heartbeat, state, thread id, pinned CPU set).
// It is kept across restarts of the same endpoint; the kernel clears it on respawn.
//
//   Int32 [0] HEARTBEAT  bumped by the process's loops (rs watches it move)
//         [1] STATE      PState below
//         [2] TID        Linux thread id (gettid)
//         [3] CPUS_LO    CPU affinity read back with sched_getaffinity, bits 0..31
//         [4] CPUS_HI    bits 32..63
//         [5] WAKES      futex wake-ups that ended a wait (counted by the process)
//         [6] LOOPS      main-loop iterations (diagnostics)
//         [7] GEN        generation (restart count of this endpoint), set by the kernel

export const PCB_BYTES = 64;
export const PCB = { HEARTBEAT: 0, STATE: 1, TID: 2, CPUS_LO: 3, CPUS_HI: 4, WAKES: 5, LOOPS: 6, GEN: 7 } as const;

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
