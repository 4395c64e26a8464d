// The udp server's state: its sockets (by id and local port), the arenas of its
// fast sockets, and its counters. Shared by the server shell (servers/udp.ts) and
// the modules that do its work: udp-input.ts (datagrams and ICMP errors from ip),
// udp-rings.ts (fast sockets' rings) and udp-kipc.ts (data by kernel message).
import type { PoolOwner } from "../../ipc/pool.ts";
import type { Proc } from "../../sys/proc.ts";
import { EADDRINUSE, EBADF, ErrnoError } from "../../sys/errno.ts";
import { FastArenas, type FastApp } from "../../sock/fastapp.ts";
import type { SockStack, TxDesc } from "../../sock/stack.ts";
import type { Links } from "../links.ts";
import { fail, type NetCall } from "../netcall.ts";
import { udpPortConflict } from "./ports.ts";
import { saveUdp } from "./saved.ts";
import { SockTable } from "./socktable.ts";

/** A datagram queued for a receive by kernel message. */
export interface Dgram {
  data: Uint8Array;
  addr: number;
  port: number;
}

/** A receive by kernel message waiting for a datagram (a deadline of +Infinity: no time limit). */
export interface UdpWaiter {
  call: NetCall;
  max: number;
  deadline: number;
}

/** A socket whose datagrams travel through its app's arena (fast sockets). */
export interface FastUdp {
  fa: FastApp<UdpSock>;
  slot: number;
  sk: SockStack;
}

export interface UdpSock {
  id: number;
  app: number;
  /** Set for an arena socket (its datagrams travel through shared rings). */
  fast?: FastUdp;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
  rxq: Dgram[];
  rxBytes: number;
  waiters: UdpWaiter[];
}

export interface UdpStats {
  rx: number;
  tx: number;
  rxDrops: number;
  noPort: number;
  badChecksum: number;
  rcvbufFull: number;
  saveFailed: number;
  /** Fast sockets: datagrams drained from TX rings and pushed into RX rings; RX ring full (dropped). */
  fastTx: number;
  fastRx: number;
  fastRxFull: number;
  /** TX datagrams dropped: bad destination port, no buffer, ip not keeping up, no ephemeral port. */
  fastTxDrops: number;
  /** ABI violations by apps (each reset the socket it happened on). */
  violations: number;
  /** ICMP errors reported to connected sockets. */
  icmpErrors: number;
}

export interface UdpState {
  proc: Proc;
  links: Links;
  pool: PoolOwner;
  /** Sockets by id and local port; `dirty` since the last save. */
  socks: SockTable<UdpSock>;
  stats: UdpStats;
  /** Per app: its socket arena (fast sockets). Lost on a restart. */
  arenas: FastArenas<UdpSock>;
  /** The socket whose TX is being drained (for the drain callback). */
  draining: UdpSock | null;
  /** drainTx's callback, made once. */
  onTx: (d: TxDesc, sk: SockStack) => void;
}

/**
 * A state with no sockets over `links` and `pool`; `onActive` and `onTx` are the
 * fast sockets' walk and drain callbacks (udp-rings.ts), bound to the state.
 */
export function newUdpState(
  proc: Proc,
  links: Links,
  pool: PoolOwner,
  onActive: (s: UdpState, fa: FastApp<UdpSock>, slot: number) => void,
  onTx: (s: UdpState, d: TxDesc, sk: SockStack) => void,
): UdpState {
  const s: UdpState = {
    proc, links, pool, socks: new SockTable(),
    stats: {
      rx: 0, tx: 0, rxDrops: 0, noPort: 0, badChecksum: 0, rcvbufFull: 0, saveFailed: 0,
      fastTx: 0, fastRx: 0, fastRxFull: 0, fastTxDrops: 0, violations: 0, icmpErrors: 0,
    },
    arenas: null as unknown as FastArenas<UdpSock>, draining: null, onTx: () => {},
  };
  s.arenas = new FastArenas<UdpSock>(proc, "udp", (fa, slot) => onActive(s, fa, slot));
  s.onTx = (d, sk) => onTx(s, d, sk);
  return s;
}

/** A socket record with nothing bound or connected. */
export function blankSock(id: number, app: number): UdpSock {
  return { id, app, laddr: 0, lport: 0, raddr: 0, rport: 0, rxq: [], rxBytes: 0, waiters: [] };
}

/** The app's socket named by a call; EBADF otherwise. */
export function sockOf(s: UdpState, c: NetCall): UdpSock {
  return s.socks.of(c.app, c.sock);
}

/** Binds k to addr:port (port 0: an ephemeral one); EADDRINUSE when udpPortConflict says so. */
export function bindPort(s: UdpState, k: UdpSock, addr: number, port: number): void {
  if (port === 0) port = s.socks.freePort();
  else if (udpPortConflict(s.socks.users(port), addr)) throw new ErrnoError(EADDRINUSE, `port ${port} in use`);
  k.laddr = addr >>> 0;
  s.socks.setPort(k, port);
}

/** Saves the socket table (lib/net/transport/saved.ts says what survives a restart); a failure is counted. */
export function save(s: UdpState): void {
  s.socks.dirty = false;
  if (!saveUdp(s.links.store, s.socks.nextId, s.socks.values())) s.stats.saveFailed++;
}

/** Closes k: its waiting receives fail with EBADF, it leaves the table, an arena socket's slot is released. */
export function closeSock(s: UdpState, k: UdpSock): void {
  for (const w of k.waiters) fail(s.proc, w.call, EBADF, "socket closed");
  k.waiters = [];
  if (!s.socks.socks.has(k.id)) return;
  s.socks.remove(k);
  if (k.fast) {
    const { fa, slot } = k.fast;
    fa.socks.delete(slot);
    fa.arena.release(slot);
  }
}
