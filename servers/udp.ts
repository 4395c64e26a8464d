// The udp server: datagram sockets. Datagrams arrive from ip as descriptors into
// the driver's pool and are copied into the socket's queue; outgoing datagrams are
// built in udp's own pool and handed to ip without a copy.
//
// Fast sockets (issue 4, design §4): a SOCKET call with `arena: true` makes a socket
// whose datagrams travel through the process's socket arena (lib/sock) instead of
// system calls. The arena is made on the app's first such socket; its control SAB,
// a bell (lib/sock/sockbell.ts) and every segment are granted to the app
// (Proc.grantTo), and the SOCKET answer says where: { sock, slot, gen, control,
// bell, segments }. poll() walks each arena's activity (takeActive), drains TX
// datagrams (validated by SockStack; a Violation resets that socket and is counted,
// it never throws) and sends them like sendDgram; datagrams from ip for an arena
// socket go into its RX ring (pushDatagram; dropped and counted when full), which
// also publishes readiness and wakes the app if it sleeps on the socket. While udp
// has arenas it sleeps in poll(2) on its doorbell's eventfd, so an app can wake it
// through its bell without a system call. bind, connect, getsockname, getpeername
// and close stay system calls (close drains what is queued first).
// Restart: arenas are private state of a generation, so a restarted udp has lost the
// arena sockets (their apps see their rings go quiet; their fds answer EBADF); they
// are not saved with the socket table, whose syscall-path sockets survive as before.
import { NET, SRV_CTL, SYS } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { PoolOwner } from "../lib/ipc/pool.ts";
import {
  EADDRINUSE, EAGAIN, EBADF, ECONNREFUSED, EDESTADDRREQ, EHOSTUNREACH, EINVAL, EMSGSIZE, ENETUNREACH, ENOBUFS, ENOTCONN,
  ErrnoError, ETIMEDOUT,
} from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import { loadStore, saveStore } from "../lib/sys/store.ts";
import type { Packet, Port } from "../lib/net/port.ts";
import { complete, fail, netCallHandler, num, bytes as argBytes, type NetCall } from "../lib/net/netcall.ts";
import { emitUdp, parseUdp, UDP_HEADER_LEN } from "../lib/net/udp.ts";
import { IpProtocol } from "../lib/net/ipv4.ts";
import { UnreachableCode } from "../lib/net/icmp.ts";
import { downTag, EPHEMERAL_HI, EPHEMERAL_LO, HEADROOM, TAG_ICMP_ERR, TAG_UNREACH } from "../lib/net/stackproto.ts";
import type { SockStack, TxDesc } from "../lib/sock/stack.ts";
import { type Geometry, KIND_DATAGRAM, SOCK_DGRAM as ARENA_DGRAM, VIOLATION } from "../lib/sock/abi.ts";
import { type FastApp, FastArenas } from "../lib/sock/fastapp.ts";

interface Dgram {
  data: Uint8Array;
  addr: number;
  port: number;
}

interface Waiter {
  call: NetCall;
  max: number;
  deadline: number;
}

interface FastSock {
  fa: FastApp<Sock>;
  slot: number;
  sk: SockStack;
}

interface Sock {
  id: number;
  app: number;
  /** Set for an arena socket (its datagrams travel through shared rings). */
  fast?: FastSock;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
  rxq: Dgram[];
  rxBytes: number;
  waiters: Waiter[];
}

