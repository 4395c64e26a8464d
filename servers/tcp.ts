// The tcp server: stream sockets over the TCP state machine of lib/net/tcp.
// Segments arrive from ip as descriptors (into the driver's pool) and are parsed
// in place; outgoing segments are built in tcp's own pool, headroom left for ip.
// Socket calls come forwarded by the syscall server and may be held (a blocking
// accept, connect or recv) until the machine's events complete them.
import { NET, SRV_CTL, SYS } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { PoolOwner } from "../lib/ipc/pool.ts";
import {
  EADDRINUSE, EAGAIN, EALREADY, EBADF, ECONNREFUSED, ECONNRESET, EINPROGRESS, EINVAL, EISCONN, ENOTCONN, EOPNOTSUPP,
  EPIPE, ErrnoError, ETIMEDOUT,
} from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import type { Packet } from "../lib/net/port.ts";
import { complete, fail, netCallHandler, num, bytes as argBytes, type NetCall } from "../lib/net/netcall.ts";
import { emitTcp, parseTcp, tcpBufferLen } from "../lib/net/tcp-wire.ts";
import { IpProtocol } from "../lib/net/ipv4.ts";
import { downTag, EPHEMERAL_HI, EPHEMERAL_LO, HEADROOM } from "../lib/net/stackproto.ts";
import { isnFor, type Secret, TcpConnection, TcpListener, TcpTable, type Outgoing } from "../lib/net/tcp/index.ts";
import type { TcpRepr } from "../lib/net/types.ts";
import { MinHeap } from "../lib/sys/heap.ts";
import { loadStore, saveStore } from "../lib/sys/store.ts";
import { type FastApp, FastArenas } from "../lib/sock/fastapp.ts";
import type { SockStack, TxDesc } from "../lib/sock/stack.ts";
import {
  type Geometry, KIND_CLOSE, KIND_CONNECT, KIND_SHUTDOWN, SHUT_RD, SOCK_STREAM as ARENA_STREAM, ST_CONNECTED, ST_CONNECTING,
  ST_LISTENING, RDHUP, VIOLATION, WRITABLE,
} from "../lib/sock/abi.ts";

/** Most bytes one recv returns (a kernel message holds at most 16 KiB). */
const MAX_IO = 8192;
const POOL_BUFFERS = 4096;
const POOL_BUF = 2048;

interface RecvWaiter {
  call: NetCall;
  max: number;
  deadline: number;
}

interface SendWaiter {
  call: NetCall;
  data: Uint8Array;
  off: number;
}

/** A socket whose buffers are rings in its app's arena (issue 4, fast sockets). */
interface FastTcp {
  fa: FastApp<Sock>;
  slot: number;
  sk: SockStack;
  /** SHUTDOWN(SHUT_WR) drained: FIN once every byte before it went to the connection. */
  shutWr: boolean;
  shutDone: boolean;
  /** CLOSE drained: 1 graceful, 2 abort (SO_LINGER 0); finished once TX is fed. */
  closing: number;
  eofPushed: boolean;
  /** A CONNECT by descriptor waits for its result (an ERROR descriptor). */
  connectPending: boolean;
  /** A listener: children premapped into its ring, oldest first (the app takes them in order). */
  children: Sock[];
}

interface Sock {
  id: number;
  app: number;
  fast?: FastTcp;
  /** TCP_NODELAY, SO_KEEPALIVE as the app set them (an accepted socket inherits its listener's). */
  nodelay?: boolean;
  keepalive?: boolean;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
  listener: TcpListener | null;
  conn: TcpConnection | null;
  accepts: NetCall[];
  recvs: RecvWaiter[];
  sends: SendWaiter[];
  connecting: NetCall | null;
  /** errno to report once the connection failed (ECONNRESET, ETIMEDOUT, ECONNREFUSED). */
  error: number;
  connected: boolean;
  closed: boolean;
  backlog: number;
}

interface State {
  links: Links;
  pool: PoolOwner;
  table: TcpTable;
  secret: Secret;
  socks: Map<number, Sock>;
  byConn: Map<TcpConnection, Sock>;
  byListener: Map<TcpListener, Sock>;
  /** Connections that outlive their socket (closing) or wait in a listener's queue. */
  nextId: number;
  nextEphemeral: number;
  lastTick: number;
  /** Connections by their next timer (lazy: an entry is checked against the connection when it fires). */
  timers: MinHeap<TcpConnection>;
  /** When each connection's earliest queued timer fires. */
  scheduled: Map<TcpConnection, number>;
  /** Sockets by local port (listeners, bound and connected ones). */
  byPort: Map<number, Set<Sock>>;
  /** Sockets with a receive that has a time limit. */
  timedRecvs: Set<Sock>;
  /** The socket table changed since it was last saved. */
  dirty: boolean;
  stats: {
    rxSegments: number; txSegments: number; badSegments: number; txDropped: number; accepted: number; resets: number;
    /** Fast sockets: bytes from TX rings into connections and from connections into RX rings. */
    fastTxBytes: number; fastRxBytes: number;
    /** Children premapped into listeners' rings; connections dropped for want of a socket buffer. */
    premapped: number; premapDrops: number;
    /** ABI violations by apps (each reset the socket it happened on). */
    violations: number;
  };
  /** Per app: its socket arena (fast sockets). Lost on a restart. */
  arenas: FastArenas<Sock>;
  /** The socket whose TX is being drained (for the drain callback). */
  draining: Sock | null;
  onTx: (d: TxDesc, sk: SockStack) => void;
  /** Staging for TX bytes on their way from a ring into a connection. */
  scratch: Uint8Array;
}

