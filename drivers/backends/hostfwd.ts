// The hostfwd backend: user-mode networking (QEMU's -netdev user,hostfwd=tcp::H-:G) with no root: the backend is the gateway.
//
// The backend plays the outside world for newts. It is the host 10.0.2.2 (MAC
// 52:55:0a:00:02:02) on newts's subnet 10.0.2.0/24, newts being 10.0.2.15:
//
//   - ARP requests for 10.0.2.2 are answered; newts's MAC is learned from its frames
//     (until then frames go to the NIC's configured MAC);
//   - ICMP echo requests to 10.0.2.2 get echo replies (`ping 10.0.2.2` works);
//   - each rule tcp:HOSTPORT:GUESTPORT listens on 127.0.0.1:HOSTPORT (a real socket,
//     nonblocking, SO_REUSEADDR). Every accepted host connection becomes a TCP
//     connection from 10.0.2.2:<ephemeral> to 10.0.2.15:GUESTPORT, run by lib/net/tcp's
//     TcpConnection on this side, and bytes are relayed both ways with flow control
//     (host bytes are read only as far as the TCP send buffer has room; guest bytes
//     are taken from TCP only while the unwritten backlog for the host is small),
//     half-close both ways, and resets both ways (a refused guest port resets the
//     host socket, and so does a guest that never answers the SYN, after ~15 s; a
//     host socket reset or error aborts the guest connection);
//   - any other TCP segment (no connection, or to any other address) gets a RST, so
//     connections out of newts fail at once instead of timing out.
//
// `fd` is an epoll fd over the listeners, the host connections (EPOLLIN only while
// TCP can take bytes, EPOLLOUT only while bytes wait for the host) and a timerfd set
// to the earliest TCP deadline; timers also run from every recv() and send().
// Frames the backend makes are queued and handed out by the next recv().
//
// Ownership (drivers/wire.ts): the machine opens the listeners (an instance without
// `registry`); the driver attaches an instance that is given the listener fds and the
// machine's registry, a SharedArrayBuffer where it records every fd it opens. A
// restarted driver closes (resets) whatever its predecessor left there, so a driver
// restart drops forwarded connections in flight; the listeners survive, so new
// connections work at once. The machine reaps the registry again at shutdown.
//
// Limitations: TCP only (no UDP forwarding); the host side only binds 127.0.0.1 and
// only accepts, it never connects anywhere (no outbound NAT, no DNS at 10.0.2.3);
// IPv4 fragments addressed to the gateway are dropped.
import { EAGAIN, ECONNABORTED, ECONNRESET, EINTR, ErrnoError } from "../../lib/sys/errno.ts";
import { formatIpv4Addr, inSubnet, isBroadcastMac, macEqual, parseIpv4Addr, parseMac } from "../../lib/net/addr.ts";
import { ArpOp, emitArp, parseArp, ARP_LEN } from "../../lib/net/arp.ts";
import { emitEthernet, ETHERNET_HEADER_LEN, EtherType, parseEthernet } from "../../lib/net/ethernet.ts";
import { emitIcmp, icmpBufferLen, parseIcmp, type IcmpRepr } from "../../lib/net/icmp.ts";
import { emitIpv4, IPV4_HEADER_LEN, IpProtocol, parseIpv4, type Ipv4Repr } from "../../lib/net/ipv4.ts";
import { emitTcp, parseTcp, tcpBufferLen } from "../../lib/net/tcp-wire.ts";
import { isnFor, rstFor, TcpConnection, type TcpConfig } from "../../lib/net/tcp/index.ts";
import type { TcpRepr } from "../../lib/net/types.ts";
import { type Backend, type BackendStats, MAX_FRAME, MIN_FRAME, macOf, zeroStats } from "./backend.ts";
import * as C from "./libc.ts";

/** QEMU slirp's gateway MAC. */
export const HOST_MAC_TEXT = "52:55:0a:00:02:02";
export const DEFAULT_NET = "10.0.2.0/24";
export const DEFAULT_HOST = "10.0.2.2";
export const DEFAULT_GUEST = "10.0.2.15";
/** Live forwarded connections allowed at once; more are accepted and reset at once (counted in overLimit). */
export const DEFAULT_MAX_CONNECTIONS = 256;