interface State {
  links: Links;
  pool: PoolOwner;
  socks: Map<number, Sock>;
  byPort: Map<number, Sock[]>;
  nextId: number;
  nextEphemeral: number;
  /** The socket table changed since it was last saved. */
  dirty: boolean;
  stats: {
    rx: number; tx: number; rxDrops: number; noPort: number; badChecksum: number; rcvbufFull: number; saveFailed: number;
    /** Fast sockets: datagrams drained from TX rings and pushed into RX rings; RX ring full (dropped). */
    fastTx: number; fastRx: number; fastRxFull: number;
    /** TX datagrams dropped: bad destination port, no buffer, ip not keeping up, no ephemeral port. */
    fastTxDrops: number;
    /** ABI violations by apps (each reset the socket it happened on). */
    violations: number;
    /** ICMP errors reported to connected sockets. */
    icmpErrors: number;
  };
  /** Per app: its socket arena (fast sockets). Lost on a restart. */
  arenas: FastArenas<Sock>;
  /** The socket whose TX is being drained (for the drain callback). */
  draining: Sock | null;
  /** drainTx's callback, made once. */
  onTx: (d: TxDesc, sk: SockStack) => void;
}

/** Socket buffer sizes of an arena socket: RX sized like RCVBUF, TX for one maximal datagram. */
const FAST_GEOMETRY: Partial<Geometry> = { txSlots: 64, txData: 65536, rxSlots: 256, rxData: 262144 };
/** TX descriptors drained per socket per walk (the rest wait for the next walk). */
const TX_BUDGET = 64;

const RCVBUF = 212_992;
const MAX_DGRAM = 65_507;
const POOL_BUF = 65_536 + 64;

/** What survives a restart: the socket table (design §6: UDP bindings live in shared memory). */
interface SavedSock {
  id: number;
  app: number;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
}

function save(s: State): void {
  s.dirty = false;
  const socks: SavedSock[] = [];
  for (const k of s.socks.values()) if (!k.fast) socks.push({ id: k.id, app: k.app, laddr: k.laddr, lport: k.lport, raddr: k.raddr, rport: k.rport });
  if (!saveStore(s.links.store, { nextId: s.nextId, socks })) s.stats.saveFailed++;
}

function restore(s: State): void {
  const saved = loadStore(s.links.store) as { nextId?: number; socks?: SavedSock[] } | null;
  if (!saved || !Array.isArray(saved.socks)) return;
  for (const x of saved.socks) {
    if (typeof x?.id !== "number" || typeof x.lport !== "number") continue;
    const k: Sock = { id: x.id, app: x.app, laddr: x.laddr >>> 0, lport: 0, raddr: x.raddr >>> 0, rport: x.rport, rxq: [], rxBytes: 0, waiters: [] };
    s.socks.set(k.id, k);
    if (x.lport !== 0) {
      k.lport = x.lport;
      const list = s.byPort.get(k.lport) ?? [];
      list.push(k);
      s.byPort.set(k.lport, list);
    }
  }
  s.nextId = Math.max(s.nextId, Number(saved.nextId) || 1);
}

/** The layer's state over its links (a server of its own, or a layer of servers/stack.ts). */
export function initLayer(proc: Proc, links: Links): State {
  // Created at start so every neighbour has attached it before the first datagram.
  const pool = links.ownPool(128, POOL_BUF, ["ip", "pf", "nic"]);
  const s: State = {
    links, pool, socks: new Map(), byPort: new Map(), nextId: 1, nextEphemeral: EPHEMERAL_LO,
    dirty: false,
    stats: {
      rx: 0, tx: 0, rxDrops: 0, noPort: 0, badChecksum: 0, rcvbufFull: 0, saveFailed: 0,
      fastTx: 0, fastRx: 0, fastRxFull: 0, fastTxDrops: 0, violations: 0, icmpErrors: 0,
    },
    arenas: null as unknown as FastArenas<Sock>, draining: null, onTx: () => {},
  };
  s.arenas = new FastArenas<Sock>(proc, "udp", (fa, slot) => drainSock(s, proc, fa, slot));
  s.onTx = (d, sk) => onTxDesc(s, d, sk);
  restore(s);
  return s;
}

function sockOf(s: State, c: NetCall): Sock {
  const k = c.sock === undefined ? undefined : s.socks.get(c.sock);
  if (!k || k.app !== c.app) throw new ErrnoError(EBADF, "no such socket");
  return k;
}