/** Socket buffers of a fast TCP socket (the rings extend the connection's own buffers). */
const FAST_GEOMETRY: Partial<Geometry> = { txSlots: 64, txData: 131072, rxSlots: 64, rxData: 131072 };
/** TX descriptors drained per socket per walk. */
const TX_BUDGET = 64;

/** The layer's state over its links (a server of its own, or a layer of servers/stack.ts). */
export function initLayer(proc: Proc, links: Links): State {
  const pool = links.ownPool(POOL_BUFFERS, POOL_BUF, ["ip", "pf", "nic"]);
  const rnd = new Uint32Array(2);
  crypto.getRandomValues(rnd);
  const s: State = {
    links, pool, table: new TcpTable(), secret: [rnd[0]!, rnd[1]!], socks: new Map(), byConn: new Map(), byListener: new Map(),
    nextId: 1, nextEphemeral: EPHEMERAL_LO + (rnd[0]! % 1000), lastTick: 0,
    timers: new MinHeap(), scheduled: new Map(), byPort: new Map(), timedRecvs: new Set(), dirty: false,
    stats: {
      rxSegments: 0, txSegments: 0, badSegments: 0, txDropped: 0, accepted: 0, resets: 0, fastTxBytes: 0, fastRxBytes: 0,
      premapped: 0, premapDrops: 0, violations: 0,
    },
    arenas: null as unknown as FastArenas<Sock>, draining: null, onTx: () => {}, scratch: new Uint8Array(65536),
  };
  s.arenas = new FastArenas<Sock>(proc, "tcp", (fa, slot) => onActive(s, proc, fa, slot, performance.now()));
  s.onTx = (d) => onTxDesc(s, proc, d);
  restore(s);
  return s;
}

// ---- what survives a restart --------------------------------------------------
// The socket table, listeners and the ISN/cookie secret are saved to the store on
// every change, so a restarted tcp listens again on the same ports and apps keep
// their descriptors. Established connections do not survive yet: their sockets
// come back failed with ECONNRESET (the state of a connection, its unacknowledged
// and unread bytes, moves to shared memory with libc's socket buffers, issue 4).

interface SavedSock {
  id: number;
  app: number;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
  kind: "new" | "listen" | "conn";
  backlog: number;
}

function save(s: State): void {
  s.dirty = false;
  const socks: SavedSock[] = [];
  for (const k of s.socks.values()) {
    if (k.closed || k.fast) continue; // fast sockets live in their arena, lost with this generation
    const kind = k.listener ? "listen" : k.conn || k.connected ? "conn" : "new";
    socks.push({ id: k.id, app: k.app, laddr: k.laddr, lport: k.lport, raddr: k.raddr, rport: k.rport, kind, backlog: k.backlog });
  }
  saveStore(s.links.store, { nextId: s.nextId, secret: [...s.secret], socks });
}

function restore(s: State): void {
  const saved = loadStore(s.links.store) as { nextId?: number; secret?: number[]; socks?: SavedSock[] } | null;
  if (!saved || !Array.isArray(saved.socks)) return;
  if (Array.isArray(saved.secret) && saved.secret.length === 2) s.secret = [saved.secret[0]! >>> 0, saved.secret[1]! >>> 0];
  s.nextId = Math.max(1, Number(saved.nextId) || 1);
  for (const x of saved.socks) {
    if (typeof x?.id !== "number" || typeof x.app !== "number") continue;
    const k: Sock = {
      id: x.id, app: x.app, laddr: x.laddr >>> 0, lport: 0, raddr: x.raddr >>> 0, rport: x.rport, listener: null, conn: null,
      accepts: [], recvs: [], sends: [], connecting: null, error: 0, connected: false, closed: false, backlog: x.backlog || 128,
    };
    s.socks.set(k.id, k);
    if (x.lport) setPort(s, k, x.lport);
    if (x.kind === "listen") {
      const l = new TcpListener({ secret: s.secret }, k.backlog);
      if (s.table.listen(k.laddr, k.lport, l)) {
        k.listener = l;
        s.byListener.set(l, k);
      }
    } else if (x.kind === "conn") {
      k.connected = true;
      k.error = ECONNRESET; // the connection died with the previous tcp
    }
  }
  s.dirty = false;
}

function newSock(s: State, app: number): Sock {
  const k: Sock = {
    id: s.nextId++, app, laddr: 0, lport: 0, raddr: 0, rport: 0, listener: null, conn: null, accepts: [], recvs: [], sends: [],
    connecting: null, error: 0, connected: false, closed: false, backlog: 0,
  };
  s.socks.set(k.id, k);
  s.dirty = true;
  return k;
}

function sockOf(s: State, c: NetCall): Sock {
  const k = c.sock === undefined ? undefined : s.socks.get(c.sock);
  if (!k || k.app !== c.app || k.closed) throw new ErrnoError(EBADF, "no such socket");
  return k;
}

