// Single-producer single-consumer rings in a SharedArrayBuffer: a byte stream ring,
// a message ring (length-prefixed records on a byte ring) and a fixed-slot ring.
//
// Layout of every ring's SAB (all indices are free-running unsigned 32-bit counters,
// stored in Int32 cells and compared with >>> 0 arithmetic):
//
//    byte 0    +-----------------------------+
//              | tail  (producer writes)     |  line 0: only the producer stores here
//    byte 4    | capacity (bytes or slots)   |  written once at creation
//    byte 8    | slot size (slot ring only)  |
//    byte 64   +-----------------------------+
//              | head  (consumer writes)     |  line 1: only the consumer stores here
//    byte 128  +-----------------------------+
//              | data: capacity bytes, or    |
//              | capacity * slotSize bytes   |
//              +-----------------------------+
//
// Protocol (as ringbuf.js and gVisor's sharedmem pipe): each side keeps a private
// copy of the index it owns, reads the other side's index once per operation,
// copies, then publishes its own index with a single Atomics.store. Neither side
// trusts the other: an index that claims more than `capacity` bytes are in flight
// is reported as CORRUPT and nothing is read or written.

export const HDR_BYTES = 128;
const TAIL = 0; // Int32 index of the producer's tail
const CAP = 1;
const SLOT = 2;
const HEAD = 16; // Int32 index of the consumer's head (byte 64)

/** Returned by operations that found the shared indices impossible. */
export const CORRUPT = -1;

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Allocates a byte ring's SAB. capacity must be a power of two. */
export function createByteRingBuffer(capacity: number): SharedArrayBuffer {
  if (!isPow2(capacity)) throw new RangeError(`ring capacity ${capacity} is not a power of two`);
  const sab = new SharedArrayBuffer(HDR_BYTES + capacity);
  new Int32Array(sab, 0, 32)[CAP] = capacity;
  return sab;
}

/** Allocates a slot ring's SAB: `slots` (power of two) slots of `slotSize` bytes (multiple of 4). */
export function createSlotRingBuffer(slots: number, slotSize: number): SharedArrayBuffer {
  if (!isPow2(slots)) throw new RangeError(`slot count ${slots} is not a power of two`);
  if (slotSize <= 0 || slotSize % 4 !== 0) throw new RangeError(`slot size ${slotSize} is not a positive multiple of 4`);
  const sab = new SharedArrayBuffer(HDR_BYTES + slots * slotSize);
  const h = new Int32Array(sab, 0, 32);
  h[CAP] = slots;
  h[SLOT] = slotSize;
  return sab;
}

/** Common header access. The capacity is read once, at attach, and never again from shared memory. */
class RingBase {
  readonly hdr: Int32Array;
  readonly capacity: number;
  readonly mask: number;
  readonly sab: SharedArrayBuffer;
  constructor(sab: SharedArrayBuffer, unitBytes: number, expectedCapacity?: number) {
    this.sab = sab;
    this.hdr = new Int32Array(sab, 0, 32);
    const cap = expectedCapacity ?? this.hdr[CAP]!;
    if (!isPow2(cap) || HDR_BYTES + cap * unitBytes > sab.byteLength) {
      throw new RangeError(`ring header claims capacity ${cap}, which does not fit a ${sab.byteLength}-byte buffer`);
    }
    this.capacity = cap;
    this.mask = cap - 1;
  }
  /** Units in flight as seen now (for diagnostics and pollers). */
  used(): number {
    return (Atomics.load(this.hdr, TAIL) - Atomics.load(this.hdr, HEAD)) >>> 0;
  }
  isEmpty(): boolean {
    return Atomics.load(this.hdr, TAIL) === Atomics.load(this.hdr, HEAD);
  }
}

/** Producer or consumer end of a byte stream ring (each process uses one end only). */
export class ByteRing extends RingBase {
  readonly data: Uint8Array;
  private tail: number; // private copy (producer)
  private head: number; // private copy (consumer)
  constructor(sab: SharedArrayBuffer) {
    super(sab, 1);
    this.data = new Uint8Array(sab, HDR_BYTES, this.capacity);
    this.tail = Atomics.load(this.hdr, TAIL) >>> 0;
    this.head = Atomics.load(this.hdr, HEAD) >>> 0;
  }