const EPHEMERAL_LO = 49152;
const EPHEMERAL_N = 16384;
/** Most guest bytes held for a host socket that would block; beyond it TCP's window closes. */
const OUT_HIGH = 256 * 1024;
/** Most frames waiting for recv(); beyond it frames are dropped (TCP retransmits). */
const QUEUE_MAX = 16384;
const ACCEPTS_PER_PASS = 64;
/** After accept4 fails (EMFILE...), listeners leave the epoll set this long, so a readable listener cannot spin the driver. */
const ACCEPT_BACKOFF_MS = 100;
const EVENTS = 256;
/** struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16). */
const EV_SIZE = process.arch === "x64" ? 12 : 16;
const EV_DATA = process.arch === "x64" ? 4 : 8;
/** Registry cells 0 and 1: the attached driver's epoll and timer fds; then one per connection. Each holds fd+1, 0 = free. */
const REG_FIXED = 2;

/** One forwarding rule. `fd`: an already listening socket owned by someone else (the machine). */
export interface ForwardRule {
  hostPort: number;
  guestPort: number;
  fd?: number;
}

/** Parses "tcp:HOSTPORT:GUESTPORT" (HOSTPORT 0: any free port); an error message on bad text. */
export function parseHostfwd(text: string): ForwardRule | string {
  const m = /^tcp:(\d{1,5}):(\d{1,5})$/.exec(text);
  if (!m) return `hostfwd ${text}: expected tcp:HOSTPORT:GUESTPORT`;
  const hostPort = Number(m[1]), guestPort = Number(m[2]);
  if (hostPort > 65535) return `hostfwd ${text}: host port ${hostPort} is out of range`;
  if (guestPort < 1 || guestPort > 65535) return `hostfwd ${text}: guest port ${guestPort} is out of range`;
  return { hostPort, guestPort };
}

export interface HostfwdOptions {
  forwards: ForwardRule[];
  /** The guest subnet, the gateway (us) and newts's address. Defaults 10.0.2.0/24, 10.0.2.2, 10.0.2.15. */
  net?: string;
  host?: string;
  guest?: string;
  /** The NIC's MAC: where frames go until newts's MAC is learned. */
  mac?: string | Uint8Array;
  maxConnections?: number;
  /** Given: this is the driver's instance attached to the machine's registry (see header). */
  registry?: SharedArrayBuffer;
  /** Overrides for the TCP connections on our side (tests). */
  tcp?: TcpConfig;
  lock?: Int32Array | null;
}

export interface HostfwdStats extends BackendStats {
  connections: number; // live host connections now
  accepted: number; // host connections accepted and forwarded
  overLimit: number; // host connections reset at once: maxConnections were live
  acceptErrors: number; // accept4 failed (EMFILE, ...)
  guestResets: number; // the guest reset or refused a connection, or stopped answering
  hostResets: number; // a host socket failed (reset, EPIPE): the guest connection was aborted
  hostBytesIn: number; // bytes read from host sockets (sent to newts)
  hostBytesOut: number; // bytes written to host sockets (from newts)
  arpReplies: number;
  pingReplies: number;
  rstSent: number; // RSTs for segments with no connection (incl. connections out of newts)
  badFrames: number; // malformed frames from newts (also in txDropped)
  ignored: number; // well-formed frames not for us: other MACs, other protocols, fragments, UDP
  queueDrops: number; // frames dropped because QUEUE_MAX frames waited for recv()
  internalErrors: number; // exceptions caught while handling a frame (a bug)
}

interface Conn {
  fd: number; // host socket; -1 once closed
  slot: number; // registry cell
  tcp: TcpConnection;
  port: number; // our ephemeral port on the gateway address
  guestPort: number;
  out: Uint8Array[]; // guest bytes not yet written to the host; out[0] from outOff
  outOff: number;
  outLen: number;
  hostIn: boolean; // still reading the host socket (until EOF or error)
  hostOut: boolean; // still writing it (until the guest's EOF is passed on)
  tcpClosed: boolean;
  ready: number; // epoll events of this pass
  interest: number; // events registered with epoll; 0: not registered
}