/** A port is taken by a listener or a bound, unconnected socket (accepted connections share their listener's). */
/**
 * A port is taken by a listener or a bound, unconnected socket; without SO_REUSEADDR
 * (`reuse`) also by any connection on it, closed ones lingering in TIME_WAIT included,
 * as on Linux (accepted connections share their listener's port).
 */
function portInUse(s: State, port: number, reuse = false): boolean {
  for (const k of s.byPort.get(port) ?? []) {
    if (!k.closed && (k.listener || !k.conn)) return true;
    if (!reuse && k.conn) return true;
  }
  return false;
}

function setPort(s: State, k: Sock, port: number): void {
  s.dirty = true;
  if (k.lport !== 0) s.byPort.get(k.lport)?.delete(k);
  k.lport = port;
  let set = s.byPort.get(port);
  if (!set) s.byPort.set(port, (set = new Set()));
  set.add(k);
}

function forget(s: State, k: Sock): void {
  s.dirty = true;
  s.socks.delete(k.id);
  s.timedRecvs.delete(k);
  const set = s.byPort.get(k.lport);
  set?.delete(k);
  if (set && set.size === 0) s.byPort.delete(k.lport);
}

/** Queues a connection's next timer unless an earlier one is queued already. */
function schedule(s: State, c: TcpConnection): void {
  const d = c.nextDeadline();
  if (d < 0) return;
  const at = s.scheduled.get(c);
  if (at !== undefined && at <= d) return;
  s.scheduled.set(c, d);
  s.timers.push(d, c);
}

function ephemeral(s: State): number {
  for (let i = 0; i <= EPHEMERAL_HI - EPHEMERAL_LO; i++) {
    const p = s.nextEphemeral;
    s.nextEphemeral = p >= EPHEMERAL_HI ? EPHEMERAL_LO : p + 1;
    if (!portInUse(s, p)) return p;
  }
  throw new ErrnoError(EADDRINUSE, "no ephemeral port left");
}

// ---- output ------------------------------------------------------------------

function transmit(s: State, src: number, dst: number, seg: TcpRepr): void {
  const ip = s.links.port("ip");
  const len = tcpBufferLen(seg);
  const d = ip ? s.pool.alloc(len, HEADROOM) : null;
  if (!d || !ip) {
    s.stats.txDropped++; // TCP retransmits what was lost
    return;
  }
  emitTcp(seg, s.pool.view(d)!, src, dst);
  const p: Packet = { ...d, tag: downTag(IpProtocol.TCP), a: dst >>> 0, b: src >>> 0 };
  if (!ip.send(p)) {
    s.stats.txDropped++;
    s.pool.release(d);
    return;
  }
  s.stats.txSegments++;
}

function transmitAll(s: State, out: Outgoing[]): void {
  for (const o of out) transmit(s, o.src, o.dst, o.seg);
}

/** Sends what a connection has to send and acts on its events. */
function pump(s: State, proc: Proc, c: TcpConnection, now: number): void {
  for (const seg of c.poll(now)) transmit(s, c.local.addr, c.remote.addr, seg);
  schedule(s, c);
  const k = s.byConn.get(c);
  for (const ev of c.events()) {
    if (!k) {
      if (ev === "closed") {
        s.table.remove(c);
        s.scheduled.delete(c);
      }
      continue;
    }
    switch (ev) {
      case "connected":
        k.connected = true;
        if (k.connecting) {
          complete(proc, k.connecting, 0);
          k.connecting = null;
        }
        if (k.fast) fastConnected(k);
        break;
      case "readable":
      case "peer-closed":
        if (k.fast) pumpRx(s, proc, k);
        else serveRecvs(proc, k);
        break;
      case "writable":
        if (k.fast) feedTx(s, proc, k, now);
        else serveSends(s, proc, k, now);
        break;
      case "reset":
        s.stats.resets++;
        k.error = k.connected ? ECONNRESET : ECONNREFUSED;
        if (k.fast) fastFail(s, proc, k, k.error);
        failAll(proc, k);
        break;
      case "timed-out":
        k.error = ETIMEDOUT;
        if (k.fast) fastFail(s, proc, k, k.error);
        failAll(proc, k);
        break;
      case "closed":
        s.table.remove(c);
        s.byConn.delete(c);
        s.scheduled.delete(c);
        if (!k.error && !k.closed) k.error = k.connected ? 0 : ECONNREFUSED;
        if (k.fast && !k.connected && !k.closed) fastFail(s, proc, k, k.error || ECONNREFUSED);
        failAll(proc, k);
        if (k.closed) forget(s, k);
        break;
    }
  }
}

function failAll(proc: Proc, k: Sock): void {
  const e = k.error || ENOTCONN;
  if (k.connecting) {
    fail(proc, k.connecting, e);
    k.connecting = null;
  }
  serveRecvs(proc, k); // readers get what is buffered, then EOF or the error
  for (const w of k.sends.splice(0)) fail(proc, w.call, k.error ? k.error : EPIPE);
}

