// Fast TCP sockets: the socket's buffers are rings in its app's arena (lib/sock).
// TX: the app posts DATA (kept in the ring until the connection takes it: the ring
// extends the send buffer, so a full connection is back-pressure into the app's
// ring), SHUTDOWN, CONNECT (a nonblocking connect) and CLOSE. RX: the connection's
// in-order bytes go into the RX ring as DATA, the peer's FIN as CLOSE (EOF), a reset
// as ERROR + EOF. A listener's completed connections are premapped children pushed
// into its RX ring as ACCEPT descriptors (§5.5.5), at most min(backlog, ring) ahead.
import type { FastApp } from "../../sock/fastapp.ts";
import type { TxDesc } from "../../sock/stack.ts";
import {
  type Geometry, KIND_CLOSE, KIND_CONNECT, KIND_SHUTDOWN, RDHUP, SHUT_RD, SOCK_STREAM as ARENA_STREAM, ST_CONNECTED,
  VIOLATION, WRITABLE,
} from "../../sock/abi.ts";
import { EALREADY, ECONNREFUSED, EINVAL, EISCONN } from "../../sys/errno.ts";
import { abortConn, closeSock, output, pump, startConnect } from "./tcp-conn.ts";
import { applyOpts, type DataPath, type FastTcp, newSock, type TcpSock, type TcpState } from "./tcp-state.ts";

/** Socket buffers of a fast TCP socket (the rings extend the connection's own buffers). */
export const FAST_GEOMETRY: Partial<Geometry> = { txSlots: 64, txData: 131072, rxSlots: 64, rxData: 131072 };
/** TX descriptors drained per socket per walk. */
const TX_BUDGET = 64;

/** The fast half of a socket in `slot` of the app's arena. */
export function newFast(fa: FastApp<TcpSock>, slot: number): FastTcp {
  return { fa, slot, sk: fa.arena.sock(slot)!, shutWr: false, shutDone: false, closing: 0, eofPushed: false, connectPending: false, children: [] };
}

/** The arena walk (or a SOCK_KICK) found the socket marked: the app posted, or freed RX room. */
export function onActive(s: TcpState, fa: FastApp<TcpSock>, slot: number, now: number): void {
  const k = fa.socks.get(slot);
  if (!k?.fast) return;
  const f = k.fast;
  if (f.sk.isDead) {
    // Reset by the stack: the only thing the app still posts is its CLOSE.
    if (f.sk.txPosted()) {
      f.closing = 2;
      finishClose(s, k, now);
    }
    return;
  }
  drainFast(s, k);
  if (!fa.socks.has(slot)) return; // closed in the drain
  if (k.listener) {
    if (f.closing !== 0 || f.sk.isDead) finishClose(s, k, now);
    else premap(s, k, now);
  } else {
    feedTx(s, k, now);
    if (k.fast && !k.closed) pumpRx(s, k);
  }
  if (k.conn) output(s, k.conn, now);
}

/** Drains the socket's TX descriptors; a violation resets the socket (counted). */
export function drainFast(s: TcpState, k: TcpSock): void {
  const f = k.fast!;
  s.draining = k;
  const r = f.sk.drainTx(s.onTx, TX_BUDGET);
  s.draining = null;
  if (r === VIOLATION) violation(s, k);
}

/** One drained TX descriptor of the socket being drained. */
export function onTxDesc(s: TcpState, d: TxDesc): void {
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
      pump(s, conn, performance.now());
      return;
    }
    // DATA stays in the ring (retainTx) until feedTx hands it to the connection
  }
}

/** Moves TX ring bytes into the connection as far as its send buffer has room; then FIN or close. */
export function feedTx(s: TcpState, k: TcpSock, now: number): void {
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
  if (f.closing !== 0 && (f.closing === 2 || !c || sk.isDead || sk.txRetained === 0)) finishClose(s, k, now);
  else if (c) output(s, c, now);
}

/** Moves the connection's in-order bytes into the RX ring as far as it has room; EOF after them. */
function pumpRx(s: TcpState, k: TcpSock): void {
  const f = k.fast;
  const c = k.conn;
  if (!f || !c || f.sk.isDead || f.closing !== 0) return;
  const sk = f.sk;
  while (c.readableBytes > 0) {
    const room = sk.rxSpace();
    if (room === VIOLATION) return violation(s, k);
    if (room <= 0) return; // prodWant is armed: the app marks the socket when it reads
    const data = c.recv(Math.min(room, 65536));
    if (data.length === 0) break;
    const n = sk.pushRx(data);
    if (n === VIOLATION) return violation(s, k);
    s.stats.fastRxBytes += n;
    if (n < data.length) break; // cannot happen: room was measured (the app only frees more)
  }
  if (c.eof && !f.eofPushed) {
    const r = sk.pushEof();
    if (r === VIOLATION) return violation(s, k);
    if (r === 1) {
      f.eofPushed = true;
      sk.setReadiness(sk.readiness | RDHUP);
    }
  }
}

