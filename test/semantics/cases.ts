// The shared socket-semantics suite: one list of cases, written against the SocketApi
// (libc/api.ts) alone, that test/semantics.test.ts runs on every libc backend ("linux": the
// host kernel; "fast": newts sockets on shared rings; "syscall": the same, a system call per
// data call), inside newts app processes (test/fixtures/semantics.ts), expecting the same
// results and the same errno values everywhere. Moved here from libc/linux.test.ts; what is
// Linux-only stayed there.
//
// Rules for a case: API calls and the kit (test/semantics/kit.ts) only; loopback (127.0.0.1)
// and ephemeral ports only (bind to port 0: the backend's own allocator hands out ports no
// other case or test holds); every fd through the kit, so the runner closes what is left; every
// wait bounded (poll/select/epoll timeouts, the kit's waits; a blocking accept only once poll
// said a connection is there), except a blocking connect and the calls a case exists to show
// block (which its peer ends): the harness's per-case timeout bounds those (it kills the case's
// app); no timing thresholds but lower bounds on "waited about that long" (>= 0.8x, and only
// where causality guarantees it). Where Linux's loopback happens
// to deliver at once but a stack in other threads need not, a case waits for the data first
// (t.waitFor, t.waitBytes, t.readN) and then asserts what Linux asserts.
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  F_GETFL,
  F_SETFL,
  IPPROTO_TCP,
  MSG_DONTWAIT,
  MSG_PEEK,
  O_NONBLOCK,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLRDHUP,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SO_ERROR,
  SO_KEEPALIVE,
  SO_LINGER,
  SO_RCVBUF,
  SO_REUSEADDR,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  type SockAddr,
  type SocketApi,
  SOL_SOCKET,
  TCP_NODELAY,
} from "../../libc/api.ts";
import {
  EADDRINUSE,
  EAFNOSUPPORT,
  EAGAIN,
  EBADF,
  ECONNREFUSED,
  ECONNRESET,
  EDESTADDRREQ,
  EEXIST,
  EINPROGRESS,
  EINVAL,
  EISCONN,
  EMSGSIZE,
  ENOENT,
  ENOTCONN,
  EOPNOTSUPP,
  EPIPE,
} from "../../lib/sys/errno.ts";
import { bytes, equalBytes, errnoOf, Kit, LO, NOT_AN_FD, pattern, same, text, WAIT_MS } from "./kit.ts";

export { Kit } from "./kit.ts";
/** What a case gets besides the API: checks, errno recording, fd bookkeeping, helpers. */
export type T = Kit;

export interface Case {
  /** Unique; the runner and the test names use it. */
  name: string;
  group: string;
  /** A peer in another process of the same backend, started by t.startPeer(...ports); t.args are those ports. */
  peer?: { run(api: SocketApi, t: T): void | Promise<void> };
  run(api: SocketApi, t: T): void | Promise<void>;
}

/** How long a peer waits before it acts, so that the runner is surely blocked by then. */
const PEER_DELAY_MS = 150;

export const CASES: Case[] = [];
function group(name: string, cases: Omit<Case, "group">[]): void {
  for (const c of cases) CASES.push({ ...c, group: name });
}

// ---- sockets and addresses

group("sockets and addresses", [
  {
    name: "bind to port 0 picks a port; getsockname and getpeername agree on both ends",
    run(api, t) {
      const { l, c, s } = t.pair();
      const at = api.getsockname(l);
      t.eq(at.addr, LO, "listener addr");
      t.gt(at.port, 0, "listener port");
      t.ok(same(api.getpeername(c), at), "client's peer is the listener's address");
      t.ok(same(api.getsockname(s), at), "accepted socket's name is the listener's address");
      const cLocal = api.getsockname(c);
      t.eq(cLocal.addr, LO, "client addr");
      t.ok(same(api.getpeername(s), cLocal), "accepted socket's peer is the client");
    },
  },
  {
    name: "accept returns the peer's address",
    run(api, t) {
      const { fd: l, at } = t.listener();
      const c = t.tcp();
      api.connect(c, at);
      t.pending(l);
      const a = api.accept(l);
      t.track(a.fd);
      t.eq({ addr: a.addr, port: a.port }, api.getsockname(c), "accept's address");
    },
  },
  {
    name: "an unbound socket is 0.0.0.0:0 and has no peer",
    run(api, t) {
      const fd = t.tcp();
      t.eq(api.getsockname(fd), { addr: 0, port: 0 }, "getsockname");
      t.errno(() => api.getpeername(fd), ENOTCONN, "getpeername");
    },
  },
  {
    name: "IPv4 only: other families are refused with EAFNOSUPPORT",
    run(api, t) {
      t.errno(() => t.track(api.socket(AF_INET6, SOCK_STREAM)), EAFNOSUPPORT, "AF_INET6");
      t.errno(() => t.track(api.socket(AF_UNIX, SOCK_STREAM)), EAFNOSUPPORT, "AF_UNIX");
    },
  },
  {
    name: "binding a port in use fails with EADDRINUSE",
    run(api, t) {
      const { at } = t.listener();
      const fd = t.tcp();
      t.errno(() => api.bind(fd, at), EADDRINUSE, "bind");
    },
  },
  {
    name: "SO_REUSEADDR lets a listener rebind a port its closed connections still hold",
    run(api, t) {
      const l = t.tcp();
      api.setsockopt(l, SOL_SOCKET, SO_REUSEADDR, 1);
      api.bind(l, { addr: LO, port: 0 });
      api.listen(l, 4);
      const at = api.getsockname(l);
      const c = t.tcp();
      api.connect(c, at);
      t.pending(l);
      const s = t.track(api.accept(l).fd);
      t.close(s); // the server closes first: its end lingers (FIN_WAIT/TIME_WAIT) on `at`
      t.close(c);
      t.close(l);
      const plain = t.tcp();
      t.errno(() => api.bind(plain, at), EADDRINUSE, "bind without SO_REUSEADDR");
      const again = t.tcp();
      api.setsockopt(again, SOL_SOCKET, SO_REUSEADDR, 1);
      t.errno(() => api.bind(again, at), 0, "bind with SO_REUSEADDR");
      api.listen(again, 4);
    },
  },
  {
    name: "accept on a socket that is not listening: EINVAL; listen on a datagram socket: EOPNOTSUPP",
    run(api, t) {
      const fd = t.tcp();
      api.bind(fd, { addr: LO, port: 0 });
      t.errno(() => api.accept(fd), EINVAL, "accept");
      t.errno(() => api.listen(t.udp()), EOPNOTSUPP, "listen on udp");
    },
  },
  {
    name: "calls on an fd that is not open: EBADF",
    run(api, t) {
      const buf = new Uint8Array(8);
      t.errno(() => api.recv(NOT_AN_FD, buf), EBADF, "recv");
      t.errno(() => api.send(NOT_AN_FD, buf), EBADF, "send");
      t.errno(() => api.getsockname(NOT_AN_FD), EBADF, "getsockname");
    },
  },
]);