function serveRecvs(proc: Proc, k: Sock): void {
  const c = k.conn;
  while (k.recvs.length > 0) {
    const w = k.recvs[0]!;
    const data = c ? c.recv(w.max) : new Uint8Array(0);
    if (data.length > 0) {
      k.recvs.shift();
      complete(proc, w.call, data);
      continue;
    }
    if (!c || c.eof) {
      k.recvs.shift();
      complete(proc, w.call, data); // end of stream
      continue;
    }
    if (k.error) {
      k.recvs.shift();
      fail(proc, w.call, k.error);
      continue;
    }
    break;
  }
}

function serveSends(s: State, proc: Proc, k: Sock, now: number): void {
  const c = k.conn;
  if (!c) return;
  while (k.sends.length > 0) {
    const w = k.sends[0]!;
    w.off += c.send(w.data.subarray(w.off));
    if (w.off < w.data.length) break;
    k.sends.shift();
    complete(proc, w.call, w.data.length);
  }
  for (const seg of c.poll(now)) transmit(s, c.local.addr, c.remote.addr, seg);
}

// ---- calls -------------------------------------------------------------------

function onCall(s: State, proc: Proc, c: NetCall, now: number): void {
  const a = c.args;
  switch (c.op) {
    case SYS.SOCKET: {
      if (a.arena !== true) return complete(proc, c, newSock(s, c.app).id);
      const fa = s.arenas.for(c.app, a.mode === "syscall");
      const slot = fa.arena.allocSlot(ARENA_STREAM, { geometry: FAST_GEOMETRY, retainTx: true });
      if (slot < 0) throw new ErrnoError(-slot, "no socket buffer");
      const k = newSock(s, c.app);
      k.fast = newFast(fa, slot);
      fa.socks.set(slot, k);
      return complete(proc, c, s.arenas.reply(fa, k.id, slot));
    }
    case SYS.SOCK_RESIZE:
      return complete(proc, c, s.arenas.resize(c.app, a, (k, sk) => {
        if (k.fast) k.fast.sk = sk;
      }));
    case SYS.SOCK_OPT: {
      const { k } = s.arenas.sockAt(c.app, a.slot);
      if (typeof a.nodelay === "boolean") k.nodelay = a.nodelay;
      if (typeof a.keepalive === "boolean") k.keepalive = a.keepalive;
      if (k.conn) applyOpts(k, k.conn);
      return complete(proc, c, 0);
    }
    case SYS.SOCK_KICK: {
      // The baseline (`--sockets syscall`): the app's system call after a write or before a read check.
      const { fa, slot, k } = s.arenas.sockAt(c.app, a.slot);
      onActive(s, proc, fa, slot, now);
      return complete(proc, c, k.fast?.sk.readiness ?? 0);
    }
    case SYS.BIND: {
      const k = sockOf(s, c);
      if (k.lport !== 0) throw new ErrnoError(EINVAL, "already bound");
      const port = num(a, "port", 0);
      if (port < 0 || port > 65535) throw new ErrnoError(EINVAL, "bad port");
      if (port !== 0 && portInUse(s, port, a.reuse === true)) throw new ErrnoError(EADDRINUSE, `port ${port} in use`);
      k.laddr = num(a, "addr", 0) >>> 0;
      setPort(s, k, port === 0 ? ephemeral(s) : port);
      k.fast?.sk.setAddrs(k.laddr, k.lport, 0, 0);
      return complete(proc, c, 0);
    }
    case SYS.LISTEN: {
      const k = sockOf(s, c);
      if (k.conn) throw new ErrnoError(EISCONN, "connected");
      if (k.listener) return complete(proc, c, 0);
      if (k.lport === 0) setPort(s, k, ephemeral(s));
      const backlog = Math.max(1, Math.min(4096, num(a, "backlog", 128)));
      const l = new TcpListener({ secret: s.secret }, backlog);
      if (!s.table.listen(k.laddr, k.lport, l)) throw new ErrnoError(EADDRINUSE, `port ${k.lport} in use`);
      k.listener = l;
      k.backlog = backlog;
      s.dirty = true;
      s.byListener.set(l, k);
      if (k.fast) {
        k.fast.sk.setState(ST_LISTENING);
        k.fast.sk.setAddrs(k.laddr, k.lport, 0, 0);
        k.fast.sk.setReadiness(0); // a listener is not writable
      }
      return complete(proc, c, 0);
    }
    case SYS.ACCEPT: {
      const k = sockOf(s, c);
      if (!k.listener) throw new ErrnoError(EINVAL, "not listening");
      if (takeAccept(s, proc, k, c)) return;
      if (a.nonblock === true) throw new ErrnoError(EAGAIN, "no pending connection");
      k.accepts.push(c);
      return;
    }
    case SYS.CONNECT: {
      const k = sockOf(s, c);
      if (k.listener) throw new ErrnoError(EOPNOTSUPP, "listening socket");
      if (k.conn) throw new ErrnoError(k.connected ? EISCONN : EALREADY, "connect in progress or done");
      const raddr = num(a, "addr", 0) >>> 0;
      const rport = num(a, "port", 0);
      if (!(rport > 0 && rport < 65536)) throw new ErrnoError(EINVAL, "bad port");
      const conn = startConnect(s, k, raddr, rport, now);
      if (a.nonblock === true) fail(proc, c, EINPROGRESS);
      else k.connecting = c;
      pump(s, proc, conn, now);
      return;
    }
    case SYS.SEND: {
      const k = sockOf(s, c);
      const data = argBytes(a, "data");
      if (!data) throw new ErrnoError(EINVAL, "no data");
      if (!k.conn) throw new ErrnoError(k.error || ENOTCONN, "not connected");
      if (k.error) throw new ErrnoError(k.error === ECONNRESET ? EPIPE : k.error, "connection failed");
      const n = k.sends.length > 0 ? 0 : k.conn.send(data);
      for (const seg of k.conn.poll(now)) transmit(s, k.conn.local.addr, k.conn.remote.addr, seg);
      if (n === data.length) return complete(proc, c, n);
      if (a.nonblock === true) {
        if (n > 0) return complete(proc, c, n);
        throw new ErrnoError(EAGAIN, "send buffer full");
      }
      k.sends.push({ call: c, data, off: n });
      return;
    }
    case SYS.RECV: {
      const k = sockOf(s, c);
      if (!k.conn) throw new ErrnoError(k.error || ENOTCONN, "not connected");
      const max = Math.max(1, Math.min(MAX_IO, num(a, "max", MAX_IO)));
      const t = num(a, "timeoutMs", -1);
      k.recvs.push({ call: c, max, deadline: t >= 0 ? now + t : Number.POSITIVE_INFINITY });
      if (t >= 0) s.timedRecvs.add(k);
      serveRecvs(proc, k);
      if (k.recvs.length > 0 && k.recvs[k.recvs.length - 1]!.call === c) {
        for (const seg of k.conn.poll(now)) transmit(s, k.conn.local.addr, k.conn.remote.addr, seg); // window update
        if (a.nonblock === true) {
          k.recvs.pop();
          throw new ErrnoError(EAGAIN, "no data");
        }
      } else for (const seg of k.conn.poll(now)) transmit(s, k.conn.local.addr, k.conn.remote.addr, seg);
      return;
    }
    case SYS.SHUTDOWN: {
      const k = sockOf(s, c);
      if (!k.conn) throw new ErrnoError(ENOTCONN, "not connected");
      const how = num(a, "how", 2);
      if (how === 1 || how === 2) k.conn.shutdownWrite();
      pump(s, proc, k.conn, now);
      return complete(proc, c, 0);
    }
    case SYS.CLOSE: {
      const k = sockOf(s, c);
      if (k.fast) {
        // What the app queued before closing still goes out (a CLOSE it posted too).
        const f = k.fast;
        if (!f.sk.isDead) drainFast(s, proc, k);
        if (!k.closed && f.closing === 0) f.closing = a.abort === true ? 2 : 1;
        if (!k.closed) feedTx(s, proc, k, now);
        return complete(proc, c, 0);
      }
      closeSock(s, proc, k, now);
      return complete(proc, c, 0);
    }
    case SYS.GETSOCKNAME: {
      const k = sockOf(s, c);
      return complete(proc, c, { addr: k.laddr, port: k.lport });
    }
    case SYS.GETPEERNAME: {
      const k = sockOf(s, c);
      if (!k.conn || !k.connected) throw new ErrnoError(ENOTCONN, "not connected");
      return complete(proc, c, { addr: k.raddr, port: k.rport });
    }
    default:
      throw new ErrnoError(EOPNOTSUPP, `tcp: call ${c.op} not supported`);
  }
}

