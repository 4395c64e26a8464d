// A packet port: one end of a channel between two stack servers. Packets cross as
// descriptors into shared pools (docs/design.md §2): the sender hands custody to the peer
// and publishes a 32-byte slot; the receiver checks each descriptor against the
// pool (stale or out-of-bounds ones are dropped and counted) and, when done,
// either passes the descriptor on or releases the buffer to its owner.
//
// Slot (eight u32): pool, index, gen, off, len, tag, a, b
//   tag, a, b: free for the two servers' protocol (addresses, protocol numbers).
import { type Desc, Pool, PoolOwner } from "../ipc/pool.ts";
import type { Channel } from "../sys/proc.ts";
import type { SlotRing } from "../ipc/ring.ts";

export const PORT_SLOT_BYTES = 32;
export const PORT_SLOTS = 512;

/** A descriptor plus the two protocol words a port carries. */
export interface Packet extends Desc {
  a: number;
  b: number;
}

/** The pools a server can see, by id. */
export class PoolSet {
  readonly pools = new Map<number, Pool>();
  add(p: Pool): void {
    this.pools.set(p.id, p);
  }
  get(id: number): Pool | undefined {
    return this.pools.get(id);
  }
  /** Releases a packet to its owner (no-op for unknown pools or stale descriptors). */
  release(d: Desc): void {
    this.pools.get(d.pool)?.release(d);
  }
  view(d: Desc): Uint8Array | null {
    return this.pools.get(d.pool)?.view(d) ?? null;
  }
  /** Reclaims, in every pool this server owns, the buffers a restarted peer held. */
  reclaim(ep: number): number {
    let n = 0;
    for (const p of this.pools.values()) if (p instanceof PoolOwner) n += p.reclaim(ep);
    return n;
  }
}

/** Either end of the way packets cross between two layers of the stack. */
export interface Port {
  readonly peer: number;
  send(p: Packet): boolean;
  flush(): void;
  recv(max: number, fn: (p: Packet, bytes: Uint8Array) => void): number;
  hasInput(): boolean;
  readonly stats: { sent: number; received: number; full: number; stale: number };
}

/**
 * Two layers in one server (`--stack single`, the paper's combined stack): the
 * same descriptors, handed over through an in-process queue instead of a ring.
 */
export class LocalPort implements Port {
  readonly peer: number;
  readonly pools: PoolSet;
  private readonly queue: Packet[] = [];
  other!: LocalPort;
  readonly stats = { sent: 0, received: 0, full: 0, stale: 0 };
  private readonly limit: number;
  constructor(peer: number, pools: PoolSet, limit = PORT_SLOTS) {
    this.peer = peer;
    this.pools = pools;
    this.limit = limit;
  }
  /** Two ends joined to each other. */
  static pair(ep: number, pools: PoolSet): [LocalPort, LocalPort] {
    const a = new LocalPort(ep, pools);
    const b = new LocalPort(ep, pools);
    a.other = b;
    b.other = a;
    return [a, b];
  }
  send(p: Packet): boolean {
    if (this.other.queue.length >= this.limit) {
      this.stats.full++;
      return false;
    }
    const pool = this.pools.get(p.pool);
    if (!pool || !pool.transfer(p, this.peer)) {
      this.stats.stale++;
      return false;
    }
    this.other.queue.push({ ...p });
    this.stats.sent++;
    return true;
  }
  flush(): void {}
  recv(max: number, fn: (p: Packet, bytes: Uint8Array) => void): number {
    let n = 0;
    while (n < max && this.queue.length > 0) {
      const p = this.queue.shift()!;
      n++;
      const bytes = this.pools.view(p);
      if (!bytes) {
        this.stats.stale++;
        continue;
      }
      this.stats.received++;
      fn(p, bytes);
    }
    return n;
  }
  hasInput(): boolean {
    return this.queue.length > 0;
  }
}

export class PacketPort implements Port {
  readonly ch: Channel;
  readonly peer: number;
  readonly pools: PoolSet;
  private readonly tx: SlotRing;
  private readonly rx: SlotRing;
  private pending = 0;
  readonly stats = { sent: 0, received: 0, full: 0, stale: 0 };
  constructor(ch: Channel, pools: PoolSet) {
    this.ch = ch;
    this.peer = ch.info.peer;
    this.pools = pools;
    this.tx = ch.tx as SlotRing;
    this.rx = ch.rx as SlotRing;
    if (this.tx.slotSize < PORT_SLOT_BYTES) throw new RangeError(`packet port needs ${PORT_SLOT_BYTES}-byte slots`);
  }

  /**
   * Queues a packet for the peer, handing it custody. Returns false when the ring
   * is full or the descriptor is stale: custody stays with the caller (drop it).
   */
  send(p: Packet): boolean {
    const o = this.tx.produceSlot(this.pending);
    if (o < 0) {
      this.stats.full++;
      return false;
    }
    const pool = this.pools.get(p.pool);
    if (!pool || !pool.transfer(p, this.peer)) {
      this.stats.stale++;
      return false;
    }
    const v = this.tx.view;
    v.setUint32(o, p.pool, true);
    v.setUint32(o + 4, p.index, true);
    v.setUint32(o + 8, p.gen, true);
    v.setUint32(o + 12, p.off, true);
    v.setUint32(o + 16, p.len, true);
    v.setUint32(o + 20, p.tag, true);
    v.setUint32(o + 24, p.a, true);
    v.setUint32(o + 28, p.b, true);
    this.pending++;
    this.stats.sent++;
    if (this.pending >= 32) this.flush();
    return true;
  }

  /** Publishes queued packets and wakes the peer if it sleeps. */
  flush(): void {
    if (this.pending === 0) return;
    this.tx.produce(this.pending);
    this.pending = 0;
    this.ch.kick();
  }

  /**
   * Takes up to `max` packets. `fn` gets each valid packet and its bytes and must
   * send it on or release it. Stale or malformed descriptors are dropped here.
   */
  recv(max: number, fn: (p: Packet, bytes: Uint8Array) => void): number {
    let n = 0;
    const v = this.rx.view;
    for (; n < max; n++) {
      const o = this.rx.consumeSlot(n);
      if (o < 0) break;
      const p: Packet = {
        pool: v.getUint32(o, true), index: v.getUint32(o + 4, true), gen: v.getUint32(o + 8, true) | 0,
        off: v.getUint32(o + 12, true), len: v.getUint32(o + 16, true), tag: v.getUint32(o + 20, true),
        a: v.getUint32(o + 24, true), b: v.getUint32(o + 28, true),
      };
      const bytes = this.pools.view(p);
      if (!bytes) {
        this.stats.stale++;
        continue;
      }
      this.stats.received++;
      fn(p, bytes);
    }
    if (n > 0) this.rx.consume(n);
    return n;
  }

  hasInput(): boolean {
    return this.rx.consumeSlot() >= 0;
  }
}
