// libc's newts backend: the SocketApi (libc/api.ts) over sockets whose buffers are shared
// rings in the process's socket arenas (lib/sock), one arena per stack server (udp, tcp),
// granted by that server on the process's first socket there (docs/design.md §4–§5).
//
// Each call's fast and slow path (docs/design.md §5), in `fast` mode:
//   - socket, bind, listen, blocking connect, getsockname of a datagram socket, close of
//     a socket made by socket(): system calls (through the syscall server to the stack);
//   - read/recv/recvfrom/readv: data in the RX ring: copy out, publish. Empty: EAGAIN
//     when nonblocking (no system call), else sleep on the arena's doorbell (finite
//     Atomics.wait timeouts in a loop) until the stack pushes;
//   - write/send/sendto/writev: room in the TX ring: copy in, publish, mark the socket
//     active and, if the stack sleeps, ring its bell (lib/sock/sockbell.ts: an eventfd
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
// The calls are in libc/newts/, one job a file, each a class that adds its calls to the
// one before: core.ts (state, counting, errors, sleeping, the retry loop; fd.ts:
// descriptors and arena mapping) < lifecycle.ts < data.ts < control.ts < readiness.ts. A
// chain rather than a facade over modules: a call's hot path stays as shallow as it was
// (JavaScriptCore inlines a few levels of calls deep; a facade level was measurably slower).
import { self } from "../lib/sys/current.ts";
import type { Proc } from "../lib/sys/proc.ts";
import type { SocketApi, SocketStats } from "./api.ts";
import { SocketReadiness } from "./newts/readiness.ts";

export class NewtsSockets extends SocketReadiness implements SocketApi {
  constructor(proc: Proc = self(), opts: { mode?: "fast" | "syscall" } = {}) {
    super(proc, opts.mode ?? "fast");
  }

  stats(): SocketStats {
    return this.counters.snapshot();
  }

  resetStats(): void {
    this.counters.reset();
  }
}
