// The tcp server: stream sockets over the TCP state machine of lib/net/tcp. A shell:
// its state is made fresh or reloaded after a restart, calls forwarded by the syscall
// server go through a table to their handlers, and the loop polls ip, the fast
// sockets' arenas and the timers. The work is in lib/net/transport: tcp-conn.ts
// (segments, timers, a connection's events), tcp-rings.ts (fast sockets: buffers
// that are rings in the app's arena), tcp-kipc.ts (data by kernel message),
// socktable.ts and ports.ts (sockets and ports), saved.ts (what survives a restart).
import { NET, SRV_CTL, SYS } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import { EADDRINUSE, EALREADY, ECONNRESET, EINPROGRESS, EINVAL, EISCONN, ENOTCONN, EOPNOTSUPP, ErrnoError } from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import { complete, fail, netCallTable, num, type NetCallFn } from "../lib/net/netcall.ts";
import { TcpListener } from "../lib/net/tcp/index.ts";
import { SOCK_STREAM as ARENA_STREAM, ST_LISTENING } from "../lib/sock/abi.ts";
import { loadTcp } from "../lib/net/transport/saved.ts";
import { closeSock, onSegment, pump, startConnect, tick } from "../lib/net/transport/tcp-conn.ts";
import { acceptCall, KIPC_PATH, recvCall, sendCall } from "../lib/net/transport/tcp-kipc.ts";
import { closeFast, FAST_GEOMETRY, FAST_PATH, newFast, onActive, onTxDesc } from "../lib/net/transport/tcp-rings.ts";
import {
  applyOpts, blankSock, ephemeral, ephemeralStart, newSock, newTcpState, portInUse, saveIfDirty, sockOf, type TcpState,
} from "../lib/net/transport/tcp-state.ts";

const POOL_BUFFERS = 4096;
const POOL_BUF = 2048;

/** A state over `links` with tcp's pool (made on a first start, found again after a restart). */
function layerState(proc: Proc, links: Links, secret: readonly [number, number] | null): TcpState {
  const pool = links.ownPool(POOL_BUFFERS, POOL_BUF, ["ip", "pf", "nic"]);
  const rnd = new Uint32Array(2);
  crypto.getRandomValues(rnd);
  const paths = { fast: FAST_PATH, kipc: KIPC_PATH };
  return newTcpState(proc, paths, links, pool, secret ?? [rnd[0]!, rnd[1]!], ephemeralStart(rnd[0]!), (s, fa, slot) => onActive(s, fa, slot, performance.now()), onTxDesc);
}

/** A first start: no sockets, a new ISN/cookie secret. */
export function freshLayer(proc: Proc, links: Links): TcpState {
  return layerState(proc, links, null);
}

/**
 * After a restart. Links re-attached the channels and pools of the earlier
 * generations, and ownPool finds tcp's pool among them. From the store come the
 * secret (so SYN cookies of the old generation still check) and the socket table:
 * listeners listen again on their ports and apps keep their descriptors; sockets
 * that were connected come back failed with ECONNRESET (the connection died with
 * the old generation). Fast sockets' arenas are not re-attached: their apps' rings
 * go quiet.
 */
export function restartLayer(proc: Proc, links: Links): TcpState {
  const saved = loadTcp(links.store);
  const s = layerState(proc, links, saved?.secret ?? null);
  if (!saved) return s;
  s.socks.nextId = saved.nextId;
  for (const x of saved.socks) {
    const k = s.socks.add({ ...blankSock(x.id, x.app), laddr: x.laddr, raddr: x.raddr, rport: x.rport, backlog: x.backlog }, false);
    if (x.lport) s.socks.setPort(k, x.lport);
    if (x.kind === "listen") {
      const l = new TcpListener({ secret: s.secret }, k.backlog);
      if (s.table.listen(k.laddr, k.lport, l)) {
        k.listener = l;
        s.byListener.set(l, k);
      }
    } else if (x.kind === "conn") {
      k.connected = true;
      k.error = ECONNRESET;
    }
  }
  s.socks.dirty = false;
  return s;
}

