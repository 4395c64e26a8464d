// Socket semantics, asserted against the SocketApi (libc/api.ts) over Linux: the start of the
// shared semantics suite that will run the same assertions against newts's backends. Only the
// first line below names a backend; the test bodies use the API alone. Loopback only; every fd
// a test opens is closed after it.
import { afterEach, describe, expect, test } from "vitest";
import { Worker } from "node:worker_threads";
import { LinuxSockets } from "./linux.ts";
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
  INADDR_LOOPBACK,
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
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  type SockAddr,
  type SocketApi,
  SOL_SOCKET,
  TCP_NODELAY,
} from "./api.ts";
import {
  EADDRINUSE,
  EAFNOSUPPORT,
  EAGAIN,
  EBADF,
  ECONNREFUSED,
  ECONNRESET,
  EEXIST,
  EINPROGRESS,
  EINVAL,
  EISCONN,
  EMSGSIZE,
  ENOENT,
  ENOTCONN,
  EOPNOTSUPP,
  EPIPE,
  ErrnoError,
} from "../lib/sys/errno.ts";
import type { PeerData } from "./linux-peer.fixture.ts";

const api: SocketApi = new LinuxSockets();

const LO = INADDR_LOOPBACK;
/** An fd no process has open: poll reports POLLNVAL, other calls EBADF. */
const NOT_AN_FD = 1_000_000;

// ---- fd bookkeeping: every fd a test opens is closed after it

const open = new Set<number>();
const track = (fd: number): number => (open.add(fd), fd);
function close(fd: number): void {
  open.delete(fd);
  api.close(fd);
}
afterEach(() => {
  for (const fd of open) api.close(fd);
  open.clear();
});

// ---- helpers (API calls only)

/** The errno `f` throws (0 if it returns). */
function errnoOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno;
    throw e;
  }
  return 0;
}

const tcp = (flags = 0): number => track(api.socket(AF_INET, SOCK_STREAM | flags));
const udp = (flags = 0): number => track(api.socket(AF_INET, SOCK_DGRAM | flags));

/** A listener on 127.0.0.1:<ephemeral>. */
function listener(backlog = 16, flags = 0): { fd: number; at: SockAddr } {
  const fd = tcp(flags);
  api.bind(fd, { addr: LO, port: 0 });
  api.listen(fd, backlog);
  return { fd, at: api.getsockname(fd) };
}

/** A connected pair: c connected (blocking connect) to the listener, s accepted; both nonblocking if asked. */
function pair(nonblock = false): { l: number; c: number; s: number } {
  const { fd: l, at } = listener();
  const c = tcp();
  api.connect(c, at);
  const s = track(api.accept4(l, nonblock ? SOCK_NONBLOCK : 0).fd);
  if (nonblock) api.fcntl(c, F_SETFL, api.fcntl(c, F_GETFL) | O_NONBLOCK);
  return { l, c, s };
}

/** A UDP socket bound to 127.0.0.1:<ephemeral>. */
function boundUdp(flags = 0): { fd: number; at: SockAddr } {
  const fd = udp(flags);
  api.bind(fd, { addr: LO, port: 0 });
  return { fd, at: api.getsockname(fd) };
}

/** A TCP port with nothing listening: bound (so no one else takes it) but not listening. */
function closedPort(): SockAddr {
  const fd = tcp();
  api.bind(fd, { addr: LO, port: 0 });
  return api.getsockname(fd);
}

/** poll() one fd for up to ms; its revents. */
const waitFor = (fd: number, events: number, ms = 2000): number => api.poll([{ fd, events }], ms)[0]!;

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Reads from a nonblocking fd until `n` bytes came or EOF; what came. */
function readN(fd: number, n: number, ms = 5000): Uint8Array {
  const out = new Uint8Array(n);
  let got = 0;
  const end = performance.now() + ms;
  while (got < n) {
    if (performance.now() > end) throw new Error(`readN: ${got} of ${n} bytes`);
    if (!(waitFor(fd, POLLIN, 100) & (POLLIN | POLLHUP | POLLERR))) continue;
    const k = api.recv(fd, out.subarray(got), MSG_DONTWAIT);
    if (k === 0) break;
    got += k;
  }
  return out.subarray(0, got);
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return b;
}

const same = (a: SockAddr, b: SockAddr): boolean => a.addr === b.addr && a.port === b.port;

/** Byte equality (vitest's toEqual is far too slow for megabytes). */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- tests