function applyOpts(k: Sock, c: TcpConnection): void {
  if (k.nodelay !== undefined) c.setNoDelay(k.nodelay);
  if (k.keepalive !== undefined) c.setKeepalive(k.keepalive);
}

function startConnect(s: State, k: Sock, raddr: number, rport: number, now: number): TcpConnection {
  const laddr = k.laddr !== 0 ? k.laddr : s.links.sourceFor(raddr);
  if (k.lport === 0) setPort(s, k, ephemeral(s));
  k.laddr = laddr;
  k.raddr = raddr;
  k.rport = rport;
  const conn = new TcpConnection({});
  conn.connect(now, { addr: laddr, port: k.lport }, { addr: raddr, port: rport }, isnFor(s.secret, now, laddr, k.lport, raddr, rport));
  applyOpts(k, conn);
  s.table.add(conn);
  k.conn = conn;
  s.byConn.set(conn, k);
  s.dirty = true;
  if (k.fast) {
    k.fast.sk.setState(ST_CONNECTING);
    k.fast.sk.setAddrs(k.laddr, k.lport, raddr, rport);
    k.fast.sk.setReadiness(0); // writable once connected
  }
  return conn;
}

/** Hands the next accepted connection to an accept call; false if none is ready. */
function takeAccept(s: State, proc: Proc, k: Sock, c: NetCall): boolean {
  const conn = k.listener!.accept();
  if (!conn) return false;
  const n = newSock(s, c.app);
  n.conn = conn;
  n.connected = true;
  n.laddr = conn.local.addr;
  setPort(s, n, conn.local.port);
  n.raddr = conn.remote.addr;
  n.rport = conn.remote.port;
  s.byConn.set(conn, n);
  s.stats.accepted++;
  complete(proc, c, { sock: n.id, addr: n.raddr, port: n.rport });
  // Anything that arrived before accept (data, FIN) is waiting in the connection.
  pump(s, proc, conn, performance.now());
  return true;
}

