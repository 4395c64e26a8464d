// libc's newts backend: the SocketApi (libc/api.ts) with UDP sockets whose data path
// makes no system call (issue 4, design §4–§5). The socket's buffers are shared rings
// in the process's socket arena (lib/sock), granted by the udp server when the process
// makes its first socket: sendto/send/recvfrom/recv copy into and out of those rings,
// poll/select read the readiness the stack publishes there.
//
// Each call's fast and slow path (design §5):
//   - socket, bind, connect, close, getsockname: always a system call (through the
//     syscall server to udp); socket asks for an arena socket (`arena: true`) and is
//     answered with the slot, its generation and the grant ids of the arena's memory;
//   - sendto/send/write: room in the TX ring: copy in, publish, mark activity, and, if
//     the udp server sleeps, ring its bell (lib/net/sockbell.ts: an eventfd write, not
//     a newts system call). No room: EAGAIN if nonblocking, else sleep on the arena's
//     app doorbell (AppArena.sleep, finite timeouts in a loop) until udp frees room;
//   - recvfrom/recv/read: a datagram in the RX ring: copy out (truncated to the
//     buffer, the rest dropped, as Linux), publish. Empty: EAGAIN if nonblocking, else
//     sleep on the doorbell until udp pushes one;
//   - poll/select over these fds: from the rings and readiness words; nothing ready:
//     sleep on the doorbell (any socket) until an event or the timeout;
//   - getpeername, fcntl, setsockopt/getsockopt, shutdown: answered locally.
//
// Not in this slice (they throw EOPNOTSUPP): SOCK_STREAM sockets (socket() refuses
// them: TCP's arena comes next), listen/accept/accept4, epoll_*, MSG_PEEK. A connected
// socket does not learn of ICMP port unreachable (ECONNREFUSED): udp does not report it
// on either path yet. Socket options are recorded, not acted on.
//
// Counters as LinuxSockets.stats(): calls by name, system calls made, calls resolved
// in user space (no system call), would-block and other errors.
import { SYS } from "../lib/ipc/calls.ts";
import { AppArena } from "../lib/sock/arena.ts";
import type { SockApp } from "../lib/sock/app.ts";
import { ERR, HUP } from "../lib/sock/abi.ts";
import { ringBell } from "../lib/net/sockbell.ts";
import { self } from "../lib/sys/current.ts";
import type { Proc } from "../lib/sys/proc.ts";
import {
  EAFNOSUPPORT, EAGAIN, EBADF, EDESTADDRREQ, EINVAL, EMSGSIZE, ENOMEM, ENOTCONN, EOPNOTSUPP, ErrnoError,
} from "../lib/sys/errno.ts";
import { syscall } from "./unistd.ts";
import {
  AF_INET,
  type Accepted,
  type EpollEvent,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FD_CLOEXEC,
  type Linger,
  MSG_DONTWAIT,
  MSG_PEEK,
  O_NONBLOCK,
  O_RDWR,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  type PollFd,
  type RecvFrom,
  type SelectResult,
  type SockAddr,
  type SocketApi,
  type SocketStats,
  SO_ERROR,
  SO_LINGER,
  SO_TYPE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
} from "./api.ts";

const CALLS = [
  "socket", "bind", "listen", "accept", "accept4", "connect", "read", "write", "readv", "writev",
  "recv", "send", "recvfrom", "sendto", "shutdown", "close", "fcntl", "setsockopt", "getsockopt",
  "getsockname", "getpeername", "select", "poll", "epoll_create1", "epoll_ctl", "epoll_wait",
] as const;
type Call = (typeof CALLS)[number];
const K = Object.fromEntries(CALLS.map((n, i) => [n, i])) as Record<Call, number>;

const MAX_UDP = 65_507;
/** Longest single sleep on the doorbell (then look again: Bun cannot end an unbounded wait). */
const SLEEP_MS = 50;

/** What the udp server answers to SOCKET with `arena: true` (through the syscall server). */
interface SocketReply {
  fd: number;
  slot: number;
  gen: number;
  control: number;
  bell: number;
  segments: number[];
}

interface Fd {
  fd: number;
  sock: SockApp;
  slot: number;
  nonblock: boolean;
  cloexec: boolean;
  peer: SockAddr | null;
  opts: Map<string, number>;
}

