// libc's Linux backend: the SocketApi (libc/api.ts) over the host kernel's sockets through
// bun:ffi, so the application code that runs on newts can run, unchanged, on Linux and be
// measured beside it. Every call is a system call here (counted in stats(), libc/counters.ts:
// inside a newts process in its PCB, where `ctl stats` reads them).
//
// Blocking calls block the calling thread (a Bun worker) in the host kernel, as in a C
// program. IPv4 only: socket() refuses any family but AF_INET with EAFNOSUPPORT.
//
// How the calls map onto libc:
//   - write/send/sendto use send(2)/sendto(2) with MSG_NOSIGNAL, and writev uses sendmsg(2)
//     with MSG_NOSIGNAL, so writing to a reset or shut down stream throws EPIPE instead of
//     raising SIGPIPE (Bun ignores SIGPIPE today, but an embedder may not). write/writev on a
//     non-socket fd (ENOTSOCK) fall back to write(2)/writev(2);
//   - accept is accept4(fd, .., 0); select is poll(2) (no FD_SETSIZE limit); readv is readv(2);
//   - EINTR (the runtime's own signals, e.g. JSC's thread suspension) is retried inside: poll
//     and epoll_wait with the time left, a blocking connect by waiting for POLLOUT and then
//     reading SO_ERROR; close is never retried (Linux has closed the fd anyway);
//   - counters: each system call, retries included, is counted against the call that made
//     it; a call refused before any system call (bad address, bad option) counts as
//     resolved in user space. Linux does not say whether poll slept, so a select, poll or
//     epoll_wait with a timeout other than 0 counts as blocked when it returns nothing
//     ready (it slept out its timeout) or returns after SLEPT_MS or more (it slept until an
//     event: a poll that finds an fd ready returns in about a microsecond).
//
// Bun ffi pitfalls (see also drivers/backends/libc.ts):
//   - ssize_t returns are declared i32: the kernel caps one read/write at MAX_RW_COUNT
//     (0x7ffff000), so every count fits, and -1 stays -1;
//   - size_t arguments are u64; fcntl's variadic third argument is declared as a fixed i64,
//     so the whole register is defined (glibc reads it with va_arg(ap, void *));
//   - a TypedArray passed as a `ptr` argument points at its first element (byteOffset is
//     respected, so subarrays work); an empty one is accepted as an argument, but
//     `ptr(empty)` throws, so iovecs of empty buffers carry a null pointer;
//   - errno is per thread: __errno_location() is called once per instance and read with
//     read.i32 right after the failed call, before anything else can run on the thread. An
//     instance belongs to the thread that made it (JS objects cannot cross workers anyway);
//   - struct epoll_event is packed on x86-64 (12 bytes), naturally aligned on arm64 (16);
//   - libc is loaded by lib/sys/ffi.ts's libcLoader: the first dlopen of a thread takes the
//     machine's dlopen lock.
import { FFIType, type Pointer, ptr as addressOf, read as peek } from "bun:ffi";
import { libcLoader } from "../lib/sys/ffi.ts";
import { EAFNOSUPPORT, EAGAIN, EBADF, EINPROGRESS, EINTR, EINVAL, ENOTSOCK, ErrnoError } from "../lib/sys/errno.ts";
import { CALLS, K, processCounters, type SockCounters } from "./counters.ts";
import {
  AF_INET,
  type Accepted,
  type EpollEvent,
  type Linger,
  MSG_NOSIGNAL,
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
  SOL_SOCKET,
  SOMAXCONN,
} from "./api.ts";

const { i32, u32, i64, u64, ptr } = FFIType;