  /** Bytes the producer may write now, or CORRUPT. */
  writable(): number {
    const head = Atomics.load(this.hdr, HEAD) >>> 0;
    const used = (this.tail - head) >>> 0;
    return used > this.capacity ? CORRUPT : this.capacity - used;
  }

  /** Bytes the consumer may read now, or CORRUPT. */
  readable(): number {
    const tail = Atomics.load(this.hdr, TAIL) >>> 0;
    const used = (tail - this.head) >>> 0;
    return used > this.capacity ? CORRUPT : used;
  }

  /** Writes as much of src as fits; returns the byte count (0 when full) or CORRUPT. */
  write(src: Uint8Array): number {
    const room = this.writable();
    if (room <= 0) return room;
    const n = Math.min(room, src.length);
    this.copyIn(this.tail, src, n);
    this.tail = (this.tail + n) >>> 0;
    Atomics.store(this.hdr, TAIL, this.tail | 0);
    return n;
  }

  /** Reads up to dst.length bytes; returns the count (0 when empty) or CORRUPT. */
  read(dst: Uint8Array): number {
    const avail = this.readable();
    if (avail <= 0) return avail;
    const n = Math.min(avail, dst.length);
    this.copyOut(this.head, dst, n);
    this.head = (this.head + n) >>> 0;
    Atomics.store(this.hdr, HEAD, this.head | 0);
    return n;
  }

  // --- pieces for the message ring: write/read without publishing ---

  /** Copies n bytes of src into the ring at free-running position pos (wrapping). */
  copyIn(pos: number, src: Uint8Array, n: number, srcOff = 0): void {
    const at = pos & this.mask;
    const first = Math.min(n, this.capacity - at);
    this.data.set(src.subarray(srcOff, srcOff + first), at);
    if (first < n) this.data.set(src.subarray(srcOff + first, srcOff + n), 0);
  }

  /** Copies n bytes at free-running position pos (wrapping) into dst. */
  copyOut(pos: number, dst: Uint8Array, n: number, dstOff = 0): void {
    const at = pos & this.mask;
    const first = Math.min(n, this.capacity - at);
    dst.set(this.data.subarray(at, at + first), dstOff);
    if (first < n) dst.set(this.data.subarray(0, n - first), dstOff + first);
  }

  get privateTail(): number {
    return this.tail;
  }
  get privateHead(): number {
    return this.head;
  }
  publishTail(t: number): void {
    this.tail = t >>> 0;
    Atomics.store(this.hdr, TAIL, this.tail | 0);
  }
  publishHead(h: number): void {
    this.head = h >>> 0;
    Atomics.store(this.hdr, HEAD, this.head | 0);
  }
  /** Consumer: forget everything in flight (used after CORRUPT to resynchronise). */
  resetConsumer(): void {
    this.publishHead(Atomics.load(this.hdr, TAIL));
  }
}

/**
 * Length-prefixed messages on a byte ring: [u32 length][length bytes]. A message is
 * written whole or not at all, and published with one store of the tail.
 */
export class MsgRing {
  readonly ring: ByteRing;
  readonly maxMsg: number;
  private readonly lenBuf = new Uint8Array(4);
  private readonly lenView = new DataView(this.lenBuf.buffer);
  constructor(sab: SharedArrayBuffer, maxMsg?: number) {
    this.ring = new ByteRing(sab);
    this.maxMsg = Math.min(maxMsg ?? this.ring.capacity >>> 2, this.ring.capacity - 4);
  }

  /** Producer: true if written, false if there is no room now. Throws RangeError on an oversized message. */
  tryWrite(msg: Uint8Array, msg2?: Uint8Array): boolean {
    const len = msg.length + (msg2?.length ?? 0);
    if (len > this.maxMsg) throw new RangeError(`message of ${len} bytes exceeds the ${this.maxMsg}-byte limit`);
    const room = this.ring.writable();
    if (room < 4 + len) return false; // includes CORRUPT (-1)
    const t = this.ring.privateTail;
    this.lenView.setUint32(0, len, true);
    this.ring.copyIn(t, this.lenBuf, 4);
    this.ring.copyIn((t + 4) >>> 0, msg, msg.length);
    if (msg2) this.ring.copyIn((t + 4 + msg.length) >>> 0, msg2, msg2.length);
    this.ring.publishTail((t + 4 + len) >>> 0);
    return true;
  }