function bindPort(s: State, k: Sock, addr: number, port: number): void {
  if (port === 0) {
    for (let i = 0; i <= EPHEMERAL_HI - EPHEMERAL_LO; i++) {
      const p = s.nextEphemeral;
      s.nextEphemeral = p >= EPHEMERAL_HI ? EPHEMERAL_LO : p + 1;
      if (!s.byPort.has(p)) {
        port = p;
        break;
      }
    }
    if (port === 0) throw new ErrnoError(EADDRINUSE, "no ephemeral port left");
  } else if ((s.byPort.get(port) ?? []).some((o) => o.laddr === 0 || addr === 0 || o.laddr === addr)) {
    throw new ErrnoError(EADDRINUSE, `port ${port} in use`);
  }
  k.laddr = addr >>> 0;
  k.lport = port;
  s.dirty = true;
  const list = s.byPort.get(port) ?? [];
  list.push(k);
  s.byPort.set(port, list);
}

function unbind(s: State, k: Sock): void {
  s.dirty = true;
  const list = s.byPort.get(k.lport);
  if (!list) return;
  const rest = list.filter((o) => o !== k);
  if (rest.length) s.byPort.set(k.lport, rest);
  else s.byPort.delete(k.lport);
}

/** The source address for a destination (asks ip once a minute per destination). */
function sendDgram(s: State, proc: Proc, k: Sock, data: Uint8Array, dst: number, dport: number): number {
  if (data.length > MAX_DGRAM) throw new ErrnoError(EMSGSIZE, `datagram of ${data.length} bytes`);
  if (!(dport > 0 && dport < 65536)) throw new ErrnoError(EINVAL, "bad destination port");
  if (k.lport === 0) bindPort(s, k, 0, 0);
  const src = k.laddr !== 0 ? k.laddr : s.links.sourceFor(dst);
  const ip = s.links.port("ip");
  const d = s.pool.alloc(UDP_HEADER_LEN + data.length, HEADROOM);
  if (!d || !ip) throw new ErrnoError(ENOBUFS, "no buffer for the datagram");
  const buf = s.pool.view(d)!;
  emitUdp({ srcPort: k.lport, dstPort: dport, payload: data }, buf, src, dst);
  const p: Packet = { ...d, tag: downTag(IpProtocol.UDP), a: dst >>> 0, b: src >>> 0 };
  if (!ip.send(p)) {
    s.pool.release(d);
    throw new ErrnoError(ENOBUFS, "ip is not keeping up");
  }
  ip.flush();
  s.stats.tx++;
  return data.length;
}

// ------------------------------------------------------------------ fast sockets

/** Drains one arena socket's TX; a violation resets the socket (counted), a drained CLOSE closes it. */
function drainSock(s: State, proc: Proc, fa: FastApp<Sock>, slot: number): void {
  const k = fa.socks.get(slot);
  const sk = fa.arena.sock(slot);
  if (!k || !sk) return;
  s.draining = k;
  const r = sk.drainTx(s.onTx, TX_BUDGET);
  s.draining = null;
  if (r === VIOLATION) {
    s.stats.violations++;
    fa.arena.reset(slot);
  } else if (sk.isClosed) closeSock(s, proc, k);
}

function onTxDesc(s: State, d: TxDesc, sk: SockStack): void {
  const k = s.draining;
  if (!k || d.kind !== KIND_DATAGRAM) return; // CLOSE: handled after the drain; CONNECT/SHUTDOWN: nothing for UDP
  if (!(d.port > 0) || d.length > MAX_DGRAM) {
    s.stats.fastTxDrops++;
    return;
  }
  const ip = s.links.port("ip");
  const buf = ip ? s.pool.alloc(UDP_HEADER_LEN + d.length, HEADROOM) : null;
  if (!ip || !buf) {
    s.stats.fastTxDrops++;
    return;
  }
  const view = s.pool.view(buf)!;
  try {
    if (k.lport === 0) bindPort(s, k, 0, 0);
    const dst = d.arg >>> 0;
    const src = k.laddr !== 0 ? k.laddr : s.links.sourceFor(dst);
    const payload = view.subarray(UDP_HEADER_LEN, UDP_HEADER_LEN + d.length);
    if (d.length > 0) sk.copyTx(d.offset, d.length, payload);
    emitUdp({ srcPort: k.lport, dstPort: d.port, payload }, view, src, dst);
    if (!ip.send({ ...buf, tag: downTag(IpProtocol.UDP), a: dst, b: src >>> 0 })) {
      s.pool.release(buf);
      s.stats.fastTxDrops++;
      return;
    }
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e;
    s.pool.release(buf);
    s.stats.fastTxDrops++;
    return;
  }
  s.stats.fastTx++;
}

