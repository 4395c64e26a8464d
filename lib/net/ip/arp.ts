// The ARP cache (RFC 826, RFC 1122 §2.3.2): entries with ageing, per-next-hop pending queues with retries, replies.
import { type ArpRepr, ARP_LEN, ArpOp, emitArp } from "../arp.ts";
import { EtherType } from "../ethernet.ts";
import { IPV4_BROADCAST, broadcastMac, formatMac, isMulticastIpv4, isMulticastMac, macEqual, parseMac } from "../addr.ts";
import { ETHERNET_HEADER_LEN, writeEthernetHeader } from "./link.ts";
import type { Iface } from "./iface.ts";

export interface ArpOptions {
  /** An entry confirmed this recently is used as is; older ones are "stale": used, but re-resolved (RFC 1122 §2.3.2.1). */
  reachableMs: number;
  /** A stale entry nobody used is forgotten this long after its last confirmation. */
  maxAgeMs: number;
  /** Gap between requests for one address. */
  retryMs: number;
  /** Requests per resolution before giving up (RFC 1122 §2.3.2.1 asks for a bounded, rate-limited number). */
  maxTries: number;
  /** Frames held per unresolved address; the oldest is dropped beyond it (RFC 1122 §2.3.2.2: "SHOULD save at least one"). */
  queueLimit: number;
  /** Cache size; the least recently confirmed dynamic entry is evicted beyond it. */
  maxEntries: number;
  /** Concurrent resolutions; frames for further addresses are dropped. */
  maxPending: number;
}

export const DEFAULT_ARP_OPTIONS: ArpOptions = {
  reachableMs: 60_000,
  maxAgeMs: 600_000,
  retryMs: 1_000,
  maxTries: 3,
  queueLimit: 8,
  maxEntries: 512,
  maxPending: 64,
};

/** Named counters; all start at 0 and only grow. */
export function newArpStats() {
  return {
    requestsIn: 0,
    repliesIn: 0,
    /** Sender MAC multicast, or our own MAC echoed back. */
    badSender: 0,
    /** Someone else claims one of our addresses (RFC 5227 §2.4): not learned, not answered. */
    conflicts: 0,
    repliesSent: 0,
    requestsSent: 0,
    gratuitousSent: 0,
    learned: 0,
    updated: 0,
    /** Resolutions that ran out of tries: their queued frames were reported unreachable. */
    resolveFailed: 0,
    /** A stale entry that stopped answering and was deleted. */
    refreshFailed: 0,
    /** Oldest frame dropped from a full per-address queue. */
    queueDropped: 0,
    /** Frames dropped because too many addresses were already being resolved. */
    pendingFull: 0,
    evicted: 0,
    expired: 0,
  };
}
export type ArpStats = ReturnType<typeof newArpStats>;

/** What the cache asks its owner to do: send a frame, or report frames whose next hop never answered. */
export type ArpAction =
  | { send: Uint8Array; iface: string }
  | { unresolved: { iface: string; nextHop: number; frames: Uint8Array[] } };

/** A cache entry as snapshot() writes it: plain and JSON-safe. */
export interface ArpEntrySnapshot {
  ip: number;
  mac: string;
  iface: string;
  /** Caller's clock (ms) when last confirmed. */
  confirmed: number;
  isStatic: boolean;
}

interface Entry {
  mac: Uint8Array;
  iface: string;
  confirmed: number;
  isStatic: boolean;
}

interface Pending {
  iface: string;
  /** Requests sent so far. */
  tries: number;
  /** When the next request (or the give-up) is due. */
  nextAt: number;
  /** Whole Ethernet frames whose destination MAC is still to be written, oldest first. */
  queue: Uint8Array[];
  /** Re-resolving a stale entry (frames go out meanwhile with the old MAC, so the queue stays empty). */
  refresh: boolean;
}

export class ArpCache {
  readonly stats: ArpStats = newArpStats();
  readonly opts: ArpOptions;
  private readonly entries = new Map<number, Entry>();
  private readonly pending = new Map<number, Pending>();

  constructor(opts: Partial<ArpOptions> = {}) {
    this.opts = { ...DEFAULT_ARP_OPTIONS, ...opts };
  }

  /** The MAC known for `ip`, and whether it is stale; null if none. No side effects. */
  lookup(now: number, ip: number): { mac: Uint8Array; stale: boolean; iface: string } | null {
    const e = this.entries.get(ip);
    if (!e) return null;
    return { mac: e.mac, iface: e.iface, stale: !e.isStatic && now - e.confirmed >= this.opts.reachableMs };
  }

  /** Number of frames waiting for `ip` to resolve (0 if none). */
  queued(ip: number): number {
    return this.pending.get(ip)?.queue.length ?? 0;
  }

