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
import { SocketLifecycle } from "./lifecycle.ts";

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

/** The total length of bufs. */
function lengthOf(bufs: Uint8Array[]): number {
  let total = 0;
  for (const b of bufs) total += b.length;
  return total;
}

/** The data calls: the throwing ones and their try* (-errno) forms. */
export class SocketData extends SocketLifecycle {
  /** Reads for every read-like call (blocking unless nonblock): n >= 0 or -errno, counted. */
  private take(k: number, e: Fd, buf: Uint8Array, flags: number): number {
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    if (e.type === SOCK_DGRAM) {
      if (flags & MSG_PEEK) return this.deny(k, EOPNOTSUPP);
      return this.retry(k, e, nb, READ_DATAGRAM, buf, 0, 0);
    }
    streamState(e);
    if (!e.connected && !e.connecting && e.sock.state() !== ST_RESET) return this.deny(k, ENOTCONN);
    return this.retry(k, e, nb, READ_STREAM, buf, flags, 0);
  }

  /** Writes for every write-like call: a stream takes what fits (all of it when blocking). n >= 0 or -errno, counted. */
  private put(k: number, e: Fd, buf: Uint8Array, flags: number, addr: number, port: number): number {
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    if (e.type === SOCK_DGRAM) {
      if (buf.length > MAX_UDP) return this.deny(k, EMSGSIZE);
      if (port === 0) return this.deny(k, EINVAL);
      return this.retry(k, e, nb, WRITE_DATAGRAM, buf, addr, port);
    }
    const s = e.sock;
    streamState(e);
    if (e.shutWr) return this.deny(k, EPIPE);
    if ((s.readinessBits() & ERR) !== 0) {
      // reset: the first call reports why (if the error is still unread), the next EPIPE
      const er = s.takeError();
      return this.deny(k, er > 0 ? er : EPIPE);
    }
    if (!e.connected && !e.connecting) return this.deny(k, e.listening ? ENOTCONN : EPIPE);
    if (buf.length === 0) {
      this.ok(k);
      return 0;
    }
    this.sent = 0;
    return this.retry(k, e, nb, WRITE_STREAM, buf, nb ? 1 : 0, 0);
  }

  /** Where a write without an address goes: a datagram socket's connected peer (else EDESTADDRREQ thrown). */
  private peerOf(k: number, what: string, e: Fd): SockAddr {
    if (e.type === SOCK_STREAM) return NO_PEER;
    if (!e.peer) this.raise(this.deny(k, EDESTADDRREQ), what, e.fd);
    return e.peer;
  }

  /** read, recv, readv: take into buf, an errno thrown. */
  private recvCall(k: number, what: string, fd: number, buf: Uint8Array, flags: number): number {
    this.enter(k);
    const n = this.take(k, this.entry(k, what, fd), buf, flags);
    return n >= 0 ? n : this.raise(n, what, fd);
  }

  /** write, send, writev: put buf to the socket's peer, an errno thrown. */
  private sendCall(k: number, what: string, fd: number, buf: Uint8Array, flags: number): number {
    this.enter(k);
    const e = this.entry(k, what, fd);
    const p = this.peerOf(k, what, e);
    const n = this.put(k, e, buf, flags, p.addr, p.port);
    return n >= 0 ? n : this.raise(n, what, fd);
  }

  read(fd: number, buf: Uint8Array): number {
    return this.recvCall(K.read, "read", fd, buf, 0);
  }

  write(fd: number, buf: Uint8Array): number {
    return this.sendCall(K.write, "write", fd, buf, 0);
  }

  readv(fd: number, bufs: Uint8Array[]): number {
    const tmp = new Uint8Array(lengthOf(bufs));
    const n = this.recvCall(K.readv, "readv", fd, tmp, 0);
    let off = 0;
    for (const b of bufs) {
      if (off >= n) break;
      const m = Math.min(b.length, n - off);
      b.set(tmp.subarray(off, off + m));
      off += m;
    }
    return n;
  }

  writev(fd: number, bufs: Uint8Array[]): number {
    const tmp = new Uint8Array(lengthOf(bufs));
    let off = 0;
    for (const b of bufs) {
      tmp.set(b, off);
      off += b.length;
    }
    return this.sendCall(K.writev, "writev", fd, tmp, 0);
  }

  recv(fd: number, buf: Uint8Array, flags = 0): number {
    return this.recvCall(K.recv, "recv", fd, buf, flags);
  }

  recvBytes(fd: number, max: number, flags = 0): Uint8Array {
    const buf = new Uint8Array(max);
    const n = this.recvCall(K.recv, "recv", fd, buf, flags);
    return n === max ? buf : buf.slice(0, n);
  }

  send(fd: number, buf: Uint8Array, flags = 0): number {
    return this.sendCall(K.send, "send", fd, buf, flags);
  }

  recvfrom(fd: number, buf: Uint8Array, flags = 0): RecvFrom {
    const k = K.recvfrom;
    this.enter(k);
    const e = this.entry(k, "recvfrom", fd);
    const n = this.take(k, e, buf, flags);
    if (n < 0) this.raise(n, "recvfrom", fd);
    if (e.type === SOCK_STREAM) return { n, addr: 0, port: 0 };
    return { n, addr: e.sock.fromAddr, port: e.sock.fromPort };
  }

  sendto(fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number {
    const k = K.sendto;
    this.enter(k);
    const e = this.entry(k, "sendto", fd);
    this.checkAddr(k, "sendto", fd, sa);
    const n = this.put(k, e, buf, flags, sa.addr, sa.port);
    return n >= 0 ? n : this.raise(n, "sendto", fd);
  }

  // ---- C-style calls: n >= 0 or -errno, never a throw (the fast path of an event loop)

  tryRecv(fd: number, buf: Uint8Array, flags = 0): number {
    const k = K.recv;
    this.enter(k);
    const e = this.fds.get(fd);
    return e ? this.take(k, e, buf, flags) : this.deny(k, EBADF);
  }

  trySend(fd: number, buf: Uint8Array, flags = 0): number {
    const k = K.send;
    this.enter(k);
    const e = this.fds.get(fd);
    if (!e) return this.deny(k, EBADF);
    if (e.type === SOCK_DGRAM && !e.peer) return this.deny(k, EDESTADDRREQ);
    return this.put(k, e, buf, flags, e.peer?.addr ?? 0, e.peer?.port ?? 0);
  }

  tryRecvfrom(fd: number, buf: Uint8Array, flags = 0, from?: SockAddr): number {
    const k = K.recvfrom;
    this.enter(k);
    const e = this.fds.get(fd);
    if (!e) return this.deny(k, EBADF);
    const n = this.take(k, e, buf, flags);
    if (n >= 0 && from) {
      from.addr = e.type === SOCK_DGRAM ? e.sock.fromAddr : 0;
      from.port = e.type === SOCK_DGRAM ? e.sock.fromPort : 0;
    }
    return n;
  }
}
