// The running process's runtime, for libc (one per worker).
import type { Proc } from "./proc.ts";

let current: Proc | null = null;

export function setCurrent(p: Proc): void {
  current = p;
}

/** The Proc of this worker; throws outside a newts process. */
export function self(): Proc {
  if (!current) throw new Error("not inside a newts process (libc used outside a worker started by the kernel)");
  return current;
}