  /** True while a request schedule runs for `ip`. */
  resolving(ip: number): boolean {
    return this.pending.has(ip);
  }

  /**
   * Sends `frame` (an Ethernet frame whose bytes 6.. are written; the destination MAC is filled here)
   * to `nextHop` out of `iface`, or queues it and starts resolution.
   */
  send(now: number, iface: Iface, nextHop: number, frame: Uint8Array, out: ArpAction[]): void {
    const e = this.entries.get(nextHop);
    if (e && e.iface === iface.name) {
      if (!e.isStatic && now - e.confirmed >= this.opts.reachableMs && !this.pending.has(nextHop)) {
        this.pending.set(nextHop, { iface: iface.name, tries: 1, nextAt: now + this.opts.retryMs, queue: [], refresh: true });
        out.push(this.request(iface, nextHop, e.mac));
      }
      frame.set(e.mac, 0);
      out.push({ send: frame, iface: iface.name });
      return;
    }
    const p = this.pending.get(nextHop);
    if (p) {
      p.refresh = false; // the entry it was refreshing is gone (or on another interface): hold frames now
      p.iface = iface.name;
      p.queue.push(frame);
      if (p.queue.length > this.opts.queueLimit) {
        p.queue.shift();
        this.stats.queueDropped++;
      }
      return;
    }
    if (this.pending.size >= this.opts.maxPending) {
      this.stats.pendingFull++;
      return;
    }
    this.pending.set(nextHop, { iface: iface.name, tries: 1, nextAt: now + this.opts.retryMs, queue: [frame], refresh: false });
    out.push(this.request(iface, nextHop, null));
  }

  /** Handles an ARP packet that arrived on `iface` (already parsed: Ethernet/IPv4 request or reply). */
  input(now: number, iface: Iface, a: ArpRepr, out: ArpAction[]): void {
    if (a.op === ArpOp.REQUEST) this.stats.requestsIn++;
    else this.stats.repliesIn++;
    if (isMulticastMac(a.senderMac) || macEqual(a.senderMac, iface.mac)) {
      this.stats.badSender++;
      return;
    }
    if (a.senderIp === iface.addr) {
      this.stats.conflicts++;
      return;
    }
    // RFC 5227 probes have sender 0.0.0.0; nothing is learned from them or from group addresses.
    const senderOk = a.senderIp !== 0 && a.senderIp !== IPV4_BROADCAST && !isMulticastIpv4(a.senderIp);
    const forUs = a.targetIp === iface.addr;
    // RFC 826 "Packet Reception": update an existing entry from any packet (merge), add one only if we are the target.
    let merged = false;
    if (senderOk) {
      const e = this.entries.get(a.senderIp);
      if (e) {
        merged = true;
        if (!e.isStatic) {
          e.mac = a.senderMac.slice();
          e.iface = iface.name;
          e.confirmed = now;
          this.stats.updated++;
        }
      } else if (forUs) {
        this.insert(a.senderIp, { mac: a.senderMac.slice(), iface: iface.name, confirmed: now, isStatic: false });
        this.stats.learned++;
        merged = true;
      }
      if (merged) this.flush(a.senderIp, out);
    }
    if (forUs && a.op === ArpOp.REQUEST) {
      const reply: ArpRepr = { op: ArpOp.REPLY, senderMac: iface.mac, senderIp: iface.addr, targetMac: a.senderMac, targetIp: a.senderIp };
      out.push({ send: arpFrame(reply, a.senderMac, iface.mac), iface: iface.name });
      this.stats.repliesSent++;
    }
  }

  /** Retries, give-ups and ageing. `ifaceOf` finds a live interface by name. */
  tick(now: number, ifaceOf: (name: string) => Iface | undefined, out: ArpAction[]): void {
    for (const [ip, p] of [...this.pending]) {
      if (now < p.nextAt) continue;
      const iface = ifaceOf(p.iface);
      if (!iface || p.tries >= this.opts.maxTries) {
        this.pending.delete(ip);
        if (p.refresh) {
          this.entries.delete(ip);
          this.stats.refreshFailed++;
        } else {
          this.stats.resolveFailed++;
        }
        if (p.queue.length > 0) out.push({ unresolved: { iface: p.iface, nextHop: ip, frames: p.queue } });
        continue;
      }
      const e = this.entries.get(ip);
      out.push(this.request(iface, ip, p.refresh && e ? e.mac : null));
      p.tries++;
      p.nextAt = now + this.opts.retryMs;
    }
    for (const [ip, e] of [...this.entries]) {
      if (!e.isStatic && now - e.confirmed >= this.opts.maxAgeMs && !this.pending.has(ip)) {
        this.entries.delete(ip);
        this.stats.expired++;
      }
    }
  }

