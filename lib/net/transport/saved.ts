// What the transport servers keep across a restart, in their store (lib/sys/store.ts):
// the socket table of sockets made by system call (sockets whose buffers are rings in
// an app's arena live and die with the server's generation and are not saved), and
// for tcp the ISN/SYN-cookie secret. A restarted server reloads these records and
// rebuilds its table from them: tcp listens again on the same ports, and sockets that
// were connected come back failed (their connection died with the old generation).
// Pure: plain records to and from the store; the store's bytes are checked (a torn or
// foreign value loads as nothing) and so is every record.
import { loadStore, saveStore, type Store } from "../../sys/store.ts";
import type { Secret } from "../tcp/index.ts";

/** A socket's identity and addresses: what both transports save of every socket. */
export interface SockAddrs {
  id: number;
  app: number;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
}

/** A TCP socket as saved: where it is bound and what it was. */
export interface SavedTcpSock extends SockAddrs {
  /** "listen": listen again; "conn": connected (comes back failed); "new": neither. */
  kind: "new" | "listen" | "conn";
  backlog: number;
}

export interface SavedTcp {
  nextId: number;
  secret: Secret | null;
  socks: SavedTcpSock[];
}

/** What the snapshot reads of a live TCP socket. */
export interface TcpSockView extends SockAddrs {
  closed: boolean;
  /** Set for a socket whose buffers are arena rings (not saved). */
  fast?: unknown;
  listener: object | null;
  conn: object | null;
  connected: boolean;
  backlog: number;
}

/** Saves tcp's table; false if it does not fit the store. */
export function saveTcp(store: Store, nextId: number, secret: Secret, socks: Iterable<TcpSockView>): boolean {
  const out: SavedTcpSock[] = [];
  for (const k of socks) {
    if (k.closed || k.fast) continue; // fast sockets live in their arena, lost with this generation
    const kind = k.listener ? "listen" : k.conn || k.connected ? "conn" : "new";
    out.push({ id: k.id, app: k.app, laddr: k.laddr, lport: k.lport, raddr: k.raddr, rport: k.rport, kind, backlog: k.backlog });
  }
  return saveStore(store, { nextId, secret: [...secret], socks: out });
}

/** tcp's saved table, checked; null when nothing usable was saved. */
export function loadTcp(store: Store | undefined): SavedTcp | null {
  const saved = loadStore(store) as { nextId?: unknown; secret?: unknown; socks?: unknown } | null;
  if (!saved || typeof saved !== "object" || !Array.isArray(saved.socks)) return null;
  const sec = saved.secret;
  const secret: Secret | null = Array.isArray(sec) && sec.length === 2 ? [sec[0]! >>> 0, sec[1]! >>> 0] : null;
  const socks: SavedTcpSock[] = [];
  for (const x of saved.socks as Partial<SavedTcpSock>[]) {
    if (typeof x?.id !== "number" || typeof x.app !== "number") continue;
    socks.push({
      id: x.id, app: x.app, laddr: x.laddr! >>> 0, lport: x.lport || 0, raddr: x.raddr! >>> 0, rport: x.rport!,
      kind: x.kind === "listen" || x.kind === "conn" ? x.kind : "new", backlog: x.backlog || 128,
    });
  }
  return { nextId: Math.max(1, Number(saved.nextId) || 1), secret, socks };
}

/** A UDP socket as saved: its binding and connected peer. */
export type SavedUdpSock = SockAddrs;

export interface SavedUdp {
  nextId: number;
  socks: SavedUdpSock[];
}

/** What the snapshot reads of a live UDP socket. */
export interface UdpSockView extends SockAddrs {
  fast?: unknown;
}

/** Saves udp's table; false if it does not fit the store. */
export function saveUdp(store: Store, nextId: number, socks: Iterable<UdpSockView>): boolean {
  const out: SavedUdpSock[] = [];
  for (const k of socks) if (!k.fast) out.push({ id: k.id, app: k.app, laddr: k.laddr, lport: k.lport, raddr: k.raddr, rport: k.rport });
  return saveStore(store, { nextId, socks: out });
}

/** udp's saved table, checked; null when nothing usable was saved. */
export function loadUdp(store: Store | undefined): SavedUdp | null {
  const saved = loadStore(store) as { nextId?: unknown; socks?: unknown } | null;
  if (!saved || typeof saved !== "object" || !Array.isArray(saved.socks)) return null;
  const socks: SavedUdpSock[] = [];
  for (const x of saved.socks as Partial<SavedUdpSock>[]) {
    if (typeof x?.id !== "number" || typeof x.lport !== "number") continue;
    socks.push({ id: x.id, app: x.app!, laddr: x.laddr! >>> 0, lport: x.lport, raddr: x.raddr! >>> 0, rport: x.rport! });
  }
  return { nextId: Math.max(1, Number(saved.nextId) || 1), socks };
}
