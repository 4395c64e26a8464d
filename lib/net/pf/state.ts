// pf connection-state table: entries keyed by direction + 5-tuple, simplified TCP tracking, timeouts, a size limit, snapshot/restore.
//
// One entry per connection, stored under the key of the packet that created it (its direction
// and src:port -> dst:port). A later packet matches it forward (same direction, same tuple) or in
// reverse (other direction, tuple swapped), so replies find the entry without a second key.
// ICMP echo uses the echo ident as both ports; protocols without ports use 0.
//
// Entries are plain data (numbers and strings only), so the table can be mirrored into shared
// memory and handed to a restarted pf. Times are milliseconds supplied by the caller (`now`).
import type { Direction } from "./rules.ts";
import { TcpFlag } from "../types.ts";
import { IpProtocol } from "../ipv4.ts";

/**
 * TCP: SYN_SENT (first SYN seen) -> ESTABLISHED (SYN+ACK in reverse; or created mid-stream) ->
 * FIN_WAIT (one side sent FIN) -> CLOSED (both sent FIN, or any RST). UDP, ICMP and other
 * protocols: SINGLE (traffic one way only) -> MULTIPLE (replies seen), as pfctl -ss shows them.
 */
export type ConnState = "SYN_SENT" | "ESTABLISHED" | "FIN_WAIT" | "CLOSED" | "SINGLE" | "MULTIPLE";
const CONN_STATES = new Set<string>(["SYN_SENT", "ESTABLISHED", "FIN_WAIT", "CLOSED", "SINGLE", "MULTIPLE"]);

/** The addresses and ports of a packet, as the state table keys it. */
export interface Tuple {
  proto: number;
  src: number;
  srcPort: number;
  dst: number;
  dstPort: number;
}

/** One tracked connection. Every field is a number or a string. */
export interface StateEntry extends Tuple {
  /** Direction of the packet that created the entry ("forward"). */
  dir: Direction;
  state: ConnState;
  /** TCP FINs seen: bit 1 from the initiator (forward), bit 2 from the responder. */
  fin: number;
  /** Index of the rule that created the entry in the current ruleset, or -1 if that rule is gone. */
  rule: number;
  /** ms. */
  created: number;
  lastSeen: number;
  /** The entry is dead once now >= expires: lastSeen + the timeout of its state. */
  expires: number;
  fwdPackets: number;
  fwdBytes: number;
  revPackets: number;
  revBytes: number;
}

/** Idle timeouts in ms, per state (pf's tcp.first, tcp.established, tcp.closing, tcp.closed, udp.*, icmp.*, other.*). */
export interface StateTimeouts {
  synSent: number;
  established: number;
  finWait: number;
  closed: number;
  udp: number;
  icmp: number;
  other: number;
}

export const DEFAULT_TIMEOUTS: StateTimeouts = {
  synSent: 30_000,
  established: 24 * 3600_000,
  finWait: 30_000,
  closed: 10_000,
  udp: 60_000,
  icmp: 20_000,
  other: 60_000,
};

export interface StateOptions {
  /** Most entries the table holds (pf's `set limit states`). */
  limit: number;
  /** When full (after dropping expired entries): refuse the new entry (pf's behaviour) or evict the least recently used. */
  onFull: "refuse" | "evictOldest";
  timeouts: StateTimeouts;
}

export const DEFAULT_STATE_OPTIONS: StateOptions = { limit: 10_000, onFull: "refuse", timeouts: DEFAULT_TIMEOUTS };

export interface StateCounters {
  inserts: number;
  /** Entries dropped because their timeout passed. */
  expired: number;
  /** Entries evicted to make room (onFull = "evictOldest"). */
  evicted: number;
  /** New entries refused because the table was full (onFull = "refuse"). */
  refused: number;
  /** Entries removed by remove() or flush(). */
  removed: number;
}

/** Everything a restarted table needs: plain data, safe for JSON, structuredClone or a shared-memory mirror. */
export interface StateSnapshot {
  version: 1;
  counters: StateCounters;
  /** Least recently used first. */
  entries: StateEntry[];
}

/** A lookup result: the entry and whether the packet travels in the entry's creating direction. */
export interface StateHit {
  entry: StateEntry;
  forward: boolean;
}