function closeSock(s: State, proc: Proc, k: Sock, now: number): void {
  k.closed = true;
  for (const w of k.accepts.splice(0)) fail(proc, w, EBADF);
  for (const w of k.recvs.splice(0)) fail(proc, w.call, EBADF);
  for (const w of k.sends.splice(0)) fail(proc, w.call, EBADF);
  if (k.connecting) fail(proc, k.connecting, EBADF);
  k.connecting = null;
  if (k.fast) releaseFast(s, proc, k, now);
  if (k.listener) {
    s.table.unlisten(k.laddr, k.lport);
    s.byListener.delete(k.listener);
    for (let c = k.listener.accept(); c; c = k.listener.accept()) {
      c.abort();
      pump(s, proc, c, now);
    }
    forget(s, k);
    return;
  }
  if (k.conn) {
    // The connection lives on (FIN, TIME_WAIT) until its "closed" event.
    k.conn.close();
    pump(s, proc, k.conn, now);
  } else forget(s, k);
}

// ---- fast sockets (issue 4): the socket's buffers are rings in its app's arena ----
// TX: the app posts DATA (kept in the ring until the connection takes it: the ring
// extends the send buffer, so a full connection is back-pressure into the app's
// ring), SHUTDOWN, CONNECT (a nonblocking connect) and CLOSE. RX: the connection's
// in-order bytes go into the RX ring as DATA, the peer's FIN as CLOSE (EOF), a reset
// as ERROR + EOF. A listener's completed connections are premapped children pushed
// into its RX ring as ACCEPT descriptors (§5.5.5), at most min(backlog, ring) ahead.

function newFast(fa: FastApp<Sock>, slot: number): FastTcp {
  return { fa, slot, sk: fa.arena.sock(slot)!, shutWr: false, shutDone: false, closing: 0, eofPushed: false, connectPending: false, children: [] };
}

/** The arena walk (or a SOCK_KICK) found the socket marked: the app posted, or freed RX room. */
function onActive(s: State, proc: Proc, fa: FastApp<Sock>, slot: number, now: number): void {
  const k = fa.socks.get(slot);
  if (!k?.fast) return;
  const f = k.fast;
  if (f.sk.isDead) {
    // Reset by the stack: the only thing the app still posts is its CLOSE.
    if (f.sk.txPosted()) {
      f.closing = 2;
      finishClose(s, proc, k, now);
    }
    return;
  }
  drainFast(s, proc, k);
  if (!fa.socks.has(slot)) return; // closed in the drain
  if (k.listener) {
    if (f.closing !== 0 || f.sk.isDead) finishClose(s, proc, k, now);
    else premap(s, proc, k, now);
  } else {
    feedTx(s, proc, k, now);
    if (k.fast && !k.closed) pumpRx(s, proc, k);
  }
  if (k.conn) sendNow(s, k.conn, now);
}

function sendNow(s: State, c: TcpConnection, now: number): void {
  for (const seg of c.poll(now)) transmit(s, c.local.addr, c.remote.addr, seg);
  schedule(s, c);
}

/** Drains the socket's TX descriptors; a violation resets the socket (counted). */
function drainFast(s: State, proc: Proc, k: Sock): void {
  const f = k.fast!;
  s.draining = k;
  const r = f.sk.drainTx(s.onTx, TX_BUDGET);
  s.draining = null;
  if (r === VIOLATION) violation(s, proc, k);
}

function onTxDesc(s: State, proc: Proc, d: TxDesc): void {
  const k = s.draining;
  if (!k?.fast) return;
  const f = k.fast;
  switch (d.kind) {
    case KIND_SHUTDOWN:
      if (d.arg !== SHUT_RD) f.shutWr = true; // SHUT_RD is the app's own business
      return;
    case KIND_CLOSE:
      f.closing = d.arg === 1 ? 2 : 1;
      return;
    case KIND_CONNECT: {
      if (k.conn || k.listener || !(d.port > 0)) {
        f.sk.pushError(k.conn ? (k.connected ? EISCONN : EALREADY) : EINVAL);
        return;
      }
      f.connectPending = true;
      const conn = startConnect(s, k, d.arg >>> 0, d.port, performance.now());
      pump(s, proc, conn, performance.now());
      return;
    }
    // DATA stays in the ring (retainTx) until feedTx hands it to the connection
  }
}

/** Moves TX ring bytes into the connection as far as its send buffer has room; then FIN or close. */
function feedTx(s: State, proc: Proc, k: Sock, now: number): void {
  const f = k.fast;
  if (!f) return;
  const sk = f.sk;
  const c = k.conn;
  if (c && !sk.isDead) {
    const buf = s.scratch;
    while (sk.txRetained > 0) {
      const space = c.sendSpace;
      if (space <= 0) break;
      const n = Math.min(sk.txRetained, space, buf.length);
      if (!sk.copyTx(sk.txReleasedTo, n, buf)) break;
      const m = c.send(buf.subarray(0, n));
      if (m <= 0) break;
      sk.releaseTx(m);
      s.stats.fastTxBytes += m;
    }
    if (f.shutWr && !f.shutDone && sk.txRetained === 0) {
      f.shutDone = true;
      c.shutdownWrite();
    }
  }
  if (f.closing !== 0 && (f.closing === 2 || !c || sk.isDead || sk.txRetained === 0)) finishClose(s, proc, k, now);
  else if (c) sendNow(s, c, now);
}

