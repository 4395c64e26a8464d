// libc's newts backend: the SocketApi (libc/api.ts) over sockets whose buffers are shared
// rings in the process's socket arenas (lib/sock), one arena per stack server (udp, tcp),
// granted by that server on the process's first socket there (issue 4, design §4–§5).
//
// Each call's fast and slow path (design §5), in `fast` mode:
//   - socket, bind, listen, blocking connect, getsockname of a datagram socket, close of
//     a socket made by socket(): system calls (through the syscall server to the stack);
//   - read/recv/recvfrom/readv: data in the RX ring: copy out, publish. Empty: EAGAIN
//     when nonblocking (no system call), else sleep on the arena's doorbell (finite
//     Atomics.wait timeouts in a loop) until the stack pushes;
//   - write/send/sendto/writev: room in the TX ring: copy in, publish, mark the socket
//     active and, if the stack sleeps, ring its bell (lib/net/sockbell.ts: an eventfd
//     write, not a newts system call). No room: EAGAIN or sleep until the stack frees;
//   - accept: takes a child the stack premapped into the listener's RX ring (§5.5.5);
//     the new fd is made here, with no system call;
//   - nonblocking connect: a CONNECT descriptor (EINPROGRESS; the result arrives as an
//     ERROR descriptor that SO_ERROR and POLLOUT read);
//   - shutdown, close of an accepted socket: SHUTDOWN/CLOSE descriptors;
//   - select, poll, epoll_wait: swept in user space from the rings and the readiness
//     words the stack publishes; a sleep on the doorbell only when nothing is ready;
//   - fcntl, setsockopt/getsockopt, getpeername, getsockname of a stream: local.
// In `syscall` mode (the paper's baseline, `--sockets syscall`) the buffers and stack are
// the same, but the stack does not walk this process's arena: every write is followed by
// a SOCK_KICK system call, and every read check (read, accept, each fd of a poll) is
// preceded by one, so the stack drains TX and refills RX only when asked.
//
// fds are this library's: the syscall server's handle of a socket made by socket() is kept
// beside it (sysfd) for the calls that are system calls; an accepted child has none.
//
// setsockopt SO_SNDBUF/SO_RCVBUF and SOL_NEWTS NEWTS_TX_SLOTS/NEWTS_RX_SLOTS resize the
// socket's rings (a SOCK_RESIZE system call; EBUSY while data is in flight).
// TCP_NODELAY and SO_KEEPALIVE go to tcp (SOCK_OPT, a system call, as on Linux); other
// options are recorded (getsockopt returns them). Limits, named: MSG_PEEK on a
// stream peeks through a private buffer; MSG_WAITALL is not honoured; a connected
// datagram socket does not learn of ICMP port unreachable (ECONNREFUSED); a poll over
// sockets of two stack servers (TCP and UDP) sleeps in short slices; sockets are lost
// when the stack server restarts (their rings go quiet).
import { SYS } from "../lib/ipc/calls.ts";
import { AppArena } from "../lib/sock/arena.ts";
import type { SockApp } from "../lib/sock/app.ts";
import { ERR, HUP, KIND_ERROR, MAX_DATA, MAX_SLOTS, MIN_DATA, MIN_SLOTS, RDHUP, ST_CONNECTED, ST_CONNECTING, ST_RESET } from "../lib/sock/abi.ts";
import { ringBell } from "../lib/net/sockbell.ts";
import { self } from "../lib/sys/current.ts";
import type { Proc } from "../lib/sys/proc.ts";
import {
  EAFNOSUPPORT, EAGAIN, EALREADY, EBADF, ECONNRESET, EDESTADDRREQ, EEXIST, EINPROGRESS, EINVAL, EISCONN, EMSGSIZE, ENOENT, ENOMEM,
  ENOTCONN, EOPNOTSUPP, EPIPE, EPROTONOSUPPORT, ErrnoError,
} from "../lib/sys/errno.ts";
import { syscall } from "./unistd.ts";
import { K, processCounters, type SockCounters } from "./counters.ts";
import {
  AF_INET,
  type Accepted,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLONESHOT,
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
  POLLRDHUP,
  type PollFd,
  type RecvFrom,
  type SelectResult,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  type SockAddr,
  type SocketApi,
  type SocketStats,
  SO_ACCEPTCONN,
  SO_ERROR,
  SO_KEEPALIVE,
  SO_LINGER,
  SO_RCVBUF,
  SO_REUSEADDR,
  SO_SNDBUF,
  SO_TYPE,
  SOL_NEWTS,
  IPPROTO_TCP,
  TCP_NODELAY,
  NEWTS_RX_SLOTS,
  NEWTS_TX_SLOTS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
} from "./api.ts";

const MAX_UDP = 65_507;

const pow2 = (v: number, lo: number, hi: number) => {
  let n = lo;
  while (n < v && n < hi) n *= 2;
  return n;
};

/** The ring geometry a setsockopt asks for (SO_SNDBUF/SO_RCVBUF: data bytes; SOL_NEWTS: slots), or null. */
function ringOption(level: number, name: number, v: number): Record<string, number> | null {
  if (level === SOL_SOCKET && name === SO_SNDBUF) return { txData: pow2(v, MIN_DATA, MAX_DATA) };
  if (level === SOL_SOCKET && name === SO_RCVBUF) return { rxData: pow2(v, MIN_DATA, MAX_DATA) };
  if (level === SOL_NEWTS && name === NEWTS_TX_SLOTS) return { txSlots: pow2(v, MIN_SLOTS, MAX_SLOTS) };
  if (level === SOL_NEWTS && name === NEWTS_RX_SLOTS) return { rxSlots: pow2(v, MIN_SLOTS, MAX_SLOTS) };
  return null;
}
/** Longest single sleep on a doorbell (then look again: Bun cannot end an unbounded wait). */
const SLEEP_MS = 50;
/** A sleep over sockets of two stack servers: short slices, since one wait watches one arena. */
const MIXED_SLEEP_MS = 2;
const MAX_FDS = 65_536;
const EPOLL_MASK = EPOLLERR | EPOLLHUP;