const other = (d: Direction): Direction => (d === "in" ? "out" : "in");
const key = (dir: Direction, proto: number, src: number, sp: number, dst: number, dp: number): string =>
  `${dir}${proto}:${src}:${sp}>${dst}:${dp}`;
const keyOf = (e: StateEntry): string => key(e.dir, e.proto, e.src, e.srcPort, e.dst, e.dstPort);

/** The idle timeout of an entry in its current state. */
export function timeoutOf(e: Pick<StateEntry, "proto" | "state">, t: StateTimeouts): number {
  switch (e.state) {
    case "SYN_SENT": return t.synSent;
    case "ESTABLISHED": return t.established;
    case "FIN_WAIT": return t.finWait;
    case "CLOSED": return t.closed;
    default: return e.proto === IpProtocol.UDP ? t.udp : e.proto === IpProtocol.ICMP ? t.icmp : t.other;
  }
}

/** Moves `e` on by one packet with TCP `flags` (ignored for other protocols), seen forward or in reverse. */
export function advance(e: StateEntry, forward: boolean, flags: number): void {
  if (e.proto !== IpProtocol.TCP) {
    if (!forward) e.state = "MULTIPLE";
    return;
  }
  if (e.state === "CLOSED") return;
  if (flags & TcpFlag.RST) {
    e.state = "CLOSED";
    return;
  }
  if (e.state === "SYN_SENT" && !forward && (flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK))
    e.state = "ESTABLISHED";
  if (flags & TcpFlag.FIN) e.fin |= forward ? 1 : 2;
  if (e.fin === 3) e.state = "CLOSED";
  else if (e.fin !== 0) e.state = "FIN_WAIT";
}