/** Walks every arena's activity; true if any socket had work. */
function pollArenas(s: State): boolean {
  const did = s.arenas.poll();
  if (did) s.links.port("ip")?.flush();
  return did;
}

function deliverTo(proc: Proc, k: Sock, d: Dgram): void {
  const w = k.waiters.shift();
  if (w) {
    complete(proc, w.call, reply(w.call, d, w.max));
    return;
  }
  k.rxq.push(d);
  k.rxBytes += d.data.length;
}

function reply(c: NetCall, d: Dgram, max: number): unknown {
  const data = d.data.length > max ? d.data.subarray(0, max) : d.data;
  return c.op === SYS.RECV ? data : { data, addr: d.addr, port: d.port };
}

function onCall(s: State, proc: Proc, c: NetCall): void {
  const a = c.args;
  switch (c.op) {
    case SYS.SOCKET: {
      const k: Sock = { id: s.nextId++, app: c.app, laddr: 0, lport: 0, raddr: 0, rport: 0, rxq: [], rxBytes: 0, waiters: [] };
      if (a.arena === true) {
        const fa = s.arenas.for(c.app, a.mode === "syscall");
        const slot = fa.arena.allocSlot(ARENA_DGRAM, { geometry: FAST_GEOMETRY });
        if (slot < 0) throw new ErrnoError(-slot, "no socket buffer");
        const sk = fa.arena.sock(slot)!;
        k.fast = { fa, slot, sk };
        fa.socks.set(slot, k);
        s.socks.set(k.id, k);
        return complete(proc, c, s.arenas.reply(fa, k.id, slot));
      }
      s.socks.set(k.id, k);
      s.dirty = true;
      return complete(proc, c, k.id);
    }
    case SYS.BIND: {
      const k = sockOf(s, c);
      if (k.lport !== 0) throw new ErrnoError(EINVAL, "already bound");
      bindPort(s, k, num(a, "addr", 0), num(a, "port", 0));
      k.fast?.sk.setAddrs(k.laddr, k.lport, k.raddr, k.rport);
      return complete(proc, c, 0);
    }
    case SYS.CONNECT: {
      const k = sockOf(s, c);
      k.raddr = num(a, "addr", 0) >>> 0;
      k.rport = num(a, "port", 0);
      s.dirty = true;
      if (k.lport === 0) bindPort(s, k, 0, 0);
      k.fast?.sk.setAddrs(k.laddr, k.lport, k.raddr, k.rport);
      return complete(proc, c, 0);
    }
    case SYS.SEND:
    case SYS.SENDTO: {
      const k = sockOf(s, c);
      const data = argBytes(a, "data");
      if (!data) throw new ErrnoError(EINVAL, "no data");
      const dst = c.op === SYS.SENDTO ? num(a, "addr", 0) >>> 0 : k.raddr;
      const port = c.op === SYS.SENDTO ? num(a, "port", 0) : k.rport;
      if (c.op === SYS.SEND && k.rport === 0) throw new ErrnoError(EDESTADDRREQ, "not connected");
      return complete(proc, c, sendDgram(s, proc, k, data, dst, port));
    }
    case SYS.RECV:
    case SYS.RECVFROM: {
      const k = sockOf(s, c);
      if (k.fast) throw new ErrnoError(EINVAL, "an arena socket is read from its ring");
      const max = num(a, "max", 65536);
      const d = k.rxq.shift();
      if (d) {
        k.rxBytes -= d.data.length;
        return complete(proc, c, reply(c, d, max));
      }
      if (a.nonblock === true) throw new ErrnoError(EAGAIN, "no datagram");
      const t = num(a, "timeoutMs", -1);
      k.waiters.push({ call: c, max, deadline: t >= 0 ? performance.now() + t : Number.POSITIVE_INFINITY });
      return;
    }
    case SYS.GETSOCKNAME: {
      const k = sockOf(s, c);
      return complete(proc, c, { addr: k.laddr, port: k.lport });
    }
    case SYS.GETPEERNAME: {
      const k = sockOf(s, c);
      if (k.rport === 0) throw new ErrnoError(ENOTCONN, "not connected");
      return complete(proc, c, { addr: k.raddr, port: k.rport });
    }
    case SYS.SHUTDOWN:
      sockOf(s, c);
      return complete(proc, c, 0);
    case SYS.SOCK_RESIZE:
      return complete(proc, c, s.arenas.resize(c.app, a, (k, sk) => {
        if (k.fast) k.fast.sk = sk;
      }));
    case SYS.SOCK_OPT:
      s.arenas.sockAt(c.app, a.slot);
      return complete(proc, c, 0); // no protocol options for a datagram socket
    case SYS.SOCK_KICK: {
      // The baseline (`--sockets syscall`): the app's system call after a write or before a read check.
      const { fa, slot, k } = s.arenas.sockAt(c.app, a.slot);
      drainSock(s, proc, fa, slot);
      s.links.port("ip")?.flush();
      return complete(proc, c, k.fast?.sk.readiness ?? 0);
    }
    case SYS.CLOSE: {
      const k = sockOf(s, c);
      // An arena socket: what the app queued before closing still goes out.
      if (k.fast && s.socks.has(k.id)) drainSock(s, proc, k.fast.fa, k.fast.slot);
      s.links.port("ip")?.flush();
      closeSock(s, proc, k);
      return complete(proc, c, 0);
    }
    default:
      throw new ErrnoError(EINVAL, `udp: call ${c.op} not supported`);
  }
}