/** Moves the connection's in-order bytes into the RX ring as far as it has room; EOF after them. */
function pumpRx(s: State, proc: Proc, k: Sock): void {
  const f = k.fast;
  const c = k.conn;
  if (!f || !c || f.sk.isDead || f.closing !== 0) return;
  const sk = f.sk;
  while (c.readableBytes > 0) {
    const room = sk.rxSpace();
    if (room === VIOLATION) return violation(s, proc, k);
    if (room <= 0) return; // prodWant is armed: the app marks the socket when it reads
    const data = c.recv(Math.min(room, 65536));
    if (data.length === 0) break;
    const n = sk.pushRx(data);
    if (n === VIOLATION) return violation(s, proc, k);
    s.stats.fastRxBytes += n;
    if (n < data.length) break; // cannot happen: room was measured (the app only frees more)
  }
  if (c.eof && !f.eofPushed) {
    const r = sk.pushEof();
    if (r === VIOLATION) return violation(s, proc, k);
    if (r === 1) {
      f.eofPushed = true;
      sk.setReadiness(sk.readiness | RDHUP);
    }
  }
}

function fastConnected(k: Sock): void {
  const f = k.fast!;
  // The result first, then the state: an app that sees CONNECTED finds ERROR 0 in the ring.
  if (f.connectPending) {
    f.connectPending = false;
    f.sk.pushError(0);
  }
  f.sk.setAddrs(k.laddr, k.lport, k.raddr, k.rport);
  f.sk.setState(ST_CONNECTED);
  f.sk.setReadiness(WRITABLE | (f.sk.readiness & RDHUP));
}

/** The connection failed (reset, refused, timed out): ERROR(errno) + EOF into the ring. */
function fastFail(s: State, proc: Proc, k: Sock, errno: number): void {
  const f = k.fast!;
  if (f.closing !== 0 || k.closed) return;
  pumpRx(s, proc, k); // what arrived before the reset is still read first
  f.connectPending = false;
  f.sk.reset(errno);
}

/** The app broke the ABI on this socket: reset it (the peer gets a RST), count it. */
function violation(s: State, proc: Proc, k: Sock): void {
  const f = k.fast!;
  s.stats.violations++;
  f.fa.arena.reset(f.slot);
  if (k.conn) {
    k.conn.abort();
    pump(s, proc, k.conn, performance.now());
  }
}

/** The app's close is done with the ring: release the slot, close (or abort) the connection. */
function finishClose(s: State, proc: Proc, k: Sock, now: number): void {
  const f = k.fast!;
  if (k.closed) return;
  // Unread bytes in the ring, like unread bytes in a kernel buffer, turn a close into a
  // reset (an unread EOF does not); so does SO_LINGER 0 (closing 2).
  const unread = f.sk.isDead ? 0 : f.sk.rxUnreadBytes();
  if (k.conn && (f.closing === 2 || unread !== 0)) {
    k.conn.abort();
    pump(s, proc, k.conn, now);
  }
  closeSock(s, proc, k, now);
}

function releaseFast(s: State, proc: Proc, k: Sock, now: number): void {
  const f = k.fast!;
  if (f.children.length > 0) {
    // A listener: the children the app never took are reset, like a kernel's accept queue.
    const unread = f.sk.isDead ? f.children.length : f.sk.rxUnread();
    const left = unread === VIOLATION ? f.children.length : Math.min(unread, f.children.length);
    for (const n of f.children.slice(f.children.length - left)) {
      if (n.closed) continue;
      n.conn?.abort();
      if (n.conn) pump(s, proc, n.conn, now);
      closeSock(s, proc, n, now);
    }
    f.children = [];
  }
  if (f.fa.socks.get(f.slot) === k) {
    f.fa.socks.delete(f.slot);
    f.fa.arena.release(f.slot);
  }
}