function addrOf(text: string, what: string): number {
  const a = parseIpv4Addr(text);
  if (a === null) throw new Error(`netdev: hostfwd: bad ${what} address "${text}"`);
  return a;
}

function sockaddrLoopback(port: number): Uint8Array {
  const sa = new Uint8Array(16);
  const dv = new DataView(sa.buffer);
  dv.setUint16(0, C.AF_INET, true);
  dv.setUint16(2, port);
  dv.setUint32(4, 0x7f000001);
  return sa;
}

/** A nonblocking TCP listener on 127.0.0.1:port (0: any); its fd and bound port. Throws ErrnoError. */
export function listenLoopback(port: number, backlog = 128): { fd: number; port: number } {
  const libc = C.netLibc();
  const fd = libc.socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw new ErrnoError(C.errno(), "hostfwd: socket");
  const fail = (what: string): never => {
    const e = C.errno();
    libc.close(fd);
    throw new ErrnoError(e, `hostfwd: ${what}`);
  };
  if (libc.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, new Int32Array([1]), 4) < 0) fail("setsockopt SO_REUSEADDR");
  const sa = sockaddrLoopback(port);
  if (libc.bind(fd, sa, 16) < 0) fail(`bind 127.0.0.1:${port}`);
  if (libc.listen(fd, backlog) < 0) fail(`listen 127.0.0.1:${port}`);
  if (libc.getsockname(fd, sa, new Uint32Array([16])) < 0) fail("getsockname");
  return { fd, port: new DataView(sa.buffer).getUint16(2) };
}

export class HostfwdBackend implements Backend {
  readonly mac: Uint8Array;
  readonly hostMac = parseMac(HOST_MAC_TEXT)!;
  readonly hostAddr: number;
  readonly guestAddr: number;
  readonly prefix: string;
  /** The rules with their listening fds and bound ports. */
  readonly forwards: Required<ForwardRule>[] = [];
  /** fd cells shared with the machine (see header); create one with registryFor(). */
  readonly registry: SharedArrayBuffer;
  readonly maxConnections: number;
  private readonly reg: Int32Array;
  private readonly attached: boolean;
  private readonly ownsListeners: boolean;
  private guestMac: Uint8Array;
  private epfd = -1;
  private tfd = -1;
  private armed = -1; // when the timerfd fires (performance.now() ms); -1: disarmed
  private nextDue = -1; // earliest TCP deadline noted; -1: none
  private readonly listeners = new Map<number, Required<ForwardRule>>();
  private readonly conns = new Map<number, Conn>(); // by our ephemeral port
  private readonly byFd = new Map<number, Conn>();
  private pausedUntil = -1; // listeners out of the epoll set until then (accept backoff); -1: not paused
  private nextPort = 0;
  private ident = 0;
  private live = 0;
  private readonly queue: Uint8Array[] = [];
  private qHead = 0;
  private readonly tcpCfg: TcpConfig;
  private readonly secret: [number, number];
  private readonly buf = new Uint8Array(64 * 1024);
  private readonly events = new Uint8Array(EVENTS * EV_SIZE);
  private readonly evView = new DataView(this.events.buffer);
  private readonly ev1 = new Uint8Array(16);
  private readonly c: HostfwdStats = {
    ...zeroStats(), connections: 0, accepted: 0, overLimit: 0, acceptErrors: 0, guestResets: 0, hostResets: 0, hostBytesIn: 0,
    hostBytesOut: 0, arpReplies: 0, pingReplies: 0, rstSent: 0, badFrames: 0, ignored: 0, queueDrops: 0, internalErrors: 0,
  };

  /** A registry for `maxConnections` connections (the machine makes one and passes it in the WireSpec). */
  static registryFor(maxConnections: number): SharedArrayBuffer {
    return new SharedArrayBuffer((REG_FIXED + maxConnections) * 4);
  }

