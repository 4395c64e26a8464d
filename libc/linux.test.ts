// The Linux backend's own tests. Socket semantics — stream and datagram, EOF, half-close,
// resets, EPIPE, EAGAIN, EINPROGRESS, poll/select/epoll readiness, backlog, blocking calls —
// are no longer here: they are the shared suite test/semantics/cases.ts, which
// test/semantics.test.ts runs on this backend and on newts's ("fast", "syscall") by the same
// code, expecting the same results and errno values. Here: what holds on Linux only, and that
// LinuxSockets needs no newts process (these tests run in the vitest worker itself).
import { afterEach, describe, expect, test } from "vitest";
import { LinuxSockets } from "./linux.ts";
import {
  AF_INET,
  INADDR_LOOPBACK,
  MSG_DONTWAIT,
  POLLIN,
  SO_RCVBUF,
  SO_SNDBUF,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  type SocketApi,
  SOL_SOCKET,
} from "./api.ts";
import { EAGAIN, ErrnoError } from "../lib/sys/errno.ts";

const api: SocketApi = new LinuxSockets();
const LO = INADDR_LOOPBACK;

const open = new Set<number>();
const track = (fd: number): number => (open.add(fd), fd);
afterEach(() => {
  for (const fd of open) api.close(fd);
  open.clear();
});

function errnoOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno;
    throw e;
  }
  return 0;
}

/** A connected TCP pair on loopback. */
function pair(): { c: number; s: number } {
  const l = track(api.socket(AF_INET, SOCK_STREAM));
  api.bind(l, { addr: LO, port: 0 });
  api.listen(l, 4);
  const c = track(api.socket(AF_INET, SOCK_STREAM));
  api.connect(c, api.getsockname(l));
  const s = track(api.accept(l).fd);
  return { c, s };
}

describe("Linux only", () => {
  test("works outside a newts process: a datagram and a stream on loopback, from the test's own thread", () => {
    const a = track(api.socket(AF_INET, SOCK_DGRAM));
    const b = track(api.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK));
    api.bind(b, { addr: LO, port: 0 });
    expect(api.sendto(a, new Uint8Array([1, 2, 3]), 0, api.getsockname(b))).toBe(3);
    expect(api.poll([{ fd: b, events: POLLIN }], 2000)).toEqual([POLLIN]);
    expect(api.recvfrom(b, new Uint8Array(8)).n).toBe(3);

    const { c, s } = pair();
    expect(api.send(c, new Uint8Array([9]))).toBe(1);
    expect([...api.recvBytes(s, 8)]).toEqual([9]);
  });

  test("SO_RCVBUF and SO_SNDBUF: Linux doubles what is set (the shared suite asks for at least what was set)", () => {
    const { c } = pair();
    api.setsockopt(c, SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    api.setsockopt(c, SOL_SOCKET, SO_SNDBUF, 32 * 1024);
    expect(api.getsockopt(c, SOL_SOCKET, SO_RCVBUF)).toBe(128 * 1024);
    expect(api.getsockopt(c, SOL_SOCKET, SO_SNDBUF)).toBe(64 * 1024);
  });

  test("every call is a system call: none is resolved in user space", () => {
    api.resetStats();
    const { c } = pair();
    api.send(c, new Uint8Array(1));
    expect(errnoOf(() => api.recv(c, new Uint8Array(4), MSG_DONTWAIT))).toBe(EAGAIN);
    const st = api.stats();
    expect(st.total).toBeGreaterThan(0);
    expect(st.userspace).toBe(0);
    expect(st.syscalls).toBeGreaterThanOrEqual(st.total);
    expect(st.wouldBlock).toBe(1);
  });
});
