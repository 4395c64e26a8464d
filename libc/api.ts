// The BSD socket API that every libc backend implements: newts's (sockets on shared rings,
// or by system call) and Linux's (the host kernel's sockets through bun:ffi, libc/linux.ts),
// so the same application code runs on either and can be measured side by side.
//
// C-like and synchronous: file descriptors are small integers, a blocking call blocks the
// calling thread, errors are thrown as ErrnoError carrying a Linux errno (never returned),
// byte buffers are caller-provided Uint8Arrays (subarrays are fine), and addresses are IPv4
// only, as { addr: u32 host order, port } (the SockAddr of libc/net.ts). Calls that would
// block on a nonblocking socket (SOCK_NONBLOCK, O_NONBLOCK or MSG_DONTWAIT) throw EAGAIN.
// The send path never raises SIGPIPE: send/sendto/write/writev on a stream whose writing
// side is gone throw EPIPE (the Linux backend passes MSG_NOSIGNAL on every call).
//
// All constants are the Linux values (the same on x86-64 and arm64).
import type { ErrnoError } from "../lib/sys/errno.ts";
import type { SocketStats } from "../lib/sys/counters.ts";

export type { ErrnoError };

// Address families, socket types, protocols.
export const AF_UNSPEC = 0;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000; // or-ed into socket()'s type and accept4()'s flags
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_IP = 0;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const INADDR_ANY = 0;
export const INADDR_LOOPBACK = 0x7f000001;
export const SOMAXCONN = 4096;

// shutdown(how).
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

// send/recv flags.
export const MSG_OOB = 0x1;
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITALL = 0x100;
export const MSG_NOSIGNAL = 0x4000; // implied on every send-path call of every backend

// fcntl.
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;

// Socket options: setsockopt/getsockopt(fd, level, name).
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4; // read-only; reading it clears the pending error
export const SO_SNDBUF = 7; // Linux doubles what is set and reports the doubled value
export const SO_RCVBUF = 8;
export const SO_KEEPALIVE = 9;
export const SO_LINGER = 13; // value: Linger
export const SO_REUSEPORT = 15;
export const SO_ACCEPTCONN = 30;
export const TCP_NODELAY = 1; // level IPPROTO_TCP
/** newts's own level: the descriptor slots of a fast socket's rings (a power of two, 4..4096). */
export const SOL_NEWTS = 0x4e53;
export const NEWTS_TX_SLOTS = 1;
export const NEWTS_RX_SLOTS = 2;

// poll(2) events (also revents).
export const POLLIN = 0x001;
export const POLLPRI = 0x002;
export const POLLOUT = 0x004;
export const POLLERR = 0x008; // revents only
export const POLLHUP = 0x010; // revents only
export const POLLNVAL = 0x020; // revents only: fd is not open
export const POLLRDHUP = 0x2000; // the peer shut down its writing side

// epoll(7).
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLEXCLUSIVE = 1 << 28;
export const EPOLLONESHOT = 1 << 30;
export const EPOLLET = 1 << 31; // a negative number in JS: events are ints, compare with `& EPOLLET`
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLL_CLOEXEC = 0o2000000;

/** An IPv4 socket address: `addr` a u32 in host order (0x7f000001 = 127.0.0.1), `port` 0..65535. */
export interface SockAddr {
  addr: number;
  port: number;
}

/** accept's result: the new connection's fd and the peer's address. */
export interface Accepted extends SockAddr {
  fd: number;
}

/** recvfrom's result: bytes placed into the buffer and the sender (0.0.0.0:0 where the kernel gives none). */
export interface RecvFrom extends SockAddr {
  n: number;
}

/** struct linger, for SO_LINGER: `onoff` with `linger` 0 makes close() reset the connection. */
export interface Linger {
  onoff: boolean;
  linger: number; // seconds
}

/** One entry of poll()'s set. */
export interface PollFd {
  fd: number;
  events: number;
}

/** One entry of epoll_wait()'s result: the data given to epoll_ctl (the fd unless set otherwise) and the ready events. */
export interface EpollEvent {
  data: number;
  events: number;
}

/** select()'s result: how many fds are ready in all, and which. */
export interface SelectResult {
  n: number;
  readfds: Set<number>;
  writefds: Set<number>;
}

/** Call counters (lib/sys/counters.ts, beside the PCB layout they are read from). */
export type { SocketCallStats, SocketStats } from "../lib/sys/counters.ts";

/** The socket API of a libc backend. Each call throws ErrnoError on failure. */
export interface SocketApi {
  /** The backend's name ("linux", "newts", "newts-syscall"), for reports. */
  readonly backend: string;

  /** New socket: AF_INET only (else EAFNOSUPPORT); type SOCK_STREAM or SOCK_DGRAM, or-ed with SOCK_NONBLOCK/SOCK_CLOEXEC. */
  socket(domain: number, type: number, protocol?: number): number;
  /** Binds to addr:port (port 0 picks an ephemeral port; read it back with getsockname). EADDRINUSE if taken. */
  bind(fd: number, sa: SockAddr): void;
  /** Marks a stream socket listening with a queue of `backlog` (default SOMAXCONN) fully established connections. */
  listen(fd: number, backlog?: number): void;
  /** Takes one established connection off the queue (blocks, or EAGAIN if nonblocking); the new fd is blocking. */
  accept(fd: number): Accepted;
  /** accept with flags SOCK_NONBLOCK and/or SOCK_CLOEXEC applied to the new fd. */
  accept4(fd: number, flags: number): Accepted;
  /** Connects: blocks until established (or refused: ECONNREFUSED); nonblocking throws EINPROGRESS, then POLLOUT and SO_ERROR tell the result. */
  connect(fd: number, sa: SockAddr): void;

