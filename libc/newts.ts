// libc's newts backend: the SocketApi (libc/api.ts) over sockets whose buffers are shared
// rings in the process's socket arenas (lib/sock), one arena per stack server (udp, tcp),
// granted by that server on the process's first socket there (design §4–§5).
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
//
// The work is in libc/newts/: core.ts (state, counting, errors, sleeping, the retry loop),
// fd.ts (descriptors and arena mapping), lifecycle.ts, data.ts, control.ts, readiness.ts.
import { self } from "../lib/sys/current.ts";
import type { Proc } from "../lib/sys/proc.ts";
import type { Accepted, EpollEvent, Linger, PollFd, RecvFrom, SelectResult, SockAddr, SocketApi, SocketStats, SO_LINGER, SOL_SOCKET } from "./api.ts";
import { SocketCore } from "./newts/core.ts";
import * as control from "./newts/control.ts";
import * as io from "./newts/data.ts";
import * as life from "./newts/lifecycle.ts";
import * as ready from "./newts/readiness.ts";

export class NewtsSockets implements SocketApi {
  readonly backend: string;
  /** "fast": the stack polls the rings; "syscall": every write and read check is a system call. */
  readonly mode: "fast" | "syscall";
  private readonly core: SocketCore;

  constructor(proc: Proc = self(), opts: { mode?: "fast" | "syscall" } = {}) {
    this.core = new SocketCore(proc, opts.mode ?? "fast");
    this.mode = this.core.mode;
    this.backend = this.core.backend;
  }

  /** Sleeps on a doorbell, and bells rung to wake a stack (neither is a system call of newts). */
  get sleeps(): number {
    return this.core.sleeps;
  }
  get bellRings(): number {
    return this.core.bellRings;
  }
  /** SOCK_KICK system calls made (syscall mode). */
  get kicks(): number {
    return this.core.kicks;
  }
  /** Kicks the stack refused (the socket was gone there). */
  get kickErrors(): number {
    return this.core.kickErrors;
  }

  stats(): SocketStats {
    return this.core.counters.snapshot();
  }

  resetStats(): void {
    this.core.counters.reset();
  }

  // ---- lifecycle (libc/newts/lifecycle.ts)

  socket(domain: number, type: number, _protocol = 0): number {
    return life.socket(this.core, domain, type);
  }

  bind(fd: number, sa: SockAddr): void {
    life.bind(this.core, fd, sa);
  }

  listen(fd: number, backlog = 4096): void {
    life.listen(this.core, fd, backlog);
  }

  accept(fd: number): Accepted {
    return life.accept(this.core, fd);
  }

  accept4(fd: number, flags: number): Accepted {
    return life.accept4(this.core, fd, flags);
  }

  tryAccept(fd: number, flags = 0, peer?: SockAddr): number {
    return life.tryAccept(this.core, fd, flags, peer);
  }

  connect(fd: number, sa: SockAddr): void {
    life.connect(this.core, fd, sa);
  }

  shutdown(fd: number, how: number): void {
    life.shutdown(this.core, fd, how);
  }

  close(fd: number): void {
    life.close(this.core, fd);
  }

  // ---- data (libc/newts/data.ts)

  read(fd: number, buf: Uint8Array): number {
    return io.read(this.core, fd, buf);
  }

  write(fd: number, buf: Uint8Array): number {
    return io.write(this.core, fd, buf);
  }

  readv(fd: number, bufs: Uint8Array[]): number {
    return io.readv(this.core, fd, bufs);
  }

  writev(fd: number, bufs: Uint8Array[]): number {
    return io.writev(this.core, fd, bufs);
  }

  recv(fd: number, buf: Uint8Array, flags = 0): number {
    return io.recv(this.core, fd, buf, flags);
  }

  recvBytes(fd: number, max: number, flags = 0): Uint8Array {
    return io.recvBytes(this.core, fd, max, flags);
  }

  send(fd: number, buf: Uint8Array, flags = 0): number {
    return io.send(this.core, fd, buf, flags);
  }

  recvfrom(fd: number, buf: Uint8Array, flags = 0): RecvFrom {
    return io.recvfrom(this.core, fd, buf, flags);
  }

  sendto(fd: number, buf: Uint8Array, flags: number, sa: SockAddr): number {
    return io.sendto(this.core, fd, buf, flags, sa);
  }

  tryRecv(fd: number, buf: Uint8Array, flags = 0): number {
    return io.tryRecv(this.core, fd, buf, flags);
  }

  trySend(fd: number, buf: Uint8Array, flags = 0): number {
    return io.trySend(this.core, fd, buf, flags);
  }

  tryRecvfrom(fd: number, buf: Uint8Array, flags = 0, from?: SockAddr): number {
    return io.tryRecvfrom(this.core, fd, buf, flags, from);
  }

  // ---- control (libc/newts/control.ts)

  fcntl(fd: number, cmd: number, arg = 0): number {
    return control.fcntl(this.core, fd, cmd, arg);
  }

  setsockopt(fd: number, level: number, name: number, value: number | Linger): void {
    control.setsockopt(this.core, fd, level, name, value);
  }

  getsockopt(fd: number, level: typeof SOL_SOCKET, name: typeof SO_LINGER): Linger;
  getsockopt(fd: number, level: number, name: number): number;
  getsockopt(fd: number, level: number, name: number): number | Linger {
    return control.getsockopt(this.core, fd, level, name);
  }

  getsockname(fd: number): SockAddr {
    return control.getsockname(this.core, fd);
  }

  getpeername(fd: number): SockAddr {
    return control.getpeername(this.core, fd);
  }

  // ---- readiness (libc/newts/readiness.ts)

  select(readfds: Iterable<number>, writefds: Iterable<number>, timeoutMs: number): SelectResult {
    return ready.select(this.core, readfds, writefds, timeoutMs);
  }

  poll(fds: PollFd[], timeoutMs: number): number[] {
    return ready.poll(this.core, fds, timeoutMs);
  }

  epoll_create1(flags = 0): number {
    return ready.epoll_create1(this.core, flags);
  }

  epoll_ctl(epfd: number, op: number, fd: number, events = 0, data?: number): void {
    ready.epoll_ctl(this.core, epfd, op, fd, events, data);
  }

  epoll_wait(epfd: number, max: number, timeoutMs: number): EpollEvent[] {
    return ready.epoll_wait(this.core, epfd, max, timeoutMs);
  }
}
