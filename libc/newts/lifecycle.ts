// The newts backend's socket lifecycle: socket, bind, listen and a blocking connect are
// system calls (through the syscall server to the stack); accept takes a child the stack
// premapped into the listener's RX ring; a nonblocking connect, shutdown and the close of
// an accepted socket are descriptors in the TX ring; the close of a socket made by
// socket() is a system call again.
import { SYS } from "../../lib/ipc/calls.ts";
import { ST_RESET } from "../../lib/sock/abi.ts";
import {
  EAFNOSUPPORT, EAGAIN, EALREADY, EBADF, EINPROGRESS, EINVAL, EISCONN, ENOMEM, ENOTCONN, EOPNOTSUPP, EPROTONOSUPPORT, ErrnoError,
} from "../../lib/sys/errno.ts";
import { K } from "../counters.ts";
import {
  AF_INET, type Accepted, SHUT_RD, SHUT_RDWR, SHUT_WR, SO_REUSEADDR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM, type SockAddr, SOL_SOCKET,
} from "../api.ts";
import { AGAIN, type RingOp, SocketCore } from "./core.ts";
import { attach, fdEntry, newFd, openLate, type SocketReply, streamState } from "./fd.ts";

/** accept takes no buffer. */
const NO_DATA = new Uint8Array(0);

/** The next child the stack premapped into the listener's RX ring, made an fd (x: accept4's flags). */
const ACCEPT: RingOp = {
  attempt(c, k, e, _buf, flags, _y, slept) {
    const s = e.sock;
    for (;;) {
      c.check(k, e);
      const r = s.takeAccept();
      if (r === -EAGAIN) return AGAIN;
      if (r < 0) return c.deny(k, -r); // counted as answered in user space, even after a sleep
      const child = e.ar.arena.open(r, s.acceptGen) ?? openLate(c, e.ar, r, s.acceptGen);
      if (!child) continue; // reset and recycled before we took it: the next one
      const nfd = newFd(c);
      const n = fdEntry(nfd, child, r, e.ar, -1, SOCK_STREAM, (flags & SOCK_NONBLOCK) !== 0, (flags & SOCK_CLOEXEC) !== 0);
      n.connected = true;
      c.fds.set(nfd, n);
      if (!slept) c.ok(k);
      return nfd;
    }
  },
  ready: (e) => e.sock.readable(),
  producer: false,
};

/** The socket calls that make, connect, shut and close sockets (the first layer over SocketCore). */
export class SocketLifecycle extends SocketCore {
  socket(domain: number, type: number, _protocol = 0): number {
    const k = K.socket;
    this.enter(k);
    if (domain !== AF_INET) this.raise(this.deny(k, EAFNOSUPPORT), "socket", -1);
    const base = type & 0xf;
    if (base !== SOCK_STREAM && base !== SOCK_DGRAM) this.raise(this.deny(k, EPROTONOSUPPORT), "socket", -1);
    const r = this.sys(k, "socket", -1, SYS.SOCKET, { domain, type: base, arena: true, mode: this.mode }) as SocketReply;
    const server = r.server ?? (base === SOCK_STREAM ? "tcp" : "udp");
    const got = attach(this, server, r);
    if (!got) {
      try {
        this.sys(k, "socket", r.fd, SYS.CLOSE, { fd: r.fd });
      } catch {
        // the handle is gone either way
      }
      this.counters.error(k);
      throw new ErrnoError(ENOMEM, "socket: the socket buffer was not mapped");
    }
    const fd = newFd(this);
    this.fds.set(fd, fdEntry(fd, got.sock, r.slot, got.ar, r.fd, base, (type & SOCK_NONBLOCK) !== 0, (type & SOCK_CLOEXEC) !== 0));
    return fd;
  }

  bind(fd: number, sa: SockAddr): void {
    const k = K.bind;
    this.enter(k);
    const e = this.entry(k, "bind", fd);
    this.checkAddr(k, "bind", fd, sa);
    if (e.sysfd < 0) this.raise(this.deny(k, EINVAL), "bind", fd); // an accepted connection is bound
    this.sys(k, "bind", fd, SYS.BIND, { fd: e.sysfd, addr: sa.addr, port: sa.port, reuse: (e.opts.get(`${SOL_SOCKET}:${SO_REUSEADDR}`) ?? 0) !== 0 });
  }

  listen(fd: number, backlog = 4096): void {
    const k = K.listen;
    this.enter(k);
    const e = this.entry(k, "listen", fd);
    if (e.type !== SOCK_STREAM) this.raise(this.deny(k, EOPNOTSUPP), "listen", fd);
    if (e.sysfd < 0 || e.connected || e.connecting) this.raise(this.deny(k, EINVAL), "listen", fd);
    this.sys(k, "listen", fd, SYS.LISTEN, { fd: e.sysfd, backlog });
    e.listening = true;
  }