  constructor(opts: HostfwdOptions) {
    const libc = C.netLibc(opts.lock ?? null);
    this.mac = macOf(opts.mac);
    this.guestMac = this.mac;
    this.prefix = opts.net ?? DEFAULT_NET;
    const [netText = "", lenText = ""] = this.prefix.split("/");
    const net = addrOf(netText, "net"), plen = Number(lenText);
    if (!/^\d{1,2}$/.test(lenText) || plen > 30) throw new Error(`netdev: hostfwd: net=${this.prefix} is not A.B.C.D/N`);
    this.hostAddr = addrOf(opts.host ?? DEFAULT_HOST, "host");
    this.guestAddr = addrOf(opts.guest ?? DEFAULT_GUEST, "guest");
    for (const [a, w] of [[this.hostAddr, "host"], [this.guestAddr, "guest"]] as const) {
      if (!inSubnet(a, net, plen)) throw new Error(`netdev: hostfwd: ${w}=${formatIpv4Addr(a)} is not in net=${this.prefix}`);
    }
    if (this.hostAddr === this.guestAddr) throw new Error("netdev: hostfwd: host and guest addresses are the same");
    this.attached = opts.registry !== undefined;
    const max = opts.maxConnections ?? (opts.registry ? opts.registry.byteLength / 4 - REG_FIXED : DEFAULT_MAX_CONNECTIONS);
    this.registry = opts.registry ?? HostfwdBackend.registryFor(max);
    this.reg = new Int32Array(this.registry);
    this.maxConnections = Math.max(1, Math.min(max, this.reg.length - REG_FIXED));
    this.tcpCfg = { synRetries: 3, mslMs: 2000, ...opts.tcp };
    const r = crypto.getRandomValues(new Uint32Array(3));
    this.secret = [r[0]!, r[1]!];
    this.nextPort = r[2]! % EPHEMERAL_N;
    if (this.attached) this.reap(); // what a dead predecessor left: its epoll, timer, connections
    this.ownsListeners = opts.forwards.every((f) => f.fd === undefined);
    if (!this.ownsListeners && opts.forwards.some((f) => f.fd === undefined)) throw new Error("hostfwd: give every rule an fd, or none");
    try {
      for (const f of opts.forwards) {
        const l = f.fd === undefined ? listenLoopback(f.hostPort) : { fd: f.fd, port: f.hostPort };
        this.forwards.push({ hostPort: l.port, guestPort: f.guestPort, fd: l.fd });
      }
      this.epfd = libc.epoll_create1(C.EPOLL_CLOEXEC);
      if (this.epfd < 0) throw new ErrnoError(C.errno(), "hostfwd: epoll_create1");
      if (this.attached) Atomics.store(this.reg, 0, this.epfd + 1);
      this.tfd = libc.timerfd_create(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC);
      if (this.tfd < 0) throw new ErrnoError(C.errno(), "hostfwd: timerfd_create");
      if (this.attached) Atomics.store(this.reg, 1, this.tfd + 1);
      this.ctl(C.EPOLL_CTL_ADD, this.tfd, C.EPOLLIN);
      for (const f of this.forwards) {
        this.listeners.set(f.fd, f);
        this.ctl(C.EPOLL_CTL_ADD, f.fd, C.EPOLLIN);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  get name(): string {
    return `hostfwd:${this.forwards.map((f) => `${f.hostPort}->${f.guestPort}`).join(",") || "(no rules)"}`;
  }

  get fd(): number {
    return this.epfd;
  }

  stats(): HostfwdStats {
    return { ...this.c, connections: this.live };
  }

  // ---- Backend: frames out to newts, frames in from newts.

  recv(max: number, onFrame: (frame: Uint8Array) => void): number {
    if (this.epfd >= 0) this.guard(() => this.pump(performance.now()));
    let got = 0;
    while (got < max && this.qHead < this.queue.length) {
      const f = this.queue[this.qHead]!;
      this.queue[this.qHead++] = undefined as never;
      this.c.rxFrames++;
      this.c.rxBytes += f.length;
      got++;
      onFrame(f);
    }
    if (this.qHead === this.queue.length) {
      this.queue.length = 0;
      this.qHead = 0;
    }
    return got;
  }

  send(frame: Uint8Array): boolean {
    const c = this.c;
    if (this.epfd < 0) {
      c.txDropped++;
      return false;
    }
    const ok = frame.length >= MIN_FRAME && frame.length <= MAX_FRAME && this.guard(() => {
      const now = performance.now();
      const r = this.input(frame, now);
      this.runDue(now);
      return r;
    });
    if (!ok) {
      c.txDropped++;
      c.badFrames++;
      return false;
    }
    c.txFrames++;
    c.txBytes += frame.length;
    return true;
  }

  /** Resets every forwarded connection and closes every fd this instance owns (listeners: only if it opened them). */
  close(): void {
    const libc = C.netLibc();
    for (const conn of this.conns.values()) this.closeHost(conn, true);
    this.conns.clear();
    if (!this.attached) this.reap(); // the machine's instance: whatever its driver left
    if (this.ownsListeners) for (const f of this.forwards) if (f.fd >= 0) libc.close(f.fd);
    for (const f of this.forwards) f.fd = -1;
    this.listeners.clear();
    // An attached driver's epoll and timer fds are in the registry: close them only if still there.
    const own = (cell: number, fd: number) => fd >= 0 && (!this.attached || Atomics.compareExchange(this.reg, cell, fd + 1, 0) === fd + 1);
    if (own(0, this.epfd)) libc.close(this.epfd);
    if (own(1, this.tfd)) libc.close(this.tfd);
    this.epfd = this.tfd = -1;
  }

  // ---- Host side: epoll, accept, read, write.

  /** Runs `f`; an exception (a bug: bad frames never throw) is counted, and false returned. */
  private guard(f: () => boolean | void): boolean {
    try {
      return f() !== false;
    } catch {
      this.c.internalErrors++;
      return false;
    }
  }

  /** Closes every fd in the registry; each cell is cleared before its fd is closed, so no fd is closed twice. */
  private reap(): void {
    for (let i = 0; i < this.reg.length; i++) {
      const v = Atomics.exchange(this.reg, i, 0);
      if (v <= 0) continue;
      if (i >= REG_FIXED) this.linger0(v - 1);
      C.netLibc().close(v - 1);
    }
  }

  private ctl(op: number, fd: number, events: number): void {
    const dv = new DataView(this.ev1.buffer);
    dv.setUint32(0, events, true);
    dv.setUint32(EV_DATA, fd, true);
    dv.setUint32(EV_DATA + 4, 0, true);
    if (C.netLibc().epoll_ctl(this.epfd, op, fd, this.ev1) < 0) throw new ErrnoError(C.errno(), `hostfwd: epoll_ctl ${op} fd ${fd}`);
  }

  /** SO_LINGER {on, 0}: the close that follows sends a RST. */
  private linger0(fd: number): void {
    C.netLibc().setsockopt(fd, C.SOL_SOCKET, C.SO_LINGER, new Int32Array([1, 0]), 8);
  }

  /** One pass: host events, then due timers, then the timerfd for the next deadline. */
  private pump(now: number): void {
    const libc = C.netLibc();
    const n = libc.epoll_wait(this.epfd, this.events, EVENTS, 0);
    for (let i = 0; i < n; i++) {
      const ev = this.evView.getUint32(i * EV_SIZE, true);
      const fd = this.evView.getUint32(i * EV_SIZE + EV_DATA, true);
      if (fd === this.tfd) {
        libc.read(this.tfd, this.buf, 8);
        this.armed = -1;
        continue;
      }
      const rule = this.listeners.get(fd);
      if (rule) this.accept(rule, now);
      else {
        const conn = this.byFd.get(fd);
        if (conn) {
          conn.ready |= ev;
          this.service(conn, now);
        }
      }
    }
    if (this.pausedUntil >= 0 && now >= this.pausedUntil) {
      this.pausedUntil = -1;
      for (const fd of this.listeners.keys()) this.ctl(C.EPOLL_CTL_ADD, fd, C.EPOLLIN);
    }
    this.runDue(now);
  }

  /** Services every connection whose TCP deadline has passed, and re-arms the timerfd. */
  private runDue(now: number): void {
    if (this.nextDue >= 0 && now >= this.nextDue) {
      this.nextDue = -1;
      for (const conn of this.conns.values()) {
        const d = conn.tcp.nextDeadline();
        if (d >= 0 && now >= d) this.service(conn, now);
        else this.note(conn);
      }
    }
    if (this.nextDue >= 0 && (this.armed < 0 || this.armed <= now || this.nextDue < this.armed - 1)) {
      const ns = BigInt(Math.max(50_000, Math.ceil((this.nextDue - now) * 1e6)));
      const its = new BigInt64Array([0n, 0n, ns / 1_000_000_000n, ns % 1_000_000_000n]);
      if (C.netLibc().timerfd_settime(this.tfd, 0, its, null) === 0) this.armed = this.nextDue;
    }
  }

  private note(conn: Conn): void {
    const d = conn.tcpClosed ? -1 : conn.tcp.nextDeadline();
    if (d >= 0 && (this.nextDue < 0 || d < this.nextDue)) this.nextDue = d;
  }

  private accept(rule: Required<ForwardRule>, now: number): void {
    const libc = C.netLibc();
    for (let i = 0; i < ACCEPTS_PER_PASS; i++) {
      const fd = libc.accept4(rule.fd, null, null, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC);
      if (fd < 0) {
        const e = C.errno();
        if (e === EINTR || e === ECONNRESET || e === ECONNABORTED) continue;
        if (e !== EAGAIN) this.acceptFailed(now);
        return;
      }
      const port = this.live < this.maxConnections ? this.freePort() : -1;
      const slot = port < 0 ? -1 : this.freeSlot();
      if (slot < 0) {
        this.c.overLimit++;
        this.linger0(fd);
        libc.close(fd);
        continue;
      }
      Atomics.store(this.reg, slot, fd + 1);
      const tcp = new TcpConnection({ ...this.tcpCfg, tsOffset: crypto.getRandomValues(new Uint32Array(1))[0] });
      tcp.setNoDelay(true); // the host already coalesces: relay what it wrote at once
      const conn: Conn = {
        fd, slot, tcp, port, guestPort: rule.guestPort, out: [], outOff: 0, outLen: 0,
        hostIn: true, hostOut: true, tcpClosed: false, ready: 0, interest: 0,
      };
      tcp.connect(now, { addr: this.hostAddr, port }, { addr: this.guestAddr, port: rule.guestPort },
        isnFor(this.secret, now, this.hostAddr, port, this.guestAddr, rule.guestPort));
      this.conns.set(port, conn);
      this.byFd.set(fd, conn);
      this.live++;
      this.c.accepted++;
      this.service(conn, now);
    }
  }

  private acceptFailed(now: number): void {
    this.c.acceptErrors++;
    if (this.pausedUntil >= 0) return;
    this.pausedUntil = now + ACCEPT_BACKOFF_MS;
    for (const fd of this.listeners.keys()) this.ctl(C.EPOLL_CTL_DEL, fd, 0);
  }

  private freePort(): number {
    for (let i = 0; i < EPHEMERAL_N; i++) {
      const p = EPHEMERAL_LO + ((this.nextPort + i) % EPHEMERAL_N);
      if (!this.conns.has(p)) {
        this.nextPort = (this.nextPort + i + 1) % EPHEMERAL_N;
        return p;
      }
    }
    return -1;
  }

  private freeSlot(): number {
    for (let i = REG_FIXED; i < this.reg.length; i++) if (Atomics.load(this.reg, i) === 0) return i;
    return -1;
  }

  /** Host bytes into TCP, no more than its send buffer takes. EOF: FIN to the guest. */
  private readHost(conn: Conn): void {
    const libc = C.netLibc();
    while (conn.hostIn) {
      const want = Math.min(conn.tcp.sendSpace, this.buf.length);
      if (want <= 0) return;
      const n = libc.read(conn.fd, this.buf, want);
      if (n > 0) {
        conn.tcp.send(this.buf.subarray(0, n));
        this.c.hostBytesIn += n;
        if (n < want) return; // drained; epoll says when there is more
      } else if (n === 0) {
        conn.hostIn = false;
        conn.tcp.shutdownWrite();
      } else {
        const e = C.errno();
        if (e === EAGAIN) return;
        if (e !== EINTR) return this.hostFailed(conn);
      }
    }
  }

  /** Guest bytes out of TCP (which opens its window) while the host backlog is small. */
  private fillOut(conn: Conn): void {
    while (conn.hostOut && conn.outLen < OUT_HIGH && conn.tcp.readableBytes > 0) {
      const b = conn.tcp.recv(OUT_HIGH - conn.outLen);
      if (b.length === 0) return;
      conn.out.push(b);
      conn.outLen += b.length;
    }
  }

  private writeHost(conn: Conn): void {
    const libc = C.netLibc();
    while (conn.outLen > 0 && conn.fd >= 0) {
      const head = conn.out[0]!;
      const chunk = conn.outOff === 0 ? head : head.subarray(conn.outOff);
      const n = libc.sendto(conn.fd, chunk, chunk.length, C.MSG_DONTWAIT | C.MSG_NOSIGNAL, null, 0);
      if (n < 0) {
        const e = C.errno();
        if (e === EAGAIN) return;
        if (e !== EINTR) return this.hostFailed(conn);
        continue;
      }
      this.c.hostBytesOut += n;
      conn.outLen -= n;
      if (n === chunk.length) {
        conn.out.shift();
        conn.outOff = 0;
      } else {
        conn.outOff += n;
        return; // the socket buffer is full
      }
    }
  }

  /** The host socket failed (reset, EPIPE): abort the guest connection and close the socket. */
  private hostFailed(conn: Conn): void {
    this.c.hostResets++;
    conn.tcp.abort();
    this.closeHost(conn, true);
  }

  /** Closes the host socket; `reset`: with a RST instead of a FIN. */
  private closeHost(conn: Conn, reset: boolean): void {
    if (conn.fd < 0) return;
    const fd = conn.fd;
    conn.fd = -1;
    conn.hostIn = conn.hostOut = false;
    conn.out = [];
    conn.outLen = conn.outOff = 0;
    this.byFd.delete(fd);
    this.live--;
    if (Atomics.exchange(this.reg, conn.slot, 0) !== fd + 1) return; // reaped already: not ours to close
    if (reset) this.linger0(fd);
    C.netLibc().close(fd); // also drops it from the epoll set
  }

  // ---- One connection's step: timers, relay both ways, segments out, events, epoll interest.

  private service(conn: Conn, now: number): void {
    const t = conn.tcp;
    if (!conn.tcpClosed) {
      const d = t.nextDeadline();
      if (d >= 0 && now >= d) t.onTick(now);
      if (conn.hostIn && conn.ready !== 0) this.readHost(conn);
      this.fillOut(conn);
    }
    this.writeHost(conn);
    if (!conn.tcpClosed) this.fillOut(conn);
    if (conn.hostOut && conn.outLen === 0 && t.eof) {
      conn.hostOut = false; // the guest's FIN, after its last byte: pass it on
      C.netLibc().shutdown(conn.fd, C.SHUT_WR);
    }
    if (!conn.tcpClosed) {
      for (const seg of t.poll(now)) this.emitTcp(seg, this.hostAddr, this.guestAddr);
      for (const ev of t.events()) {
        if (ev === "reset" || ev === "timed-out") {
          this.c.guestResets++;
          this.closeHost(conn, true);
        } else if (ev === "closed") conn.tcpClosed = true;
      }
    }
    conn.ready = 0;
    if (conn.fd >= 0 && !conn.hostIn && !conn.hostOut) this.closeHost(conn, false);
    if (conn.fd < 0) {
      if (conn.tcpClosed && this.conns.get(conn.port) === conn) this.conns.delete(conn.port);
    } else this.interest(conn);
    this.note(conn);
  }

  /** EPOLLIN while TCP takes bytes, EPOLLOUT while bytes wait; unregistered when neither (HUP would spin). */
  private interest(conn: Conn): void {
    let want = 0;
    if (conn.hostIn && conn.tcp.sendSpace > 0) want |= C.EPOLLIN;
    if (conn.hostOut && conn.outLen > 0) want |= C.EPOLLOUT;
    if (want === conn.interest) return;
    const op = want === 0 ? C.EPOLL_CTL_DEL : conn.interest === 0 ? C.EPOLL_CTL_ADD : C.EPOLL_CTL_MOD;
    this.ctl(op, conn.fd, want);
    conn.interest = want;
  }

  // ---- Guest side: frames from newts, frames to newts.

  /** Handles one frame from newts; false if it was malformed. */
  private input(frame: Uint8Array, now: number): boolean {
    const e = parseEthernet(frame);
    if (!e.ok) return false;
    const eth = e.value;
    if (!macEqual(eth.dst, this.hostMac) && !isBroadcastMac(eth.dst)) return this.ignore();
    if (eth.etherType === EtherType.ARP) {
      const a = parseArp(eth.payload);
      if (!a.ok) return false;
      const arp = a.value;
      if (arp.senderIp === this.guestAddr) this.guestMac = arp.senderMac;
      if (arp.op !== ArpOp.REQUEST || arp.targetIp !== this.hostAddr) return this.ignore();
      this.c.arpReplies++;
      const f = new Uint8Array(ETHERNET_HEADER_LEN + ARP_LEN);
      emitArp({ op: ArpOp.REPLY, senderMac: this.hostMac, senderIp: this.hostAddr, targetMac: arp.senderMac, targetIp: arp.senderIp },
        f.subarray(ETHERNET_HEADER_LEN));
      emitEthernet({ dst: arp.senderMac, src: this.hostMac, etherType: EtherType.ARP, payload: f.subarray(ETHERNET_HEADER_LEN) }, f);
      this.enqueue(f);
      return true;
    }
    if (eth.etherType !== EtherType.IPV4) return this.ignore();
    const p = parseIpv4(eth.payload);
    if (!p.ok) return false;
    const ip = p.value;
    if (ip.src === this.guestAddr) this.guestMac = eth.src;
    if (ip.moreFrags || ip.fragOffset !== 0) return this.ignore();
    if (ip.protocol === IpProtocol.TCP) {
      const s = parseTcp(ip.payload, ip.src, ip.dst);
      if (!s.ok) return false;
      this.tcpInput(ip, s.value, now);
      return true;
    }
    if (ip.protocol === IpProtocol.ICMP && ip.dst === this.hostAddr) {
      const m = parseIcmp(ip.payload);
      if (!m.ok) return false;
      if (m.value.kind !== "echoRequest") return this.ignore();
      this.c.pingReplies++;
      this.emitIcmp({ kind: "echoReply", ident: m.value.ident, seq: m.value.seq, data: m.value.data }, ip.src);
      return true;
    }
    return this.ignore();
  }

  private ignore(): true {
    this.c.ignored++;
    return true;
  }

  private tcpInput(ip: Ipv4Repr, seg: TcpRepr, now: number): void {
    const conn = ip.dst === this.hostAddr && ip.src === this.guestAddr ? this.conns.get(seg.dstPort) : undefined;
    if (conn && conn.guestPort === seg.srcPort && !conn.tcpClosed) {
      conn.tcp.onSegment(now, seg);
      this.service(conn, now);
      return;
    }
    const r = rstFor(seg); // no such connection, or an address we do not forward to
    if (!r) return;
    this.c.rstSent++;
    this.emitTcp(r, ip.dst, ip.src);
  }

  private emitTcp(seg: TcpRepr, src: number, dst: number): void {
    const tl = tcpBufferLen(seg);
    const f = new Uint8Array(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + tl);
    const l4 = f.subarray(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN);
    emitTcp(seg, l4, src, dst);
    this.emitIp(f, IpProtocol.TCP, src, dst, l4);
  }

  private emitIcmp(m: IcmpRepr, dst: number): void {
    const f = new Uint8Array(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + icmpBufferLen(m));
    const l4 = f.subarray(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN);
    emitIcmp(m, l4);
    this.emitIp(f, IpProtocol.ICMP, this.hostAddr, dst, l4);
  }

  /** Fills in the IPv4 and Ethernet headers around `l4` (already at f[34..]) and queues f. */
  private emitIp(f: Uint8Array, protocol: number, src: number, dst: number, l4: Uint8Array): void {
    const l3 = f.subarray(ETHERNET_HEADER_LEN);
    this.ident = (this.ident + 1) & 0xffff;
    emitIpv4({ src, dst, protocol, ttl: 64, tos: 0, ident: this.ident, dontFrag: true, moreFrags: false, fragOffset: 0, payload: l4 }, l3);
    emitEthernet({ dst: this.guestMac, src: this.hostMac, etherType: EtherType.IPV4, payload: l3 }, f);
    this.enqueue(f);
  }

  private enqueue(f: Uint8Array): void {
    if (this.queue.length - this.qHead >= QUEUE_MAX) {
      this.c.queueDrops++;
      return;
    }
    this.queue.push(f);
  }
}
