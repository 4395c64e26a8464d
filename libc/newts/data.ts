// The newts backend's data path: read/recv/recvfrom/readv take from a socket's RX ring,
// write/send/sendto/writev put into its TX ring, each through SocketCore.retry (EAGAIN or
// a sleep on the doorbell when the ring is empty or full). The try* calls answer -errno;
// the others throw it.
import { ECONNRESET, EDESTADDRREQ, EINVAL, EMSGSIZE, ENOTCONN, EOPNOTSUPP, EPIPE, EAGAIN, EBADF } from "../../lib/sys/errno.ts";
import { ERR, HUP, ST_CONNECTED, ST_RESET } from "../../lib/sock/abi.ts";
import { K } from "../counters.ts";
import { MSG_DONTWAIT, MSG_PEEK, type RecvFrom, SOCK_DGRAM, SOCK_STREAM, type SockAddr } from "../api.ts";
import { AGAIN, type RingOp, type SocketCore } from "./core.ts";
import { type Fd, streamState } from "./fd.ts";

const MAX_UDP = 65_507;

/** A stream's "peer" for the write calls (a stream's writes take no address). */
const NO_PEER: SockAddr = Object.freeze({ addr: 0, port: 0 });

/** Reads or accepts: wait until the RX ring has something. */
const readable = (e: Fd): boolean => e.sock.readable();

/** A stream's bytes (x: the recv flags); MSG_PEEK keeps them in e.peeked for the next read. */
const READ_STREAM: RingOp = {
  attempt(c, k, e, buf, flags, _y, slept) {
    if (e.peeked) {
      const n = Math.min(buf.length, e.peeked.length);
      buf.set(e.peeked.subarray(0, n));
      if (!(flags & MSG_PEEK)) e.peeked = n === e.peeked.length ? null : e.peeked.slice(n);
      if (!slept) c.ok(k);
      return n;
    }
    c.check(k, e);
    const r = e.sock.read(buf);
    if (r >= 0) {
      if (!slept) c.ok(k);
      if (flags & MSG_PEEK && r > 0) e.peeked = buf.slice(0, r);
      return r;
    }
    if (r !== -EAGAIN) return c.deny(k, -r, !slept);
    if (e.shutRd) {
      if (!slept) c.ok(k);
      return 0; // SHUT_RD: an empty socket reads as end of stream
    }
    return AGAIN;
  },
  ready: readable,
  producer: false,
};

/** One datagram. */
const READ_DATAGRAM: RingOp = {
  attempt(c, k, e, buf, _x, _y, slept) {
    c.check(k, e);
    const r = e.sock.readDatagram(buf);
    if (r >= 0) {
      if (!slept) c.ok(k);
      return r;
    }
    if (r !== -EAGAIN) return c.deny(k, -r); // counted as answered in user space, even after a sleep
    return AGAIN;
  },
  ready: readable,
  producer: false,
};

/**
 * A stream's bytes (x: 1 if nonblocking): a nonblocking write takes what fits, a blocking
 * one all of it, across sleeps (its progress in c.sent). A connect under way is waited for.
 */
const WRITE_STREAM: RingOp = {
  attempt(c, k, e, buf, nb, _y, slept) {
    const s = e.sock;
    if (slept) {
      // woken: a connect that failed meanwhile ends the write
      if (e.connecting) streamState(e);
      if (!e.connecting && !e.connected) {
        if (c.sent > 0) return c.sent;
        const er = s.takeError();
        return c.deny(k, er > 0 ? er : EPIPE, false);
      }
    }
    const len = buf.length;
    for (;;) {
      if (e.connecting) streamState(e); // a failed connect is reported by the write below
      const off = c.sent;
      const r = e.connecting ? -EAGAIN : s.write(off === 0 ? buf : buf.subarray(off));
      if (r > 0) {
        c.sent = off + r;
        c.kick(k, e);
        if (c.sent === len || nb) {
          if (!slept) c.ok(k);
          return c.sent;
        }
        continue;
      }
      if (r !== -EAGAIN) {
        if (off > 0) return off;
        const er = r === -ECONNRESET ? s.takeError() : -r;
        return c.deny(k, er > 0 ? er : EPIPE, !slept);
      }
      return AGAIN;
    }
  },
  ready(e) {
    return e.connecting ? e.sock.state() === ST_CONNECTED || e.sock.state() === ST_RESET : e.sock.writable();
  },
  producer: true,
};