// ---- options and flags

group("options and flags", [
  {
    name: "O_NONBLOCK through SOCK_NONBLOCK, fcntl and accept4",
    run(api, t) {
      const fd = t.tcp(SOCK_NONBLOCK | SOCK_CLOEXEC);
      const fl = api.fcntl(fd, F_GETFL);
      t.eq(fl & O_NONBLOCK, O_NONBLOCK, "SOCK_NONBLOCK sets O_NONBLOCK");
      api.fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
      t.eq(api.fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "F_SETFL clears O_NONBLOCK");

      // accept's new fd is blocking even from a nonblocking listener; accept4 can make it nonblocking.
      const { fd: l, at } = t.listener(16, SOCK_NONBLOCK);
      const c1 = t.tcp();
      const c2 = t.tcp();
      api.connect(c1, at);
      api.connect(c2, at);
      t.pending(l);
      const a1 = t.track(api.accept(l).fd);
      t.pending(l);
      const a2 = t.track(api.accept4(l, SOCK_NONBLOCK).fd);
      t.eq(api.fcntl(a1, F_GETFL) & O_NONBLOCK, 0, "accept: blocking");
      t.eq(api.fcntl(a2, F_GETFL) & O_NONBLOCK, O_NONBLOCK, "accept4(SOCK_NONBLOCK): nonblocking");
    },
  },
  {
    name: "setsockopt and getsockopt",
    run(api, t) {
      const { c } = t.pair();
      api.setsockopt(c, SOL_SOCKET, SO_REUSEADDR, 1);
      t.ok(api.getsockopt(c, SOL_SOCKET, SO_REUSEADDR) !== 0, "SO_REUSEADDR on");
      t.eq(api.getsockopt(c, SOL_SOCKET, SO_KEEPALIVE), 0, "SO_KEEPALIVE default");
      api.setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, 1);
      t.ok(api.getsockopt(c, SOL_SOCKET, SO_KEEPALIVE) !== 0, "SO_KEEPALIVE on");
      api.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1);
      t.ok(api.getsockopt(c, IPPROTO_TCP, TCP_NODELAY) !== 0, "TCP_NODELAY on");
      api.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 0);
      t.eq(api.getsockopt(c, IPPROTO_TCP, TCP_NODELAY), 0, "TCP_NODELAY off");
      // Buffer sizes: at least what was asked (Linux doubles it: libc/linux.test.ts checks that).
      api.setsockopt(c, SOL_SOCKET, SO_RCVBUF, 64 * 1024);
      api.setsockopt(c, SOL_SOCKET, SO_SNDBUF, 32 * 1024);
      t.ge(api.getsockopt(c, SOL_SOCKET, SO_RCVBUF), 64 * 1024, "SO_RCVBUF");
      t.ge(api.getsockopt(c, SOL_SOCKET, SO_SNDBUF), 32 * 1024, "SO_SNDBUF");
      t.eq(api.getsockopt(c, SOL_SOCKET, SO_LINGER), { onoff: false, linger: 0 }, "SO_LINGER default");
      api.setsockopt(c, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 5 });
      t.eq(api.getsockopt(c, SOL_SOCKET, SO_LINGER), { onoff: true, linger: 5 }, "SO_LINGER set");
      t.errnoIs(api.getsockopt(c, SOL_SOCKET, SO_ERROR), 0, "SO_ERROR");
    },
  },
]);

// ---- stream sockets