/** Loads libc once per thread; `lock` is the machine's dlopen lock (cell 0), null where no other thread can be loading. */
const loadLibc = libcLoader({
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  listen: { args: [i32, i32], returns: i32 },
  accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
  connect: { args: [i32, ptr, u32], returns: i32 },
  // ssize_t returns read as i32 (see the header).
  read: { args: [i32, ptr, u64], returns: i32 },
  write: { args: [i32, ptr, u64], returns: i32 },
  readv: { args: [i32, ptr, i32], returns: i32 },
  writev: { args: [i32, ptr, i32], returns: i32 },
  recv: { args: [i32, ptr, u64, i32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: i32 },
  recvfrom: { args: [i32, ptr, u64, i32, ptr, ptr], returns: i32 },
  sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i32 },
  sendmsg: { args: [i32, ptr, i32], returns: i32 },
  shutdown: { args: [i32, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  fcntl: { args: [i32, i32, i64], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
  getsockname: { args: [i32, ptr, ptr], returns: i32 },
  getpeername: { args: [i32, ptr, ptr], returns: i32 },
  poll: { args: [ptr, u64, i32], returns: i32 },
  epoll_create1: { args: [i32], returns: i32 },
  epoll_ctl: { args: [i32, i32, i32, ptr], returns: i32 },
  epoll_wait: { args: [i32, ptr, i32, i32], returns: i32 },
  __errno_location: { args: [], returns: ptr },
});

type Libc = ReturnType<typeof loadLibc>;

const SOCKADDR_IN_LEN = 16;
const IOV_LEN = 16; // struct iovec { void *base; size_t len; }
const MSGHDR_LEN = 56; // struct msghdr on 64-bit Linux
/** struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16). */
const EV_SIZE = process.arch === "x64" ? 12 : 16;
const EV_DATA = process.arch === "x64" ? 4 : 8;
const TWO32 = 2 ** 32;
/** A select/poll/epoll_wait that took this long slept (see the header). */
const SLEPT_MS = 0.05;

export interface LinuxSocketsOptions {
  /** The machine's dlopen lock (an Int32Array whose cell 0 is the lock); omit where no other thread can be loading libc. */
  lock?: Int32Array | null;
  /** Where to count (default: processCounters("linux"): the PCB's area if this is the process's first backend). */
  counters?: SockCounters;
}

/** The socket API over the host kernel. One instance per thread (errno is per thread). */
export class LinuxSockets implements SocketApi {
  readonly backend = "linux";
  private readonly c: Libc;
  private readonly errnoAt: Pointer;
  /** The call counters (libc/counters.ts). */
  readonly counters: SockCounters;
  // Scratch structs, reused by every call (calls are synchronous).
  private readonly sa = new Uint8Array(SOCKADDR_IN_LEN);
  private readonly saView = new DataView(this.sa.buffer);
  private readonly saLen = new Uint32Array(1);
  private readonly opt = new Int32Array(2);
  private readonly optLen = new Uint32Array(1);
  private readonly ev = new Uint8Array(16);
  private readonly evView = new DataView(this.ev.buffer);
  private readonly msg = new Uint8Array(MSGHDR_LEN);
  private readonly msgView = new DataView(this.msg.buffer);
  private iov = new Uint8Array(IOV_LEN * 8);
  private iovView = new DataView(this.iov.buffer);
  private pfd = new Uint8Array(8 * 16);
  private pfdView = new DataView(this.pfd.buffer);
  private events = new Uint8Array(EV_SIZE * 64);
  private eventsView = new DataView(this.events.buffer);

  constructor(opts: LinuxSocketsOptions = {}) {
    this.c = loadLibc(opts.lock ?? null);
    const at = this.c.__errno_location() as Pointer | null;
    if (at === null) throw new Error("libc: __errno_location returned NULL");
    this.errnoAt = at;
    this.counters = opts.counters ?? processCounters(this.backend);
  }

  // ---- bookkeeping

  private errno(): number {
    return peek.i32(this.errnoAt, 0);
  }

  /** Counts call k's failure and throws its errno (read now, before anything else runs). */
  private fail(k: number, fd: number, e = this.errno()): never {
    if (e === EAGAIN || e === EINPROGRESS) this.counters.again(k);
    else this.counters.error(k);
    throw new ErrnoError(e, `${CALLS[k]}(${fd})`);
  }

  /** Call k refused before any system call. */
  private refuse(k: number, fd: number, e: number): never {
    this.counters.user(k);
    this.counters.error(k);
    throw new ErrnoError(e, `${CALLS[k]}(${fd})`);
  }

  stats(): SocketStats {
    return this.counters.snapshot();
  }

  resetStats(): void {
    this.counters.reset();
  }

  // ---- struct sockaddr_in: family (native u16), port (BE), addr (BE), zero[8]

  private putAddr(k: number, fd: number, a: SockAddr): Uint8Array {
    const { addr, port } = a;
    if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff || !Number.isInteger(port) || port < 0 || port > 65535) {
      this.refuse(k, fd, EINVAL);
    }
    const v = this.saView;
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port);
    v.setUint32(4, addr);
    v.setUint32(8, 0);
    v.setUint32(12, 0);
    return this.sa;
  }

  /** The address the kernel left in `sa` (0.0.0.0:0 where it gave none or not an IPv4 one). */
  private getAddr(): SockAddr {
    const v = this.saView;
    if (this.saLen[0]! < 8 || v.getUint16(0, true) !== AF_INET) return { addr: 0, port: 0 };
    return { addr: v.getUint32(4), port: v.getUint16(2) };
  }

  // ---- setup

  socket(domain: number, type: number, protocol = 0): number {
    this.counters.call(K.socket);
    if (domain !== AF_INET) this.refuse(K.socket, -1, EAFNOSUPPORT);
    this.counters.sys(K.socket);
    const fd = this.c.socket(domain, type, protocol);
    if (fd < 0) this.fail(K.socket, -1);
    return fd;
  }

  bind(fd: number, sa: SockAddr): void {
    this.counters.call(K.bind);
    const s = this.putAddr(K.bind, fd, sa);
    this.counters.sys(K.bind);
    if (this.c.bind(fd, s, SOCKADDR_IN_LEN) < 0) this.fail(K.bind, fd);
  }

  listen(fd: number, backlog = SOMAXCONN): void {
    this.counters.call(K.listen);
    this.counters.sys(K.listen);
    if (this.c.listen(fd, backlog) < 0) this.fail(K.listen, fd);
  }

  accept(fd: number): Accepted {
    this.counters.call(K.accept);
    return this.doAccept(K.accept, fd, 0);
  }

  accept4(fd: number, flags: number): Accepted {
    this.counters.call(K.accept4);
    return this.doAccept(K.accept4, fd, flags);
  }

  private doAccept(k: number, fd: number, flags: number): Accepted {
    const a = { fd: 0, addr: 0, port: 0 };
    a.fd = this.raise(k, fd, this.sysAccept(k, fd, flags, a));
    return a;
  }

  connect(fd: number, sa: SockAddr): void {
    this.counters.call(K.connect);
    const s = this.putAddr(K.connect, fd, sa);
    this.counters.sys(K.connect);
    if (this.c.connect(fd, s, SOCKADDR_IN_LEN) === 0) return;
    const e = this.errno();
    if (e !== EINTR) this.fail(K.connect, fd, e);
    // A blocking connect interrupted by a signal goes on in the background: wait for it.
    for (;;) {
      this.writePollFd(0, fd, POLLOUT);
      this.counters.sys(K.connect);
      const n = this.c.poll(this.pfd, 1, -1);
      if (n < 0 && this.errno() === EINTR) continue;
      if (n < 0) this.fail(K.connect, fd);
      break;
    }
    this.counters.sys(K.connect);
    const r = this.intOpt(fd, SOL_SOCKET, SO_ERROR);
    if (r < 0) this.fail(K.connect, fd);
    if (this.opt[0] !== 0) this.fail(K.connect, fd, this.opt[0]!);
  }

  // ---- data

  read(fd: number, buf: Uint8Array): number {
    this.counters.call(K.read);
    let n: number;
    do {
      this.counters.sys(K.read);
      n = this.c.read(fd, buf, buf.length);
    } while (n < 0 && this.errno() === EINTR);
    if (n < 0) this.fail(K.read, fd);
    return n;
  }

  write(fd: number, buf: Uint8Array): number {
    this.counters.call(K.write);
    let n: number;
    let e = 0;
    do {
      this.counters.sys(K.write);
      n = this.c.send(fd, buf, buf.length, MSG_NOSIGNAL);
    } while (n < 0 && (e = this.errno()) === EINTR);
    if (n < 0 && e === ENOTSOCK) {
      // Not a socket: plain write(2) (SIGPIPE is the runtime's business there).
      do {
        this.counters.sys(K.write);
        n = this.c.write(fd, buf, buf.length);
      } while (n < 0 && (e = this.errno()) === EINTR);
    }
    if (n < 0) this.fail(K.write, fd, e);
    return n;
  }

  readv(fd: number, bufs: Uint8Array[]): number {
    this.counters.call(K.readv);
    const iov = this.fillIov(bufs);
    let n: number;
    do {
      this.counters.sys(K.readv);
      n = this.c.readv(fd, iov, bufs.length);
    } while (n < 0 && this.errno() === EINTR);
    if (n < 0) this.fail(K.readv, fd);
    return n;
  }

  writev(fd: number, bufs: Uint8Array[]): number {
    this.counters.call(K.writev);
    const iov = this.fillIov(bufs);
    // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }: only the iovec is set.
    const m = this.msgView;
    this.msg.fill(0);
    const p = addressOf(iov);
    m.setUint32(16, p % TWO32, true);
    m.setUint32(20, Math.floor(p / TWO32), true);
    m.setUint32(24, bufs.length, true);
    let n: number;
    let e = 0;
    do {
      this.counters.sys(K.writev);
      n = this.c.sendmsg(fd, this.msg, MSG_NOSIGNAL);
    } while (n < 0 && (e = this.errno()) === EINTR);
    if (n < 0 && e === ENOTSOCK) {
      do {
        this.counters.sys(K.writev);
        n = this.c.writev(fd, iov, bufs.length);
      } while (n < 0 && (e = this.errno()) === EINTR);
    }
    if (n < 0) this.fail(K.writev, fd, e);
    return n;
  }

  /** struct iovec[] for bufs, in the scratch area (grown as needed). */
  private fillIov(bufs: Uint8Array[]): Uint8Array {
    const need = Math.max(1, bufs.length) * IOV_LEN;
    if (this.iov.length < need) {
      this.iov = new Uint8Array(need * 2);
      this.iovView = new DataView(this.iov.buffer);
    }
    const v = this.iovView;
    for (let i = 0; i < bufs.length; i++) {
      const b = bufs[i]!;
      const p = b.length > 0 ? addressOf(b) : 0; // ptr() refuses empty views
      v.setUint32(i * IOV_LEN, p % TWO32, true);
      v.setUint32(i * IOV_LEN + 4, Math.floor(p / TWO32), true);
      v.setUint32(i * IOV_LEN + 8, b.length, true);
      v.setUint32(i * IOV_LEN + 12, 0, true);
    }
    return this.iov;
  }

  recv(fd: number, buf: Uint8Array, flags = 0): number {
    this.counters.call(K.recv);
    return this.doRecv(fd, buf, flags);
  }

  recvBytes(fd: number, max: number, flags = 0): Uint8Array {
    this.counters.call(K.recv);
    const buf = new Uint8Array(max);
    const n = this.doRecv(fd, buf, flags);
    return n === max ? buf : buf.slice(0, n);
  }

  private doRecv(fd: number, buf: Uint8Array, flags: number): number {
    return this.raise(K.recv, fd, this.sysRecv(fd, buf, flags));
  }

  send(fd: number, buf: Uint8Array, flags = 0): number {
    this.counters.call(K.send);
    return this.raise(K.send, fd, this.sysSend(fd, buf, flags));
  }

  recvfrom(fd: number, buf: Uint8Array, flags = 0): RecvFrom {
    this.counters.call(K.recvfrom);
    const r = { n: 0, addr: 0, port: 0 };
    r.n = this.raise(K.recvfrom, fd, this.sysRecvfrom(fd, buf, flags, r));
    return r;
  }

  // ---- C-style calls: n >= 0 or -errno, never a throw (the fast path of an event loop)

  /** Counts call k's failure and returns -errno. */
  private code(k: number, e = this.errno()): number {
    if (e === EAGAIN || e === EINPROGRESS) this.counters.again(k);
    else this.counters.error(k);
    return -e;
  }

  /** A result of the sys* calls below: n through, -errno thrown (already counted). */
  private raise(k: number, fd: number, r: number): number {
    if (r < 0) throw new ErrnoError(-r, `${CALLS[k]}(${fd})`);
    return r;
  }

  // The host calls, retried on EINTR, each counted; n >= 0 or -errno (counted).
  private sysRecv(fd: number, buf: Uint8Array, flags: number): number {
    let n: number;
    do {
      this.counters.sys(K.recv);
      n = this.c.recv(fd, buf, buf.length, flags);
    } while (n < 0 && this.errno() === EINTR);
    return n < 0 ? this.code(K.recv) : n;
  }

  private sysSend(fd: number, buf: Uint8Array, flags: number): number {
    let n: number;
    do {
      this.counters.sys(K.send);
      n = this.c.send(fd, buf, buf.length, flags | MSG_NOSIGNAL);
    } while (n < 0 && this.errno() === EINTR);
    return n < 0 ? this.code(K.send) : n;
  }

  private sysRecvfrom(fd: number, buf: Uint8Array, flags: number, from?: SockAddr): number {
    let n: number;
    do {
      this.counters.sys(K.recvfrom);
      this.saLen[0] = SOCKADDR_IN_LEN;
      n = this.c.recvfrom(fd, buf, buf.length, flags, this.sa, this.saLen);
    } while (n < 0 && this.errno() === EINTR);
    if (n < 0) return this.code(K.recvfrom);
    if (from) {
      const a = this.getAddr();
      from.addr = a.addr;
      from.port = a.port;
    }
    return n;
  }

  private sysAccept(k: number, fd: number, flags: number, peer?: SockAddr): number {
    let nfd: number;
    do {
      this.counters.sys(k);
      this.saLen[0] = SOCKADDR_IN_LEN;
      nfd = this.c.accept4(fd, this.sa, this.saLen, flags);
    } while (nfd < 0 && this.errno() === EINTR);
    if (nfd < 0) return this.code(k);
    if (peer) {
      const a = this.getAddr();
      peer.addr = a.addr;
      peer.port = a.port;
    }
    return nfd;
  }

  tryRecv(fd: number, buf: Uint8Array, flags = 0): number {
    this.counters.call(K.recv);
    return this.sysRecv(fd, buf, flags);
  }

  trySend(fd: number, buf: Uint8Array, flags = 0): number {
    this.counters.call(K.send);
    return this.sysSend(fd, buf, flags);
  }

  tryRecvfrom(fd: number, buf: Uint8Array, flags = 0, from?: SockAddr): number {
    this.counters.call(K.recvfrom);
    return this.sysRecvfrom(fd, buf, flags, from);
  }

  tryAccept(fd: number, flags = 0, peer?: SockAddr): number {
    this.counters.call(K.accept4);
    return this.sysAccept(K.accept4, fd, flags, peer);
  }

  sendto(fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number {
    this.counters.call(K.sendto);
    const s = this.putAddr(K.sendto, fd, sa);
    let n: number;
    do {
      this.counters.sys(K.sendto);
      n = this.c.sendto(fd, buf, buf.length, flags | MSG_NOSIGNAL, s, SOCKADDR_IN_LEN);
    } while (n < 0 && this.errno() === EINTR);
    if (n < 0) this.fail(K.sendto, fd);
    return n;
  }

  shutdown(fd: number, how: number): void {
    this.counters.call(K.shutdown);
    this.counters.sys(K.shutdown);
    if (this.c.shutdown(fd, how) < 0) this.fail(K.shutdown, fd);
  }

  close(fd: number): void {
    this.counters.call(K.close);
    this.counters.sys(K.close);
    // Never retried: after EINTR Linux has released the fd, and it may already be someone else's.
    if (this.c.close(fd) < 0 && this.errno() !== EINTR) this.fail(K.close, fd);
  }

  // ---- control

  fcntl(fd: number, cmd: number, arg = 0): number {
    this.counters.call(K.fcntl);
    this.counters.sys(K.fcntl);
    const r = this.c.fcntl(fd, cmd, arg);
    if (r < 0) this.fail(K.fcntl, fd);
    return r;
  }

  setsockopt(fd: number, level: number, name: number, value: number | Linger): void {
    this.counters.call(K.setsockopt);
    const o = this.opt;
    let len = 4;
    if (typeof value === "number") {
      if (level === SOL_SOCKET && name === SO_LINGER) this.refuse(K.setsockopt, fd, EINVAL);
      o[0] = value;
    } else {
      if (level !== SOL_SOCKET || name !== SO_LINGER) this.refuse(K.setsockopt, fd, EINVAL);
      o[0] = value.onoff ? 1 : 0;
      o[1] = value.linger;
      len = 8;
    }
    this.counters.sys(K.setsockopt);
    if (this.c.setsockopt(fd, level, name, o, len) < 0) this.fail(K.setsockopt, fd);
  }

  getsockopt(fd: number, level: typeof SOL_SOCKET, name: typeof SO_LINGER): Linger;
  getsockopt(fd: number, level: number, name: number): number;
  getsockopt(fd: number, level: number, name: number): number | Linger {
    this.counters.call(K.getsockopt);
    this.counters.sys(K.getsockopt);
    if (this.intOpt(fd, level, name) < 0) this.fail(K.getsockopt, fd);
    if (level === SOL_SOCKET && name === SO_LINGER) return { onoff: this.opt[0] !== 0, linger: this.opt[1]! };
    return this.opt[0]!;
  }

  /** getsockopt(2) into opt (8 bytes: an int, or a struct linger); the raw return. */
  private intOpt(fd: number, level: number, name: number): number {
    this.opt[0] = 0;
    this.opt[1] = 0;
    this.optLen[0] = 8;
    return this.c.getsockopt(fd, level, name, this.opt, this.optLen);
  }

  getsockname(fd: number): SockAddr {
    this.counters.call(K.getsockname);
    this.counters.sys(K.getsockname);
    this.saLen[0] = SOCKADDR_IN_LEN;
    if (this.c.getsockname(fd, this.sa, this.saLen) < 0) this.fail(K.getsockname, fd);
    return this.getAddr();
  }

  getpeername(fd: number): SockAddr {
    this.counters.call(K.getpeername);
    this.counters.sys(K.getpeername);
    this.saLen[0] = SOCKADDR_IN_LEN;
    if (this.c.getpeername(fd, this.sa, this.saLen) < 0) this.fail(K.getpeername, fd);
    return this.getAddr();
  }

  // ---- readiness

  /** struct pollfd { int fd; short events; short revents; } number i of the scratch array (grown as needed). */
  private writePollFd(i: number, fd: number, events: number): void {
    if (this.pfd.length < (i + 1) * 8) {
      const grown = new Uint8Array(Math.max((i + 1) * 8, this.pfd.length * 2));
      grown.set(this.pfd);
      this.pfd = grown;
      this.pfdView = new DataView(grown.buffer);
    }
    this.pfdView.setInt32(i * 8, fd, true);
    this.pfdView.setInt16(i * 8 + 4, events, true);
    this.pfdView.setInt16(i * 8 + 6, 0, true);
  }

  private revents(i: number): number {
    return this.pfdView.getUint16(i * 8 + 6, true);
  }

  /** poll(2) over the first n scratch pollfds for call k, retrying EINTR with the time left; the raw count. */
  private doPoll(k: number, n: number, timeoutMs: number): number {
    const forever = timeoutMs < 0;
    const t0 = timeoutMs !== 0 ? performance.now() : 0;
    const deadline = forever ? 0 : t0 + timeoutMs;
    let t = forever ? -1 : Math.ceil(timeoutMs);
    for (;;) {
      this.counters.sys(k);
      const r = this.c.poll(this.pfd, n, t);
      if (r >= 0) {
        if (timeoutMs !== 0 && (r === 0 || performance.now() - t0 >= SLEPT_MS)) this.counters.block(k);
        return r;
      }
      const e = this.errno();
      if (e !== EINTR) this.fail(k, n > 0 ? this.pfdView.getInt32(0, true) : -1, e);
      if (!forever) t = Math.max(0, Math.ceil(deadline - performance.now()));
    }
  }

  select(readfds: Iterable<number>, writefds: Iterable<number>, timeoutMs: number): SelectResult {
    this.counters.call(K.select);
    const want = new Map<number, number>();
    for (const fd of readfds) want.set(fd, (want.get(fd) ?? 0) | POLLIN);
    for (const fd of writefds) want.set(fd, (want.get(fd) ?? 0) | POLLOUT);
    let i = 0;
    for (const [fd, events] of want) {
      if (!Number.isInteger(fd) || fd < 0) this.refuse(K.select, fd, EBADF);
      this.writePollFd(i++, fd, events);
    }
    this.doPoll(K.select, i, timeoutMs);
    const r: SelectResult = { n: 0, readfds: new Set(), writefds: new Set() };
    i = 0;
    for (const [fd, events] of want) {
      const rev = this.revents(i++);
      if (rev & POLLNVAL) {
        this.counters.error(K.select);
        throw new ErrnoError(EBADF, `select(${fd})`);
      }
      // As Linux's select: readable on data, EOF, hangup or error; writable on room or error.
      if (events & POLLIN && rev & (POLLIN | POLLHUP | POLLERR)) r.readfds.add(fd);
      if (events & POLLOUT && rev & (POLLOUT | POLLERR)) r.writefds.add(fd);
    }
    r.n = r.readfds.size + r.writefds.size;
    return r;
  }

  poll(fds: PollFd[], timeoutMs: number): number[] {
    this.counters.call(K.poll);
    for (let i = 0; i < fds.length; i++) this.writePollFd(i, fds[i]!.fd, fds[i]!.events);
    this.doPoll(K.poll, fds.length, timeoutMs);
    const out = new Array<number>(fds.length);
    for (let i = 0; i < fds.length; i++) out[i] = this.revents(i);
    return out;
  }

  epoll_create1(flags = 0): number {
    this.counters.call(K.epoll_create1);
    this.counters.sys(K.epoll_create1);
    const fd = this.c.epoll_create1(flags);
    if (fd < 0) this.fail(K.epoll_create1, -1);
    return fd;
  }

  epoll_ctl(epfd: number, op: number, fd: number, events = 0, data = fd): void {
    this.counters.call(K.epoll_ctl);
    if (!Number.isSafeInteger(data) || data < 0) this.refuse(K.epoll_ctl, fd, EINVAL);
    const v = this.evView;
    v.setUint32(0, events >>> 0, true);
    v.setUint32(EV_DATA, data % TWO32, true);
    v.setUint32(EV_DATA + 4, Math.floor(data / TWO32), true);
    this.counters.sys(K.epoll_ctl);
    if (this.c.epoll_ctl(epfd, op, fd, this.ev) < 0) this.fail(K.epoll_ctl, fd);
  }

  epoll_wait(epfd: number, max: number, timeoutMs: number): EpollEvent[] {
    this.counters.call(K.epoll_wait);
    if (!Number.isInteger(max) || max <= 0) this.refuse(K.epoll_wait, epfd, EINVAL);
    if (this.events.length < max * EV_SIZE) {
      this.events = new Uint8Array(max * EV_SIZE);
      this.eventsView = new DataView(this.events.buffer);
    }
    const forever = timeoutMs < 0;
    const t0 = timeoutMs !== 0 ? performance.now() : 0;
    const deadline = forever ? 0 : t0 + timeoutMs;
    let t = forever ? -1 : Math.ceil(timeoutMs);
    let n: number;
    for (;;) {
      this.counters.sys(K.epoll_wait);
      n = this.c.epoll_wait(epfd, this.events, max, t);
      if (n >= 0) {
        if (timeoutMs !== 0 && (n === 0 || performance.now() - t0 >= SLEPT_MS)) this.counters.block(K.epoll_wait);
        break;
      }
      const e = this.errno();
      if (e !== EINTR) this.fail(K.epoll_wait, epfd, e);
      if (!forever) t = Math.max(0, Math.ceil(deadline - performance.now()));
    }
    const v = this.eventsView;
    const out = new Array<EpollEvent>(n);
    for (let i = 0; i < n; i++) {
      const o = i * EV_SIZE;
      out[i] = { events: v.getUint32(o, true), data: v.getUint32(o + EV_DATA, true) + v.getUint32(o + EV_DATA + 4, true) * TWO32 };
    }
    return out;
  }
}