export class NewtsSockets implements SocketApi {
  readonly backend = "newts";
  private readonly proc: Proc;
  private arena: AppArena | null = null;
  private bell: Int32Array | null = null;
  private readonly attached = new Set<number>(); // segment indices attached
  private readonly fds = new Map<number, Fd>();
  private readonly counts = new Float64Array(CALLS.length);
  private nSyscalls = 0;
  private nUserspace = 0;
  private nWouldBlock = 0;
  private nErrors = 0;
  /** Sleeps on the arena's doorbell, and bells rung to wake udp (not system calls of newts). */
  sleeps = 0;
  bellRings = 0;

  constructor(proc: Proc = self()) {
    this.proc = proc;
  }

  // ---- bookkeeping

  stats(): SocketStats {
    const calls: Record<string, number> = {};
    let total = 0;
    for (let i = 0; i < CALLS.length; i++) {
      const n = this.counts[i]!;
      total += n;
      if (n > 0) calls[CALLS[i]!] = n;
    }
    return { calls, total, syscalls: this.nSyscalls, userspace: this.nUserspace, wouldBlock: this.nWouldBlock, errors: this.nErrors };
  }

  resetStats(): void {
    this.counts.fill(0);
    this.nSyscalls = this.nUserspace = this.nWouldBlock = this.nErrors = 0;
  }

  /** A call answered (or refused) in user space with an errno. */
  private refuse(what: string, fd: number, e: number): never {
    this.nUserspace++;
    if (e === EAGAIN) this.nWouldBlock++;
    else this.nErrors++;
    throw new ErrnoError(e, `${what}(${fd})`);
  }

  /** A system call; its errno is counted and rethrown. */
  private sys(what: string, fd: number, type: number, payload: unknown): unknown {
    this.nSyscalls++;
    try {
      return syscall(type, payload, false);
    } catch (e) {
      if (e instanceof ErrnoError) {
        this.nErrors++;
        throw new ErrnoError(e.errno, `${what}(${fd}): ${e.message}`);
      }
      throw e;
    }
  }

  private entry(what: string, fd: number): Fd {
    const e = this.fds.get(fd);
    if (!e) this.refuse(what, fd, EBADF);
    return e;
  }

