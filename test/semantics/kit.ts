// The assertion kit and helpers of the shared socket-semantics suite (test/semantics/cases.ts).
// No vitest here: the cases run inside newts app processes (test/fixtures/semantics.ts), where
// only the SocketApi of the backend under test is at hand. Every check throws a plain Error that
// says what was expected and what came; t.errno() also records the errno it observed, so the
// runner can compare the errno sequences of the backends.
//
// fds: every socket a case makes through the kit (t.tcp, t.udp, t.track(accept(...).fd), ...)
// is closed when the case ends, passed or failed (t.cleanup, called by the runner).
//
// Peers: a case that needs a second thread of the same backend (a blocking call only a peer can
// end) calls t.startPeer(...ports): the runner has the harness start the case's peer as a second
// app process with the same backend, passing the ports (and a control port) through its argv.
// The peer says hello on the control port as soon as it runs; startPeer returns once it has (or
// fails after PEER_START_MS). From then on the case paces the peer with go(): the peer's
// t.awaitGo() returns when the next "go" arrives. Both sides bound every wait.
import {
  INADDR_LOOPBACK,
  MSG_DONTWAIT,
  MSG_PEEK,
  POLLERR,
  POLLHUP,
  POLLIN,
  SOCK_DGRAM,
  SOCK_STREAM,
  AF_INET,
  F_GETFL,
  F_SETFL,
  O_NONBLOCK,
  SOCK_NONBLOCK,
  type SockAddr,
  type SocketApi,
} from "../../libc/api.ts";
import { EAGAIN, errnoName, ErrnoError } from "../../lib/sys/errno.ts";

/** The console line by which a case asks the harness for its peer: `@@semantics-peer {PeerRequest as JSON}`. */
export const PEER_LINE = "@@semantics-peer";

/** What a case asks the harness for: start `semantics peer BACKEND CASE ...args` (test/fixtures/semantics.ts). */
export interface PeerRequest {
  backend: string;
  case: string;
  args: number[];
}

/** One case's outcome, as the runner app returns it. */
export interface CaseResult {
  name: string;
  group: string;
  ok: boolean;
  error?: string;
  ms: number;
  /** The errno of each t.errno()/t.errnoIs() check, by name ("0": none), in order. */
  errnos: string[];
}

/** 127.0.0.1: every backend answers 127/8 locally. */
export const LO = INADDR_LOOPBACK;
/** An fd no process has open: poll reports POLLNVAL, other calls EBADF. */
export const NOT_AN_FD = 1_000_000;
/** How long a peer may take to start (an app process of its own on a busy machine). */
export const PEER_START_MS = 15_000;
/** The longest a kit helper waits for anything. */
export const WAIT_MS = 10_000;

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
export const same = (a: SockAddr, b: SockAddr): boolean => a.addr === b.addr && a.port === b.port;

export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return b;
}

/** Byte equality (a deep compare is far too slow for megabytes). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The errno `f` throws (0 if it returns); anything but an ErrnoError is rethrown. */
export function errnoOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno;
    throw e;
  }
  return 0;
}

