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
  GRANT_APP: 10, // not a call: the privilege to grant memory to any app (Proc.grantTo; socket arenas)
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
/** A server's own control commands (`npm run ctl -- pf show`): { cmd, text? } -> string. */
export const SRV_CTL = 91;

/** System calls (dst = the syscall server). */
export const SYS = {
  GETPID: 100,
  GETPPID: 101,
  UPTIME: 102,
  UNAME: 103,
  NANOSLEEP: 104,
  // sockets (forwarded by the syscall server to tcp or udp; the fast path needs none of them)
  SOCKET: 110, // { domain, type } -> fd
  BIND: 111, // { fd, addr, port }
  LISTEN: 112, // { fd, backlog }
  ACCEPT: 113, // { fd, nonblock } -> { fd, addr, port }
  CONNECT: 114, // { fd, addr, port, nonblock }
  SEND: 115, // { fd, data, nonblock } -> bytes sent
  RECV: 116, // { fd, max, nonblock, timeoutMs? } -> Uint8Array (empty at EOF)
  SENDTO: 117, // { fd, data, addr, port } -> bytes sent
  RECVFROM: 118, // { fd, max, nonblock, timeoutMs? } -> { data, addr, port }
  SHUTDOWN: 119, // { fd, how }
  CLOSE: 120, // { fd }
  GETSOCKNAME: 121, // { fd } -> { addr, port }
  GETPEERNAME: 122, // { fd } -> { addr, port }
  // the baseline of fast sockets (`--sockets syscall`): the stack does not walk the app's
  // arena; libc makes this call after every write and before every read check
  SOCK_KICK: 123, // { server: "tcp" | "udp", slot } -> readiness bits of the slot
  // setsockopt's ring sizes (SO_SNDBUF, SO_RCVBUF, NEWTS_TX_SLOTS, NEWTS_RX_SLOTS) for a fast socket:
  // the stack gives the idle socket a buffer of the new sizes (EBUSY with data in flight)
  SOCK_RESIZE: 124, // { server, slot, txData?, rxData?, txSlots?, rxSlots? } -> { segments }
  // setsockopt's protocol options of a fast socket: TCP_NODELAY, SO_KEEPALIVE
  SOCK_OPT: 125, // { server, slot, nodelay?, keepalive? } -> 0
  PING: 130, // { dst, seq, size, timeoutMs } -> { rttMs, ttl, bytes } : an ICMP echo through ip
} as const;

/** Socket domain and types (Linux numbers). */
export const AF_INET = 2;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;

/**
 * Between the syscall server and the stack servers: a forwarded call and its
 * completion, matched by `req` (plain sends, so a server can hold many blocked
 * calls and answer them in any order).
 */
export const NET = {
  CALL: 200, // { req, app, op: SYS.*, sock?, args } (syscall -> tcp/udp/ip)
  DONE: 201, // { req, errno?, error?, value? } (tcp/udp/ip -> syscall)
  APP_EXITED: 202, // { app }: close everything this app had
} as const;

/** Calls to the ip server from the transports. */
export const IPCALL = {
  ROUTE: 210, // { dst } -> { src, mtu, iface } or EHOSTUNREACH
  ADDRS: 211, // {} -> [{ addr, prefix, mtu, mac }]
} as const;

/** Processes' kinds: servers are supervised by rs, apps are not. */
export type ProcKind = "server" | "app";
