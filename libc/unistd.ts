// libc's process calls: each is a system call (kernel IPC to the syscall server).
import { SYS } from "../lib/ipc/calls.ts";
import { EINTR, ErrnoError, ESRCH } from "../lib/sys/errno.ts";
import { nap } from "../lib/sys/proc.ts";
import { self } from "../lib/sys/current.ts";

/**
 * A system call: trap to the kernel, which routes it to the syscall server.
 * Idempotent calls are retried while the syscall server is being restarted
 * (EINTR or ESRCH), for up to `retryMs`; others fail with EINTR.
 */
export function syscall(type: number, payload?: unknown, idempotent = true, retryMs = 3000): unknown {
  const p = self();
  const ep = p.endpoint("syscall");
  const deadline = performance.now() + retryMs;
  for (;;) {
    try {
      return p.sendrec(ep, type, payload);
    } catch (e) {
      const again = e instanceof ErrnoError && (e.errno === EINTR || e.errno === ESRCH);
      if (!again || !idempotent || performance.now() > deadline) throw e;
      nap(5);
    }
  }
}

export function getpid(): number {
  return syscall(SYS.GETPID) as number;
}

export function getppid(): number {
  return syscall(SYS.GETPPID) as number;
}

/** Seconds since boot. */
export function uptime(): number {
  return syscall(SYS.UPTIME) as number;
}

export interface Utsname {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
}

export function uname(): Utsname {
  return syscall(SYS.UNAME) as Utsname;
}

/** Blocks for ms milliseconds in the syscall server's timer queue (no CPU used meanwhile). */
export function sleepMs(ms: number): void {
  syscall(SYS.NANOSLEEP, { ms }, false);
}

export { ErrnoError, EINTR };

/** The process an app runs as (its main receives it); apps use it only through libc. */
export type { Proc } from "../lib/sys/proc.ts";

/**
 * Tells the reincarnation server this process is alive. A server's loop does it
 * on its own; an app that computes for long between socket calls calls it.
 */
export function heartbeat(): void {
  self().beat();
}