const napCell = new Int32Array(new SharedArrayBuffer(4));
export const sleep = (ms: number): void => void Atomics.wait(napCell, 0, 0, ms);

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x instanceof Set) return { Set: [...x] };
    if (x instanceof Uint8Array) return { bytes: x.length };
    return x;
  });
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Set && b instanceof Set) return a.size === b.size && [...a].every((x) => b.has(x));
  if (a instanceof Uint8Array && b instanceof Uint8Array) return equalBytes(a, b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return deepEqual(ka, kb) && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

/** A failed check of the kit. */
export class CheckFailed extends Error {
  override name = "CheckFailed";
}

/** What the runner gives the kit. */
export interface KitOptions {
  /** Peer side: the control port, then the case's ports (the peer's argv). */
  peerArgs?: number[];
  /** Runner side: asks the harness to start this case's peer with these args (control port first). */
  startPeer?: (args: number[]) => void;
}

/** The runner's end of a started peer. */
export interface PeerHandle {
  /** Lets the peer's next t.awaitGo() return. */
  go(): void;
}

/** The kit a case gets: checks, errno recording, fd bookkeeping and helpers over the API under test. */
export class Kit {
  /** The errno of every t.errno()/t.errnoIs() check, by name, in order. */
  readonly errnos: string[] = [];
  /** Peer side: the ports the case passed to startPeer. */
  readonly args: number[];
  private readonly open = new Set<number>();
  private ctl = -1; // peer side: the control socket, once hello was said
  private readonly ctlPort: number;

  constructor(
    readonly api: SocketApi,
    private readonly opts: KitOptions = {},
  ) {
    this.ctlPort = opts.peerArgs?.[0] ?? 0;
    this.args = opts.peerArgs?.slice(1) ?? [];
  }

  // ---- checks

  fail(what: string): never {
    throw new CheckFailed(what);
  }

  ok(cond: unknown, what: string): void {
    if (!cond) this.fail(what);
  }

  /** Deep equality (arrays, plain objects, Sets, bytes). */
  eq(got: unknown, want: unknown, what: string): void {
    if (!deepEqual(got, want)) this.fail(`${what}: got ${show(got)}, want ${show(want)}`);
  }

  ge(got: number, min: number, what: string): void {
    if (!(got >= min)) this.fail(`${what}: got ${got}, want >= ${min}`);
  }

  gt(got: number, min: number, what: string): void {
    if (!(got > min)) this.fail(`${what}: got ${got}, want > ${min}`);
  }

  lt(got: number, max: number, what: string): void {
    if (!(got < max)) this.fail(`${what}: got ${got}, want < ${max}`);
  }

  /** `f` throws ErrnoError `want` (0: returns normally); the errno seen is recorded. */
  errno(f: () => unknown, want: number, what: string): void {
    this.errnoIs(errnoOf(f), want, what);
  }

  /** An errno obtained otherwise (SO_ERROR, a loop's last call) is `want`; recorded. */
  errnoIs(got: number, want: number, what: string): void {
    this.errnos.push(got === 0 ? "0" : errnoName(got));
    if (got !== want) this.fail(`${what}: got ${got === 0 ? "no error" : errnoName(got)}, want ${want === 0 ? "no error" : errnoName(want)}`);
  }

  // ---- fds

  track(fd: number): number {
    this.open.add(fd);
    return fd;
  }

  close(fd: number): void {
    this.open.delete(fd);
    this.api.close(fd);
  }

  /** Closes every fd the case still has open; errors are ignored (the case's own result stands). */
  cleanup(): void {
    for (const fd of this.open) {
      try {
        this.api.close(fd);
      } catch {
        // already gone
      }
    }
    this.open.clear();
  }

  tcp(flags = 0): number {
    return this.track(this.api.socket(AF_INET, SOCK_STREAM | flags));
  }

  udp(flags = 0): number {
    return this.track(this.api.socket(AF_INET, SOCK_DGRAM | flags));
  }

  // ---- helpers (API calls only)

  /** A listener on 127.0.0.1:<ephemeral>. */
  listener(backlog = 16, flags = 0): { fd: number; at: SockAddr } {
    const fd = this.tcp(flags);
    this.api.bind(fd, { addr: LO, port: 0 });
    this.api.listen(fd, backlog);
    return { fd, at: this.api.getsockname(fd) };
  }

  /** A connected pair: c connected (blocking connect) to the listener, s accepted; both nonblocking if asked. */
  pair(nonblock = false): { l: number; c: number; s: number } {
    const api = this.api;
    const { fd: l, at } = this.listener();
    const c = this.tcp();
    api.connect(c, at);
    this.pending(l);
    const s = this.track(api.accept4(l, nonblock ? SOCK_NONBLOCK : 0).fd);
    if (nonblock) api.fcntl(c, F_SETFL, api.fcntl(c, F_GETFL) | O_NONBLOCK);
    return { l, c, s };
  }

  /** Waits (bounded) until listener l has a connection to accept, so that a blocking accept cannot hang. */
  pending(l: number, ms = WAIT_MS): void {
    if (!(this.waitFor(l, POLLIN, ms) & POLLIN)) this.fail(`no connection to accept within ${ms} ms`);
  }

  /** A UDP socket bound to 127.0.0.1:<ephemeral>. */
  boundUdp(flags = 0): { fd: number; at: SockAddr } {
    const fd = this.udp(flags);
    this.api.bind(fd, { addr: LO, port: 0 });
    return { fd, at: this.api.getsockname(fd) };
  }

  /** A TCP port with nothing listening: bound (so no one else takes it) but not listening. */
  closedPort(): SockAddr {
    const fd = this.tcp();
    this.api.bind(fd, { addr: LO, port: 0 });
    return this.api.getsockname(fd);
  }

  /** poll() one fd for up to ms; its revents. */
  waitFor(fd: number, events: number, ms = 5000): number {
    return this.api.poll([{ fd, events }], ms)[0]!;
  }

  /** Reads until `n` bytes came or EOF, waiting with poll (the fd may be blocking or not); what came. */
  readN(fd: number, n: number, ms = 5000): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    const end = performance.now() + ms;
    while (got < n) {
      if (performance.now() > end) this.fail(`readN: ${got} of ${n} bytes in ${ms} ms`);
      if (!(this.waitFor(fd, POLLIN, 100) & (POLLIN | POLLHUP | POLLERR))) continue;
      const k = this.api.recv(fd, out.subarray(got), MSG_DONTWAIT);
      if (k === 0) break;
      got += k;
    }
    return out.subarray(0, got);
  }

  /**
   * Waits until at least n bytes can be read from a stream at once (MSG_PEEK), so that a check of
   * one read's count does not depend on how fast a backend moves bytes between sockets.
   */
  waitBytes(fd: number, n: number, ms = 5000): void {
    const probe = new Uint8Array(n);
    const end = performance.now() + ms;
    for (;;) {
      this.waitFor(fd, POLLIN, 100);
      let k = 0;
      try {
        k = this.api.recv(fd, probe, MSG_PEEK | MSG_DONTWAIT);
      } catch (e) {
        if (!(e instanceof ErrnoError && e.errno === EAGAIN)) throw e;
      }
      if (k >= n) return;
      if (performance.now() > end) this.fail(`waitBytes: ${k} of ${n} bytes readable after ${ms} ms`);
    }
  }

  now(): number {
    return performance.now();
  }

  sleep(ms: number): void {
    sleep(ms);
  }

  // ---- peers

  /** Runner side: has the harness start this case's peer with `ports`; returns once it said hello. */
  startPeer(...ports: number[]): PeerHandle {
    const api = this.api;
    if (!this.opts.startPeer) this.fail("this case needs a peer, and the runner has no way to start one");
    const ctl = this.udp();
    api.bind(ctl, { addr: LO, port: 0 });
    this.opts.startPeer([api.getsockname(ctl).port, ...ports]);
    if (!(this.waitFor(ctl, POLLIN, PEER_START_MS) & POLLIN)) this.fail(`the peer did not say hello within ${PEER_START_MS} ms`);
    const hello = api.recvfrom(ctl, new Uint8Array(16));
    const at = { addr: hello.addr, port: hello.port };
    const go = bytes("go");
    return { go: () => void api.sendto(ctl, go, 0, at) };
  }

  /** Peer side: says hello (the first time) and waits for the runner's next go(). */
  awaitGo(ms = WAIT_MS): void {
    const api = this.api;
    if (this.ctl < 0) {
      if (!this.ctlPort) this.fail("not started as a peer (no control port)");
      this.ctl = this.udp();
      api.bind(this.ctl, { addr: LO, port: 0 });
      api.sendto(this.ctl, bytes("hello"), 0, { addr: LO, port: this.ctlPort });
    }
    if (!(this.waitFor(this.ctl, POLLIN, ms) & POLLIN)) this.fail(`no go from the runner within ${ms} ms`);
    api.recv(this.ctl, new Uint8Array(16));
  }
}