describe("sockets and addresses", () => {
  test("bind to port 0 picks a port; getsockname and getpeername agree on both ends", () => {
    const { l, c, s } = pair();
    const at = api.getsockname(l);
    expect(at.addr).toBe(LO);
    expect(at.port).toBeGreaterThan(0);
    expect(same(api.getpeername(c), at)).toBe(true);
    expect(same(api.getsockname(s), at)).toBe(true);
    const cLocal = api.getsockname(c);
    expect(cLocal.addr).toBe(LO);
    expect(same(api.getpeername(s), cLocal)).toBe(true);
  });

  test("accept returns the peer's address", () => {
    const { fd: l, at } = listener();
    const c = tcp();
    api.connect(c, at);
    const a = api.accept(l);
    track(a.fd);
    expect(same(a, api.getsockname(c))).toBe(true);
  });

  test("an unbound socket is 0.0.0.0:0 and has no peer", () => {
    const fd = tcp();
    expect(api.getsockname(fd)).toEqual({ addr: 0, port: 0 });
    expect(errnoOf(() => api.getpeername(fd))).toBe(ENOTCONN);
  });

  test("IPv4 only: other families are refused with EAFNOSUPPORT", () => {
    expect(errnoOf(() => track(api.socket(AF_INET6, SOCK_STREAM)))).toBe(EAFNOSUPPORT);
    expect(errnoOf(() => track(api.socket(AF_UNIX, SOCK_STREAM)))).toBe(EAFNOSUPPORT);
  });

  test("binding a port in use fails with EADDRINUSE", () => {
    const { at } = listener();
    const fd = tcp();
    expect(errnoOf(() => api.bind(fd, at))).toBe(EADDRINUSE);
  });

  test("SO_REUSEADDR lets a listener rebind a port its closed connections still hold", () => {
    const l = tcp();
    api.setsockopt(l, SOL_SOCKET, SO_REUSEADDR, 1);
    api.bind(l, { addr: LO, port: 0 });
    api.listen(l, 4);
    const at = api.getsockname(l);
    const c = tcp();
    api.connect(c, at);
    const s = track(api.accept(l).fd);
    close(s); // the server closes first: its end lingers (FIN_WAIT/TIME_WAIT) on `at`
    close(c);
    close(l);
    const plain = tcp();
    expect(errnoOf(() => api.bind(plain, at))).toBe(EADDRINUSE);
    const again = tcp();
    api.setsockopt(again, SOL_SOCKET, SO_REUSEADDR, 1);
    api.bind(again, at);
    api.listen(again, 4);
  });

  test("accept on a socket that is not listening: EINVAL; listen on a datagram socket: EOPNOTSUPP", () => {
    const fd = tcp();
    api.bind(fd, { addr: LO, port: 0 });
    expect(errnoOf(() => api.accept(fd))).toBe(EINVAL);
    expect(errnoOf(() => api.listen(udp()))).toBe(EOPNOTSUPP);
  });

  test("calls on an fd that is not open: EBADF", () => {
    const buf = new Uint8Array(8);
    expect(errnoOf(() => api.recv(NOT_AN_FD, buf))).toBe(EBADF);
    expect(errnoOf(() => api.send(NOT_AN_FD, buf))).toBe(EBADF);
    expect(errnoOf(() => api.getsockname(NOT_AN_FD))).toBe(EBADF);
  });
});

describe("options and flags", () => {
  test("O_NONBLOCK through SOCK_NONBLOCK, fcntl and accept4", () => {
    const fd = tcp(SOCK_NONBLOCK | SOCK_CLOEXEC);
    const fl = api.fcntl(fd, F_GETFL);
    expect(fl & O_NONBLOCK).toBe(O_NONBLOCK);
    api.fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    expect(api.fcntl(fd, F_GETFL) & O_NONBLOCK).toBe(0);

    // accept's new fd is blocking even from a nonblocking listener; accept4 can make it nonblocking.
    const { fd: l, at } = listener(16, SOCK_NONBLOCK);
    const c1 = tcp();
    const c2 = tcp();
    api.connect(c1, at);
    api.connect(c2, at);
    const a1 = track(api.accept(l).fd);
    const a2 = track(api.accept4(l, SOCK_NONBLOCK).fd);
    expect(api.fcntl(a1, F_GETFL) & O_NONBLOCK).toBe(0);
    expect(api.fcntl(a2, F_GETFL) & O_NONBLOCK).toBe(O_NONBLOCK);
  });

  test("setsockopt and getsockopt", () => {
    const { c } = pair();
    api.setsockopt(c, SOL_SOCKET, SO_REUSEADDR, 1);
    expect(api.getsockopt(c, SOL_SOCKET, SO_REUSEADDR)).not.toBe(0);
    expect(api.getsockopt(c, SOL_SOCKET, SO_KEEPALIVE)).toBe(0);
    api.setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, 1);
    expect(api.getsockopt(c, SOL_SOCKET, SO_KEEPALIVE)).not.toBe(0);
    api.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 1);
    expect(api.getsockopt(c, IPPROTO_TCP, TCP_NODELAY)).not.toBe(0);
    api.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, 0);
    expect(api.getsockopt(c, IPPROTO_TCP, TCP_NODELAY)).toBe(0);
    // Buffer sizes: at least what was asked (Linux doubles it for its bookkeeping).
    api.setsockopt(c, SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    api.setsockopt(c, SOL_SOCKET, SO_SNDBUF, 32 * 1024);
    expect(api.getsockopt(c, SOL_SOCKET, SO_RCVBUF)).toBeGreaterThanOrEqual(64 * 1024);
    expect(api.getsockopt(c, SOL_SOCKET, SO_SNDBUF)).toBeGreaterThanOrEqual(32 * 1024);
    expect(api.getsockopt(c, SOL_SOCKET, SO_LINGER)).toEqual({ onoff: false, linger: 0 });
    api.setsockopt(c, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 5 });
    expect(api.getsockopt(c, SOL_SOCKET, SO_LINGER)).toEqual({ onoff: true, linger: 5 });
    expect(api.getsockopt(c, SOL_SOCKET, SO_ERROR)).toBe(0);
  });
});