group("stream sockets", [
  {
    name: "bytes both ways through send/recv, write/read, writev/readv, recvBytes and MSG_PEEK",
    run(api, t) {
      const { c, s } = t.pair();
      t.eq(api.send(c, bytes("hello")), 5, "send");
      const buf = new Uint8Array(64);
      t.waitBytes(s, 5);
      t.eq(api.recv(s, buf, MSG_PEEK), 5, "recv MSG_PEEK");
      t.eq(api.recv(s, buf), 5, "recv after peek");
      t.eq(text(buf.subarray(0, 5)), "hello", "recv's bytes");

      t.eq(api.write(s, bytes("world!")), 6, "write");
      // recv into the middle of a buffer: subarrays are honoured.
      t.waitBytes(c, 6);
      t.eq(api.read(c, buf.subarray(10, 20)), 6, "read into a subarray");
      t.eq(text(buf.subarray(10, 16)), "world!", "read's bytes");

      t.eq(api.writev(c, [bytes("ab"), new Uint8Array(0), bytes("cdef"), bytes("g")]), 7, "writev");
      const parts = [new Uint8Array(3), new Uint8Array(2), new Uint8Array(10)];
      t.eq(t.waitFor(s, POLLIN) & POLLIN, POLLIN, "readable after writev");
      t.waitBytes(s, 7);
      t.eq(api.readv(s, parts), 7, "readv");
      t.eq(text(parts[0]!) + text(parts[1]!) + text(parts[2]!.subarray(0, 2)), "abcdefg", "readv's bytes in order");

      api.send(s, bytes("xyz"));
      t.waitBytes(c, 3);
      t.eq(text(api.recvBytes(c, 100)), "xyz", "recvBytes");
      // A zero-length send is allowed and sends nothing.
      t.eq(api.send(c, new Uint8Array(0)), 0, "empty send");
    },
  },
  {
    name: "a megabyte each way through nonblocking sockets in one thread, in order",
    run(api, t) {
      const { c, s } = t.pair(true);
      const N = 1 << 20;
      const a = pattern(N, 1);
      const b = pattern(N, 7);
      const gotA = new Uint8Array(N);
      const gotB = new Uint8Array(N);
      let sentA = 0, sentB = 0, rcvA = 0, rcvB = 0;
      const step = (fd: number, out: Uint8Array, off: number): number => {
        const n = { v: 0 };
        const e = errnoOf(() => (n.v = api.send(fd, out.subarray(off, Math.min(out.length, off + 100_000)))));
        if (e !== 0 && e !== EAGAIN) t.errnoIs(e, 0, "send");
        return n.v;
      };
      const take = (fd: number, into: Uint8Array, off: number): number => {
        const n = { v: 0 };
        const e = errnoOf(() => (n.v = api.recv(fd, into.subarray(off))));
        if (e === EAGAIN) return 0;
        if (e !== 0) t.errnoIs(e, 0, "recv");
        t.gt(n.v, 0, "recv before the end of the data");
        return n.v;
      };
      const end = performance.now() + 20_000;
      while (rcvA < N || rcvB < N) {
        if (performance.now() > end) t.fail(`stalled: sent ${sentA}/${sentB}, received ${rcvA}/${rcvB} of ${N}`);
        if (sentA < N) sentA += step(c, a, sentA);
        if (sentB < N) sentB += step(s, b, sentB);
        if (rcvA < N) rcvA += take(s, gotA, rcvA);
        if (rcvB < N) rcvB += take(c, gotB, rcvB);
        api.poll([{ fd: c, events: POLLIN }, { fd: s, events: POLLIN }], 10);
      }
      t.ok(equalBytes(gotA, a), "c -> s: every byte, in order");
      t.ok(equalBytes(gotB, b), "s -> c: every byte, in order");
    },
  },
  {
    name: "EAGAIN: nonblocking recv, read and accept with nothing there; MSG_DONTWAIT on a blocking socket; a full send buffer",
    run(api, t) {
      const { l, c, s } = t.pair(true);
      const buf = new Uint8Array(16);
      t.errno(() => api.recv(c, buf), EAGAIN, "recv");
      t.errno(() => api.read(s, buf), EAGAIN, "read");
      t.errno(() => api.recvfrom(s, buf), EAGAIN, "recvfrom");
      api.fcntl(l, F_SETFL, O_NONBLOCK);
      t.errno(() => api.accept(l), EAGAIN, "accept");

      const { c: bc } = t.pair(false);
      t.errno(() => api.recv(bc, buf, MSG_DONTWAIT), EAGAIN, "recv MSG_DONTWAIT");

      // Nobody reads s: c's sends fill both buffers, then would block. A stack that moves bytes
      // on its own time may free room after an EAGAIN: fill again until the send buffer stays
      // full (not writable) for a while.
      const chunk = new Uint8Array(64 * 1024);
      let sent = 0;
      let first = 0;
      const end = performance.now() + WAIT_MS;
      for (;;) {
        let e = 0;
        while (e === 0 && sent < 1 << 30) e = errnoOf(() => (sent += api.send(c, chunk)));
        if (first === 0) first = e;
        if (e !== EAGAIN) break;
        if (!(t.waitFor(c, POLLOUT, 200) & POLLOUT)) break;
        if (performance.now() > end) t.fail("the send buffer never stayed full");
      }
      t.errnoIs(first, EAGAIN, "send on a full buffer");
      t.gt(sent, 0, "bytes sent before it filled");
      t.eq(t.waitFor(c, POLLOUT, 0) & POLLOUT, 0, "not writable when full");
    },
  },
  {
    name: "EOF after the peer's shutdown(SHUT_WR), and the half-closed connection still carries the other way",
    run(api, t) {
      const { c, s } = t.pair(true);
      api.send(c, bytes("last words"));
      api.shutdown(c, SHUT_WR);
      t.eq(text(t.readN(s, 100)), "last words", "data before EOF"); // then EOF
      const buf = new Uint8Array(8);
      t.eq(api.recv(s, buf), 0, "EOF");
      t.eq(api.recv(s, buf), 0, "EOF is sticky");
      // Writing on the side that shut its writing: EPIPE (and no SIGPIPE).
      t.errno(() => api.send(c, bytes("x")), EPIPE, "send after SHUT_WR");
      t.errno(() => api.write(c, bytes("x")), EPIPE, "write after SHUT_WR");
      // The other direction is still open.
      api.send(s, bytes("reply"));
      t.eq(text(t.readN(c, 5)), "reply", "the other direction");
      api.shutdown(s, SHUT_WR);
      t.eq(t.readN(c, 10).length, 0, "EOF the other way");
      t.eq(api.recv(c, buf), 0, "EOF the other way, again");
    },
  },
  {
    name: "shutdown(SHUT_RD): recv on an empty socket is EOF, even nonblocking",
    run(api, t) {
      const { c } = t.pair(true);
      api.shutdown(c, SHUT_RD);
      t.eq(api.recv(c, new Uint8Array(8)), 0, "recv after SHUT_RD");
    },
  },
  {
    name: "an unconnected stream socket: recv and shutdown fail with ENOTCONN",
    run(api, t) {
      const fd = t.tcp();
      t.errno(() => api.recv(fd, new Uint8Array(4)), ENOTCONN, "recv");
      t.errno(() => api.shutdown(fd, SHUT_RDWR), ENOTCONN, "shutdown");
    },
  },
  {
    name: "connect on a connected socket: EISCONN",
    run(api, t) {
      const { c, l } = t.pair();
      t.errno(() => api.connect(c, api.getsockname(l)), EISCONN, "connect again");
    },
  },
  {
    name: "a reset (peer closes with SO_LINGER 0): ECONNRESET, then EOF; writing after it: EPIPE, not SIGPIPE",
    run(api, t) {
      const { c, s } = t.pair(true);
      api.send(c, bytes("unread"));
      api.setsockopt(s, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
      t.close(s);
      t.eq(t.waitFor(c, POLLIN) & POLLERR, POLLERR, "POLLERR after the reset");
      const buf = new Uint8Array(8);
      t.errno(() => api.recv(c, buf), ECONNRESET, "recv after the reset"); // the error is reported once
      t.eq(api.recv(c, buf), 0, "then EOF");
      t.errno(() => api.send(c, bytes("x")), EPIPE, "send");
      t.errno(() => api.write(c, bytes("x")), EPIPE, "write");
      t.errno(() => api.writev(c, [bytes("x"), bytes("y")]), EPIPE, "writev");
      t.errnoIs(api.getsockopt(c, SOL_SOCKET, SO_ERROR), 0, "SO_ERROR after it was reported");
    },
  },
  {
    name: "the first call after a reset reports it, whichever it is: a send gets ECONNRESET, the next EPIPE",
    run(api, t) {
      const { c, s } = t.pair(true);
      api.setsockopt(s, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
      t.close(s);
      t.eq(t.waitFor(c, POLLIN) & POLLHUP, POLLHUP, "POLLHUP after the reset");
      t.errno(() => api.send(c, bytes("x")), ECONNRESET, "first send");
      t.errno(() => api.send(c, bytes("x")), EPIPE, "second send");
    },
  },
  {
    name: "close with unread received data resets the connection",
    run(api, t) {
      const { c, s } = t.pair(true);
      api.send(c, bytes("never read"));
      t.eq(t.waitFor(s, POLLIN) & POLLIN, POLLIN, "data arrived");
      t.close(s);
      t.eq(t.waitFor(c, POLLIN) & POLLERR, POLLERR, "POLLERR at the sender");
      t.errno(() => api.recv(c, new Uint8Array(8)), ECONNRESET, "recv");
    },
  },
  {
    name: "close with unsent data pending is graceful: all of it arrives, then EOF",
    run(api, t) {
      const { c, s } = t.pair(true);
      const N = 4 << 20;
      const data = pattern(N, 3);
      let sent = 0;
      while (sent < N) {
        const e = errnoOf(() => (sent += api.send(c, data.subarray(sent))));
        if (e === EAGAIN) break;
        if (e !== 0) t.errnoIs(e, 0, "send");
      }
      t.gt(sent, 0, "bytes sent");
      t.close(c); // most of `sent` is still in c's send queue or in flight
      const got = t.readN(s, N, 10_000);
      t.eq(got.length, sent, "bytes received");
      t.ok(equalBytes(got, data.subarray(0, sent)), "every byte, in order");
      t.eq(api.recv(s, new Uint8Array(8)), 0, "then EOF");
    },
  },
  {
    name: "blocking connect to a port with no listener: ECONNREFUSED",
    run(api, t) {
      const fd = t.tcp();
      t.errno(() => api.connect(fd, t.closedPort()), ECONNREFUSED, "connect");
    },
  },
  {
    name: "nonblocking connect: EINPROGRESS, then writable with SO_ERROR 0",
    run(api, t) {
      const { fd: l, at } = t.listener();
      const c = t.tcp(SOCK_NONBLOCK);
      t.errno(() => api.connect(c, at), EINPROGRESS, "connect");
      t.eq(t.waitFor(c, POLLOUT) & POLLOUT, POLLOUT, "writable once connected");
      t.errnoIs(api.getsockopt(c, SOL_SOCKET, SO_ERROR), 0, "SO_ERROR");
      t.ok(same(api.getpeername(c), at), "getpeername");
      t.pending(l);
      const s = t.track(api.accept(l).fd);
      api.send(c, bytes("ok"));
      t.waitBytes(s, 2);
      t.eq(text(api.recvBytes(s, 8)), "ok", "data over it");
    },
  },
  {
    name: "nonblocking connect to a port with no listener: EINPROGRESS, then SO_ERROR ECONNREFUSED (once)",
    run(api, t) {
      const c = t.tcp(SOCK_NONBLOCK);
      t.errno(() => api.connect(c, t.closedPort()), EINPROGRESS, "connect");
      const r = t.waitFor(c, POLLOUT);
      t.eq(r & POLLERR, POLLERR, "POLLERR");
      t.errnoIs(api.getsockopt(c, SOL_SOCKET, SO_ERROR), ECONNREFUSED, "SO_ERROR");
      t.errnoIs(api.getsockopt(c, SOL_SOCKET, SO_ERROR), 0, "SO_ERROR read again");
      t.errno(() => api.getpeername(c), ENOTCONN, "getpeername");
    },
  },
  {
    name: "backlog: a full accept queue holds later connections back (not refused) until accept makes room",
    run(api, t) {
      const backlog = 1;
      const { fd: l, at } = t.listener(backlog, SOCK_NONBLOCK);
      const clients: number[] = [];
      for (let i = 0; i < 4; i++) {
        const c = t.tcp(SOCK_NONBLOCK);
        t.errno(() => api.connect(c, at), EINPROGRESS, `connect ${i}`);
        clients.push(c);
      }
      api.poll(clients.map((fd) => ({ fd, events: POLLOUT })), 2000); // returns when the first is in
      const done = () => clients.filter((fd) => t.waitFor(fd, POLLOUT, 0) & POLLOUT);
      const early = done();
      // At least the backlog completes at once (Linux: backlog + 1); the rest wait, none is refused.
      t.ge(early.length, backlog, "connections completed at once");
      t.lt(early.length, clients.length, "connections completed at once");
      clients.forEach((c, i) => t.errnoIs(api.getsockopt(c, SOL_SOCKET, SO_ERROR), 0, `SO_ERROR of client ${i}`));
      // Accepting makes room: every client gets in (Linux: at the client's next SYN, ~1 s later;
      // the bound leaves room for a later retransmission, at 3 s, 7 s, 15 s).
      const accepted: SockAddr[] = [];
      const end = performance.now() + 20_000;
      while (accepted.length < clients.length && performance.now() < end) {
        if (!(t.waitFor(l, POLLIN, 200) & POLLIN)) continue;
        const a = api.accept(l);
        t.track(a.fd);
        accepted.push({ addr: a.addr, port: a.port });
      }
      t.eq(accepted.length, clients.length, "connections accepted");
      // In order of arrival: the early ones first.
      const names = clients.map((c) => api.getsockname(c));
      for (let i = 0; i < early.length; i++) t.ok(same(accepted[i]!, api.getsockname(early[i]!)), `accept ${i} is early client ${i}`);
      names.forEach((n, i) => t.ok(accepted.some((a) => same(a, n)), `client ${i} accepted`));
      t.eq(done().length, clients.length, "clients connected");
    },
  },
]);

// ---- datagram sockets. A stack in other threads delivers a datagram a moment after sendto
// returns (Linux's loopback: before), so the cases wait for each one before reading it.

group("datagram sockets", [
  {
    name: "sendto/recvfrom tell the sender; boundaries are kept; an empty datagram reads as 0",
    run(api, t) {
      const a = t.boundUdp();
      const b = t.boundUdp(SOCK_NONBLOCK);
      t.eq(api.sendto(a.fd, bytes("one"), 0, b.at), 3, "sendto one");
      t.eq(api.sendto(a.fd, bytes("two!"), 0, b.at), 4, "sendto two");
      t.eq(api.sendto(a.fd, new Uint8Array(0), 0, b.at), 0, "sendto empty");
      t.eq(t.waitFor(b.fd, POLLIN) & POLLIN, POLLIN, "readable");
      const buf = new Uint8Array(100);
      const r1 = api.recvfrom(b.fd, buf);
      t.eq(r1.n, 3, "first datagram's length");
      t.eq(text(buf.subarray(0, 3)), "one", "first datagram");
      t.ok(same(r1, a.at), "first datagram's sender");
      t.eq(t.waitFor(b.fd, POLLIN) & POLLIN, POLLIN, "readable again");
      t.eq(api.recvfrom(b.fd, buf).n, 4, "second datagram's length");
      t.eq(t.waitFor(b.fd, POLLIN) & POLLIN, POLLIN, "readable for the empty one");
      const r3 = api.recvfrom(b.fd, buf);
      t.eq(r3.n, 0, "empty datagram");
      t.ok(same(r3, a.at), "empty datagram's sender");
      t.errno(() => api.recvfrom(b.fd, buf), EAGAIN, "then nothing");
    },
  },
  {
    name: "a datagram longer than the buffer is truncated and the rest dropped",
    run(api, t) {
      const a = t.boundUdp();
      const b = t.boundUdp(SOCK_NONBLOCK);
      api.sendto(a.fd, bytes("0123456789"), 0, b.at);
      api.sendto(a.fd, bytes("next"), 0, b.at);
      t.eq(t.waitFor(b.fd, POLLIN) & POLLIN, POLLIN, "readable");
      const small = new Uint8Array(4);
      t.eq(api.recv(b.fd, small), 4, "truncated length");
      t.eq(text(small), "0123", "truncated bytes");
      t.eq(t.waitFor(b.fd, POLLIN) & POLLIN, POLLIN, "readable for the next");
      t.eq(text(api.recvBytes(b.fd, 100)), "next", "the next datagram, whole");
    },
  },
  {
    name: "EAGAIN when empty (nonblocking or MSG_DONTWAIT); EMSGSIZE beyond 65507 bytes",
    run(api, t) {
      const a = t.boundUdp();
      t.errno(() => api.recv(a.fd, new Uint8Array(8), MSG_DONTWAIT), EAGAIN, "recv MSG_DONTWAIT");
      const b = t.boundUdp(SOCK_NONBLOCK);
      t.errno(() => api.recvfrom(b.fd, new Uint8Array(8)), EAGAIN, "nonblocking recvfrom");
      t.errno(() => api.sendto(a.fd, new Uint8Array(65508), 0, b.at), EMSGSIZE, "sendto 65508 bytes");
      t.eq(api.sendto(a.fd, new Uint8Array(65507), 0, b.at), 65507, "sendto 65507 bytes");
      t.eq(t.waitFor(b.fd, POLLIN) & POLLIN, POLLIN, "the largest datagram arrives");
      t.eq(api.recv(b.fd, new Uint8Array(70_000)), 65507, "whole");
    },
  },
  {
    name: "a connected datagram socket: send/recv with its peer only; getpeername",
    run(api, t) {
      const a = t.boundUdp(SOCK_NONBLOCK);
      const b = t.boundUdp(SOCK_NONBLOCK);
      const other = t.boundUdp();
      t.errno(() => api.send(a.fd, bytes("x")), EDESTADDRREQ, "send before connect");
      t.errno(() => api.getpeername(a.fd), ENOTCONN, "getpeername before connect");
      api.connect(a.fd, b.at);
      t.ok(same(api.getpeername(a.fd), b.at), "getpeername");
      api.send(a.fd, bytes("to b"));
      t.eq(text(t.readN(b.fd, 4)), "to b", "send to the peer");
      // Datagrams from anyone but the peer are not delivered to a connected socket.
      api.sendto(other.fd, bytes("stranger"), 0, a.at);
      api.sendto(b.fd, bytes("peer"), 0, a.at);
      t.eq(t.waitFor(a.fd, POLLIN) & POLLIN, POLLIN, "readable");
      const buf = new Uint8Array(32);
      const r = api.recvfrom(a.fd, buf);
      t.eq(text(buf.subarray(0, r.n)), "peer", "only the peer's datagram");
      t.ok(same(r, b.at), "from the peer");
      t.eq(t.waitFor(a.fd, POLLIN, 50), 0, "nothing from the stranger");
    },
  },
  {
    name: "a connected datagram socket learns of an unreachable port: ECONNREFUSED",
    run(api, t) {
      const gone = t.boundUdp();
      const at = gone.at;
      t.close(gone.fd);
      const a = t.boundUdp(SOCK_NONBLOCK);
      api.connect(a.fd, at);
      api.send(a.fd, bytes("anyone?"));
      t.eq(t.waitFor(a.fd, POLLIN) & POLLERR, POLLERR, "POLLERR");
      t.errno(() => api.recv(a.fd, new Uint8Array(8)), ECONNREFUSED, "recv");
      t.errno(() => api.recv(a.fd, new Uint8Array(8)), EAGAIN, "recv again");
    },
  },
  {
    name: "readiness: writable, not readable; readable once a datagram comes; select; fcntl O_NONBLOCK",
    run(api, t) {
      const a = t.boundUdp();
      const b = t.boundUdp();
      t.eq(t.waitFor(b.fd, POLLIN | POLLOUT, 0), POLLOUT, "fresh: writable only");
      api.sendto(a.fd, bytes("x"), 0, b.at);
      t.eq(t.waitFor(b.fd, POLLIN), POLLIN, "readable");
      t.eq(api.poll([{ fd: a.fd, events: POLLIN }, { fd: b.fd, events: POLLIN }], 0), [0, POLLIN], "poll both");
      const r = api.select([a.fd, b.fd], [a.fd], 0);
      t.eq([[...r.readfds], [...r.writefds], r.n], [[b.fd], [a.fd], 2], "select");
      t.eq(api.recv(b.fd, new Uint8Array(4)), 1, "blocking recv with a datagram there");
      t.eq(t.waitFor(b.fd, POLLIN, 0), 0, "not readable once read");
      api.fcntl(b.fd, F_SETFL, api.fcntl(b.fd, F_GETFL) | O_NONBLOCK);
      t.eq(api.fcntl(b.fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK, "O_NONBLOCK set");
      t.errno(() => api.recv(b.fd, new Uint8Array(4)), EAGAIN, "recv once nonblocking");
    },
  },
]);

// ---- readiness

group("readiness: poll", [
  {
    name: "a fresh connection is writable, not readable; readable once data comes; a listener is readable with a connection pending",
    run(api, t) {
      const { fd: l, at } = t.listener();
      t.eq(t.waitFor(l, POLLIN, 0), 0, "listener with nothing pending");
      const c = t.tcp();
      api.connect(c, at);
      t.eq(t.waitFor(l, POLLIN) & POLLIN, POLLIN, "listener with a connection pending");
      const s = t.track(api.accept(l).fd);
      t.eq(t.waitFor(l, POLLIN, 0), 0, "listener once accepted");
      t.eq(t.waitFor(c, POLLIN | POLLOUT, 0), POLLOUT, "fresh connection");
      api.send(s, bytes("x"));
      t.eq(t.waitFor(c, POLLIN) & POLLIN, POLLIN, "readable once data comes");
      t.eq(api.poll([{ fd: c, events: POLLIN }, { fd: s, events: POLLIN }], 0), [POLLIN, 0], "poll both");
    },
  },
  {
    name: "the peer's SHUT_WR: POLLIN|POLLRDHUP; both directions shut: POLLHUP; a reset: POLLERR|POLLHUP",
    run(api, t) {
      const { c, s } = t.pair(true);
      api.shutdown(s, SHUT_WR);
      t.eq(t.waitFor(c, POLLIN | POLLRDHUP) & (POLLIN | POLLRDHUP), POLLIN | POLLRDHUP, "peer's SHUT_WR");
      t.eq(t.waitFor(c, POLLIN, 0) & POLLHUP, 0, "no POLLHUP while c can still write");
      api.shutdown(c, SHUT_WR);
      t.eq(t.waitFor(c, POLLIN) & POLLHUP, POLLHUP, "both directions shut");

      const p = t.pair(true);
      api.setsockopt(p.s, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
      t.close(p.s);
      // POLLERR and POLLHUP come whether asked for or not.
      t.eq(t.waitFor(p.c, 0, 2000) & (POLLERR | POLLHUP), POLLERR | POLLHUP, "a reset");
    },
  },
  {
    name: "a timeout with nothing ready returns all zeros after about that long; an fd that is not open gives POLLNVAL",
    run(api, t) {
      const { c } = t.pair();
      const t0 = t.now();
      t.eq(api.poll([{ fd: c, events: POLLIN }], 60), [0], "nothing ready");
      t.ge(t.now() - t0, 0.8 * 60, "ms waited");
      t.eq(api.poll([{ fd: NOT_AN_FD, events: POLLIN }, { fd: c, events: POLLOUT }], 0), [POLLNVAL, POLLOUT], "POLLNVAL");
    },
  },
]);

group("readiness: select", [
  {
    name: "read and write sets in, ready sets out",
    run(api, t) {
      const { l, c, s } = t.pair();
      let r = api.select([c, s, l], [c], 0);
      t.eq([...r.readfds], [], "nothing readable");
      t.eq([...r.writefds], [c], "c writable");
      t.eq(r.n, 1, "n");
      api.send(c, bytes("x"));
      t.eq(t.waitFor(s, POLLIN) & POLLIN, POLLIN, "the byte arrived");
      r = api.select([c, s], [c, s], 1000);
      t.eq([...r.readfds], [s], "s readable");
      t.eq(new Set(r.writefds), new Set([c, s]), "both writable");
      t.eq(r.n, 3, "n counts each set");
      // EOF and errors count as readable.
      api.shutdown(c, SHUT_WR);
      api.recv(s, new Uint8Array(1));
      t.eq([...api.select([s], [], 1000).readfds], [s], "EOF is readable");
    },
  },
  {
    name: "a timeout with nothing ready: empty sets; an fd that is not open: EBADF",
    run(api, t) {
      const { c } = t.pair();
      const t0 = t.now();
      const r = api.select([c], [], 60);
      t.eq(r.n, 0, "n");
      t.eq(r.readfds.size + r.writefds.size, 0, "empty sets");
      t.ge(t.now() - t0, 0.8 * 60, "ms waited");
      t.errno(() => api.select([NOT_AN_FD], [], 0), EBADF, "select on an fd that is not open");
    },
  },
]);

group("readiness: epoll", [
  {
    name: "level-triggered: ADD, wait, MOD, DEL; data defaults to the fd",
    run(api, t) {
      const ep = t.track(api.epoll_create1());
      const { c, s } = t.pair(true);
      api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN);
      t.eq(api.epoll_wait(ep, 8, 0), [], "nothing yet");
      api.send(s, bytes("ab"));
      t.eq(api.epoll_wait(ep, 8, 1000), [{ data: c, events: EPOLLIN }], "readable");
      t.eq(api.epoll_wait(ep, 8, 0), [{ data: c, events: EPOLLIN }], "still there until read");
      t.waitBytes(c, 2);
      api.recv(c, new Uint8Array(8));
      t.eq(api.epoll_wait(ep, 8, 0), [], "gone once read");
      api.epoll_ctl(ep, EPOLL_CTL_MOD, c, EPOLLOUT, 12345);
      t.eq(api.epoll_wait(ep, 8, 0), [{ data: 12345, events: EPOLLOUT }], "MOD with data");
      api.epoll_ctl(ep, EPOLL_CTL_DEL, c);
      t.eq(api.epoll_wait(ep, 8, 0), [], "DEL");
      t.errno(() => api.epoll_ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN), ENOENT, "MOD of an fd not in the set");
      api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN);
      t.errno(() => api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN), EEXIST, "ADD twice");
    },
  },
  {
    name: "edge-triggered: one event per arrival, not per wait",
    run(api, t) {
      const ep = t.track(api.epoll_create1());
      const { c, s } = t.pair(true);
      api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLET);
      api.send(s, bytes("a"));
      // (bounds generous for a loaded machine: the waits return at the arrival)
      t.eq(api.epoll_wait(ep, 8, 5000), [{ data: c, events: EPOLLIN }], "first arrival");
      t.eq(api.epoll_wait(ep, 8, 0), [], "unread, but no new edge");
      api.send(s, bytes("b"));
      t.eq(api.epoll_wait(ep, 8, 5000), [{ data: c, events: EPOLLIN }], "second arrival");
      t.eq(text(api.recvBytes(c, 8)), "ab", "both bytes");
    },
  },
  {
    name: "listener, EPOLLRDHUP, hangup and reset; max bounds the events returned",
    run(api, t) {
      const ep = t.track(api.epoll_create1());
      const { fd: l, at } = t.listener(16, SOCK_NONBLOCK);
      api.epoll_ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN);
      const c1 = t.tcp();
      const c2 = t.tcp();
      api.connect(c1, at);
      api.connect(c2, at);
      t.eq(api.epoll_wait(ep, 8, 1000), [{ data: l, events: EPOLLIN }], "listener readable");
      const s1 = t.track(api.accept(l).fd);
      t.pending(l);
      const s2 = t.track(api.accept(l).fd);
      api.epoll_ctl(ep, EPOLL_CTL_DEL, l);

      api.epoll_ctl(ep, EPOLL_CTL_ADD, c1, EPOLLIN | EPOLLRDHUP);
      api.epoll_ctl(ep, EPOLL_CTL_ADD, c2, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
      t.eq(api.epoll_wait(ep, 8, 0), [{ data: c2, events: EPOLLOUT }], "only c2 writable");
      api.shutdown(s1, SHUT_WR);
      api.setsockopt(s2, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
      t.close(s2);
      // c2 was ready (EPOLLOUT) all along: wait until both the FIN and the reset have come.
      const all = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP;
      const t0 = t.now();
      let by = new Map<number, number>();
      for (;;) {
        by = new Map(api.epoll_wait(ep, 8, 100).map((e) => [e.data, e.events]));
        const fin = ((by.get(c1) ?? 0) & (EPOLLIN | EPOLLRDHUP)) === (EPOLLIN | EPOLLRDHUP);
        if ((fin && ((by.get(c2) ?? 0) & all) === all) || t.now() - t0 > 5000) break;
      }
      t.eq(by.get(c1), EPOLLIN | EPOLLRDHUP, "c1 after the peer's SHUT_WR");
      t.eq((by.get(c2) ?? 0) & all, all, "c2 after the reset");
      t.eq(api.epoll_wait(ep, 1, 0).length, 1, "max 1");

      // Both directions shut: EPOLLHUP.
      api.epoll_ctl(ep, EPOLL_CTL_DEL, c2);
      api.shutdown(c1, SHUT_WR);
      t.eq((api.epoll_wait(ep, 8, 1000)[0]?.events ?? 0) & EPOLLHUP, EPOLLHUP, "both directions shut");
    },
  },
  {
    name: "closing an fd takes it out of the interest set",
    run(api, t) {
      const ep = t.track(api.epoll_create1());
      const { c, s } = t.pair(true);
      api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT);
      t.eq(api.epoll_wait(ep, 8, 0).length, 1, "c ready");
      t.close(c);
      errnoOf(() => api.send(s, new Uint8Array(1))); // may fail later with a reset; the event must not show either way
      t.eq(api.epoll_wait(ep, 8, 20), [], "no events for the closed fd");
    },
  },
]);