  /**
   * Consumer: the next message (a fresh copy), null when empty, or CORRUPT when the
   * producer published an impossible index or length; the ring is then resynchronised
   * (everything in flight is dropped) so the consumer keeps going.
   */
  tryRead(): Uint8Array | null | typeof CORRUPT {
    const avail = this.ring.readable();
    if (avail === 0) return null;
    if (avail < 4) {
      this.ring.resetConsumer();
      return CORRUPT;
    }
    const h = this.ring.privateHead;
    this.ring.copyOut(h, this.lenBuf, 4);
    const len = this.lenView.getUint32(0, true);
    if (len > this.maxMsg || 4 + len > avail) {
      this.ring.resetConsumer();
      return CORRUPT;
    }
    const out = new Uint8Array(len);
    this.ring.copyOut((h + 4) >>> 0, out, len);
    this.ring.publishHead((h + 4 + len) >>> 0);
    return out;
  }

  isEmpty(): boolean {
    return this.ring.isEmpty();
  }
}

/**
 * Fixed-slot ring: the producer fills slot `produceSlot()` in place (through `view`)
 * and calls `produce()`; the consumer reads slot `consumeSlot()` and calls `consume()`.
 * Batching: `produce(n)`/`consume(n)` publish several slots with one store.
 */
export class SlotRing extends RingBase {
  readonly slotSize: number;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  private tail: number;
  private head: number;
  private cachedHead: number; // producer's last view of head: re-read only when the ring looks full
  private cachedTail: number; // consumer's last view of tail: re-read only when the ring looks empty
  constructor(sab: SharedArrayBuffer) {
    const hdr = new Int32Array(sab, 0, 32);
    const slotSize = hdr[SLOT]!;
    super(sab, slotSize > 0 && slotSize % 4 === 0 ? slotSize : Number.POSITIVE_INFINITY);
    this.slotSize = slotSize;
    this.view = new DataView(sab, HDR_BYTES, this.capacity * slotSize);
    this.bytes = new Uint8Array(sab, HDR_BYTES, this.capacity * slotSize);
    this.tail = this.cachedTail = Atomics.load(this.hdr, TAIL) >>> 0;
    this.head = this.cachedHead = Atomics.load(this.hdr, HEAD) >>> 0;
  }

  /** Producer: byte offset (in `view`) of the k-th free slot, or -1 when full (or CORRUPT). */
  produceSlot(k = 0): number {
    const used = (this.tail - this.cachedHead) >>> 0;
    if (used + k >= this.capacity) {
      const head = Atomics.load(this.hdr, HEAD) >>> 0;
      const now = (this.tail - head) >>> 0;
      if (now > this.capacity || now + k >= this.capacity) return -1;
      this.cachedHead = head; // cached only once validated
    }
    return ((this.tail + k) & this.mask) * this.slotSize;
  }

  /** Producer: publishes n filled slots. */
  produce(n = 1): void {
    this.tail = (this.tail + n) >>> 0;
    Atomics.store(this.hdr, TAIL, this.tail | 0);
  }

  /** Consumer: byte offset of the k-th filled slot, or -1 when there is none (or CORRUPT). */
  consumeSlot(k = 0): number {
    const avail = (this.cachedTail - this.head) >>> 0;
    if (k >= avail) {
      const tail = Atomics.load(this.hdr, TAIL) >>> 0;
      const now = (tail - this.head) >>> 0;
      if (now > this.capacity || k >= now) return -1;
      this.cachedTail = tail; // cached only once validated
    }
    return ((this.head + k) & this.mask) * this.slotSize;
  }

  /** Consumer: releases n read slots. */
  consume(n = 1): void {
    this.head = (this.head + n) >>> 0;
    Atomics.store(this.hdr, HEAD, this.head | 0);
  }

  /** Consumer: slots available now (re-reads the tail), or CORRUPT. */
  available(): number {
    const tail = Atomics.load(this.hdr, TAIL) >>> 0;
    const avail = (tail - this.head) >>> 0;
    if (avail > this.capacity) return CORRUPT;
    this.cachedTail = tail; // cached only once validated
    return avail;
  }
}