describe("stream sockets", () => {
  test("bytes both ways through send/recv, write/read, writev/readv, recvBytes and MSG_PEEK", () => {
    const { c, s } = pair();
    expect(api.send(c, bytes("hello"))).toBe(5);
    const buf = new Uint8Array(64);
    expect(api.recv(s, buf, MSG_PEEK)).toBe(5);
    expect(api.recv(s, buf)).toBe(5);
    expect(text(buf.subarray(0, 5))).toBe("hello");

    expect(api.write(s, bytes("world!"))).toBe(6);
    // recv into the middle of a buffer: subarrays are honoured.
    expect(api.read(c, buf.subarray(10, 20))).toBe(6);
    expect(text(buf.subarray(10, 16))).toBe("world!");

    expect(api.writev(c, [bytes("ab"), new Uint8Array(0), bytes("cdef"), bytes("g")])).toBe(7);
    const parts = [new Uint8Array(3), new Uint8Array(2), new Uint8Array(10)];
    expect(waitFor(s, POLLIN) & POLLIN).toBe(POLLIN);
    expect(api.readv(s, parts)).toBe(7);
    expect(text(parts[0]!) + text(parts[1]!) + text(parts[2]!.subarray(0, 2))).toBe("abcdefg");

    api.send(s, bytes("xyz"));
    expect(text(api.recvBytes(c, 100))).toBe("xyz");
    // A zero-length send is allowed and sends nothing.
    expect(api.send(c, new Uint8Array(0))).toBe(0);
  });

  test("a megabyte each way through nonblocking sockets in one thread, in order", () => {
    const { c, s } = pair(true);
    const N = 1 << 20;
    const a = pattern(N, 1);
    const b = pattern(N, 7);
    const gotA = new Uint8Array(N);
    const gotB = new Uint8Array(N);
    let sentA = 0, sentB = 0, rcvA = 0, rcvB = 0;
    const end = performance.now() + 20_000;
    while (rcvA < N || rcvB < N) {
      if (performance.now() > end) throw new Error("stalled");
      const step = (fd: number, out: Uint8Array, off: number): number => {
        try {
          return api.send(fd, out.subarray(off, Math.min(out.length, off + 100_000)));
        } catch (e) {
          if (e instanceof ErrnoError && e.errno === EAGAIN) return 0;
          throw e;
        }
      };
      const take = (fd: number, into: Uint8Array, off: number): number => {
        try {
          const k = api.recv(fd, into.subarray(off));
          expect(k).toBeGreaterThan(0);
          return k;
        } catch (e) {
          if (e instanceof ErrnoError && e.errno === EAGAIN) return 0;
          throw e;
        }
      };
      if (sentA < N) sentA += step(c, a, sentA);
      if (sentB < N) sentB += step(s, b, sentB);
      if (rcvA < N) rcvA += take(s, gotA, rcvA);
      if (rcvB < N) rcvB += take(c, gotB, rcvB);
      api.poll([{ fd: c, events: POLLIN }, { fd: s, events: POLLIN }], 10);
    }
    expect(equalBytes(gotA, a)).toBe(true);
    expect(equalBytes(gotB, b)).toBe(true);
  });

  test("EAGAIN: nonblocking recv, read and accept with nothing there; MSG_DONTWAIT on a blocking socket; a full send buffer", () => {
    const { l, c, s } = pair(true);
    const buf = new Uint8Array(16);
    expect(errnoOf(() => api.recv(c, buf))).toBe(EAGAIN);
    expect(errnoOf(() => api.read(s, buf))).toBe(EAGAIN);
    expect(errnoOf(() => api.recvfrom(s, buf))).toBe(EAGAIN);
    api.fcntl(l, F_SETFL, O_NONBLOCK);
    expect(errnoOf(() => api.accept(l))).toBe(EAGAIN);

    const { c: bc } = pair(false);
    expect(errnoOf(() => api.recv(bc, buf, MSG_DONTWAIT))).toBe(EAGAIN);

    // Nobody reads s: c's sends fill both buffers, then would block.
    const chunk = new Uint8Array(64 * 1024);
    let sent = 0;
    let e = 0;
    while (e === 0 && sent < 1 << 30) e = errnoOf(() => (sent += api.send(c, chunk)));
    expect(e).toBe(EAGAIN);
    expect(sent).toBeGreaterThan(0);
    expect(waitFor(c, POLLOUT, 0) & POLLOUT).toBe(0);
  });

  test("EOF after the peer's shutdown(SHUT_WR), and the half-closed connection still carries the other way", () => {
    const { c, s } = pair(true);
    api.send(c, bytes("last words"));
    api.shutdown(c, SHUT_WR);
    expect(text(readN(s, 100))).toBe("last words"); // then EOF
    const buf = new Uint8Array(8);
    expect(api.recv(s, buf)).toBe(0);
    expect(api.recv(s, buf)).toBe(0); // EOF is sticky
    // Writing on the side that shut its writing: EPIPE (and no SIGPIPE).
    expect(errnoOf(() => api.send(c, bytes("x")))).toBe(EPIPE);
    expect(errnoOf(() => api.write(c, bytes("x")))).toBe(EPIPE);
    // The other direction is still open.
    api.send(s, bytes("reply"));
    expect(text(readN(c, 5))).toBe("reply");
    api.shutdown(s, SHUT_WR);
    expect(readN(c, 10)).toHaveLength(0);
    expect(api.recv(c, buf)).toBe(0);
  });

  test("shutdown(SHUT_RD): recv on an empty socket is EOF, even nonblocking", () => {
    const { c } = pair(true);
    api.shutdown(c, SHUT_RD);
    expect(api.recv(c, new Uint8Array(8))).toBe(0);
  });

  test("an unconnected stream socket: recv and shutdown fail with ENOTCONN", () => {
    const fd = tcp();
    expect(errnoOf(() => api.recv(fd, new Uint8Array(4)))).toBe(ENOTCONN);
    expect(errnoOf(() => api.shutdown(fd, SHUT_RDWR))).toBe(ENOTCONN);
  });

  test("connect on a connected socket: EISCONN", () => {
    const { c, l } = pair();
    expect(errnoOf(() => api.connect(c, api.getsockname(l)))).toBe(EISCONN);
  });

  test("a reset (peer closes with SO_LINGER 0): ECONNRESET, then EOF; writing after it: EPIPE, not SIGPIPE", () => {
    const { c, s } = pair(true);
    api.send(c, bytes("unread"));
    api.setsockopt(s, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
    close(s);
    expect(waitFor(c, POLLIN) & POLLERR).toBe(POLLERR);
    const buf = new Uint8Array(8);
    expect(errnoOf(() => api.recv(c, buf))).toBe(ECONNRESET); // the error is reported once
    expect(api.recv(c, buf)).toBe(0);
    expect(errnoOf(() => api.send(c, bytes("x")))).toBe(EPIPE);
    expect(errnoOf(() => api.write(c, bytes("x")))).toBe(EPIPE);
    expect(errnoOf(() => api.writev(c, [bytes("x"), bytes("y")]))).toBe(EPIPE);
    expect(api.getsockopt(c, SOL_SOCKET, SO_ERROR)).toBe(0);
  });

  test("the first call after a reset reports it, whichever it is: a send gets ECONNRESET, the next EPIPE", () => {
    const { c, s } = pair(true);
    api.setsockopt(s, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
    close(s);
    expect(waitFor(c, POLLIN) & POLLHUP).toBe(POLLHUP);
    expect(errnoOf(() => api.send(c, bytes("x")))).toBe(ECONNRESET);
    expect(errnoOf(() => api.send(c, bytes("x")))).toBe(EPIPE);
  });

  test("close with unread received data resets the connection", () => {
    const { c, s } = pair(true);
    api.send(c, bytes("never read"));
    expect(waitFor(s, POLLIN) & POLLIN).toBe(POLLIN);
    close(s);
    expect(waitFor(c, POLLIN) & POLLERR).toBe(POLLERR);
    expect(errnoOf(() => api.recv(c, new Uint8Array(8)))).toBe(ECONNRESET);
  });

  test("close with unsent data pending is graceful: all of it arrives, then EOF", () => {
    const { c, s } = pair(true);
    const N = 4 << 20;
    const data = pattern(N, 3);
    let sent = 0;
    while (sent < N) {
      const e = errnoOf(() => (sent += api.send(c, data.subarray(sent))));
      if (e === EAGAIN) break;
      expect(e).toBe(0);
    }
    expect(sent).toBeGreaterThan(0);
    close(c); // most of `sent` is still in c's send queue or in flight
    const got = readN(s, N, 10_000);
    expect(got.length).toBe(sent);
    expect(equalBytes(got, data.subarray(0, sent))).toBe(true);
    expect(api.recv(s, new Uint8Array(8))).toBe(0);
  });

  test("blocking connect to a port with no listener: ECONNREFUSED", () => {
    const fd = tcp();
    expect(errnoOf(() => api.connect(fd, closedPort()))).toBe(ECONNREFUSED);
  });

  test("nonblocking connect: EINPROGRESS, then writable with SO_ERROR 0", () => {
    const { fd: l, at } = listener();
    const c = tcp(SOCK_NONBLOCK);
    expect(errnoOf(() => api.connect(c, at))).toBe(EINPROGRESS);
    expect(waitFor(c, POLLOUT) & POLLOUT).toBe(POLLOUT);
    expect(api.getsockopt(c, SOL_SOCKET, SO_ERROR)).toBe(0);
    expect(same(api.getpeername(c), at)).toBe(true);
    const s = track(api.accept(l).fd);
    api.send(c, bytes("ok"));
    expect(text(api.recvBytes(s, 8))).toBe("ok");
  });

  test("nonblocking connect to a port with no listener: EINPROGRESS, then SO_ERROR ECONNREFUSED (once)", () => {
    const c = tcp(SOCK_NONBLOCK);
    expect(errnoOf(() => api.connect(c, closedPort()))).toBe(EINPROGRESS);
    const r = waitFor(c, POLLOUT);
    expect(r & POLLERR).toBe(POLLERR);
    expect(api.getsockopt(c, SOL_SOCKET, SO_ERROR)).toBe(ECONNREFUSED);
    expect(api.getsockopt(c, SOL_SOCKET, SO_ERROR)).toBe(0);
    expect(errnoOf(() => api.getpeername(c))).toBe(ENOTCONN);
  });

  test("backlog: a full accept queue holds later connections back (not refused) until accept makes room", () => {
    const backlog = 1;
    const { fd: l, at } = listener(backlog, SOCK_NONBLOCK);
    const clients: number[] = [];
    for (let i = 0; i < 4; i++) {
      const c = tcp(SOCK_NONBLOCK);
      expect(errnoOf(() => api.connect(c, at))).toBe(EINPROGRESS);
      clients.push(c);
    }
    api.poll(clients.map((fd) => ({ fd, events: POLLOUT })), 300);
    const done = () => clients.filter((fd) => waitFor(fd, POLLOUT, 0) & POLLOUT);
    const early = done();
    // At least the backlog completes at once (Linux: backlog + 1); the rest wait, none is refused.
    expect(early.length).toBeGreaterThanOrEqual(backlog);
    expect(early.length).toBeLessThan(clients.length);
    for (const c of clients) expect(api.getsockopt(c, SOL_SOCKET, SO_ERROR)).toBe(0);
    // Accepting makes room: every client gets in (Linux: at the client's next SYN, ~1 s later).
    const accepted: SockAddr[] = [];
    const end = performance.now() + 10_000;
    while (accepted.length < clients.length && performance.now() < end) {
      if (!(waitFor(l, POLLIN, 200) & POLLIN)) continue;
      const a = api.accept(l);
      track(a.fd);
      accepted.push({ addr: a.addr, port: a.port });
    }
    expect(accepted).toHaveLength(clients.length);
    // In order of arrival: the early ones first.
    const names = clients.map((c) => api.getsockname(c));
    for (let i = 0; i < early.length; i++) expect(same(accepted[i]!, api.getsockname(early[i]!))).toBe(true);
    for (const n of names) expect(accepted.some((a) => same(a, n))).toBe(true);
    expect(done()).toHaveLength(clients.length);
  });
});

describe("datagram sockets", () => {
  test("sendto/recvfrom tell the sender; boundaries are kept; an empty datagram reads as 0", () => {
    const a = boundUdp();
    const b = boundUdp(SOCK_NONBLOCK);
    expect(api.sendto(a.fd, bytes("one"), 0, b.at)).toBe(3);
    expect(api.sendto(a.fd, bytes("two!"), 0, b.at)).toBe(4);
    expect(api.sendto(a.fd, new Uint8Array(0), 0, b.at)).toBe(0);
    expect(waitFor(b.fd, POLLIN) & POLLIN).toBe(POLLIN);
    const buf = new Uint8Array(100);
    const r1 = api.recvfrom(b.fd, buf);
    expect(r1.n).toBe(3);
    expect(text(buf.subarray(0, 3))).toBe("one");
    expect(same(r1, a.at)).toBe(true);
    expect(api.recvfrom(b.fd, buf).n).toBe(4);
    const r3 = api.recvfrom(b.fd, buf);
    expect(r3.n).toBe(0);
    expect(same(r3, a.at)).toBe(true);
    expect(errnoOf(() => api.recvfrom(b.fd, buf))).toBe(EAGAIN);
  });

  test("a datagram longer than the buffer is truncated and the rest dropped", () => {
    const a = boundUdp();
    const b = boundUdp(SOCK_NONBLOCK);
    api.sendto(a.fd, bytes("0123456789"), 0, b.at);
    api.sendto(a.fd, bytes("next"), 0, b.at);
    expect(waitFor(b.fd, POLLIN) & POLLIN).toBe(POLLIN);
    const small = new Uint8Array(4);
    expect(api.recv(b.fd, small)).toBe(4);
    expect(text(small)).toBe("0123");
    expect(text(api.recvBytes(b.fd, 100))).toBe("next");
  });

  test("EAGAIN when empty (nonblocking or MSG_DONTWAIT); EMSGSIZE beyond 65507 bytes", () => {
    const a = boundUdp();
    expect(errnoOf(() => api.recv(a.fd, new Uint8Array(8), MSG_DONTWAIT))).toBe(EAGAIN);
    const b = boundUdp(SOCK_NONBLOCK);
    expect(errnoOf(() => api.recvfrom(b.fd, new Uint8Array(8)))).toBe(EAGAIN);
    expect(errnoOf(() => api.sendto(a.fd, new Uint8Array(65508), 0, b.at))).toBe(EMSGSIZE);
    expect(api.sendto(a.fd, new Uint8Array(65507), 0, b.at)).toBe(65507);
  });

  test("a connected datagram socket: send/recv with its peer only; getpeername", () => {
    const a = boundUdp(SOCK_NONBLOCK);
    const b = boundUdp(SOCK_NONBLOCK);
    const other = boundUdp();
    api.connect(a.fd, b.at);
    expect(same(api.getpeername(a.fd), b.at)).toBe(true);
    api.send(a.fd, bytes("to b"));
    expect(text(readN(b.fd, 4))).toBe("to b");
    // Datagrams from anyone but the peer are not delivered to a connected socket.
    api.sendto(other.fd, bytes("stranger"), 0, a.at);
    api.sendto(b.fd, bytes("peer"), 0, a.at);
    expect(waitFor(a.fd, POLLIN) & POLLIN).toBe(POLLIN);
    const buf = new Uint8Array(32);
    const r = api.recvfrom(a.fd, buf);
    expect(text(buf.subarray(0, r.n))).toBe("peer");
    expect(same(r, b.at)).toBe(true);
    expect(waitFor(a.fd, POLLIN, 50)).toBe(0);
  });

  test("a connected datagram socket learns of an unreachable port: ECONNREFUSED", () => {
    const gone = boundUdp();
    const at = gone.at;
    close(gone.fd);
    const a = boundUdp(SOCK_NONBLOCK);
    api.connect(a.fd, at);
    api.send(a.fd, bytes("anyone?"));
    expect(waitFor(a.fd, POLLIN) & POLLERR).toBe(POLLERR);
    expect(errnoOf(() => api.recv(a.fd, new Uint8Array(8)))).toBe(ECONNREFUSED);
    expect(errnoOf(() => api.recv(a.fd, new Uint8Array(8)))).toBe(EAGAIN);
  });
});

describe("readiness: poll", () => {
  test("a fresh connection is writable, not readable; readable once data comes; a listener is readable with a connection pending", () => {
    const { fd: l, at } = listener();
    expect(waitFor(l, POLLIN, 0)).toBe(0);
    const c = tcp();
    api.connect(c, at);
    expect(waitFor(l, POLLIN) & POLLIN).toBe(POLLIN);
    const s = track(api.accept(l).fd);
    expect(waitFor(l, POLLIN, 0)).toBe(0);
    expect(waitFor(c, POLLIN | POLLOUT, 0)).toBe(POLLOUT);
    api.send(s, bytes("x"));
    expect(waitFor(c, POLLIN) & POLLIN).toBe(POLLIN);
    expect(api.poll([{ fd: c, events: POLLIN }, { fd: s, events: POLLIN }], 0)).toEqual([POLLIN, 0]);
  });

  test("the peer's SHUT_WR: POLLIN|POLLRDHUP; both directions shut: POLLHUP; a reset: POLLERR|POLLHUP", () => {
    const { c, s } = pair(true);
    api.shutdown(s, SHUT_WR);
    expect(waitFor(c, POLLIN | POLLRDHUP) & (POLLIN | POLLRDHUP)).toBe(POLLIN | POLLRDHUP);
    expect(waitFor(c, POLLIN, 0) & POLLHUP).toBe(0);
    api.shutdown(c, SHUT_WR);
    expect(waitFor(c, POLLIN) & POLLHUP).toBe(POLLHUP);

    const p = pair(true);
    api.setsockopt(p.s, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
    close(p.s);
    // POLLERR and POLLHUP come whether asked for or not.
    expect(waitFor(p.c, 0, 2000) & (POLLERR | POLLHUP)).toBe(POLLERR | POLLHUP);
  });

  test("a timeout with nothing ready returns all zeros after about that long; an fd that is not open gives POLLNVAL", () => {
    const { c } = pair();
    const t0 = performance.now();
    expect(api.poll([{ fd: c, events: POLLIN }], 60)).toEqual([0]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    expect(api.poll([{ fd: NOT_AN_FD, events: POLLIN }, { fd: c, events: POLLOUT }], 0)).toEqual([POLLNVAL, POLLOUT]);
  });
});

describe("readiness: select", () => {
  test("read and write sets in, ready sets out", () => {
    const { l, c, s } = pair();
    let r = api.select([c, s, l], [c], 0);
    expect([...r.readfds]).toEqual([]);
    expect([...r.writefds]).toEqual([c]);
    expect(r.n).toBe(1);
    api.send(c, bytes("x"));
    r = api.select([c, s], [c, s], 1000);
    expect([...r.readfds]).toEqual([s]);
    expect(new Set(r.writefds)).toEqual(new Set([c, s]));
    expect(r.n).toBe(3);
    // EOF and errors count as readable.
    api.shutdown(c, SHUT_WR);
    api.recv(s, new Uint8Array(1));
    expect([...api.select([s], [], 1000).readfds]).toEqual([s]);
  });

  test("a timeout with nothing ready: empty sets; an fd that is not open: EBADF", () => {
    const { c } = pair();
    const t0 = performance.now();
    const r = api.select([c], [], 60);
    expect(r.n).toBe(0);
    expect(r.readfds.size + r.writefds.size).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    expect(errnoOf(() => api.select([NOT_AN_FD], [], 0))).toBe(EBADF);
  });
});

describe("readiness: epoll", () => {
  test("level-triggered: ADD, wait, MOD, DEL; data defaults to the fd", () => {
    const ep = track(api.epoll_create1());
    const { c, s } = pair(true);
    api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN);
    expect(api.epoll_wait(ep, 8, 0)).toEqual([]);
    api.send(s, bytes("ab"));
    expect(api.epoll_wait(ep, 8, 1000)).toEqual([{ data: c, events: EPOLLIN }]);
    expect(api.epoll_wait(ep, 8, 0)).toEqual([{ data: c, events: EPOLLIN }]); // still there until read
    api.recv(c, new Uint8Array(8));
    expect(api.epoll_wait(ep, 8, 0)).toEqual([]);
    api.epoll_ctl(ep, EPOLL_CTL_MOD, c, EPOLLOUT, 12345);
    expect(api.epoll_wait(ep, 8, 0)).toEqual([{ data: 12345, events: EPOLLOUT }]);
    api.epoll_ctl(ep, EPOLL_CTL_DEL, c);
    expect(api.epoll_wait(ep, 8, 0)).toEqual([]);
    expect(errnoOf(() => api.epoll_ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN))).toBe(ENOENT);
    api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN);
    expect(errnoOf(() => api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN))).toBe(EEXIST);
  });

  test("edge-triggered: one event per arrival, not per wait", () => {
    const ep = track(api.epoll_create1());
    const { c, s } = pair(true);
    api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLET);
    api.send(s, bytes("a"));
    expect(api.epoll_wait(ep, 8, 1000)).toEqual([{ data: c, events: EPOLLIN }]);
    expect(api.epoll_wait(ep, 8, 0)).toEqual([]); // unread, but no new edge
    api.send(s, bytes("b"));
    expect(api.epoll_wait(ep, 8, 1000)).toEqual([{ data: c, events: EPOLLIN }]);
    expect(text(api.recvBytes(c, 8))).toBe("ab");
  });

  test("listener, EPOLLRDHUP, hangup and reset; max bounds the events returned", () => {
    const ep = track(api.epoll_create1());
    const { fd: l, at } = listener(16, SOCK_NONBLOCK);
    api.epoll_ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN);
    const c1 = tcp();
    const c2 = tcp();
    api.connect(c1, at);
    api.connect(c2, at);
    expect(api.epoll_wait(ep, 8, 1000)).toEqual([{ data: l, events: EPOLLIN }]);
    const s1 = track(api.accept(l).fd);
    const s2 = track(api.accept(l).fd);
    api.epoll_ctl(ep, EPOLL_CTL_DEL, l);

    api.epoll_ctl(ep, EPOLL_CTL_ADD, c1, EPOLLIN | EPOLLRDHUP);
    api.epoll_ctl(ep, EPOLL_CTL_ADD, c2, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
    expect(api.epoll_wait(ep, 8, 0)).toEqual([{ data: c2, events: EPOLLOUT }]);
    api.shutdown(s1, SHUT_WR);
    api.setsockopt(s2, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
    close(s2);
    const t0 = performance.now();
    let evs = api.epoll_wait(ep, 8, 1000);
    while (evs.length < 2 && performance.now() - t0 < 2000) evs = api.epoll_wait(ep, 8, 100);
    const by = new Map(evs.map((e) => [e.data, e.events]));
    expect(by.get(c1)).toBe(EPOLLIN | EPOLLRDHUP);
    expect(by.get(c2)! & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP)).toBe(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP);
    expect(api.epoll_wait(ep, 1, 0)).toHaveLength(1);

    // Both directions shut: EPOLLHUP.
    api.epoll_ctl(ep, EPOLL_CTL_DEL, c2);
    api.shutdown(c1, SHUT_WR);
    expect(api.epoll_wait(ep, 8, 1000)[0]!.events & EPOLLHUP).toBe(EPOLLHUP);
  });

  test("closing an fd takes it out of the interest set", () => {
    const ep = track(api.epoll_create1());
    const { c, s } = pair(true);
    api.epoll_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT);
    expect(api.epoll_wait(ep, 8, 0)).toHaveLength(1);
    close(c);
    api.send(s, new Uint8Array(1)); // may fail later with a reset; the event must not show either way
    expect(api.epoll_wait(ep, 8, 20)).toEqual([]);
  });
});