// ---- calls, by the system call's number ---------------------------------------

const CALLS: Record<number, NetCallFn<TcpState>> = {
  [SYS.SOCKET]: (s, c) => {
    if (c.args.arena !== true) return complete(s.proc, c, newSock(s, c.app).id);
    const fa = s.arenas.for(c.app, c.args.mode === "syscall");
    const slot = fa.arena.allocSlot(ARENA_STREAM, { geometry: FAST_GEOMETRY, retainTx: true });
    if (slot < 0) throw new ErrnoError(-slot, "no socket buffer");
    const k = newSock(s, c.app);
    k.fast = newFast(fa, slot);
    fa.socks.set(slot, k);
    complete(s.proc, c, s.arenas.reply(fa, k.id, slot));
  },
  [SYS.SOCK_RESIZE]: (s, c) =>
    complete(s.proc, c, s.arenas.resize(c.app, c.args, (k, sk) => {
      if (k.fast) k.fast.sk = sk;
    })),
  [SYS.SOCK_OPT]: (s, c) => {
    const { k } = s.arenas.sockAt(c.app, c.args.slot);
    if (typeof c.args.nodelay === "boolean") k.nodelay = c.args.nodelay;
    if (typeof c.args.keepalive === "boolean") k.keepalive = c.args.keepalive;
    if (k.conn) applyOpts(k, k.conn);
    complete(s.proc, c, 0);
  },
  // The baseline (`--sockets syscall`): the app's system call after a write or before a read check.
  [SYS.SOCK_KICK]: (s, c) => {
    const { fa, slot, k } = s.arenas.sockAt(c.app, c.args.slot);
    onActive(s, fa, slot, performance.now());
    complete(s.proc, c, k.fast?.sk.readiness ?? 0);
  },
  [SYS.BIND]: (s, c) => {
    const k = sockOf(s, c);
    if (k.lport !== 0) throw new ErrnoError(EINVAL, "already bound");
    const port = num(c.args, "port", 0);
    if (port < 0 || port > 65535) throw new ErrnoError(EINVAL, "bad port");
    if (port !== 0 && portInUse(s, port, c.args.reuse === true)) throw new ErrnoError(EADDRINUSE, `port ${port} in use`);
    k.laddr = num(c.args, "addr", 0) >>> 0;
    s.socks.setPort(k, port === 0 ? ephemeral(s) : port);
    k.fast?.sk.setAddrs(k.laddr, k.lport, 0, 0);
    complete(s.proc, c, 0);
  },
  [SYS.LISTEN]: (s, c) => {
    const k = sockOf(s, c);
    if (k.conn) throw new ErrnoError(EISCONN, "connected");
    if (k.listener) return complete(s.proc, c, 0);
    if (k.lport === 0) s.socks.setPort(k, ephemeral(s));
    const backlog = Math.max(1, Math.min(4096, num(c.args, "backlog", 128)));
    const l = new TcpListener({ secret: s.secret }, backlog);
    if (!s.table.listen(k.laddr, k.lport, l)) throw new ErrnoError(EADDRINUSE, `port ${k.lport} in use`);
    k.listener = l;
    k.backlog = backlog;
    s.socks.dirty = true;
    s.byListener.set(l, k);
    if (k.fast) {
      k.fast.sk.setState(ST_LISTENING);
      k.fast.sk.setAddrs(k.laddr, k.lport, 0, 0);
      k.fast.sk.setReadiness(0); // a listener is not writable
    }
    complete(s.proc, c, 0);
  },
  [SYS.ACCEPT]: acceptCall,
  [SYS.CONNECT]: (s, c) => {
    const now = performance.now();
    const k = sockOf(s, c);
    if (k.listener) throw new ErrnoError(EOPNOTSUPP, "listening socket");
    if (k.conn) throw new ErrnoError(k.connected ? EISCONN : EALREADY, "connect in progress or done");
    const raddr = num(c.args, "addr", 0) >>> 0;
    const rport = num(c.args, "port", 0);
    if (!(rport > 0 && rport < 65536)) throw new ErrnoError(EINVAL, "bad port");
    const conn = startConnect(s, k, raddr, rport, now);
    if (c.args.nonblock === true) fail(s.proc, c, EINPROGRESS);
    else k.connecting = c; // answered at "connected" (or the failure)
    pump(s, conn, now);
  },
  [SYS.SEND]: (s, c) => sendCall(s, c, performance.now()),
  [SYS.RECV]: (s, c) => recvCall(s, c, performance.now()),
  [SYS.SHUTDOWN]: (s, c) => {
    const k = sockOf(s, c);
    if (!k.conn) throw new ErrnoError(ENOTCONN, "not connected");
    const how = num(c.args, "how", 2);
    if (how === 1 || how === 2) k.conn.shutdownWrite();
    pump(s, k.conn, performance.now());
    complete(s.proc, c, 0);
  },
  [SYS.CLOSE]: (s, c) => {
    const k = sockOf(s, c);
    if (k.fast) closeFast(s, k, c.args.abort === true, performance.now());
    else closeSock(s, k, performance.now());
    complete(s.proc, c, 0);
  },
  [SYS.GETSOCKNAME]: (s, c) => {
    const k = sockOf(s, c);
    complete(s.proc, c, { addr: k.laddr, port: k.lport });
  },
  [SYS.GETPEERNAME]: (s, c) => {
    const k = sockOf(s, c);
    if (!k.conn || !k.connected) throw new ErrnoError(ENOTCONN, "not connected");
    complete(s.proc, c, { addr: k.raddr, port: k.rport });
  },
};

