// The kernel's process information table, shared read-only (by convention) with
// the servers that need it (syscall, rs): per endpoint, 4 Int32 cells.
import { MAX_ENDPOINTS } from "../ipc/calls.ts";

export const KINFO_CELLS = 4;
export const KI = { PID: 0, PPID: 1, ALIVE: 2, GEN: 3 } as const;

export function createKinfo(): SharedArrayBuffer {
  return new SharedArrayBuffer(MAX_ENDPOINTS * KINFO_CELLS * 4);
}

export function kinfoGet(k: Int32Array, ep: number, field: number): number {
  return Atomics.load(k, ep * KINFO_CELLS + field);
}

export function kinfoSet(k: Int32Array, ep: number, field: number, v: number): void {
  Atomics.store(k, ep * KINFO_CELLS + field, v);
}
