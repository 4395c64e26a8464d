// Packet-buffer pools: fixed-size buffers in one SharedArrayBuffer, owned by the
// server that allocates from it and lent to the servers a packet travels through.
// Packets move between servers as descriptors (pool, index, generation, offset,
// length) over slot rings, never as copies (docs/design.md §2).
//
// Layout:
//   byte 0      header: [0] magic 'POOL', [1] count, [2] bufSize
//   byte 64     meta, 16 bytes per buffer:
//                 [0] state   FREE | INUSE | RETURNED
//                 [1] holder  endpoint now responsible for the buffer
//                 [2] gen     bumped whenever the owner takes a buffer back by force
//                 [3] spare
//   byte 64+16n data: count * bufSize bytes
//
// Ownership protocol. Only the owner allocates (from a private free list) and
// turns RETURNED or reclaimed buffers back into FREE ones. Whoever is done with a
// buffer marks it RETURNED (one Atomics.compareExchange: any number of holders may
// return buffers concurrently, no ring needed); the owner collects returned
// buffers lazily when its free list runs dry. A sender hands custody on by storing
// the receiver's endpoint in `holder` before it publishes the descriptor. When a
// server restarts, the owner reclaims every buffer held by it and bumps their
// generation, so descriptors still in flight to or from the dead server are
// recognised as stale (their generation no longer matches) and dropped.

export const POOL_MAGIC = 0x4c4f4f50; // "POOL"
const HDR = 64;
const META = 16;
export const BufState = { FREE: 0, INUSE: 1, RETURNED: 2 } as const;

/** Bytes of a descriptor in a slot ring (six u32). */
export const DESC_BYTES = 24;

/** A packet descriptor. */
export interface Desc {
  pool: number;
  index: number;
  gen: number;
  off: number;
  len: number;
  /** Free for the protocol: direction, protocol hint, flags. */
  tag: number;
}

export function createPool(count: number, bufSize: number): SharedArrayBuffer {
  if (!Number.isInteger(count) || count < 1 || count > 1 << 20) throw new RangeError(`pool count ${count} out of range`);
  if (!Number.isInteger(bufSize) || bufSize < 64 || bufSize > 1 << 20 || bufSize % 8 !== 0) {
    throw new RangeError(`pool buffer size ${bufSize} must be a multiple of 8 in 64..1 MiB`);
  }
  const sab = new SharedArrayBuffer(HDR + count * META + count * bufSize);
  const h = new Int32Array(sab, 0, 16);
  h[0] = POOL_MAGIC;
  h[1] = count;
  h[2] = bufSize;
  return sab;
}

/** Any server's view of a pool (holders use this; the owner uses PoolOwner). */
export class Pool {
  readonly id: number;
  readonly sab: SharedArrayBuffer;
  readonly count: number;
  readonly bufSize: number;
  readonly meta: Int32Array;
  readonly bytes: Uint8Array;
  private readonly dataBase: number;
  constructor(id: number, sab: SharedArrayBuffer) {
    const h = new Int32Array(sab, 0, 16);
    const count = h[1]!;
    const bufSize = h[2]!;
    if (h[0] !== POOL_MAGIC || count < 1 || bufSize < 64 || HDR + count * (META + bufSize) !== sab.byteLength) {
      throw new RangeError(`pool ${id}: not a pool, or its header does not match its ${sab.byteLength} bytes`);
    }
    this.id = id;
    this.sab = sab;
    this.count = count;
    this.bufSize = bufSize;
    this.meta = new Int32Array(sab, HDR, count * 4);
    this.dataBase = HDR + count * META;
    this.bytes = new Uint8Array(sab);
  }

  /** Byte offset of buffer `index` within the SAB. */
  base(index: number): number {
    return this.dataBase + index * this.bufSize;
  }

  /** The bytes a descriptor names, or null if the descriptor is stale or out of bounds. Never throws. */
  view(d: Desc): Uint8Array | null {
    if (!this.valid(d)) return null;
    const b = this.base(d.index) + d.off;
    return this.bytes.subarray(b, b + d.len);
  }

  /** Whole buffer of a descriptor (for building a packet in place), or null. */
  buffer(d: Desc): Uint8Array | null {
    if (!this.valid({ ...d, off: 0, len: 0 })) return null;
    const b = this.base(d.index);
    return this.bytes.subarray(b, b + this.bufSize);
  }