/**
 * The error every nonblocking call that would block throws. Made once: building an
 * Error captures a stack trace, which costs more than the whole user-space call.
 */
const WOULD_BLOCK = new ErrnoError(EAGAIN, "the call would block");

/** What a stack server answers to SOCKET with `arena: true` (through the syscall server). */
interface SocketReply {
  fd: number;
  slot: number;
  gen: number;
  control: number;
  bell: number;
  segments: number[];
  server?: string;
}

/** One stack server's arena in this process. */
interface ArenaRec {
  name: string;
  arena: AppArena;
  bell: Int32Array;
  attached: Set<number>;
}

interface Fd {
  fd: number;
  sock: SockApp;
  slot: number;
  ar: ArenaRec;
  /** The syscall server's handle (-1: an accepted child, which needs none). */
  sysfd: number;
  type: number;
  nonblock: boolean;
  cloexec: boolean;
  /** A datagram socket's connected peer. */
  peer: SockAddr | null;
  opts: Map<string, number>;
  linger: Linger;
  listening: boolean;
  connecting: boolean;
  connected: boolean;
  shutRd: boolean;
  shutWr: boolean;
  /** A stream's MSG_PEEK bytes, read out of the ring and not yet delivered. */
  peeked: Uint8Array | null;
}

interface Interest {
  events: number;
  data: number;
  /** Edge-triggered: what was last reported (revents, RX arrivals), to report only changes. */
  lastRev: number;
  lastArr: number;
}

interface Epoll {
  fd: number;
  cloexec: boolean;
  interest: Map<number, Interest>;
}

export class NewtsSockets implements SocketApi {
  readonly backend: string;
  /** "fast": the stack polls the rings; "syscall": every write and read check is a system call. */
  readonly mode: "fast" | "syscall";
  private readonly proc: Proc;
  private readonly arenas = new Map<string, ArenaRec>();
  private readonly fds = new Map<number, Fd>();
  private readonly eps = new Map<number, Epoll>();
  private readonly c: SockCounters;
  /** Sleeps on a doorbell, and bells rung to wake a stack (neither is a system call of newts). */
  sleeps = 0;
  bellRings = 0;
  /** SOCK_KICK system calls made (syscall mode), and whether the current call made one. */
  kicks = 0;
  private kicked = false;
  /** Kicks the stack refused (the socket was gone there). */
  kickErrors = 0;

  constructor(proc: Proc = self(), opts: { mode?: "fast" | "syscall" } = {}) {
    this.proc = proc;
    this.mode = opts.mode ?? "fast";
    this.backend = this.mode === "fast" ? "newts" : "newts-syscall";
    this.c = processCounters(this.backend, proc);
  }

  // ---- bookkeeping

  stats(): SocketStats {
    return this.c.snapshot();
  }

  resetStats(): void {
    this.c.reset();
  }

  /** Every call starts here. */
  private enter(k: number): void {
    this.c.call(k);
    this.kicked = false;
  }

  /** The call is done: in user space, unless it made a system call (a SOCK_KICK) on the way. */
  private ok(k: number): void {
    if (!this.kicked) this.c.user(k);
  }

  /** A call refused in user space: counted, and -errno for the caller (the try* calls return it). */
  private deny(k: number, e: number): number {
    this.ok(k);
    this.fail(k, e);
    return -e;
  }

  /** A call that failed after it slept (already counted as a system call). */
  private failed(k: number, e: number): number {
    this.fail(k, e);
    return -e;
  }

  /** The throwing API's end of a try*: n >= 0 through, -errno thrown. */
  private raise(r: number, what: string, fd: number): number {
    if (r >= 0) return r;
    if (r === -EAGAIN) throw WOULD_BLOCK;
    throw new ErrnoError(-r, `${what}(${fd})`);
  }

  /** A call answered (or refused) in user space with an errno. */
  private refuse(k: number, what: string, fd: number, e: number): never {
    this.ok(k);
    this.fail(k, e);
    // EAGAIN is the fast path's common answer: one prepared error, no stack trace to capture
    if (e === EAGAIN) throw WOULD_BLOCK;
    throw new ErrnoError(e, `${what}(${fd})`);
  }

  private fail(k: number, e: number): void {
    if (e === EAGAIN || e === EINPROGRESS) this.c.again(k);
    else this.c.error(k);
  }

  /** A system call; its errno is counted and rethrown. */
  private sys(k: number, what: string, fd: number, type: number, payload: unknown): unknown {
    this.c.sys(k);
    try {
      return syscall(type, payload, false);
    } catch (e) {
      if (e instanceof ErrnoError) {
        this.fail(k, e.errno);
        throw new ErrnoError(e.errno, `${what}(${fd}): ${e.message}`);
      }
      throw e;
    }
  }

  private entry(k: number, what: string, fd: number): Fd {
    const e = this.fds.get(fd);
    if (!e) this.refuse(k, what, fd, EBADF);
    return e;
  }