  private checkAddr(what: string, fd: number, sa: SockAddr): void {
    const { addr, port } = sa;
    if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff || !Number.isInteger(port) || port < 0 || port > 65535) {
      this.refuse(what, fd, EINVAL);
    }
  }

  /** After producing: if that found the udp server possibly asleep, ring its bell. */
  private kick(): void {
    if (this.arena!.takeWake() && ringBell(this.bell!)) this.bellRings++;
  }

  /** Sleeps on the arena's doorbell until ready() (which must arm the want words) or the deadline. */
  private block(slot: number, ready: () => boolean, deadline: number): boolean {
    for (;;) {
      if (ready()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.proc.beat();
      this.sleeps++;
      this.arena!.sleep(slot, ready, Math.min(SLEEP_MS, left));
    }
  }

  // ---- setup

  socket(domain: number, type: number, _protocol = 0): number {
    this.counts[K.socket]!++;
    if (domain !== AF_INET) this.refuse("socket", -1, EAFNOSUPPORT);
    const base = type & 0xf;
    if (base === SOCK_STREAM) this.refuse("socket", -1, EOPNOTSUPP); // TCP on the arena: not yet
    if (base !== SOCK_DGRAM) this.refuse("socket", -1, EINVAL);
    const r = this.sys("socket", -1, SYS.SOCKET, { domain, type: base, arena: true }) as SocketReply;
    const sock = this.attach(r);
    if (!sock) {
      try {
        this.sys("socket", r.fd, SYS.CLOSE, { fd: r.fd });
      } catch {
        // the fd is gone either way
      }
      this.nErrors++;
      throw new ErrnoError(ENOMEM, "socket: the socket buffer was not mapped");
    }
    this.fds.set(r.fd, {
      fd: r.fd, sock, slot: r.slot, nonblock: (type & SOCK_NONBLOCK) !== 0, cloexec: (type & SOCK_CLOEXEC) !== 0,
      peer: null, opts: new Map(),
    });
    return r.fd;
  }

  /** Maps what the answer names (the arena on the first socket, new segments) and opens the slot. */
  private attach(r: SocketReply): SockApp | null {
    const p = this.proc;
    if (!this.arena) {
      this.arena = new AppArena(p.grant(r.control).sab);
      this.bell = new Int32Array(p.grant(r.bell).sab);
    }
    const segs = Array.isArray(r.segments) ? r.segments : [];
    for (let i = 0; i < segs.length; i++) {
      const id = segs[i];
      if (this.attached.has(i) || typeof id !== "number" || id < 0) continue;
      this.arena.attachSegment(i, p.grant(id).sab);
      this.attached.add(i);
    }
    return this.arena.open(r.slot, r.gen);
  }

  bind(fd: number, sa: SockAddr): void {
    this.counts[K.bind]!++;
    this.entry("bind", fd);
    this.checkAddr("bind", fd, sa);
    this.sys("bind", fd, SYS.BIND, { fd, addr: sa.addr, port: sa.port });
  }

  listen(fd: number, _backlog?: number): void {
    this.counts[K.listen]!++;
    this.entry("listen", fd);
    this.refuse("listen", fd, EOPNOTSUPP);
  }

  accept(fd: number): Accepted {
    this.counts[K.accept]!++;
    this.entry("accept", fd);
    this.refuse("accept", fd, EOPNOTSUPP);
  }

  accept4(fd: number, _flags: number): Accepted {
    this.counts[K.accept4]!++;
    this.entry("accept4", fd);
    this.refuse("accept4", fd, EOPNOTSUPP);
  }

  connect(fd: number, sa: SockAddr): void {
    this.counts[K.connect]!++;
    const e = this.entry("connect", fd);
    this.checkAddr("connect", fd, sa);
    this.sys("connect", fd, SYS.CONNECT, { fd, addr: sa.addr, port: sa.port });
    e.peer = { addr: sa.addr, port: sa.port };
  }

  // ---- data

  /** One datagram from the RX ring into buf (blocking unless nonblock). */
  private take(what: string, e: Fd, buf: Uint8Array, flags: number): number {
    if (flags & MSG_PEEK) this.refuse(what, e.fd, EOPNOTSUPP);
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    const s = e.sock;
    for (;;) {
      const r = s.readDatagram(buf);
      if (r >= 0) {
        this.nUserspace++;
        return r;
      }
      if (r !== -EAGAIN) this.refuse(what, e.fd, -r);
      if (nb) this.refuse(what, e.fd, EAGAIN);
      this.block(e.slot, () => s.readable(), Number.POSITIVE_INFINITY);
    }
  }

  /** One datagram into the TX ring (blocking unless nonblock). */
  private put(what: string, e: Fd, buf: Uint8Array, flags: number, addr: number, port: number): number {
    const len = buf.length;
    if (len > MAX_UDP) this.refuse(what, e.fd, EMSGSIZE);
    if (port === 0) this.refuse(what, e.fd, EINVAL);
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    const s = e.sock;
    for (;;) {
      const r = s.writeDatagram(buf, addr, port);
      if (r >= 0) {
        this.nUserspace++;
        this.kick();
        return r;
      }
      if (r !== -EAGAIN) this.refuse(what, e.fd, -r);
      if (nb) this.refuse(what, e.fd, EAGAIN);
      this.block(e.slot, () => s.txFree() >= len || (s.readinessBits() & (ERR | HUP)) !== 0, Number.POSITIVE_INFINITY);
    }
  }

  private peerOf(what: string, e: Fd): SockAddr {
    if (!e.peer) this.refuse(what, e.fd, EDESTADDRREQ);
    return e.peer;
  }

  read(fd: number, buf: Uint8Array): number {
    this.counts[K.read]!++;
    return this.take("read", this.entry("read", fd), buf, 0);
  }

  write(fd: number, buf: Uint8Array): number {
    this.counts[K.write]!++;
    const e = this.entry("write", fd);
    const p = this.peerOf("write", e);
    return this.put("write", e, buf, 0, p.addr, p.port);
  }

  readv(fd: number, bufs: Uint8Array[]): number {
    this.counts[K.readv]!++;
    const e = this.entry("readv", fd);
    let total = 0;
    for (const b of bufs) total += b.length;
    const tmp = new Uint8Array(total);
    const n = this.take("readv", e, tmp, 0);
    let off = 0;
    for (const b of bufs) {
      if (off >= n) break;
      const k = Math.min(b.length, n - off);
      b.set(tmp.subarray(off, off + k));
      off += k;
    }
    return n;
  }

  writev(fd: number, bufs: Uint8Array[]): number {
    this.counts[K.writev]!++;
    const e = this.entry("writev", fd);
    const p = this.peerOf("writev", e);
    let total = 0;
    for (const b of bufs) total += b.length;
    const tmp = new Uint8Array(total);
    let off = 0;
    for (const b of bufs) {
      tmp.set(b, off);
      off += b.length;
    }
    return this.put("writev", e, tmp, 0, p.addr, p.port);
  }

  recv(fd: number, buf: Uint8Array, flags = 0): number {
    this.counts[K.recv]!++;
    return this.take("recv", this.entry("recv", fd), buf, flags);
  }

  recvBytes(fd: number, max: number, flags = 0): Uint8Array {
    this.counts[K.recv]!++;
    const buf = new Uint8Array(max);
    const n = this.take("recv", this.entry("recv", fd), buf, flags);
    return n === max ? buf : buf.slice(0, n);
  }

  send(fd: number, buf: Uint8Array, flags = 0): number {
    this.counts[K.send]!++;
    const e = this.entry("send", fd);
    const p = this.peerOf("send", e);
    return this.put("send", e, buf, flags, p.addr, p.port);
  }

  recvfrom(fd: number, buf: Uint8Array, flags = 0): RecvFrom {
    this.counts[K.recvfrom]!++;
    const e = this.entry("recvfrom", fd);
    const n = this.take("recvfrom", e, buf, flags);
    return { n, addr: e.sock.fromAddr, port: e.sock.fromPort };
  }

  sendto(fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number {
    this.counts[K.sendto]!++;
    const e = this.entry("sendto", fd);
    this.checkAddr("sendto", fd, sa);
    return this.put("sendto", e, buf, flags, sa.addr, sa.port);
  }

  shutdown(fd: number, _how: number): void {
    this.counts[K.shutdown]!++;
    const e = this.entry("shutdown", fd);
    if (!e.peer) this.refuse("shutdown", fd, ENOTCONN);
    this.nUserspace++; // nothing to do for a datagram socket
  }

  close(fd: number): void {
    this.counts[K.close]!++;
    this.entry("close", fd);
    this.fds.delete(fd);
    // udp sends what is still queued in the TX ring, then frees the slot.
    this.sys("close", fd, SYS.CLOSE, { fd });
  }

  // ---- control

  fcntl(fd: number, cmd: number, arg = 0): number {
    this.counts[K.fcntl]!++;
    const e = this.entry("fcntl", fd);
    this.nUserspace++;
    switch (cmd) {
      case F_GETFL:
        return O_RDWR | (e.nonblock ? O_NONBLOCK : 0);
      case F_SETFL:
        e.nonblock = (arg & O_NONBLOCK) !== 0;
        return 0;
      case F_GETFD:
        return e.cloexec ? FD_CLOEXEC : 0;
      case F_SETFD:
        e.cloexec = (arg & FD_CLOEXEC) !== 0;
        return 0;
      default:
        this.nUserspace--;
        this.refuse("fcntl", fd, EINVAL);
    }
  }

  setsockopt(fd: number, level: number, name: number, value: number | Linger): void {
    this.counts[K.setsockopt]!++;
    const e = this.entry("setsockopt", fd);
    if (typeof value !== "number") this.refuse("setsockopt", fd, EINVAL);
    this.nUserspace++;
    e.opts.set(`${level}:${name}`, value);
  }

  getsockopt(fd: number, level: typeof SOL_SOCKET, name: typeof SO_LINGER): Linger;
  getsockopt(fd: number, level: number, name: number): number;
  getsockopt(fd: number, level: number, name: number): number | Linger {
    this.counts[K.getsockopt]!++;
    const e = this.entry("getsockopt", fd);
    this.nUserspace++;
    if (level === SOL_SOCKET && name === SO_LINGER) return { onoff: false, linger: 0 };
    if (level === SOL_SOCKET && name === SO_TYPE) return SOCK_DGRAM;
    if (level === SOL_SOCKET && name === SO_ERROR) return 0;
    return e.opts.get(`${level}:${name}`) ?? 0;
  }

  getsockname(fd: number): SockAddr {
    this.counts[K.getsockname]!++;
    this.entry("getsockname", fd);
    const r = this.sys("getsockname", fd, SYS.GETSOCKNAME, { fd }) as SockAddr;
    return { addr: r.addr >>> 0, port: r.port };
  }

  getpeername(fd: number): SockAddr {
    this.counts[K.getpeername]!++;
    const e = this.entry("getpeername", fd);
    if (!e.peer) this.refuse("getpeername", fd, ENOTCONN);
    this.nUserspace++;
    return { ...e.peer };
  }

  // ---- readiness

  /** revents of one pollfd, from the ring and the readiness word (arms the want words when not ready). */
  private revents(fd: number, events: number): number {
    const e = this.fds.get(fd);
    if (!e) return POLLNVAL;
    const s = e.sock;
    let r = 0;
    if (events & POLLIN && s.readable()) r |= POLLIN;
    if (events & POLLOUT && s.writable()) r |= POLLOUT;
    const bits = s.readinessBits();
    if (bits & ERR) r |= POLLERR;
    if (bits & HUP) r |= POLLHUP;
    return r;
  }

  /** Fills out[] for fds; how many are ready. */
  private scan(fds: PollFd[], out: number[]): number {
    let n = 0;
    for (let i = 0; i < fds.length; i++) {
      out[i] = this.revents(fds[i]!.fd, fds[i]!.events);
      if (out[i] !== 0) n++;
    }
    return n;
  }

  private doPoll(fds: PollFd[], timeoutMs: number): number[] {
    const out = new Array<number>(fds.length).fill(0);
    this.nUserspace++;
    if (this.scan(fds, out) > 0 || timeoutMs === 0) return out;
    const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
    if (!this.arena) {
      // no socket at all: nothing can become ready; just wait out the timeout
      while (performance.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(SLEEP_MS, deadline - performance.now()));
      return out;
    }
    this.block(-1, () => this.scan(fds, out) > 0, deadline);
    return out;
  }

  select(readfds: Iterable<number>, writefds: Iterable<number>, timeoutMs: number): SelectResult {
    this.counts[K.select]!++;
    const want = new Map<number, number>();
    for (const fd of readfds) want.set(fd, (want.get(fd) ?? 0) | POLLIN);
    for (const fd of writefds) want.set(fd, (want.get(fd) ?? 0) | POLLOUT);
    const fds: PollFd[] = [];
    for (const [fd, events] of want) {
      if (!this.fds.has(fd)) this.refuse("select", fd, EBADF);
      fds.push({ fd, events });
    }
    const rev = this.doPoll(fds, timeoutMs);
    const r: SelectResult = { n: 0, readfds: new Set(), writefds: new Set() };
    fds.forEach(({ fd, events }, i) => {
      const v = rev[i]!;
      if (events & POLLIN && v & (POLLIN | POLLHUP | POLLERR)) r.readfds.add(fd);
      if (events & POLLOUT && v & (POLLOUT | POLLERR)) r.writefds.add(fd);
    });
    r.n = r.readfds.size + r.writefds.size;
    return r;
  }

  poll(fds: PollFd[], timeoutMs: number): number[] {
    this.counts[K.poll]!++;
    return this.doPoll(fds, timeoutMs);
  }

  epoll_create1(_flags = 0): number {
    this.counts[K.epoll_create1]!++;
    this.refuse("epoll_create1", -1, EOPNOTSUPP);
  }

  epoll_ctl(epfd: number, _op: number, _fd: number, _events?: number, _data?: number): void {
    this.counts[K.epoll_ctl]!++;
    this.refuse("epoll_ctl", epfd, EOPNOTSUPP);
  }

  epoll_wait(epfd: number, _max: number, _timeoutMs: number): EpollEvent[] {
    this.counts[K.epoll_wait]!++;
    this.refuse("epoll_wait", epfd, EOPNOTSUPP);
  }
}