function closeSock(s: State, proc: Proc, k: Sock): void {
  for (const w of k.waiters) fail(proc, w.call, EBADF, "socket closed");
  k.waiters = [];
  if (!s.socks.has(k.id)) return;
  unbind(s, k);
  s.socks.delete(k.id);
  s.dirty = true;
  if (k.fast) {
    const { fa, slot } = k.fast;
    fa.socks.delete(slot);
    fa.arena.release(slot);
  }
}

/** A datagram from ip: find its socket, or ask ip to answer "port unreachable". */
/** ICMP errors (Linux's errno for each destination-unreachable code, RFC 1122 §4.1.3.3). */
const UNREACH_ERRNO: Record<number, number> = { 0: ENETUNREACH, 1: EHOSTUNREACH, 2: 92 /* ENOPROTOOPT */, 3: ECONNREFUSED, 4: EMSGSIZE };

/** An ICMP error about a datagram we sent: reported to the socket connected to where it went (as Linux). */
function onIcmpError(s: State, proc: Proc, p: Packet, bytes: Uint8Array): void {
  s.links.pools.release(p);
  if (bytes.length < 4) return;
  const sport = (bytes[0]! << 8) | bytes[1]!;
  const dport = (bytes[2]! << 8) | bytes[3]!;
  const dst = p.a >>> 0;
  const code = p.tag & 0xff;
  const errno = (p.tag >>> 8) & 0xff ? EHOSTUNREACH : (UNREACH_ERRNO[code] ?? EHOSTUNREACH);
  const k = s.byPort.get(sport)?.find((o) => o.rport === dport && o.raddr === dst);
  if (!k) return;
  s.stats.icmpErrors++;
  if (k.fast) {
    if (k.fast.sk.pushError(errno) === VIOLATION) {
      s.stats.violations++;
      k.fast.fa.arena.reset(k.fast.slot);
    }
    return;
  }
  const w = k.waiters.shift();
  if (w) fail(proc, w.call, errno, "ICMP error");
}