/** Premaps a fast listener's completed connections into its RX ring, at most min(backlog, ring) ahead. */
function premap(s: State, proc: Proc, k: Sock, now: number): void {
  const f = k.fast!;
  const l = k.listener;
  if (!l || f.sk.isDead || k.closed) return;
  const sk = f.sk;
  const cap = Math.max(1, Math.min(k.backlog, sk.geometry.rxSlots - 1));
  for (;;) {
    let unread = sk.rxUnread();
    if (unread === VIOLATION) return violation(s, proc, k);
    if (unread >= cap) {
      // full: ask the app to mark us when it takes one, then look again
      if (sk.rxSlotsNow(sk.geometry.rxSlots) === VIOLATION) return violation(s, proc, k);
      unread = sk.rxUnread();
      if (unread === VIOLATION) return violation(s, proc, k);
      if (unread >= cap) return;
    }
    const conn = l.accept();
    if (!conn) return;
    const slot = f.fa.arena.allocSlot(ARENA_STREAM, { geometry: FAST_GEOMETRY, retainTx: true });
    if (slot < 0) {
      s.stats.premapDrops++;
      conn.abort();
      pump(s, proc, conn, now);
      continue;
    }
    const n = newSock(s, k.app);
    n.fast = newFast(f.fa, slot);
    f.fa.socks.set(slot, n);
    n.conn = conn;
    n.connected = true;
    n.nodelay = k.nodelay;
    n.keepalive = k.keepalive;
    applyOpts(n, conn);
    n.laddr = conn.local.addr;
    setPort(s, n, conn.local.port);
    n.raddr = conn.remote.addr;
    n.rport = conn.remote.port;
    s.byConn.set(conn, n);
    n.fast.sk.setState(ST_CONNECTED);
    n.fast.sk.setAddrs(n.laddr, n.lport, n.raddr, n.rport);
    s.stats.accepted++;
    s.stats.premapped++;
    // Anything that arrived before (data, FIN) is waiting in the connection.
    pumpRx(s, proc, n);
    pump(s, proc, conn, now);
    f.children.push(n);
    if (f.children.length > 2 * cap) f.children.splice(0, f.children.length - cap - 1); // the app took those
    if (sk.pushAccept(slot, n.fast.sk.gen) !== 1) {
      // the ring was checked above; only a scribbled ring gets here
      violation(s, proc, k);
      return;
    }
  }
}

// ---- input -------------------------------------------------------------------

function onSegment(s: State, proc: Proc, p: Packet, bytes: Uint8Array, now: number): void {
  const ihl = (p.tag >>> 8) & 0xff;
  const src = p.a >>> 0;
  const dst = p.b >>> 0;
  const r = parseTcp(bytes.subarray(ihl), src, dst);
  if (!r.ok) {
    s.stats.badSegments++;
    return;
  }
  s.stats.rxSegments++;
  const listener = s.table.lookup(dst, r.value.dstPort, src, r.value.srcPort) ? undefined : s.table.listenerFor(dst, r.value.dstPort);
  const res = s.table.dispatch(now, r.value, src, dst);
  transmitAll(s, res.replies);
  if (res.conn) pump(s, proc, res.conn, now);
  if (res.accepted && listener) {
    const k = s.byListener.get(listener);
    if (k?.fast) premap(s, proc, k, now);
    while (k && k.accepts.length > 0 && takeAccept(s, proc, k, k.accepts[0]!)) k.accepts.shift();
  }
}

function tick(s: State, proc: Proc, now: number): void {
  for (const k of s.byListener.values()) if (k.fast) premap(s, proc, k, now);
  for (const l of s.table.listenersAll()) {
    if (l.nextDeadline() >= 0 && l.nextDeadline() <= now) transmitAll(s, l.onTick(now).map((o) => ({ src: o.src, dst: o.dst, seg: o.seg })));
  }
  // Only the connections whose timer is due: no scan of the table.
  while (s.timers.peekKey() <= now) {
    const c = s.timers.pop()!;
    if (s.scheduled.get(c) === undefined) continue; // closed since
    s.scheduled.delete(c);
    const d = c.nextDeadline();
    if (d >= 0 && d <= now) {
      c.onTick(now);
      pump(s, proc, c, now);
    } else schedule(s, c); // moved later: queue it again
  }
  for (const k of s.timedRecvs) {
    while (k.recvs.length > 0 && k.recvs[0]!.deadline <= now) fail(proc, k.recvs.shift()!.call, EAGAIN, "receive timed out");
    if (!k.recvs.some((w) => w.deadline !== Number.POSITIVE_INFINITY)) s.timedRecvs.delete(k);
  }
}

const init = (proc: Proc) => initLayer(proc, new Links(proc));

export const server: ServerDef<State> = {
  initFresh: init,
  initRestart: init,
  handlers: {
    ...linkHandlers<State>(),
    [NET.CALL]: netCallHandler<State>((s, proc, c) => onCall(s, proc, c, performance.now()), (s) => {
      s.links.flush();
      if (s.dirty) save(s);
    }),
    [NET.APP_EXITED]: (s, m: Message, proc) => {
      const app = (m.payload as { app?: number } | undefined)?.app;
      for (const k of [...s.socks.values()]) if (k.app === app && !k.closed) closeSock(s, proc, k, performance.now());
      if (typeof app === "number") s.arenas.drop(app);
      s.links.flush();
      if (s.dirty) save(s);
      return NO_REPLY;
    },
    [SRV_CTL]: (s) => {
      const listeners: Record<string, unknown> = {};
      for (const k of s.byListener.values()) listeners[String(k.lport)] = { ...k.listener!.stats };
      return { sockets: s.socks.size, connections: s.table.size, arenas: s.arenas.size, ...s.stats, listeners, pool: s.pool.stats };
    },
  },
  poll(s, proc) {
    const now = performance.now();
    const ip = s.links.port("ip");
    let did = false;
    if (ip) {
      const n = ip.recv(64, (p, b) => {
        onSegment(s, proc, p, b, now);
        s.links.pools.release(p);
      });
      did = n > 0;
    }
    if (s.arenas.size > 0 && s.arenas.poll()) did = true;
    if (now - s.lastTick >= 5) {
      s.lastTick = now;
      tick(s, proc, now);
      if (s.dirty) save(s); // connections accepted since
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
export const freshLayer = initLayer;
export const restartLayer = initLayer;
