// The syscall server: the system-call entry of newts. Apps trap to the kernel,
// which routes their calls here. Process calls are answered here; socket calls
// are forwarded to tcp or udp (and ping to ip) and completed when they answer,
// so one blocked recv never holds up anybody else's calls.
import { AF_INET, NET, SOCK_DGRAM, SOCK_STREAM, SYS } from "../lib/ipc/calls.ts";
import {
  EAFNOSUPPORT, EBADF, EINTR, EINVAL, EMFILE, EPROTONOSUPPORT, ErrnoError, ESRCH,
} from "../lib/sys/errno.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { KI, kinfoGet } from "../lib/sys/kinfo.ts";
import { hostname } from "node:os";

interface Sleeper {
  due: number;
  msg: Message;
}

interface FdEntry {
  server: number;
  /** The layer that owns the socket (tcp or udp): one server may run several (--stack single). */
  layer: string;
  sock: number;
}

interface Forwarded {
  msg: Message;
  op: number;
  app: number;
  server: number;
  layer: string;
  /** The server's generation when the call was forwarded: a restart loses the call. */
  gen: number;
  fd?: number;
}

interface State {
  kinfo: Int32Array;
  bootEpochMs: number;
  release: string;
  /** Calls waiting for a timer (nanosleep), sorted by due time. */
  sleepers: Sleeper[];
  /** Per app: fd -> socket at a stack server. */
  fds: Map<number, Map<number, FdEntry>>;
  forwarded: Map<number, Forwarded>;
  /** Per app: stack servers that made it a socket arena (told when the app exits, even with no fd left). */
  arenaApps: Map<number, Set<number>>;
  nextReq: number;
  lastSweep: number;
}

const MAX_FDS = 1024;

/** A first start: the process information table and the boot facts (from the kernel), no fds, nothing held. */
function fresh(proc: Proc): State {
  const x = proc.init.extra as { kinfo: SharedArrayBuffer; bootEpochMs: number; release: string };
  return {
    kinfo: new Int32Array(x.kinfo), bootEpochMs: x.bootEpochMs, release: x.release, sleepers: [],
    fds: new Map(), forwarded: new Map(), arenaApps: new Map(), nextReq: 1, lastSweep: 0,
  };
}

function fdTable(s: State, app: number): Map<number, FdEntry> {
  let t = s.fds.get(app);
  if (!t) s.fds.set(app, (t = new Map()));
  return t;
}

function newFd(s: State, app: number, e: FdEntry): number {
  const t = fdTable(s, app);
  for (let fd = 3; fd < MAX_FDS; fd++) {
    if (!t.has(fd)) {
      t.set(fd, e);
      return fd;
    }
  }
  throw new ErrnoError(EMFILE, "too many open sockets");
}

function forward(s: State, proc: Proc, m: Message, layer: string, sock: number | undefined, fd?: number): typeof NO_REPLY {
  const server = proc.endpoint(layer);
  const req = s.nextReq++;
  s.forwarded.set(req, { msg: m, op: m.type, app: m.src, server, layer, gen: kinfoGet(s.kinfo, server, KI.GEN), fd });
  proc.send(server, NET.CALL, { req, app: m.src, op: m.type, sock, layer, args: m.payload ?? {} });
  return NO_REPLY;
}

/** A socket call on an fd: forwarded to the server that owns the socket. */
function onFd(s: State, m: Message, proc: Proc): typeof NO_REPLY {
  const fd = (m.payload as { fd?: unknown } | undefined)?.fd;
  const e = typeof fd === "number" ? s.fds.get(m.src)?.get(fd) : undefined;
  if (!e) throw new ErrnoError(EBADF, `fd ${String(fd)} is not a socket`);
  return forward(s, proc, m, e.layer, e.sock, fd as number);
}

function done(s: State, m: Message, proc: Proc): typeof NO_REPLY {
  const p = m.payload as { req?: number; errno?: number; error?: string; value?: unknown } | undefined;
  const f = p?.req !== undefined ? s.forwarded.get(p.req) : undefined;
  if (!f || f.server !== m.src) return NO_REPLY;
  s.forwarded.delete(p!.req!);
  if (p!.errno) {
    proc.replyError(f.msg, p!.errno, p!.error ?? "");
    return NO_REPLY;
  }
  try {
    if (f.op === SYS.SOCKET) {
      const v = p!.value;
      if (typeof v === "number") proc.reply(f.msg, newFd(s, f.app, { server: f.server, layer: f.layer, sock: v }));
      else {
        // A socket with shared buffers (SOCKET with `arena: true`): the stack says where they are.
        const o = v as { sock: number };
        let servers = s.arenaApps.get(f.app);
        if (!servers) s.arenaApps.set(f.app, (servers = new Set()));
        servers.add(f.server);
        proc.reply(f.msg, { ...o, fd: newFd(s, f.app, { server: f.server, layer: f.layer, sock: o.sock }) });
      }
    } else if (f.op === SYS.ACCEPT) {
      const v = p!.value as { sock: number; addr: number; port: number };
      proc.reply(f.msg, { fd: newFd(s, f.app, { server: f.server, layer: f.layer, sock: v.sock }), addr: v.addr, port: v.port });
    } else {
      if (f.op === SYS.CLOSE && f.fd !== undefined) s.fds.get(f.app)?.delete(f.fd);
      proc.reply(f.msg, p!.value);
    }
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e;
    proc.replyError(f.msg, e.errno, e.message);
  }
  return NO_REPLY;
}

/**
 * A call about an arena socket (SOCK_KICK, SOCK_RESIZE, SOCK_OPT), named by { server,
 * slot }: forwarded only to a server that made this app an arena (the server checks
 * the slot is the app's).
 */