  private checkAddr(k: number, what: string, fd: number, sa: SockAddr): void {
    const { addr, port } = sa;
    if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff || !Number.isInteger(port) || port < 0 || port > 65535) {
      this.refuse(k, what, fd, EINVAL);
    }
  }

  private newFd(): number {
    for (let fd = 3; fd < MAX_FDS; fd++) if (!this.fds.has(fd) && !this.eps.has(fd)) return fd;
    throw new ErrnoError(ENOMEM, "no fd left");
  }

  /**
   * After producing: tell the stack. fast: ring its bell if it sleeps (no system call);
   * syscall: the baseline's system call.
   */
  private kick(k: number, e: Fd): void {
    if (this.mode === "syscall") {
      this.kicks++;
      this.kicked = true;
      this.c.sys(k);
      try {
        syscall(SYS.SOCK_KICK, { server: e.ar.name, slot: e.slot }, false);
      } catch {
        // the socket is gone at the stack: the ring says so (reset), the next call reports it
        this.kickErrors++;
      }
      return;
    }
    if (e.ar.arena.takeWake() && ringBell(e.ar.bell)) this.bellRings++;
  }

  /** The call is about to sleep: counted as blocked, and as a system call (the wait enters the host kernel). */
  private sleeping(k: number): void {
    this.c.block(k);
    this.c.sys(k);
  }

  /** Before a read check in syscall mode: ask the stack to refill this socket's RX. */
  private check(k: number, e: Fd): void {
    if (this.mode === "syscall") this.kick(k, e);
  }

  /** Sleeps on the arena's doorbell until ready() (which must arm the want words) or the deadline. */
  private block(ar: ArenaRec | null, slot: number, ready: () => boolean, deadline: number, mixed = false): boolean {
    for (;;) {
      if (ready()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.proc.beat();
      this.sleeps++;
      const ms = Math.min(mixed ? MIXED_SLEEP_MS : SLEEP_MS, left);
      if (ar) ar.arena.sleep(slot, ready, ms);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    }
  }

  // ---- setup

  socket(domain: number, type: number, _protocol = 0): number {
    const k = K.socket;
    this.enter(k);
    if (domain !== AF_INET) this.refuse(k, "socket", -1, EAFNOSUPPORT);
    const base = type & 0xf;
    if (base !== SOCK_STREAM && base !== SOCK_DGRAM) this.refuse(k, "socket", -1, EPROTONOSUPPORT);
    const r = this.sys(k, "socket", -1, SYS.SOCKET, { domain, type: base, arena: true, mode: this.mode }) as SocketReply;
    const server = r.server ?? (base === SOCK_STREAM ? "tcp" : "udp");
    const got = this.attach(server, r);
    if (!got) {
      try {
        this.sys(k, "socket", r.fd, SYS.CLOSE, { fd: r.fd });
      } catch {
        // the handle is gone either way
      }
      this.c.error(k);
      throw new ErrnoError(ENOMEM, "socket: the socket buffer was not mapped");
    }
    const fd = this.newFd();
    this.fds.set(fd, this.fdEntry(fd, got.sock, r.slot, got.ar, r.fd, base, (type & SOCK_NONBLOCK) !== 0, (type & SOCK_CLOEXEC) !== 0));
    return fd;
  }

  private fdEntry(fd: number, sock: SockApp, slot: number, ar: ArenaRec, sysfd: number, type: number, nonblock: boolean, cloexec: boolean): Fd {
    return {
      fd, sock, slot, ar, sysfd, type, nonblock, cloexec, peer: null, opts: new Map(), linger: { onoff: false, linger: 0 },
      listening: false, connecting: false, connected: false, shutRd: false, shutWr: false, peeked: null,
    };
  }

  /** Maps what the answer names (the server's arena on its first socket, new segments) and opens the slot. */
  private attach(server: string, r: SocketReply): { sock: SockApp; ar: ArenaRec } | null {
    const p = this.proc;
    let ar = this.arenas.get(server);
    if (!ar) {
      ar = { name: server, arena: new AppArena(p.grant(r.control).sab), bell: new Int32Array(p.grant(r.bell).sab), attached: new Set() };
      this.arenas.set(server, ar);
    }
    this.attachSegments(ar, r.segments);
    const sock = ar.arena.open(r.slot, r.gen);
    return sock ? { sock, ar } : null;
  }

  private attachSegments(ar: ArenaRec, segs: unknown): void {
    if (!Array.isArray(segs)) return;
    for (let i = 0; i < segs.length; i++) {
      const id = segs[i];
      if (ar.attached.has(i) || typeof id !== "number" || id < 0) continue;
      ar.arena.attachSegment(i, this.proc.grant(id).sab);
      ar.attached.add(i);
    }
  }

  /**
   * A child tcp premapped into a segment this library has not attached yet: the stack
   * granted the segment (through the kernel, asynchronously) when it grew the arena.
   * Wait briefly for that grant, attach it, and open the slot.
   */
  private openLate(ar: ArenaRec, slot: number, gen: number): SockApp | null {
    const { index, attached } = ar.arena.segmentOf(slot);
    if (index < 0 || attached) return null;
    const deadline = performance.now() + 2000;
    for (;;) {
      const g = this.proc.findGrant((x) => x.meta.arena === ar.name && x.meta.role === "segment" && x.meta.index === index);
      if (g) {
        ar.arena.attachSegment(index, g.sab);
        ar.attached.add(index);
        return ar.arena.open(slot, gen);
      }
      if (performance.now() > deadline) return null;
      this.proc.beat();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }

  bind(fd: number, sa: SockAddr): void {
    const k = K.bind;
    this.enter(k);
    const e = this.entry(k, "bind", fd);
    this.checkAddr(k, "bind", fd, sa);
    if (e.sysfd < 0) this.refuse(k, "bind", fd, EINVAL); // an accepted connection is bound
    this.sys(k, "bind", fd, SYS.BIND, { fd: e.sysfd, addr: sa.addr, port: sa.port, reuse: (e.opts.get(`${SOL_SOCKET}:${SO_REUSEADDR}`) ?? 0) !== 0 });
  }

  listen(fd: number, backlog = 4096): void {
    const k = K.listen;
    this.enter(k);
    const e = this.entry(k, "listen", fd);
    if (e.type !== SOCK_STREAM) this.refuse(k, "listen", fd, EOPNOTSUPP);
    if (e.sysfd < 0 || e.connected || e.connecting) this.refuse(k, "listen", fd, EINVAL);
    this.sys(k, "listen", fd, SYS.LISTEN, { fd: e.sysfd, backlog });
    e.listening = true;
  }

  accept(fd: number): Accepted {
    this.enter(K.accept);
    const a = { fd: 0, addr: 0, port: 0 };
    a.fd = this.raise(this.doAccept(K.accept, "accept", fd, 0, a), "accept", fd);
    return a;
  }

  accept4(fd: number, flags: number): Accepted {
    this.enter(K.accept4);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) this.refuse(K.accept4, "accept4", fd, EINVAL);
    const a = { fd: 0, addr: 0, port: 0 };
    a.fd = this.raise(this.doAccept(K.accept4, "accept4", fd, flags, a), "accept4", fd);
    return a;
  }

  tryAccept(fd: number, flags = 0, peer?: SockAddr): number {
    this.enter(K.accept4);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return this.deny(K.accept4, EINVAL);
    return this.doAccept(K.accept4, "accept4", fd, flags, peer ?? null);
  }

  /** accept's work: the new fd (peer in `peer`), or -errno. */
  private doAccept(k: number, what: string, fd: number, flags: number, peer: SockAddr | null): number {
    const e = this.fds.get(fd);
    if (!e) return this.deny(k, EBADF);
    if (e.type !== SOCK_STREAM) return this.deny(k, EOPNOTSUPP);
    if (!e.listening) return this.deny(k, EINVAL);
    const s = e.sock;
    let blocked = false;
    for (;;) {
      this.check(k, e);
      const r = s.takeAccept();
      if (r >= 0) {
        const child = e.ar.arena.open(r, s.acceptGen) ?? this.openLate(e.ar, r, s.acceptGen);
        if (!child) continue; // reset and recycled before we took it: the next one
        const nfd = this.newFd();
        const n = this.fdEntry(nfd, child, r, e.ar, -1, SOCK_STREAM, (flags & SOCK_NONBLOCK) !== 0, (flags & SOCK_CLOEXEC) !== 0);
        n.connected = true;
        this.fds.set(nfd, n);
        if (!blocked) this.ok(k);
        if (peer) [peer.addr, peer.port] = child.peerAddr();
        return nfd;
      }
      if (r !== -EAGAIN) return this.deny(k, -r);
      if (e.nonblock) return this.deny(k, EAGAIN);
      if (!blocked) {
        blocked = true;
        this.sleeping(k);
      }
      this.block(e.ar, e.slot, () => s.readable(), Number.POSITIVE_INFINITY);
    }
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
    this.streamState(e);
    if (e.listening) this.refuse(k, "connect", fd, EINVAL);
    if (e.connected) this.refuse(k, "connect", fd, EISCONN);
    if (e.connecting) this.refuse(k, "connect", fd, EALREADY);
    if (sa.port === 0) this.refuse(k, "connect", fd, EINVAL);
    if (e.nonblock) {
      // §5.5.3: connect by descriptor; the result comes back as an ERROR descriptor
      const r = e.sock.postConnect(sa.addr, sa.port);
      if (r < 0) this.refuse(k, "connect", fd, r === -EAGAIN ? EAGAIN : -r);
      e.connecting = true;
      this.kick(k, e);
      this.refuse(k, "connect", fd, EINPROGRESS);
    }
    if (e.sysfd < 0) this.refuse(k, "connect", fd, EISCONN);
    this.sys(k, "connect", fd, SYS.CONNECT, { fd: e.sysfd, addr: sa.addr, port: sa.port });
    e.connected = true;
  }

  /** Follows a nonblocking connect's progress through the stack's state word. */
  private streamState(e: Fd): void {
    if (!e.connecting) return;
    const st = e.sock.state();
    if (st === ST_CONNECTED) {
      e.connecting = false;
      e.connected = true;
      e.sock.takeError(); // the CONNECT's success (ERROR 0), queued before the state changed
    } else if (st === ST_RESET) e.connecting = false; // failed: the ERROR waits in the ring
    // (ST_OPEN: the stack has not taken the CONNECT yet)
  }

  // ---- data

  /** Reads for every read-like call (blocking unless nonblock). */
  private take(k: number, what: string, e: Fd, buf: Uint8Array, flags: number): number {
    if (e.type === SOCK_DGRAM) return this.takeDatagram(k, what, e, buf, flags);
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    this.streamState(e);
    if (!e.connected && !e.connecting) {
      if (e.sock.state() !== ST_RESET) return this.deny(k, ENOTCONN);
    }
    const s = e.sock;
    let blocked = false;
    for (;;) {
      if (e.peeked) {
        const n = Math.min(buf.length, e.peeked.length);
        buf.set(e.peeked.subarray(0, n));
        if (!(flags & MSG_PEEK)) e.peeked = n === e.peeked.length ? null : e.peeked.slice(n);
        if (!blocked) this.ok(k);
        return n;
      }
      this.check(k, e);
      const r = s.read(buf);
      if (r >= 0) {
        if (!blocked) this.ok(k);
        if (flags & MSG_PEEK && r > 0) e.peeked = buf.slice(0, r);
        return r;
      }
      if (r !== -EAGAIN) {
        return blocked ? this.failed(k, -r) : this.deny(k, -r);
      }
      if (e.shutRd) {
        if (!blocked) this.ok(k);
        return 0; // SHUT_RD: an empty socket reads as end of stream
      }
      if (nb) return this.deny(k, EAGAIN);
      if (!blocked) {
        blocked = true;
        this.sleeping(k);
      }
      this.block(e.ar, e.slot, () => s.readable(), Number.POSITIVE_INFINITY);
    }
  }

  /** One datagram from the RX ring into buf (blocking unless nonblock). */
  private takeDatagram(k: number, what: string, e: Fd, buf: Uint8Array, flags: number): number {
    if (flags & MSG_PEEK) return this.deny(k, EOPNOTSUPP);
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    const s = e.sock;
    let blocked = false;
    for (;;) {
      this.check(k, e);
      const r = s.readDatagram(buf);
      if (r >= 0) {
        if (!blocked) this.ok(k);
        return r;
      }
      if (r !== -EAGAIN) return this.deny(k, -r);
      if (nb) return this.deny(k, EAGAIN);
      if (!blocked) {
        blocked = true;
        this.sleeping(k);
      }
      this.block(e.ar, e.slot, () => s.readable(), Number.POSITIVE_INFINITY);
    }
  }

  /** Writes for every write-like call: a stream takes what fits (all of it when blocking). */
  private put(k: number, what: string, e: Fd, buf: Uint8Array, flags: number, addr: number, port: number): number {
    if (e.type === SOCK_DGRAM) return this.putDatagram(k, what, e, buf, flags, addr, port);
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    const s = e.sock;
    this.streamState(e);
    if (e.shutWr) return this.deny(k, EPIPE);
    if ((s.readinessBits() & ERR) !== 0) {
      // reset: the first call reports why (if the error is still unread), the next EPIPE
      const er = s.takeError();
      return this.deny(k, er > 0 ? er : EPIPE);
    }
    if (!e.connected && !e.connecting) return this.deny(k, e.listening ? ENOTCONN : EPIPE);
    let blocked = false;
    let off = 0;
    const len = buf.length;
    if (len === 0) {
      this.ok(k);
      return 0;
    }
    for (;;) {
      if (e.connecting) {
        this.streamState(e);
        if (!e.connecting && !e.connected) continue; // failed: report it as above on the next round
      }
      const r = e.connecting ? -EAGAIN : s.write(off === 0 ? buf : buf.subarray(off));
      if (r > 0) {
        off += r;
        this.kick(k, e);
        if (off === len || nb) {
          if (!blocked) this.ok(k);
          return off;
        }
        continue;
      }
      if (r !== -EAGAIN) {
        if (off > 0) return off;
        const er = r === -ECONNRESET ? s.takeError() : -r;
        return blocked ? this.failed(k, er > 0 ? er : EPIPE) : this.deny(k, er > 0 ? er : EPIPE);
      }
      if (nb) {
        if (off > 0) {
          this.ok(k);
          return off;
        }
        return this.deny(k, EAGAIN);
      }
      if (!blocked) {
        blocked = true;
        this.sleeping(k);
      }
      if (this.mode === "syscall") this.kick(k, e); // the stack frees room only when asked
      this.block(e.ar, e.slot, () => (e.connecting ? e.sock.state() === ST_CONNECTED || e.sock.state() === ST_RESET : s.writable()), Number.POSITIVE_INFINITY);
      if (e.connecting) this.streamState(e);
      if (!e.connecting && !e.connected) {
        if (off > 0) return off;
        const er = s.takeError();
        return this.failed(k, er > 0 ? er : EPIPE);
      }
    }
  }

  /** One datagram into the TX ring (blocking unless nonblock). */
  private putDatagram(k: number, what: string, e: Fd, buf: Uint8Array, flags: number, addr: number, port: number): number {
    const len = buf.length;
    if (len > MAX_UDP) return this.deny(k, EMSGSIZE);
    if (port === 0) return this.deny(k, EINVAL);
    const nb = e.nonblock || (flags & MSG_DONTWAIT) !== 0;
    const s = e.sock;
    let blocked = false;
    for (;;) {
      const r = s.writeDatagram(buf, addr, port);
      if (r >= 0) {
        if (!blocked) this.ok(k);
        this.kick(k, e);
        return r;
      }
      if (r !== -EAGAIN) return this.deny(k, -r);
      if (nb) return this.deny(k, EAGAIN);
      if (!blocked) {
        blocked = true;
        this.sleeping(k);
      }
      if (this.mode === "syscall") this.kick(k, e);
      this.block(e.ar, e.slot, () => s.txFree() >= len || (s.readinessBits() & (ERR | HUP)) !== 0, Number.POSITIVE_INFINITY);
    }
  }

  private peerOf(k: number, what: string, e: Fd): SockAddr {
    if (e.type === SOCK_STREAM) return { addr: 0, port: 0 }; // unused for streams
    if (!e.peer) this.refuse(k, what, e.fd, EDESTADDRREQ);
    return e.peer;
  }

  read(fd: number, buf: Uint8Array): number {
    this.enter(K.read);
    return this.raise(this.take(K.read, "read", this.entry(K.read, "read", fd), buf, 0), "read", fd);
  }

  write(fd: number, buf: Uint8Array): number {
    const k = K.write;
    this.enter(k);
    const e = this.entry(k, "write", fd);
    const p = this.peerOf(k, "write", e);
    return this.raise(this.put(k, "write", e, buf, 0, p.addr, p.port), "write", fd);
  }

  readv(fd: number, bufs: Uint8Array[]): number {
    const k = K.readv;
    this.enter(k);
    const e = this.entry(k, "readv", fd);
    let total = 0;
    for (const b of bufs) total += b.length;
    const tmp = new Uint8Array(total);
    const n = this.raise(this.take(k, "readv", e, tmp, 0), "readv", fd);
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
    const k = K.writev;
    this.enter(k);
    const e = this.entry(k, "writev", fd);
    const p = this.peerOf(k, "writev", e);
    let total = 0;
    for (const b of bufs) total += b.length;
    const tmp = new Uint8Array(total);
    let off = 0;
    for (const b of bufs) {
      tmp.set(b, off);
      off += b.length;
    }
    return this.raise(this.put(k, "writev", e, tmp, 0, p.addr, p.port), "writev", fd);
  }

  recv(fd: number, buf: Uint8Array, flags = 0): number {
    this.enter(K.recv);
    return this.raise(this.take(K.recv, "recv", this.entry(K.recv, "recv", fd), buf, flags), "recv", fd);
  }

  recvBytes(fd: number, max: number, flags = 0): Uint8Array {
    this.enter(K.recv);
    const buf = new Uint8Array(max);
    const n = this.raise(this.take(K.recv, "recv", this.entry(K.recv, "recv", fd), buf, flags), "recv", fd);
    return n === max ? buf : buf.slice(0, n);
  }

  send(fd: number, buf: Uint8Array, flags = 0): number {
    const k = K.send;
    this.enter(k);
    const e = this.entry(k, "send", fd);
    const p = this.peerOf(k, "send", e);
    return this.raise(this.put(k, "send", e, buf, flags, p.addr, p.port), "send", fd);
  }

  recvfrom(fd: number, buf: Uint8Array, flags = 0): RecvFrom {
    const k = K.recvfrom;
    this.enter(k);
    const e = this.entry(k, "recvfrom", fd);
    const n = this.raise(this.take(k, "recvfrom", e, buf, flags), "recvfrom", fd);
    if (e.type === SOCK_STREAM) return { n, addr: 0, port: 0 };
    return { n, addr: e.sock.fromAddr, port: e.sock.fromPort };
  }

  sendto(fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number {
    const k = K.sendto;
    this.enter(k);
    const e = this.entry(k, "sendto", fd);
    this.checkAddr(k, "sendto", fd, sa);
    return this.raise(this.put(k, "sendto", e, buf, flags, sa.addr, sa.port), "sendto", fd);
  }

  // ---- C-style calls: n >= 0 or -errno, never a throw (the fast path of an event loop)

  tryRecv(fd: number, buf: Uint8Array, flags = 0): number {
    const k = K.recv;
    this.enter(k);
    const e = this.fds.get(fd);
    return e ? this.take(k, "recv", e, buf, flags) : this.deny(k, EBADF);
  }

  trySend(fd: number, buf: Uint8Array, flags = 0): number {
    const k = K.send;
    this.enter(k);
    const e = this.fds.get(fd);
    if (!e) return this.deny(k, EBADF);
    if (e.type === SOCK_DGRAM && !e.peer) return this.deny(k, EDESTADDRREQ);
    return this.put(k, "send", e, buf, flags, e.peer?.addr ?? 0, e.peer?.port ?? 0);
  }

  tryRecvfrom(fd: number, buf: Uint8Array, flags = 0, from?: SockAddr): number {
    const k = K.recvfrom;
    this.enter(k);
    const e = this.fds.get(fd);
    if (!e) return this.deny(k, EBADF);
    const n = this.take(k, "recvfrom", e, buf, flags);
    if (n >= 0 && from) {
      from.addr = e.type === SOCK_DGRAM ? e.sock.fromAddr : 0;
      from.port = e.type === SOCK_DGRAM ? e.sock.fromPort : 0;
    }
    return n;
  }

  shutdown(fd: number, how: number): void {
    const k = K.shutdown;
    this.enter(k);
    const e = this.entry(k, "shutdown", fd);
    if (how !== SHUT_RD && how !== SHUT_WR && how !== SHUT_RDWR) this.refuse(k, "shutdown", fd, EINVAL);
    if (e.type === SOCK_DGRAM) {
      if (!e.peer) this.refuse(k, "shutdown", fd, ENOTCONN);
      this.ok(k); // nothing to do for a datagram socket
      return;
    }
    this.streamState(e);
    if (!e.connected) this.refuse(k, "shutdown", fd, ENOTCONN);
    if (how !== SHUT_WR) e.shutRd = true;
    if (how !== SHUT_RD && !e.shutWr) {
      const r = e.sock.postShutdown(how);
      if (r < 0 && r !== -EAGAIN) {
        if (e.sock.state() !== ST_RESET) this.refuse(k, "shutdown", fd, -r);
      }
      e.shutWr = true;
      this.kick(k, e);
    }
    this.ok(k);
  }

  close(fd: number): void {
    const k = K.close;
    this.enter(k);
    const ep = this.eps.get(fd);
    if (ep) {
      this.eps.delete(fd);
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

  // ---- control

  fcntl(fd: number, cmd: number, arg = 0): number {
    const k = K.fcntl;
    this.enter(k);
    const ep = this.eps.get(fd);
    const e = ep ? null : this.entry(k, "fcntl", fd);
    switch (cmd) {
      case F_GETFL:
        this.ok(k);
        return O_RDWR | (e?.nonblock ? O_NONBLOCK : 0);
      case F_SETFL:
        this.ok(k);
        if (e) e.nonblock = (arg & O_NONBLOCK) !== 0;
        return 0;
      case F_GETFD:
        this.ok(k);
        return (e ? e.cloexec : ep!.cloexec) ? FD_CLOEXEC : 0;
      case F_SETFD:
        this.ok(k);
        if (e) e.cloexec = (arg & FD_CLOEXEC) !== 0;
        else ep!.cloexec = (arg & FD_CLOEXEC) !== 0;
        return 0;
      default:
        this.refuse(k, "fcntl", fd, EINVAL);
    }
  }

  setsockopt(fd: number, level: number, name: number, value: number | Linger): void {
    const k = K.setsockopt;
    this.enter(k);
    const e = this.entry(k, "setsockopt", fd);
    if (level === SOL_SOCKET && name === SO_LINGER) {
      if (typeof value !== "object" || value === null) this.refuse(k, "setsockopt", fd, EINVAL);
      e.linger = { onoff: !!value.onoff, linger: Math.max(0, Math.trunc(value.linger)) };
      this.ok(k);
      return;
    }
    if (typeof value !== "number") this.refuse(k, "setsockopt", fd, EINVAL);
    const ring = ringOption(level, name, value);
    if (ring) {
      // the socket gets rings of the new size (the stack's system call; EBUSY with data in flight)
      if (!Number.isFinite(value) || value <= 0) this.refuse(k, "setsockopt", fd, EINVAL);
      const r = this.sys(k, "setsockopt", fd, SYS.SOCK_RESIZE, { server: e.ar.name, slot: e.slot, ...ring }) as { segments?: unknown };
      this.attachSegments(e.ar, r?.segments);
      const sock = e.ar.arena.open(e.slot, e.sock.gen);
      if (!sock) {
        this.c.error(k);
        throw new ErrnoError(EBADF, `setsockopt(${fd}): the resized socket buffer is gone`);
      }
      e.sock = sock;
      return;
    }
    if (e.type === SOCK_STREAM && ((level === IPPROTO_TCP && name === TCP_NODELAY) || (level === SOL_SOCKET && name === SO_KEEPALIVE))) {
      // the connection's own behaviour: the stack is told (a system call, as on Linux)
      const on = value !== 0;
      this.sys(k, "setsockopt", fd, SYS.SOCK_OPT, { server: e.ar.name, slot: e.slot, ...(name === TCP_NODELAY && level === IPPROTO_TCP ? { nodelay: on } : { keepalive: on }) });
    } else this.ok(k);
    e.opts.set(`${level}:${name}`, value);
  }

  getsockopt(fd: number, level: typeof SOL_SOCKET, name: typeof SO_LINGER): Linger;
  getsockopt(fd: number, level: number, name: number): number;
  getsockopt(fd: number, level: number, name: number): number | Linger {
    const k = K.getsockopt;
    this.enter(k);
    const e = this.entry(k, "getsockopt", fd);
    this.ok(k);
    if (level === SOL_SOCKET) {
      switch (name) {
        case SO_LINGER:
          return { ...e.linger };
        case SO_TYPE:
          return e.type;
        case SO_ACCEPTCONN:
          return e.listening ? 1 : 0;
        case SO_ERROR:
          return this.soError(e);
        case SO_SNDBUF:
          return e.sock.geometry().txData;
        case SO_RCVBUF:
          return e.sock.geometry().rxData;
      }
    }
    if (level === SOL_NEWTS && name === NEWTS_TX_SLOTS) return e.sock.geometry().txSlots;
    if (level === SOL_NEWTS && name === NEWTS_RX_SLOTS) return e.sock.geometry().rxSlots;
    return e.opts.get(`${level}:${name}`) ?? 0;
  }

  /** SO_ERROR: a connect's result or a reset's errno, consumed (0 when none is pending). */
  private soError(e: Fd): number {
    if (e.type !== SOCK_STREAM) return 0;
    const s = e.sock;
    if (!e.connecting && (s.readinessBits() & ERR) === 0) return 0;
    const er = s.takeError();
    this.streamState(e);
    if (er === 0) {
      e.connecting = false;
      e.connected = true;
    }
    return er > 0 ? er : 0;
  }

  getsockname(fd: number): SockAddr {
    const k = K.getsockname;
    this.enter(k);
    const e = this.entry(k, "getsockname", fd);
    if (e.type === SOCK_STREAM) {
      this.ok(k);
      const [addr, port] = e.sock.localAddr();
      return { addr, port };
    }
    const r = this.sys(k, "getsockname", fd, SYS.GETSOCKNAME, { fd: e.sysfd }) as SockAddr;
    return { addr: r.addr >>> 0, port: r.port };
  }

  getpeername(fd: number): SockAddr {
    const k = K.getpeername;
    this.enter(k);
    const e = this.entry(k, "getpeername", fd);
    if (e.type === SOCK_STREAM) {
      this.streamState(e);
      if (!e.connected) this.refuse(k, "getpeername", fd, ENOTCONN);
      this.ok(k);
      const [addr, port] = e.sock.peerAddr();
      return { addr, port };
    }
    if (!e.peer) this.refuse(k, "getpeername", fd, ENOTCONN);
    this.ok(k);
    return { ...e.peer };
  }

  // ---- readiness

  /** revents of one fd for `events`, from the rings and the readiness word (arms the want words when not ready). */
  private revents(k: number, fd: number, events: number): number {
    const e = this.fds.get(fd);
    if (!e) return POLLNVAL;
    const s = e.sock;
    if (this.mode === "syscall") this.check(k, e);
    let r = 0;
    const bits = s.readinessBits();
    if (e.type === SOCK_DGRAM) {
      const rd = s.readable();
      if (rd && s.peekKind() === KIND_ERROR) r |= POLLERR; // an ICMP error waits (ECONNREFUSED, ...)
      else if (events & POLLIN && rd) r |= POLLIN;
      if (events & POLLOUT && s.writable()) r |= POLLOUT;
      if (bits & ERR) r |= POLLERR;
      if (bits & HUP) r |= POLLHUP;
      return r;
    }
    this.streamState(e);
    const rd = s.readable();
    if (e.listening) return events & POLLIN && rd ? POLLIN : 0;
    if (rd && s.peekKind() === KIND_ERROR && !e.connecting) {
      // a reset's ERROR is in the ring (its readiness bits may trail it by a moment)
      return POLLERR | POLLHUP | (events & (POLLIN | POLLOUT | POLLRDHUP));
    }
    if (!e.connected && !e.connecting && (bits & ERR) === 0) return POLLHUP | (events & POLLOUT ? POLLOUT : 0); // never connected
    if (events & POLLIN && (rd || e.peeked || e.shutRd)) r |= POLLIN;
    if (events & POLLOUT && !e.connecting && (e.shutWr || s.writable())) r |= POLLOUT;
    if (bits & ERR) r |= POLLERR | POLLHUP | (events & (POLLOUT | POLLIN | POLLRDHUP)); // reset: both directions are shut
    if (bits & HUP) r |= POLLHUP;
    if (bits & RDHUP) {
      if (events & POLLRDHUP) r |= POLLRDHUP;
      if (events & POLLIN) r |= POLLIN;
      if (e.shutWr) r |= POLLHUP;
    }
    return r;
  }

  /** The arena a sleep over these fds waits on, and whether they span several (short sleeps). */
  private arenaOf(fds: Iterable<number>): { ar: ArenaRec | null; mixed: boolean } {
    let ar: ArenaRec | null = null;
    for (const fd of fds) {
      const e = this.fds.get(fd);
      if (!e) continue;
      if (ar && ar !== e.ar) return { ar, mixed: true };
      ar = e.ar;
    }
    return { ar, mixed: false };
  }

  /** Fills out[] for fds; how many are ready. */
  private scan(k: number, fds: PollFd[], out: number[]): number {
    let n = 0;
    for (let i = 0; i < fds.length; i++) {
      out[i] = this.revents(k, fds[i]!.fd, fds[i]!.events);
      if (out[i] !== 0) n++;
    }
    return n;
  }

  private doPoll(k: number, fds: PollFd[], timeoutMs: number): number[] {
    const out = new Array<number>(fds.length).fill(0);
    if (this.scan(k, fds, out) > 0 || timeoutMs === 0) {
      this.ok(k);
      return out;
    }
    this.sleeping(k);
    const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
    const { ar, mixed } = this.arenaOf(fds.map((p) => p.fd));
    this.block(ar, -1, () => this.scan(k, fds, out) > 0, deadline, mixed || this.mode === "syscall");
    return out;
  }

  select(readfds: Iterable<number>, writefds: Iterable<number>, timeoutMs: number): SelectResult {
    const k = K.select;
    this.enter(k);
    const want = new Map<number, number>();
    for (const fd of readfds) want.set(fd, (want.get(fd) ?? 0) | POLLIN);
    for (const fd of writefds) want.set(fd, (want.get(fd) ?? 0) | POLLOUT);
    const fds: PollFd[] = [];
    for (const [fd, events] of want) {
      if (!this.fds.has(fd)) this.refuse(k, "select", fd, EBADF);
      fds.push({ fd, events });
    }
    const rev = this.doPoll(k, fds, timeoutMs);
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
    this.enter(K.poll);
    return this.doPoll(K.poll, fds, timeoutMs);
  }

  epoll_create1(flags = 0): number {
    const k = K.epoll_create1;
    this.enter(k);
    if (flags & ~SOCK_CLOEXEC) this.refuse(k, "epoll_create1", -1, EINVAL);
    const fd = this.newFd();
    this.eps.set(fd, { fd, cloexec: (flags & SOCK_CLOEXEC) !== 0, interest: new Map() });
    this.ok(k);
    return fd;
  }

  epoll_ctl(epfd: number, op: number, fd: number, events = 0, data?: number): void {
    const k = K.epoll_ctl;
    this.enter(k);
    const ep = this.eps.get(epfd);
    if (!ep) this.refuse(k, "epoll_ctl", epfd, this.fds.has(epfd) ? EINVAL : EBADF);
    if (fd === epfd) this.refuse(k, "epoll_ctl", epfd, EINVAL);
    if (!this.fds.has(fd)) this.refuse(k, "epoll_ctl", fd, this.eps.has(fd) ? EOPNOTSUPP : EBADF);
    const have = ep.interest.get(fd);
    switch (op) {
      case EPOLL_CTL_ADD:
        if (have) this.refuse(k, "epoll_ctl", fd, EEXIST);
        ep.interest.set(fd, { events, data: data ?? fd, lastRev: 0, lastArr: -1 });
        break;
      case EPOLL_CTL_MOD:
        if (!have) this.refuse(k, "epoll_ctl", fd, ENOENT);
        have.events = events;
        have.data = data ?? fd;
        have.lastRev = 0;
        have.lastArr = -1;
        break;
      case EPOLL_CTL_DEL:
        if (!have) this.refuse(k, "epoll_ctl", fd, ENOENT);
        ep.interest.delete(fd);
        break;
      default:
        this.refuse(k, "epoll_ctl", fd, EINVAL);
    }
    this.ok(k);
  }

  /** One sweep of an interest set into out (at most max); how many. */
  private sweep(k: number, ep: Epoll, max: number, out: EpollEvent[]): number {
    out.length = 0;
    for (const [fd, it] of ep.interest) {
      if (out.length >= max) break;
      const want = it.events & ~(EPOLLET | EPOLLONESHOT);
      if (want === 0 && (it.events & EPOLLONESHOT) !== 0) continue; // disarmed
      const rev = this.revents(k, fd, want | EPOLL_MASK) & (want | EPOLL_MASK);
      if (rev === 0) {
        it.lastRev = 0;
        continue;
      }
      if (it.events & EPOLLET) {
        const arr = this.fds.get(fd)!.sock.rxArrivals();
        if (rev === it.lastRev && arr === it.lastArr) continue; // nothing new since the last report
        it.lastRev = rev;
        it.lastArr = arr;
      }
      if (it.events & EPOLLONESHOT) it.events = EPOLLONESHOT;
      out.push({ data: it.data, events: rev });
    }
    return out.length;
  }

  epoll_wait(epfd: number, max: number, timeoutMs: number): EpollEvent[] {
    const k = K.epoll_wait;
    this.enter(k);
    const ep = this.eps.get(epfd);
    if (!ep) this.refuse(k, "epoll_wait", epfd, this.fds.has(epfd) ? EINVAL : EBADF);
    if (!(max > 0)) this.refuse(k, "epoll_wait", epfd, EINVAL);
    const out: EpollEvent[] = [];
    if (this.sweep(k, ep, max, out) > 0 || timeoutMs === 0) {
      this.ok(k);
      return out;
    }
    this.sleeping(k);
    const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
    const { ar, mixed } = this.arenaOf(ep.interest.keys());
    // The sweep consumes edges (EPOLLET, EPOLLONESHOT): once it found events, they are the
    // answer; a second look (the sleep re-checks ready()) must not sweep them away.
    let found = false;
    const ready = () => found || (found = this.sweep(k, ep, max, out) > 0);
    this.block(ar, -1, ready, deadline, mixed || this.mode === "syscall");
    return out;
  }
}
