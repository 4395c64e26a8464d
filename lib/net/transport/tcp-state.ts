// The tcp server's state: its sockets (by id, port, connection and listener), the
// TCP table and timers of its connections, the arenas of its fast sockets, and its
// counters. Shared by the server shell (servers/tcp.ts) and the modules that do its
// work: tcp-conn.ts (segments, timers, a connection's events), tcp-rings.ts (fast
// sockets' rings) and tcp-kipc.ts (data by kernel message).
import type { PoolOwner } from "../../ipc/pool.ts";
import type { Proc } from "../../sys/proc.ts";
import { MinHeap } from "../../sys/heap.ts";
import { FastArenas, type FastApp } from "../../sock/fastapp.ts";
import type { SockStack, TxDesc } from "../../sock/stack.ts";
import type { Links } from "../links.ts";
import { EPHEMERAL_LO } from "../stackproto.ts";
import { type Secret, TcpConnection, TcpListener, TcpTable } from "../tcp/index.ts";
import type { NetCall } from "../netcall.ts";
import { saveTcp } from "./saved.ts";
import { tcpPortInUse } from "./ports.ts";
import { SockTable } from "./socktable.ts";

/** A recv by kernel message waiting for data (a deadline of +Infinity: no time limit). */
export interface RecvWaiter {
  call: NetCall;
  max: number;
  deadline: number;
}

/** A send by kernel message waiting for room in the connection's send buffer. */
export interface SendWaiter {
  call: NetCall;
  data: Uint8Array;
  off: number;
}

/** A socket whose buffers are rings in its app's arena (fast sockets). */
export interface FastTcp {
  fa: FastApp<TcpSock>;
  slot: number;
  sk: SockStack;
  /** SHUTDOWN(SHUT_WR) drained: FIN once every byte before it went to the connection. */
  shutWr: boolean;
  shutDone: boolean;
  /** CLOSE drained: 1 graceful, 2 abort (SO_LINGER 0); finished once TX is fed. */
  closing: number;
  eofPushed: boolean;
  /** A CONNECT by descriptor waits for its result (an ERROR descriptor). */
  connectPending: boolean;
  /** A listener: children premapped into its ring, oldest first (the app takes them in order). */
  children: TcpSock[];
}

export interface TcpSock {
  id: number;
  app: number;
  fast?: FastTcp;
  /** TCP_NODELAY, SO_KEEPALIVE as the app set them (an accepted socket inherits its listener's). */
  nodelay?: boolean;
  keepalive?: boolean;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
  listener: TcpListener | null;
  conn: TcpConnection | null;
  accepts: NetCall[];
  recvs: RecvWaiter[];
  sends: SendWaiter[];
  connecting: NetCall | null;
  /** errno to report once the connection failed (ECONNRESET, ETIMEDOUT, ECONNREFUSED). */
  error: number;
  connected: boolean;
  closed: boolean;
  backlog: number;
}

export interface TcpStats {
  rxSegments: number;
  txSegments: number;
  badSegments: number;
  txDropped: number;
  accepted: number;
  resets: number;
  /** Fast sockets: bytes from TX rings into connections and from connections into RX rings. */
  fastTxBytes: number;
  fastRxBytes: number;
  /** Children premapped into listeners' rings; connections dropped for want of a socket buffer. */
  premapped: number;
  premapDrops: number;
  /** ABI violations by apps (each reset the socket it happened on). */
  violations: number;
}

/**
 * How a socket's data travels, as its connection's events need it: through its app's
 * arena (FAST_PATH, tcp-rings.ts) or in kernel messages (KIPC_PATH, tcp-kipc.ts).
 * pump and closeSock (tcp-conn.ts) call them: a fast socket's events go to both
 * (calls by message may wait on any socket), except the bytes, which go one way.
 * servers/tcp.ts hands the state both, so tcp-conn.ts depends on neither.
 */
export interface DataPath {
  /** The connection is established (a blocking connect by system call is answered already). */
  connected(s: TcpState, k: TcpSock): void;
  /** In-order bytes, or the peer's FIN, to deliver. */
  readable(s: TcpState, k: TcpSock): void;
  /** Room in the connection's send buffer. */
  writable(s: TcpState, k: TcpSock, now: number): void;
  /** The connection failed (reset, timed out); k.error says how. */
  failed(s: TcpState, k: TcpSock): void;
  /** The connection is gone (its "closed" event); k.error says how, 0 for a clean end. */
  ended(s: TcpState, k: TcpSock): void;
  /** A listener of this path has completed connections waiting. */
  accepted(s: TcpState, k: TcpSock, now: number): void;
  /** The socket is being closed. */
  closing(s: TcpState, k: TcpSock, now: number): void;
  /** The server's periodic tick (every 5 ms). */
  tick(s: TcpState, now: number): void;
}