function toArenaServer(s: State, m: Message, proc: Proc): typeof NO_REPLY {
  const name = (m.payload as { server?: unknown } | undefined)?.server;
  const ep = typeof name === "string" ? proc.endpoints[name] : undefined;
  if (ep === undefined || !s.arenaApps.get(m.src)?.has(ep)) throw new ErrnoError(EBADF, "no socket arena at that server");
  return forward(s, proc, m, name as string, undefined);
}

/**
 * After a restart: nothing is reloaded (no store) and nothing re-attached but what the
 * kernel hands every generation (the process information table, the boot facts). Sleepers and
 * forwarded calls of the dead generation got EINTR from the kernel (their callers were
 * blocked on us); fd tables are rebuilt as apps make new sockets.
 */
function restart(proc: Proc): State {
  return fresh(proc);
}

export const server: ServerDef<State> = {
  initFresh: fresh,
  initRestart: restart,
  handlers: {
    [SYS.GETPID]: (s, m) => kinfoGet(s.kinfo, m.src, KI.PID),
    [SYS.GETPPID]: (s, m) => kinfoGet(s.kinfo, m.src, KI.PPID),
    [SYS.UPTIME]: (s) => (Date.now() - s.bootEpochMs) / 1000,
    [SYS.UNAME]: (s) => ({
      sysname: "newts",
      nodename: hostname(),
      release: s.release,
      version: `#1 newts on Bun ${Bun.version}`,
      machine: process.arch === "x64" ? "x86_64" : process.arch,
    }),
    [SYS.NANOSLEEP]: (s, m) => {
      const ms = (m.payload as { ms?: unknown } | undefined)?.ms;
      if (typeof ms !== "number" || !(ms >= 0) || ms > 86_400_000) throw new ErrnoError(EINVAL, "nanosleep: bad duration");
      const due = performance.now() + ms;
      let i = s.sleepers.length;
      while (i > 0 && s.sleepers[i - 1]!.due > due) i--;
      s.sleepers.splice(i, 0, { due, msg: m });
      return NO_REPLY;
    },
    [SYS.SOCKET]: (s, m, proc) => {
      const p = (m.payload ?? {}) as { domain?: unknown; type?: unknown };
      if (p.domain !== AF_INET) throw new ErrnoError(EAFNOSUPPORT, "only AF_INET sockets");
      const type = typeof p.type === "number" ? p.type & 0xf : -1;
      const name = type === SOCK_STREAM ? "tcp" : type === SOCK_DGRAM ? "udp" : null;
      if (!name) throw new ErrnoError(EPROTONOSUPPORT, "only SOCK_STREAM and SOCK_DGRAM");
      if (proc.endpoints[name] === undefined) throw new ErrnoError(ESRCH, `no ${name} server`);
      if ((s.fds.get(m.src)?.size ?? 0) >= MAX_FDS - 3) throw new ErrnoError(EMFILE, "too many open sockets");
      return forward(s, proc, m, name, undefined);
    },
    [SYS.BIND]: onFd,
    [SYS.LISTEN]: onFd,
    [SYS.ACCEPT]: onFd,
    [SYS.CONNECT]: onFd,
    [SYS.SEND]: onFd,
    [SYS.RECV]: onFd,
    [SYS.SENDTO]: onFd,
    [SYS.RECVFROM]: onFd,
    [SYS.SHUTDOWN]: onFd,
    [SYS.CLOSE]: onFd,
    [SYS.GETSOCKNAME]: onFd,
    [SYS.GETPEERNAME]: onFd,
    [SYS.SOCK_RESIZE]: toArenaServer,
    [SYS.SOCK_OPT]: toArenaServer,
    [SYS.SOCK_KICK]: toArenaServer,
    [SYS.PING]: (s, m, proc) => forward(s, proc, m, "ip", undefined),
    [NET.DONE]: done,
    [NET.APP_EXITED]: (s, m, proc) => {
      const app = (m.payload as { app?: number } | undefined)?.app;
      if (typeof app !== "number") return NO_REPLY;
      const t = s.fds.get(app);
      s.fds.delete(app);
      const servers = new Set([...(t?.values() ?? [])].map((e) => e.server));
      for (const ep of s.arenaApps.get(app) ?? []) servers.add(ep);
      s.arenaApps.delete(app);
      for (const ep of servers) proc.send(ep, NET.APP_EXITED, { app }); // every layer of that server closes the app's sockets
      return NO_REPLY;
    },
  },
  poll(s, proc) {
    const now = performance.now();
    let did = false;
    if (s.sleepers.length > 0 && s.sleepers[0]!.due <= now) {
      while (s.sleepers.length > 0 && s.sleepers[0]!.due <= now) proc.reply(s.sleepers.shift()!.msg, 0);
      did = true;
    }
    // A stack server that restarted lost the calls it held: they fail with EINTR.
    if (now - s.lastSweep > 100 && s.forwarded.size > 0) {
      s.lastSweep = now;
      for (const [req, f] of s.forwarded) {
        if (kinfoGet(s.kinfo, f.server, KI.GEN) !== f.gen) {
          s.forwarded.delete(req);
          proc.replyError(f.msg, EINTR, "the stack server restarted during the call");
          did = true;
        }
      }
    }
    return did;
  },
  nextDeadline(s) {
    const t = s.sleepers.length === 0 ? Number.POSITIVE_INFINITY : Math.max(0, s.sleepers[0]!.due - performance.now());
    return s.forwarded.size > 0 ? Math.min(t, 100) : t;
  },
};