// ---- blocking calls: the test's thread blocks in the host kernel while a peer thread acts.
// (If the peer failed to act, the thread would stay blocked: the peer always closes its socket.)

const dlopenLock = new SharedArrayBuffer(4);

function peer(data: Omit<PeerData, "lock">): Promise<void> {
  const worker = new Worker(new URL("./linux-peer.fixture.ts", import.meta.url), {
    workerData: { ...data, lock: dlopenLock } satisfies PeerData,
  });
  return new Promise<void>((resolve, reject) => {
    worker.on("message", (m: { ok: boolean; error?: string }) => (m.ok ? resolve() : reject(new Error(m.error))));
    worker.on("error", reject);
    worker.on("exit", (code) => reject(new Error(`peer exited with ${code}`)));
  }).finally(() => void worker.terminate());
}

describe("blocking calls", () => {
  test("accept blocks until a peer connects; recv blocks until it sends", async () => {
    const { fd: l, at } = listener();
    const payload = bytes("from another thread");
    const done = peer({ script: "stream", port: at.port, delayMs: 150, payload });
    const s = track(api.accept(l).fd);
    const t0 = performance.now();
    const buf = new Uint8Array(64);
    const n = api.recv(s, buf); // blocks ~150 ms
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
    expect(text(buf.subarray(0, n))).toBe(text(payload).slice(0, n));
    let got = n;
    while (got < payload.length) got += api.recv(s, buf.subarray(got));
    expect(text(buf.subarray(0, got))).toBe("from another thread");
    api.shutdown(s, SHUT_WR); // the peer reads EOF, closes
    expect(api.recv(s, buf)).toBe(0);
    await done;
  });

  test("select, poll and epoll_wait with no timeout block until a datagram comes", async () => {
    const b = boundUdp();
    const ep = track(api.epoll_create1());
    api.epoll_ctl(ep, EPOLL_CTL_ADD, b.fd, EPOLLIN);
    const buf = new Uint8Array(16);

    let done = peer({ script: "dgram", port: b.at.port, delayMs: 100, payload: bytes("1") });
    expect([...api.select([b.fd], [], -1).readfds]).toEqual([b.fd]);
    expect(api.recv(b.fd, buf)).toBe(1);
    await done;

    done = peer({ script: "dgram", port: b.at.port, delayMs: 100, payload: bytes("22") });
    expect(api.poll([{ fd: b.fd, events: POLLIN }], -1)).toEqual([POLLIN]);
    expect(api.recv(b.fd, buf)).toBe(2);
    await done;

    done = peer({ script: "dgram", port: b.at.port, delayMs: 100, payload: bytes("333") });
    expect(api.epoll_wait(ep, 4, -1)).toEqual([{ data: b.fd, events: EPOLLIN }]);
    const r = api.recvfrom(b.fd, buf); // blocking, data already there
    expect(r.n).toBe(3);
    expect(r.addr).toBe(LO);
    await done;
  });
});

describe("counters", () => {
  test("every call is counted by name; on Linux each is a system call", () => {
    api.resetStats();
    const { c, s } = pair(true);
    api.send(c, bytes("x"));
    errnoOf(() => api.recv(c, new Uint8Array(4)));
    const st = api.stats();
    expect(st.calls.socket).toBe(2);
    expect(st.calls.send).toBe(1);
    expect(st.calls.recv).toBe(1);
    expect(st.wouldBlock).toBe(1);
    expect(st.total).toBe(Object.values(st.calls).reduce((a, b) => a + b, 0));
    expect(st.syscalls + st.userspace).toBeGreaterThanOrEqual(st.total);
    void s;
  });
});