// ---- blocking calls: the case's process blocks in a call that only its peer (another process
// of the same backend) can end. Each go() is sent before the call, and the peer waits
// PEER_DELAY_MS after it before it acts: so the call surely blocked at least that long.

/** The datagram a blocking-readiness peer sends: "go", wait, send one datagram to t.args[0]. */
const dgramPeer = (payload: string) => ({
  run(api: SocketApi, t: T) {
    t.awaitGo();
    t.sleep(PEER_DELAY_MS);
    const fd = t.udp();
    api.sendto(fd, bytes(payload), 0, { addr: LO, port: t.args[0]! });
  },
});

group("blocking calls", [
  {
    name: "accept blocks until a peer connects; recv blocks until it sends",
    peer: {
      run(api, t) {
        // go: wait, connect; "go" on the connection: wait, send the payload; then read to EOF.
        t.awaitGo();
        t.sleep(PEER_DELAY_MS);
        const fd = t.tcp();
        api.connect(fd, { addr: LO, port: t.args[0]! });
        t.eq(text(t.readN(fd, 2, WAIT_MS)), "go", "go over the connection");
        t.sleep(PEER_DELAY_MS);
        const payload = bytes("from another thread");
        let off = 0;
        while (off < payload.length) off += api.send(fd, payload.subarray(off));
        t.eq(t.readN(fd, 1, WAIT_MS).length, 0, "EOF from the runner");
      },
    },
    run(api, t) {
      const { fd: l, at } = t.listener();
      const peer = t.startPeer(at.port);
      let t0 = t.now();
      peer.go();
      const a = api.accept(l); // blocks until the peer connects
      const s = t.track(a.fd);
      t.ge(t.now() - t0, 0.8 * PEER_DELAY_MS, "ms accept blocked");
      t.ok(same(a, api.getpeername(s)), "accept's address is the peer's");
      t0 = t.now();
      api.send(s, bytes("go"));
      const buf = new Uint8Array(64);
      const n = api.recv(s, buf); // blocks until the peer sends
      t.ge(t.now() - t0, 0.8 * PEER_DELAY_MS, "ms recv blocked");
      t.gt(n, 0, "bytes");
      let got = n;
      while (got < 19) {
        const k = api.recv(s, buf.subarray(got));
        if (k === 0) break;
        got += k;
      }
      t.eq(text(buf.subarray(0, got)), "from another thread", "the peer's bytes");
      api.shutdown(s, SHUT_WR); // the peer reads EOF, closes
      t.eq(api.recv(s, buf), 0, "EOF once the peer closed");
    },
  },
  {
    name: "select with no timeout blocks until a datagram comes",
    peer: dgramPeer("1"),
    run(api, t) {
      const b = t.boundUdp();
      const peer = t.startPeer(b.at.port);
      const t0 = t.now();
      peer.go();
      const r = api.select([b.fd], [], -1);
      t.ge(t.now() - t0, 0.8 * PEER_DELAY_MS, "ms select blocked");
      t.eq([...r.readfds], [b.fd], "readable");
      t.eq(api.recv(b.fd, new Uint8Array(16)), 1, "the datagram");
    },
  },
  {
    name: "poll with no timeout blocks until a datagram comes",
    peer: dgramPeer("22"),
    run(api, t) {
      const b = t.boundUdp();
      const peer = t.startPeer(b.at.port);
      const t0 = t.now();
      peer.go();
      t.eq(api.poll([{ fd: b.fd, events: POLLIN }], -1), [POLLIN], "poll");
      t.ge(t.now() - t0, 0.8 * PEER_DELAY_MS, "ms poll blocked");
      t.eq(api.recv(b.fd, new Uint8Array(16)), 2, "the datagram");
    },
  },
  {
    name: "epoll_wait with no timeout blocks until a datagram comes",
    peer: dgramPeer("333"),
    run(api, t) {
      const b = t.boundUdp();
      const ep = t.track(api.epoll_create1());
      api.epoll_ctl(ep, EPOLL_CTL_ADD, b.fd, EPOLLIN);
      const peer = t.startPeer(b.at.port);
      const t0 = t.now();
      peer.go();
      t.eq(api.epoll_wait(ep, 4, -1), [{ data: b.fd, events: EPOLLIN }], "epoll_wait");
      t.ge(t.now() - t0, 0.8 * PEER_DELAY_MS, "ms epoll_wait blocked");
      const r = api.recvfrom(b.fd, new Uint8Array(16)); // blocking, data already there
      t.eq(r.n, 3, "the datagram");
      t.eq(r.addr, LO, "from 127.0.0.1");
    },
  },
  {
    name: "a blocking recvfrom waits for a datagram",
    peer: dgramPeer("4444"),
    run(api, t) {
      const b = t.boundUdp();
      const peer = t.startPeer(b.at.port);
      const t0 = t.now();
      peer.go();
      const r = api.recvfrom(b.fd, new Uint8Array(16));
      t.ge(t.now() - t0, 0.8 * PEER_DELAY_MS, "ms recvfrom blocked");
      t.eq(r.n, 4, "the datagram");
      t.eq(r.addr, LO, "from 127.0.0.1");
    },
  },
]);

// ---- counters

group("counters", [
  {
    name: "every call is counted by name",
    run(api, t) {
      api.resetStats();
      const { c } = t.pair(true);
      api.send(c, bytes("x"));
      t.errno(() => api.recv(c, new Uint8Array(4)), EAGAIN, "recv with nothing there");
      const st = api.stats();
      t.eq(st.calls.socket, 2, "socket calls");
      t.eq(st.calls.send, 1, "send calls");
      t.eq(st.calls.recv, 1, "recv calls");
      t.eq(st.wouldBlock, 1, "wouldBlock");
      t.eq(st.total, Object.values(st.calls).reduce((a, b) => a + b, 0), "total is the sum");
      t.ge(st.syscalls + st.userspace, st.total, "syscalls + userspace");
    },
  },
]);

/** A case by name (or "#N": the Nth case, from 0). */
export function findCase(name: string): Case | undefined {
  if (/^#\d+$/.test(name)) return CASES[Number(name.slice(1))];
  return CASES.find((c) => c.name === name);
}

{
  const seen = new Set<string>();
  for (const c of CASES) {
    if (seen.has(c.name)) throw new Error(`two cases named '${c.name}'`);
    seen.add(c.name);
  }
}