  /** accept's work: the new fd (peer in `peer`), or -errno, counted. */
  private doAccept(k: number, fd: number, flags: number, peer: SockAddr | null): number {
    const e = this.fds.get(fd);
    if (!e) return this.deny(k, EBADF);
    if (e.type !== SOCK_STREAM) return this.deny(k, EOPNOTSUPP);
    if (!e.listening) return this.deny(k, EINVAL);
    const nfd = this.retry(k, e, e.nonblock, ACCEPT, NO_DATA, flags, 0);
    if (nfd >= 0 && peer) [peer.addr, peer.port] = this.fds.get(nfd)!.sock.peerAddr();
    return nfd;
  }

  /** accept and accept4: the new fd and its peer, an errno thrown. */
  private accepted(k: number, what: string, fd: number, flags: number): Accepted {
    const a = { fd: 0, addr: 0, port: 0 };
    const n = this.doAccept(k, fd, flags, a);
    a.fd = n >= 0 ? n : this.raise(n, what, fd);
    return a;
  }

  accept(fd: number): Accepted {
    this.enter(K.accept);
    return this.accepted(K.accept, "accept", fd, 0);
  }

  accept4(fd: number, flags: number): Accepted {
    this.enter(K.accept4);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) this.raise(this.deny(K.accept4, EINVAL), "accept4", fd);
    return this.accepted(K.accept4, "accept4", fd, flags);
  }

  tryAccept(fd: number, flags = 0, peer?: SockAddr): number {
    this.enter(K.accept4);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return this.deny(K.accept4, EINVAL);
    return this.doAccept(K.accept4, fd, flags, peer ?? null);
  }

  connect(fd: number, sa: SockAddr): void {
    const k = K.connect;
    this.enter(k);
    const e = this.entry(k, "connect", fd);
    this.checkAddr(k, "connect", fd, sa);
    if (e.type === SOCK_DGRAM) {
      this.sys(k, "connect", fd, SYS.CONNECT, { fd: e.sysfd, addr: sa.addr, port: sa.port });
      e.peer = { addr: sa.addr, port: sa.port };
      return;
    }
    streamState(e);
    if (e.listening) this.raise(this.deny(k, EINVAL), "connect", fd);
    if (e.connected) this.raise(this.deny(k, EISCONN), "connect", fd);
    if (e.connecting) this.raise(this.deny(k, EALREADY), "connect", fd);
    if (sa.port === 0) this.raise(this.deny(k, EINVAL), "connect", fd);
    if (e.nonblock) {
      // §5.5.3: connect by descriptor; the result comes back as an ERROR descriptor
      const r = e.sock.postConnect(sa.addr, sa.port);
      if (r < 0) this.raise(this.deny(k, -r), "connect", fd);
      e.connecting = true;
      this.kick(k, e);
      this.raise(this.deny(k, EINPROGRESS), "connect", fd);
    }
    if (e.sysfd < 0) this.raise(this.deny(k, EISCONN), "connect", fd);
    this.sys(k, "connect", fd, SYS.CONNECT, { fd: e.sysfd, addr: sa.addr, port: sa.port });
    e.connected = true;
  }

  shutdown(fd: number, how: number): void {
    const k = K.shutdown;
    this.enter(k);
    const e = this.entry(k, "shutdown", fd);
    if (how !== SHUT_RD && how !== SHUT_WR && how !== SHUT_RDWR) this.raise(this.deny(k, EINVAL), "shutdown", fd);
    if (e.type === SOCK_DGRAM) {
      if (!e.peer) this.raise(this.deny(k, ENOTCONN), "shutdown", fd);
      this.ok(k); // nothing to do for a datagram socket
      return;
    }
    streamState(e);
    if (!e.connected) this.raise(this.deny(k, ENOTCONN), "shutdown", fd);
    if (how !== SHUT_WR) e.shutRd = true;
    if (how !== SHUT_RD && !e.shutWr) {
      const r = e.sock.postShutdown(how);
      if (r < 0 && r !== -EAGAIN && e.sock.state() !== ST_RESET) this.raise(this.deny(k, -r), "shutdown", fd);
      e.shutWr = true;
      this.kick(k, e);
    }
    this.ok(k);
  }

  close(fd: number): void {
    const k = K.close;
    this.enter(k);
    if (this.eps.delete(fd)) {
      this.ok(k);
      return;
    }
    const e = this.entry(k, "close", fd);
    this.fds.delete(fd);
    for (const p of this.eps.values()) p.interest.delete(fd);
    const abort = e.type === SOCK_STREAM && e.linger.onoff && e.linger.linger === 0;
    if (e.sysfd < 0) {
      // An accepted connection: CLOSE by descriptor (an abort with SO_LINGER 0); the
      // stack sends what is queued first, then FIN, and recycles the slot.
      e.sock.postClose(abort);
      this.kick(k, e);
      if (this.mode === "fast") this.ok(k);
      return;
    }
    // A socket made by socket(): by system call, which frees its handle at the syscall
    // server too (the stack drains what the app queued before closing first).
    this.sys(k, "close", fd, SYS.CLOSE, { fd: e.sysfd, abort });
  }
}
