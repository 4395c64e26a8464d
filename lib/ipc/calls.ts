// Message types of newts: kernel calls, kernel-to-process control messages, the
// calls every server answers, and the system calls of the syscall server.

/** The kernel's endpoint. Processes get endpoints 1.. in boot-table order. */
export const KERNEL = 0;
/** Highest endpoint number (the kernel's tables are sized for this many processes). */
export const MAX_ENDPOINTS = 256;

/** Calls to the kernel (dst = KERNEL). Each is allowed per process by the boot table's `kcalls`. */
export const K = {
  EXIT: 1, // { status, result? }: the process is done (apps)
  CHAN_OPEN: 2, // { peer, kind: "stream"|"slots", bytes?, slots?, slotSize? } -> { chan }
  RESTART: 3, // { ep, reason } (rs): terminate if alive, start a new generation
  KILL: 4, // { ep } : terminate the worker (its supervisor decides what happens next)
  PROCS: 5, // {} -> process table rows
  SPAWN: 6, // { name, args } -> { ep }
  LOG: 7, // { line }: a line for the console
  WHOIS: 8, // { name } -> { ep }
  POOL_CREATE: 9, // { count, bufSize, share: [ep] } -> PoolInfo: a packet pool owned by the caller, lent to `share`
} as const;

/** Messages the kernel sends to processes (src = KERNEL). */
export const KC = {
  HANG: 50, // stop answering (fault injection: the heartbeat must catch it)
  SHUTDOWN: 51, // exit cleanly
  CHANNEL: 52, // { chan, peer, peerName, grant }: a channel was opened towards you
  EXITED: 53, // to rs: { ep, name, generation, code, error? }
  NEW_SERVER: 54, // to rs: { ep, name }: watch this one too
  POOL: 55, // PoolInfo: a pool was lent to you
  PEER_RESTARTED: 56, // { ep, name, generation }: a process you share channels or pools with restarted
} as const;

/** Calls every server answers through lib/sys/server.ts. */
export const PING = 90;

/** System calls (dst = the syscall server). */
export const SYS = {
  GETPID: 100,
  GETPPID: 101,
  UPTIME: 102,
  UNAME: 103,
  NANOSLEEP: 104,
} as const;

/** Processes' kinds: servers are supervised by rs, apps are not. */
export type ProcKind = "server" | "app";