  /** Reads into buf; bytes read, 0 at end of stream (or for an empty datagram or an empty buf). */
  read(fd: number, buf: Uint8Array): number;
  /** Writes from buf; bytes taken (a stream may take part of it). EPIPE once the writing side is shut down or reset; no SIGPIPE. */
  write(fd: number, buf: Uint8Array): number;
  /** read() scattering into bufs in order; total bytes read. */
  readv(fd: number, bufs: Uint8Array[]): number;
  /** write() gathering from bufs in order; total bytes taken. No SIGPIPE. */
  writev(fd: number, bufs: Uint8Array[]): number;
  /** read() with flags (MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL); bytes placed into buf. */
  recv(fd: number, buf: Uint8Array, flags?: number): number;
  /** recv() into a fresh array of at most `max` bytes; an empty array means end of stream (or an empty datagram). */
  recvBytes(fd: number, max: number, flags?: number): Uint8Array;
  /** write() with flags (MSG_DONTWAIT); MSG_NOSIGNAL is always implied. */
  send(fd: number, buf: Uint8Array, flags?: number): number;
  /** recv() that also tells the sender (datagrams; 0.0.0.0:0 on a connected stream). A datagram longer than buf is truncated. */
  recvfrom(fd: number, buf: Uint8Array, flags?: number): RecvFrom;
  /** send() to sa (datagrams; EMSGSIZE beyond 65507 bytes). */
  sendto(fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number;
  /**
   * C-style variants of recv, send, recvfrom and accept4 for an event loop's fast path:
   * they return n >= 0 (bytes, or the new fd) or -errno, and never throw for an errno —
   * in JavaScriptCore a throw costs about a microsecond, more than a whole user-space
   * call. tryRecvfrom fills `from` with the sender, tryAccept fills `peer`.
   */
  tryRecv(fd: number, buf: Uint8Array, flags?: number): number;
  trySend(fd: number, buf: Uint8Array, flags?: number): number;
  tryRecvfrom(fd: number, buf: Uint8Array, flags?: number, from?: SockAddr): number;
  tryAccept(fd: number, flags?: number, peer?: SockAddr): number;
  /** Shuts down reading (SHUT_RD), writing (SHUT_WR: the peer reads EOF) or both. ENOTCONN if not connected. */
  shutdown(fd: number, how: number): void;
  /** Closes fd. A stream closes gracefully (queued data is still sent, then FIN) unless unread data is left
   *  in its receive queue or SO_LINGER is on with 0 seconds: then it resets the connection (RST). */
  close(fd: number): void;

  /** F_GETFL (returns the flags, O_NONBLOCK among them) or F_SETFL(arg) (returns 0); F_GETFD/F_SETFD with FD_CLOEXEC. */
  fcntl(fd: number, cmd: number, arg?: number): number;
  /** Sets SO_REUSEADDR, SO_RCVBUF, SO_SNDBUF, SO_KEEPALIVE (SOL_SOCKET), TCP_NODELAY (IPPROTO_TCP): numbers; SO_LINGER: a Linger. */
  setsockopt(fd: number, level: number, name: number, value: number | Linger): void;
  /** SO_LINGER's value. */
  getsockopt(fd: number, level: typeof SOL_SOCKET, name: typeof SO_LINGER): Linger;
  /** An int option's value (SO_ERROR: the pending error, which reading clears). */
  getsockopt(fd: number, level: number, name: number): number;
  /** The local address. */
  getsockname(fd: number): SockAddr;
  /** The peer's address; ENOTCONN if not connected. */
  getpeername(fd: number): SockAddr;

  /** Waits up to timeoutMs (-1: forever, 0: just look) for any fd of readfds to be readable (data, EOF, a pending
   *  connection, an error) or of writefds writable (or in error); returns the ready ones. EBADF for a closed fd. */
  select(readfds: Iterable<number>, writefds: Iterable<number>, timeoutMs: number): SelectResult;
  /** Waits up to timeoutMs (-1: forever) for any of fds to have one of its events (or POLLERR/POLLHUP/POLLNVAL);
   *  returns the revents of each fd, in order (0: not ready). */
  poll(fds: PollFd[], timeoutMs: number): number[];
  /** New epoll instance (flags: EPOLL_CLOEXEC). */
  epoll_create1(flags?: number): number;
  /** ADD, MOD or DEL fd in epfd's interest set with events (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET|EPOLLONESHOT...);
   *  `data` is handed back by epoll_wait (default: fd). EEXIST on ADD twice, ENOENT on MOD/DEL of an fd not in the set. */
  epoll_ctl(epfd: number, op: number, fd: number, events?: number, data?: number): void;
  /** Waits up to timeoutMs (-1: forever) for events; at most `max` of them. */
  epoll_wait(epfd: number, max: number, timeoutMs: number): EpollEvent[];

  /** The call counters since creation (or the last resetStats). */
  stats(): SocketStats;
  resetStats(): void;
}