/** The state a TCP entry starts in: SYN_SENT for a bare SYN, ESTABLISHED when picked up mid-stream. */
function initialState(proto: number, flags: number): ConnState {
  if (proto !== IpProtocol.TCP) return "SINGLE";
  return (flags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN ? "SYN_SENT" : "ESTABLISHED";
}

export class StateTable {
  readonly options: StateOptions;
  counters: StateCounters = { inserts: 0, expired: 0, evicted: 0, refused: 0, removed: 0 };
  /** Map order is recency: a hit moves its entry to the end, so the first entry is the least recently used. */
  private map = new Map<string, StateEntry>();
  /** When a full table was last swept for expired entries (one sweep per ms at most, so a flood costs O(1) per packet). */
  private lastFullSweep = Number.NaN;

  constructor(options: Partial<StateOptions> = {}) {
    this.options = { ...DEFAULT_STATE_OPTIONS, ...options, timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts } };
  }

  get size(): number {
    return this.map.size;
  }

  /** Entries, least recently used first (live objects: do not change them). */
  entries(): IterableIterator<StateEntry> {
    return this.map.values();
  }

  /** Finds the live entry a packet going `dir` with tuple `t` belongs to; drops it instead if it has expired. */
  lookup(now: number, dir: Direction, t: Tuple): StateHit | null {
    const f = this.live(now, key(dir, t.proto, t.src, t.srcPort, t.dst, t.dstPort));
    if (f) return { entry: f, forward: true };
    const r = this.live(now, key(other(dir), t.proto, t.dst, t.dstPort, t.src, t.srcPort));
    return r ? { entry: r, forward: false } : null;
  }

  private live(now: number, k: string): StateEntry | undefined {
    const e = this.map.get(k);
    if (e && now >= e.expires) {
      this.map.delete(k);
      this.counters.expired++;
      return undefined;
    }
    return e;
  }

  /** Accounts a packet of `bytes` to a hit, advances its TCP state and its timeout, and marks it most recently used. */
  track(now: number, hit: StateHit, flags: number, bytes: number): void {
    const e = hit.entry;
    advance(e, hit.forward, flags);
    if (hit.forward) {
      e.fwdPackets++;
      e.fwdBytes += bytes;
    } else {
      e.revPackets++;
      e.revBytes += bytes;
    }
    e.lastSeen = now;
    e.expires = now + timeoutOf(e, this.options.timeouts);
    const k = keyOf(e);
    this.map.delete(k);
    this.map.set(k, e);
  }

  /**
   * Creates the entry for a first packet going `dir` (TCP `flags`, `bytes` long) passed by rule
   * `rule`. Returns null if the table is full and onFull is "refuse" (counted).
   */
  insert(now: number, dir: Direction, t: Tuple, flags: number, rule: number, bytes: number): StateEntry | null {
    const k = key(dir, t.proto, t.src, t.srcPort, t.dst, t.dstPort);
    if (this.map.has(k)) this.map.delete(k);
    else if (!this.makeRoom(now)) {
      this.counters.refused++;
      return null;
    }
    const e: StateEntry = {
      dir, proto: t.proto, src: t.src >>> 0, srcPort: t.srcPort, dst: t.dst >>> 0, dstPort: t.dstPort,
      state: initialState(t.proto, flags), fin: 0, rule, created: now, lastSeen: now, expires: 0,
      fwdPackets: 1, fwdBytes: bytes, revPackets: 0, revBytes: 0,
    };
    if (t.proto === IpProtocol.TCP && flags & TcpFlag.FIN) advance(e, true, TcpFlag.FIN);
    e.expires = now + timeoutOf(e, this.options.timeouts);
    this.map.set(k, e);
    this.counters.inserts++;
    return e;
  }

  /** True if there is room for one more entry, after sweeping expired ones and, if allowed, evicting the LRU. */
  private makeRoom(now: number): boolean {
    const limit = this.options.limit;
    if (limit <= 0) return false;
    if (this.map.size < limit) return true;
    if (now !== this.lastFullSweep) {
      this.lastFullSweep = now;
      this.expire(now);
      if (this.map.size < limit) return true;
    }
    if (this.options.onFull === "refuse") return false;
    for (const k of this.map.keys()) {
      if (this.map.size < limit) break;
      this.map.delete(k);
      this.counters.evicted++;
    }
    return true;
  }

  /** Removes one entry (e.g. a closed TCP connection whose port is reused). */
  remove(e: StateEntry): void {
    if (this.map.delete(keyOf(e))) this.counters.removed++;
  }

  /** Drops every entry whose timeout has passed; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (const [k, e] of this.map) {
      if (now >= e.expires) {
        this.map.delete(k);
        n++;
      }
    }
    this.counters.expired += n;
    return n;
  }

  /** Drops every entry (pfctl -F states); returns how many. */
  flush(): number {
    const n = this.map.size;
    this.map.clear();
    this.counters.removed += n;
    return n;
  }

  /** A deep copy of the table's contents, least recently used first. */
  snapshot(): StateSnapshot {
    return { version: 1, counters: { ...this.counters }, entries: [...this.map.values()].map((e) => ({ ...e })) };
  }

  /**
   * Replaces the contents with a snapshot's. The snapshot may come from shared memory a crashed pf
   * wrote, so each entry is checked; malformed ones are rejected, and if more than the limit remain
   * the least recently used are dropped (also counted as rejected).
   */
  restore(snap: StateSnapshot): { restored: number; rejected: number } {
    this.map.clear();
    const list = Array.isArray(snap?.entries) ? snap.entries : [];
    const good = list.filter(validEntry).map((e) => ({ ...e }));
    const keep = good.slice(Math.max(0, good.length - Math.max(0, this.options.limit)));
    for (const e of keep) this.map.set(keyOf(e), e);
    const c = snap?.counters;
    for (const name of Object.keys(this.counters) as Array<keyof StateCounters>)
      this.counters[name] = c && isCount(c[name]) ? c[name] : 0;
    return { restored: this.map.size, rejected: list.length - this.map.size };
  }
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isU32 = (v: unknown): boolean => isCount(v) && (v as number) <= 0xffffffff;
const isPort = (v: unknown): boolean => isCount(v) && (v as number) <= 0xffff;

function validEntry(e: unknown): e is StateEntry {
  if (typeof e !== "object" || e === null) return false;
  const s = e as Record<string, unknown>;
  return (
    (s.dir === "in" || s.dir === "out") &&
    isCount(s.proto) && (s.proto as number) <= 255 &&
    isU32(s.src) && isU32(s.dst) && isPort(s.srcPort) && isPort(s.dstPort) &&
    typeof s.state === "string" && CONN_STATES.has(s.state) &&
    isCount(s.fin) && (s.fin as number) <= 3 &&
    Number.isSafeInteger(s.rule) && (s.rule as number) >= -1 &&
    isTime(s.created) && isTime(s.lastSeen) && isTime(s.expires) &&
    isCount(s.fwdPackets) && isCount(s.fwdBytes) && isCount(s.revPackets) && isCount(s.revBytes)
  );
}