  /** Checks a descriptor from untrusted or possibly stale hands. */
  valid(d: Desc): boolean {
    if (d.pool !== this.id || !(d.index >= 0 && d.index < this.count)) return false;
    if (!(d.off >= 0 && d.len >= 0 && d.off + d.len <= this.bufSize)) return false;
    return Atomics.load(this.meta, d.index * 4 + 2) === d.gen && Atomics.load(this.meta, d.index * 4) === BufState.INUSE;
  }

  /** Hands custody to another endpoint (call before publishing the descriptor to it). */
  transfer(d: Desc, to: number): boolean {
    if (!this.valid(d)) return false;
    Atomics.store(this.meta, d.index * 4 + 1, to);
    return true;
  }

  /** Gives the buffer back to its owner. False if it was stale (already reclaimed). */
  release(d: Desc): boolean {
    if (d.pool !== this.id || !(d.index >= 0 && d.index < this.count)) return false;
    if (!(d.off >= 0 && d.len >= 0 && d.off + d.len <= this.bufSize)) return false; // malformed
    if (Atomics.load(this.meta, d.index * 4 + 2) !== d.gen) return false;
    return Atomics.compareExchange(this.meta, d.index * 4, BufState.INUSE, BufState.RETURNED) === BufState.INUSE;
  }

  holder(index: number): number {
    return Atomics.load(this.meta, index * 4 + 1);
  }
}

/** The owner's side: allocation, collection of returned buffers, reclaim on a holder's restart. */
export class PoolOwner extends Pool {
  private readonly free: number[] = [];
  readonly ep: number;
  readonly stats = { allocs: 0, exhausted: 0, collected: 0, reclaimed: 0 };
  /**
   * `fresh`: a new pool, every buffer free. Otherwise (the owner restarted): buffers
   * still INUSE are reclaimed only if held by the owner itself; others stay lent.
   */
  constructor(id: number, sab: SharedArrayBuffer, ep: number, fresh: boolean) {
    super(id, sab);
    this.ep = ep;
    for (let i = this.count - 1; i >= 0; i--) {
      const st = Atomics.load(this.meta, i * 4);
      if (fresh || st !== BufState.INUSE || this.holder(i) === ep) {
        if (!fresh && st === BufState.INUSE) Atomics.add(this.meta, i * 4 + 2, 1);
        Atomics.store(this.meta, i * 4, BufState.FREE);
        this.free.push(i);
      }
    }
  }

  /** A buffer for `holder` (usually the owner itself), or null when none is free. */
  alloc(len = this.bufSize, off = 0, holder = this.ep): Desc | null {
    if (this.free.length === 0 && this.collect() === 0) {
      this.stats.exhausted++;
      return null;
    }
    const index = this.free.pop()!;
    Atomics.store(this.meta, index * 4 + 1, holder);
    Atomics.store(this.meta, index * 4, BufState.INUSE);
    this.stats.allocs++;
    return { pool: this.id, index, gen: Atomics.load(this.meta, index * 4 + 2), off, len: Math.min(len, this.bufSize - off), tag: 0 };
  }

  /** Moves RETURNED buffers to the free list. Returns how many. */
  collect(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (Atomics.load(this.meta, i * 4) === BufState.RETURNED) {
        Atomics.store(this.meta, i * 4, BufState.FREE);
        this.free.push(i);
        n++;
      }
    }
    this.stats.collected += n;
    return n;
  }

  /** Takes back every buffer held by `ep` (it restarted): their generation moves on. */
  reclaim(ep: number): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (Atomics.load(this.meta, i * 4) === BufState.INUSE && this.holder(i) === ep) {
        Atomics.add(this.meta, i * 4 + 2, 1);
        Atomics.store(this.meta, i * 4, BufState.FREE);
        this.free.push(i);
        n++;
      }
    }
    this.stats.reclaimed += n;
    return n;
  }

  get freeCount(): number {
    return this.free.length;
  }
}

/** Writes a descriptor into a slot ring's view at byte offset o. */
export function writeDesc(v: DataView, o: number, d: Desc): void {
  v.setUint32(o, d.pool, true);
  v.setUint32(o + 4, d.index, true);
  v.setUint32(o + 8, d.gen, true);
  v.setUint32(o + 12, d.off, true);
  v.setUint32(o + 16, d.len, true);
  v.setUint32(o + 20, d.tag, true);
}

/** Reads a descriptor from a slot ring's view at byte offset o (validate it with Pool.valid). */
export function readDesc(v: DataView, o: number): Desc {
  return {
    pool: v.getUint32(o, true),
    index: v.getUint32(o + 4, true),
    gen: v.getUint32(o + 8, true) | 0,
    off: v.getUint32(o + 12, true),
    len: v.getUint32(o + 16, true),
    tag: v.getUint32(o + 20, true),
  };
}