export const server: ServerDef<TcpState> = {
  initFresh: (p) => freshLayer(p, new Links(p)),
  initRestart: (p) => restartLayer(p, new Links(p)),
  handlers: {
    ...linkHandlers<TcpState>(),
    [NET.CALL]: netCallTable<TcpState>("tcp", CALLS, EOPNOTSUPP, (s) => {
      s.links.flush();
      saveIfDirty(s);
    }),
    [NET.APP_EXITED]: (s, m: Message) => {
      const app = (m.payload as { app?: number } | undefined)?.app;
      for (const k of [...s.socks.values()]) if (k.app === app && !k.closed) closeSock(s, k, performance.now());
      if (typeof app === "number") s.arenas.drop(app);
      s.links.flush();
      saveIfDirty(s);
      return NO_REPLY;
    },
    [SRV_CTL]: (s) => {
      const listeners: Record<string, unknown> = {};
      for (const k of s.byListener.values()) listeners[String(k.lport)] = { ...k.listener!.stats };
      return { sockets: s.socks.size, connections: s.table.size, arenas: s.arenas.size, ...s.stats, listeners, pool: s.pool.stats };
    },
  },
  poll(s) {
    const now = performance.now();
    const ip = s.links.port("ip");
    let did = false;
    if (ip) {
      const n = ip.recv(64, (p, b) => {
        onSegment(s, p, b, now);
        s.links.pools.release(p);
      });
      did = n > 0;
    }
    if (s.arenas.size > 0 && s.arenas.poll()) did = true;
    if (now - s.lastTick >= 5) {
      s.lastTick = now;
      tick(s, now);
      saveIfDirty(s); // connections accepted since
    }
    s.links.flush();
    return did;
  },
  nextDeadline: (s) => (s.table.size > 0 || s.socks.size > 0 ? Math.max(1, Math.min(5, s.timers.peekKey() - performance.now())) : Number.POSITIVE_INFINITY),
  // With arenas, sleep where an app's bell can wake us (lib/sock/fastapp.ts).
  idle(s, proc, ms) {
    s.arenas.idle(proc, ms, () => server.poll!(s, proc));
  },
};