  /** A gratuitous ARP announcing iface's address (RFC 5227 §3 "ARP Announcement"; RFC 826 merge updates peers). */
  gratuitous(iface: Iface): Uint8Array {
    this.stats.gratuitousSent++;
    const r: ArpRepr = { op: ArpOp.REQUEST, senderMac: iface.mac, senderIp: iface.addr, targetMac: new Uint8Array(6), targetIp: iface.addr };
    return arpFrame(r, broadcastMac(), iface.mac);
  }

  /** A permanent entry (never aged, never overwritten by ARP traffic). False if the MAC is not 6 bytes of unicast. */
  addStatic(ip: number, mac: Uint8Array, iface: string): boolean {
    if (mac.length !== 6 || isMulticastMac(mac)) return false;
    this.entries.set(ip >>> 0, { mac: mac.slice(), iface, confirmed: 0, isStatic: true });
    return true;
  }

  /** Forgets an entry; true if there was one. */
  delete(ip: number): boolean {
    return this.entries.delete(ip);
  }

  /** Forgets entries learned on an interface and drops its pending frames (it went away). */
  removeIface(name: string): void {
    for (const [ip, e] of [...this.entries]) if (e.iface === name) this.entries.delete(ip);
    for (const [ip, p] of [...this.pending]) if (p.iface === name) this.pending.delete(ip);
  }

  get size(): number {
    return this.entries.size;
  }

  snapshot(): ArpEntrySnapshot[] {
    return [...this.entries].map(([ip, e]) => ({ ip, mac: formatMac(e.mac), iface: e.iface, confirmed: e.confirmed, isStatic: e.isStatic }));
  }

  /**
   * Rebuilds a cache's entries (pending resolutions are not durable); malformed entries are skipped.
   * With `now`, an entry confirmed "in the future" (the restarted server's clock began anew) is made
   * stale, so it is used but re-verified rather than trusted for a whole clock epoch.
   */
  static restore(snap: unknown, opts: Partial<ArpOptions> = {}, now?: number): ArpCache {
    const c = new ArpCache(opts);
    if (!Array.isArray(snap)) return c;
    for (const s of snap as Partial<ArpEntrySnapshot>[]) {
      if (!s || typeof s !== "object") continue;
      const mac = typeof s.mac === "string" ? parseMac(s.mac) : null;
      const ipOk = Number.isInteger(s.ip) && s.ip! >= 0 && s.ip! <= 0xffffffff;
      if (!mac || !ipOk || typeof s.iface !== "string" || !Number.isFinite(s.confirmed)) continue;
      let confirmed = s.confirmed!;
      if (now !== undefined && confirmed > now) confirmed = now - c.opts.reachableMs;
      c.insert(s.ip!, { mac, iface: s.iface, confirmed, isStatic: s.isStatic === true });
    }
    return c;
  }

  private insert(ip: number, e: Entry): void {
    if (!this.entries.has(ip) && this.entries.size >= this.opts.maxEntries) {
      let victim = -1;
      let oldest = Infinity;
      for (const [k, v] of this.entries) {
        if (v.isStatic || v.confirmed >= oldest) continue;
        oldest = v.confirmed;
        victim = k;
      }
      if (victim === -1) return; // all static: keep them
      this.entries.delete(victim);
      this.stats.evicted++;
    }
    this.entries.set(ip, e);
  }

  /** Sends everything queued for a now-resolved address. */
  private flush(ip: number, out: ArpAction[]): void {
    const p = this.pending.get(ip);
    const e = this.entries.get(ip);
    if (!p || !e) return;
    this.pending.delete(ip);
    for (const f of p.queue) {
      f.set(e.mac, 0);
      out.push({ send: f, iface: e.iface });
    }
  }

  /** A who-has request for `ip`: broadcast, or unicast to `to` when polling a stale entry (RFC 1122 §2.3.2.1). */
  private request(iface: Iface, ip: number, to: Uint8Array | null): ArpAction {
    this.stats.requestsSent++;
    const r: ArpRepr = { op: ArpOp.REQUEST, senderMac: iface.mac, senderIp: iface.addr, targetMac: new Uint8Array(6), targetIp: ip };
    return { send: arpFrame(r, to ?? broadcastMac(), iface.mac), iface: iface.name };
  }
}

/** An Ethernet frame carrying an ARP packet. */
export function arpFrame(r: ArpRepr, dstMac: Uint8Array, srcMac: Uint8Array): Uint8Array {
  const f = new Uint8Array(ETHERNET_HEADER_LEN + ARP_LEN);
  emitArp(r, f.subarray(ETHERNET_HEADER_LEN));
  writeEthernetHeader(f, dstMac, srcMac, EtherType.ARP);
  return f;
}