/** The connection is established: the connect's result, then the state, into the ring. */
function fastConnected(k: TcpSock): void {
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
function fastFail(s: TcpState, k: TcpSock, errno: number): void {
  const f = k.fast!;
  if (f.closing !== 0 || k.closed) return;
  pumpRx(s, k); // what arrived before the reset is still read first
  f.connectPending = false;
  f.sk.reset(errno);
}

/** The app broke the ABI on this socket: reset it (the peer gets a RST), count it. */
function violation(s: TcpState, k: TcpSock): void {
  const f = k.fast!;
  s.stats.violations++;
  f.fa.arena.reset(f.slot);
  if (k.conn) abortConn(s, k.conn, performance.now());
}

/** The app's close is done with the ring: release the slot, close (or abort) the connection. */
function finishClose(s: TcpState, k: TcpSock, now: number): void {
  const f = k.fast!;
  if (k.closed) return;
  // Unread bytes in the ring, like unread bytes in a kernel buffer, turn a close into a
  // reset (an unread EOF does not); so does SO_LINGER 0 (closing 2).
  const unread = f.sk.isDead ? 0 : f.sk.rxUnreadBytes();
  if (k.conn && (f.closing === 2 || unread !== 0)) abortConn(s, k.conn, now);
  closeSock(s, k, now);
}

/** close by system call: what the app queued before closing still goes out (a CLOSE it posted too). */
export function closeFast(s: TcpState, k: TcpSock, abort: boolean, now: number): void {
  const f = k.fast!;
  if (!f.sk.isDead) drainFast(s, k);
  if (!k.closed && f.closing === 0) f.closing = abort ? 2 : 1;
  if (!k.closed) feedTx(s, k, now);
}

/** The socket is closed: its never-taken children are reset, its slot released. */
function releaseFast(s: TcpState, k: TcpSock, now: number): void {
  const f = k.fast!;
  if (f.children.length > 0) {
    // A listener: the children the app never took are reset, like a kernel's accept queue.
    const unread = f.sk.isDead ? f.children.length : f.sk.rxUnread();
    const left = unread === VIOLATION ? f.children.length : Math.min(unread, f.children.length);
    for (const n of f.children.slice(f.children.length - left)) {
      if (n.closed) continue;
      if (n.conn) abortConn(s, n.conn, now);
      closeSock(s, n, now);
    }
    f.children = [];
  }
  if (f.fa.socks.get(f.slot) === k) {
    f.fa.socks.delete(f.slot);
    f.fa.arena.release(f.slot);
  }
}

/** Premaps a fast listener's completed connections into its RX ring, at most min(backlog, ring) ahead. */
function premap(s: TcpState, k: TcpSock, now: number): void {
  const f = k.fast!;
  const l = k.listener;
  if (!l || f.sk.isDead || k.closed) return;
  const sk = f.sk;
  const cap = Math.max(1, Math.min(k.backlog, sk.geometry.rxSlots - 1));
  for (;;) {
    let unread = sk.rxUnread();
    if (unread === VIOLATION) return violation(s, k);
    if (unread >= cap) {
      // full: ask the app to mark us when it takes one, then look again
      if (sk.rxSlotsNow(sk.geometry.rxSlots) === VIOLATION) return violation(s, k);
      unread = sk.rxUnread();
      if (unread === VIOLATION) return violation(s, k);
      if (unread >= cap) return;
    }
    const conn = l.accept();
    if (!conn) return;
    const slot = f.fa.arena.allocSlot(ARENA_STREAM, { geometry: FAST_GEOMETRY, retainTx: true });
    if (slot < 0) {
      s.stats.premapDrops++;
      abortConn(s, conn, now);
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
    s.socks.setPort(n, conn.local.port);
    n.raddr = conn.remote.addr;
    n.rport = conn.remote.port;
    s.byConn.set(conn, n);
    n.fast.sk.setState(ST_CONNECTED);
    n.fast.sk.setAddrs(n.laddr, n.lport, n.raddr, n.rport);
    s.stats.accepted++;
    s.stats.premapped++;
    // Anything that arrived before (data, FIN) is waiting in the connection.
    pumpRx(s, n);
    pump(s, conn, now);
    f.children.push(n);
    if (f.children.length > 2 * cap) f.children.splice(0, f.children.length - cap - 1); // the app took those
    if (sk.pushAccept(slot, n.fast.sk.gen) !== 1) {
      // the ring was checked above; only a scribbled ring gets here
      violation(s, k);
      return;
    }
  }
}

/** A fast socket: its connection's events move bytes between the connection and the rings. */
export const FAST_PATH: DataPath = {
  connected: (_s, k) => fastConnected(k),
  readable: pumpRx,
  writable: feedTx,
  failed: (s, k) => fastFail(s, k, k.error),
  // a connection that never came up reports why (a connected one's EOF is in the ring)
  ended: (s, k) => {
    if (!k.connected && !k.closed) fastFail(s, k, k.error || ECONNREFUSED);
  },
  accepted: premap,
  closing: releaseFast,
  tick: (s, now) => {
    for (const k of s.byListener.values()) if (k.fast) premap(s, k, now);
  },
};