function onPacket(s: State, proc: Proc, ip: Port, p: Packet, bytes: Uint8Array): void {
  if ((p.tag & TAG_ICMP_ERR) !== 0) return onIcmpError(s, proc, p, bytes);
  const ihl = (p.tag >>> 8) & 0xff;
  const src = p.a >>> 0;
  const dst = p.b >>> 0;
  const u = parseUdp(bytes.subarray(ihl), src, dst);
  if (!u.ok) {
    s.stats.badChecksum++;
    s.links.pools.release(p);
    return;
  }
  const list = s.byPort.get(u.value.dstPort);
  const k = list?.find((o) => o.laddr === dst) ?? list?.find((o) => o.laddr === 0);
  if (!k || (k.rport !== 0 && (k.raddr !== src || k.rport !== u.value.srcPort))) {
    s.stats.noPort++;
    // Hand the datagram back to ip for an ICMP port unreachable (RFC 1122 §4.1.3.1).
    if (!ip.send({ ...p, tag: TAG_UNREACH | UnreachableCode.PORT })) s.links.pools.release(p);
    return;
  }
  s.stats.rx++;
  if (k.fast) {
    const r = k.fast.sk.pushDatagram(u.value.payload, src, u.value.srcPort);
    if (r === 1) s.stats.fastRx++;
    else if (r === VIOLATION) {
      s.stats.violations++;
      k.fast.fa.arena.reset(k.fast.slot);
    } else s.stats.fastRxFull++;
    s.links.pools.release(p);
    return;
  }
  if (k.rxBytes + u.value.payload.length > RCVBUF) {
    s.stats.rcvbufFull++;
    s.links.pools.release(p);
    return;
  }
  deliverTo(proc, k, { data: u.value.payload.slice(), addr: src, port: u.value.srcPort });
  s.links.pools.release(p);
}

const init = (proc: Proc) => initLayer(proc, new Links(proc));

export const server: ServerDef<State> = {
  initFresh: init,
  initRestart: init,
  handlers: {
    ...linkHandlers<State>(),
    [NET.CALL]: netCallHandler<State>(onCall, (s) => s.dirty && save(s)),
    [SRV_CTL]: (s) => ({ sockets: s.socks.size, ports: s.byPort.size, arenas: s.arenas.size, ...s.stats, pool: s.pool.stats }),
    [NET.APP_EXITED]: (s, m: Message, proc) => {
      const app = (m.payload as { app?: number } | undefined)?.app;
      for (const k of [...s.socks.values()]) if (k.app === app) closeSock(s, proc, k);
      if (typeof app === "number") s.arenas.drop(app);
      save(s);
      return NO_REPLY;
    },
  },
  poll(s, proc) {
    let did = false;
    const ip = s.links.port("ip");
    if (ip && ip.recv(64, (p, b) => onPacket(s, proc, ip, p, b)) > 0) did = true;
    if (s.arenas.size > 0 && pollArenas(s)) did = true;
    ip?.flush();
    const now = performance.now();
    for (const k of s.socks.values()) {
      while (k.waiters.length > 0 && k.waiters[0]!.deadline <= now) {
        fail(proc, k.waiters.shift()!.call, ETIMEDOUT, "receive timed out");
        did = true;
      }
    }
    return did;
  },
  nextDeadline: (s) => (s.socks.size > 0 ? 20 : Number.POSITIVE_INFINITY),
  // With arenas, sleep in poll(2) on the doorbell's eventfd (the kernel and ip ring it
  // through SLEEPING = 2), and tell each app through its bell that we sleep.
  idle(s, proc, ms) {
    s.arenas.idle(proc, ms, () => server.poll!(s, proc));
  },
};
export const freshLayer = initLayer;
export const restartLayer = initLayer;