/** One datagram to x:y (address, port), whole or not at all. */
const WRITE_DATAGRAM: RingOp = {
  attempt(c, k, e, buf, addr, port, slept) {
    const r = e.sock.writeDatagram(buf, addr, port);
    if (r >= 0) {
      if (!slept) c.ok(k);
      c.kick(k, e);
      return r;
    }
    if (r !== -EAGAIN) return c.deny(k, -r); // counted as answered in user space, even after a sleep
    return AGAIN;
  },
  ready(e, buf) {
    const s = e.sock;
    return s.txFree() >= buf.length || (s.readinessBits() & (ERR | HUP)) !== 0;
  },
  producer: true,
};

/** Reads for every read-like call (blocking unless nonblock): n >= 0 or -errno, counted. */
function take(c: SocketCore, k: number, e: Fd, buf: Uint8Array, flags: number): number {
  const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
  if (e.type === SOCK_DGRAM) {
    if (flags & MSG_PEEK) return c.deny(k, EOPNOTSUPP);
    return c.retry(k, e, nb, READ_DATAGRAM, buf, 0, 0);
  }
  streamState(e);
  if (!e.connected && !e.connecting && e.sock.state() !== ST_RESET) return c.deny(k, ENOTCONN);
  return c.retry(k, e, nb, READ_STREAM, buf, flags, 0);
}

/** Writes for every write-like call: a stream takes what fits (all of it when blocking). n >= 0 or -errno, counted. */
function put(c: SocketCore, k: number, e: Fd, buf: Uint8Array, flags: number, addr: number, port: number): number {
  const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
  if (e.type === SOCK_DGRAM) {
    if (buf.length > MAX_UDP) return c.deny(k, EMSGSIZE);
    if (port === 0) return c.deny(k, EINVAL);
    return c.retry(k, e, nb, WRITE_DATAGRAM, buf, addr, port);
  }
  const s = e.sock;
  streamState(e);
  if (e.shutWr) return c.deny(k, EPIPE);
  if ((s.readinessBits() & ERR) !== 0) {
    // reset: the first call reports why (if the error is still unread), the next EPIPE
    const er = s.takeError();
    return c.deny(k, er > 0 ? er : EPIPE);
  }
  if (!e.connected && !e.connecting) return c.deny(k, e.listening ? ENOTCONN : EPIPE);
  if (buf.length === 0) {
    c.ok(k);
    return 0;
  }
  c.sent = 0;
  return c.retry(k, e, nb, WRITE_STREAM, buf, nb ? 1 : 0, 0);
}

/** Where a write without an address goes: a datagram socket's connected peer (else EDESTADDRREQ thrown). */
function peerOf(c: SocketCore, k: number, what: string, e: Fd): SockAddr {
  if (e.type === SOCK_STREAM) return NO_PEER;
  if (!e.peer) c.raise(c.deny(k, EDESTADDRREQ), what, e.fd);
  return e.peer;
}

/** read, recv, readv: take into buf, an errno thrown. */
function received(c: SocketCore, k: number, what: string, fd: number, buf: Uint8Array, flags: number): number {
  c.enter(k);
  const n = take(c, k, c.entry(k, what, fd), buf, flags);
  return n >= 0 ? n : c.raise(n, what, fd);
}

/** write, send, writev: put buf to the socket's peer, an errno thrown. */
function sent(c: SocketCore, k: number, what: string, fd: number, buf: Uint8Array, flags: number): number {
  c.enter(k);
  const e = c.entry(k, what, fd);
  const p = peerOf(c, k, what, e);
  const n = put(c, k, e, buf, flags, p.addr, p.port);
  return n >= 0 ? n : c.raise(n, what, fd);
}