export interface TcpState {
  proc: Proc;
  /** The data paths (the one socket k's bytes take: pathOf(s, k)). */
  paths: { fast: DataPath; kipc: DataPath };
  links: Links;
  pool: PoolOwner;
  table: TcpTable;
  secret: Secret;
  /** Sockets by id and local port (listeners, bound and connected ones); `dirty` since the last save. */
  socks: SockTable<TcpSock>;
  byConn: Map<TcpConnection, TcpSock>;
  byListener: Map<TcpListener, TcpSock>;
  lastTick: number;
  /** Connections by their next timer (lazy: an entry is checked against the connection when it fires). */
  timers: MinHeap<TcpConnection>;
  /** When each connection's earliest queued timer fires. */
  scheduled: Map<TcpConnection, number>;
  /** Sockets with a receive that has a time limit. */
  timedRecvs: Set<TcpSock>;
  stats: TcpStats;
  /** Per app: its socket arena (fast sockets). Lost on a restart. */
  arenas: FastArenas<TcpSock>;
  /** The socket whose TX is being drained (for the drain callback). */
  draining: TcpSock | null;
  onTx: (d: TxDesc, sk: SockStack) => void;
  /** Staging for TX bytes on their way from a ring into a connection. */
  scratch: Uint8Array;
}

/**
 * A state with no sockets over `links` and `pool`; `paths` are the data paths;
 * `onActive` and `onTx` the fast sockets' walk and drain callbacks (tcp-rings.ts),
 * bound to the state.
 */
export function newTcpState(
  proc: Proc,
  paths: TcpState["paths"],
  links: Links,
  pool: PoolOwner,
  secret: Secret,
  ephemeralStart: number,
  onActive: (s: TcpState, fa: FastApp<TcpSock>, slot: number) => void,
  onTx: (s: TcpState, d: TxDesc) => void,
): TcpState {
  const s: TcpState = {
    proc, paths, links, pool, table: new TcpTable(), secret, socks: new SockTable(ephemeralStart), byConn: new Map(), byListener: new Map(),
    lastTick: 0, timers: new MinHeap(), scheduled: new Map(), timedRecvs: new Set(),
    stats: {
      rxSegments: 0, txSegments: 0, badSegments: 0, txDropped: 0, accepted: 0, resets: 0, fastTxBytes: 0, fastRxBytes: 0,
      premapped: 0, premapDrops: 0, violations: 0,
    },
    arenas: null as unknown as FastArenas<TcpSock>, draining: null, onTx: () => {}, scratch: new Uint8Array(65536),
  };
  s.arenas = new FastArenas<TcpSock>(proc, "tcp", (fa, slot) => onActive(s, fa, slot));
  s.onTx = (d) => onTx(s, d);
  return s;
}

/** The path socket k's bytes take. */
export const pathOf = (s: TcpState, k: TcpSock): DataPath => (k.fast ? s.paths.fast : s.paths.kipc);

/** Where the ephemeral cursor of a fresh or restarted tcp starts (random within the first 1000). */
export const ephemeralStart = (rnd: number): number => EPHEMERAL_LO + (rnd % 1000);

/** A socket record with nothing bound or connected. */
export function blankSock(id: number, app: number): TcpSock {
  return {
    id, app, laddr: 0, lport: 0, raddr: 0, rport: 0, listener: null, conn: null, accepts: [], recvs: [], sends: [],
    connecting: null, error: 0, connected: false, closed: false, backlog: 0,
  };
}

/** A new socket of the app's, entered in the table. */
export function newSock(s: TcpState, app: number): TcpSock {
  return s.socks.add(blankSock(s.socks.newId(), app));
}

/** The app's open socket named by a call; EBADF otherwise. */
export function sockOf(s: TcpState, c: NetCall): TcpSock {
  return s.socks.of(c.app, c.sock, (k) => !k.closed);
}

/** Whether a port is taken (tcpPortInUse's rule over the sockets on it). */
export function portInUse(s: TcpState, port: number, reuse = false): boolean {
  return tcpPortInUse(s.socks.users(port), reuse);
}

/** A free ephemeral port (not in use by the rule without SO_REUSEADDR). */
export function ephemeral(s: TcpState): number {
  return s.socks.freePort((p) => portInUse(s, p));
}

/** The socket is gone: out of the table, its port and the timed receives. */
export function forget(s: TcpState, k: TcpSock): void {
  s.socks.remove(k);
  s.timedRecvs.delete(k);
}

/** The app's TCP_NODELAY and SO_KEEPALIVE onto its connection. */
export function applyOpts(k: TcpSock, c: TcpConnection): void {
  if (k.nodelay !== undefined) c.setNoDelay(k.nodelay);
  if (k.keepalive !== undefined) c.setKeepalive(k.keepalive);
}

/** Saves the socket table if it changed (lib/net/transport/saved.ts says what survives a restart). */
export function saveIfDirty(s: TcpState): void {
  if (!s.socks.dirty) return;
  s.socks.dirty = false;
  saveTcp(s.links.store, s.socks.nextId, s.secret, s.socks.values());
}