/** The total length of bufs. */
function lengthOf(bufs: Uint8Array[]): number {
  let total = 0;
  for (const b of bufs) total += b.length;
  return total;
}

export function read(c: SocketCore, fd: number, buf: Uint8Array): number {
  return received(c, K.read, "read", fd, buf, 0);
}

export function write(c: SocketCore, fd: number, buf: Uint8Array): number {
  return sent(c, K.write, "write", fd, buf, 0);
}

export function readv(c: SocketCore, fd: number, bufs: Uint8Array[]): number {
  const tmp = new Uint8Array(lengthOf(bufs));
  const n = received(c, K.readv, "readv", fd, tmp, 0);
  let off = 0;
  for (const b of bufs) {
    if (off >= n) break;
    const m = Math.min(b.length, n - off);
    b.set(tmp.subarray(off, off + m));
    off += m;
  }
  return n;
}

export function writev(c: SocketCore, fd: number, bufs: Uint8Array[]): number {
  const tmp = new Uint8Array(lengthOf(bufs));
  let off = 0;
  for (const b of bufs) {
    tmp.set(b, off);
    off += b.length;
  }
  return sent(c, K.writev, "writev", fd, tmp, 0);
}

export function recv(c: SocketCore, fd: number, buf: Uint8Array, flags: number): number {
  return received(c, K.recv, "recv", fd, buf, flags);
}

export function recvBytes(c: SocketCore, fd: number, max: number, flags: number): Uint8Array {
  const buf = new Uint8Array(max);
  const n = received(c, K.recv, "recv", fd, buf, flags);
  return n === max ? buf : buf.slice(0, n);
}

export function send(c: SocketCore, fd: number, buf: Uint8Array, flags: number): number {
  return sent(c, K.send, "send", fd, buf, flags);
}

export function recvfrom(c: SocketCore, fd: number, buf: Uint8Array, flags: number): RecvFrom {
  const k = K.recvfrom;
  c.enter(k);
  const e = c.entry(k, "recvfrom", fd);
  const n = take(c, k, e, buf, flags);
  if (n < 0) c.raise(n, "recvfrom", fd);
  if (e.type === SOCK_STREAM) return { n, addr: 0, port: 0 };
  return { n, addr: e.sock.fromAddr, port: e.sock.fromPort };
}

export function sendto(c: SocketCore, fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number {
  const k = K.sendto;
  c.enter(k);
  const e = c.entry(k, "sendto", fd);
  c.checkAddr(k, "sendto", fd, sa);
  const n = put(c, k, e, buf, flags, sa.addr, sa.port);
  return n >= 0 ? n : c.raise(n, "sendto", fd);
}

// ---- C-style calls: n >= 0 or -errno, never a throw (the fast path of an event loop)

export function tryRecv(c: SocketCore, fd: number, buf: Uint8Array, flags: number): number {
  const k = K.recv;
  c.enter(k);
  const e = c.fds.get(fd);
  return e ? take(c, k, e, buf, flags) : c.deny(k, EBADF);
}

export function trySend(c: SocketCore, fd: number, buf: Uint8Array, flags: number): number {
  const k = K.send;
  c.enter(k);
  const e = c.fds.get(fd);
  if (!e) return c.deny(k, EBADF);
  if (e.type === SOCK_DGRAM && !e.peer) return c.deny(k, EDESTADDRREQ);
  return put(c, k, e, buf, flags, e.peer?.addr ?? 0, e.peer?.port ?? 0);
}

export function tryRecvfrom(c: SocketCore, fd: number, buf: Uint8Array, flags: number, from?: SockAddr): number {
  const k = K.recvfrom;
  c.enter(k);
  const e = c.fds.get(fd);
  if (!e) return c.deny(k, EBADF);
  const n = take(c, k, e, buf, flags);
  if (n >= 0 && from) {
    from.addr = e.type === SOCK_DGRAM ? e.sock.fromAddr : 0;
    from.port = e.type === SOCK_DGRAM ? e.sock.fromPort : 0;
  }
  return n;
}
