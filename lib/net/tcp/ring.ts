// ring.ts — the byte buffers of a connection: the send queue and the receive queue with its reassembly ranges.
//
// SendBuffer holds the bytes from SND.UNA's data onward: unacknowledged bytes first,
// then bytes not yet sent. It is the retransmission queue: a byte leaves only when
// ACKed. RecvBuffer holds in-order bytes not yet read, and, past them, out-of-order
// bytes written straight into the free space at their offset from RCV.NXT (as
// smoltcp's Assembler does), so reassembly never copies twice.
//
// Ownership: write()/insert() copy from the caller's array; peek()/read() return new
// arrays the caller owns.

/** A fixed-size byte ring. Its memory is allocated on first use, so idle connections cost no buffer. */
class Ring {
  private mem: Uint8Array | undefined;
  /** Index of the first byte; 0 <= head < capacity. */
  head = 0;
  /** Bytes held from head; 0 <= length <= capacity. */
  length = 0;

  constructor(readonly capacity: number) {}

  /** Bytes of memory the ring holds now (0 until first use and after release). */
  get allocated(): number {
    return this.mem?.length ?? 0;
  }

  protected get buf(): Uint8Array {
    return (this.mem ??= new Uint8Array(this.capacity));
  }

  /** Copy `src` to ring offset `off` from head (wrapping). Caller checks bounds. */
  protected copyIn(off: number, src: Uint8Array): void {
    if (src.length === 0) return;
    const cap = this.capacity;
    const pos = (this.head + off) % cap;
    const first = Math.min(src.length, cap - pos);
    this.buf.set(src.subarray(0, first), pos);
    if (first < src.length) this.buf.set(src.subarray(first), 0);
  }

  /** A copy of `n` bytes at offset `off` from head. Caller checks bounds. */
  protected copyOut(off: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    if (n === 0) return out;
    const cap = this.capacity;
    const pos = (this.head + off) % cap;
    const first = Math.min(n, cap - pos);
    out.set(this.buf.subarray(pos, pos + first), 0);
    if (first < n) out.set(this.buf.subarray(0, n - first), first);
    return out;
  }

  /**
   * Gives the memory back while the ring holds nothing (it is allocated again on next
   * use): a connection that is done with its data (TIME-WAIT, CLOSED) keeps no buffer,
   * so thousands of them waiting out 2*MSL cost no more than their control blocks.
   */
  release(): void {
    if (this.length !== 0 || !this.idle()) return;
    this.mem = undefined;
    this.head = 0;
  }

  /** Whether nothing but `length` bytes from head is stored (a receive queue also holds out-of-order ranges). */
  protected idle(): boolean {
    return true;
  }

  /** Drop `n` bytes from the front. */
  protected drop(n: number): void {
    if (n > 0) this.head = (this.head + n) % this.capacity;
    this.length -= n;
  }
}

/** The send queue. */
export class SendBuffer extends Ring {
  /** Room left for the application. */
  get free(): number {
    return this.capacity - this.length;
  }

  /** Append as much of `src` as fits; returns the count taken. */
  write(src: Uint8Array): number {
    const n = Math.min(src.length, this.free);
    if (n > 0) {
      this.copyIn(this.length, src.subarray(0, n));
      this.length += n;
    }
    return n;
  }

  /** A copy of `n` bytes starting `off` bytes from the front (clamped to what is held). */
  peek(off: number, n: number): Uint8Array {
    const m = Math.max(0, Math.min(n, this.length - off));
    return this.copyOut(off, m);
  }

  /** Forget the first `n` bytes (they were acknowledged). */
  consume(n: number): void {
    this.drop(Math.min(n, this.length));
  }
}

/** The receive queue and the reassembly ranges beyond it. */
export class RecvBuffer extends Ring {
  /**
   * Out-of-order ranges [start, end) as byte offsets from RCV.NXT (the end of the
   * in-order bytes): sorted, disjoint, not touching, 0 < start < end <= window.
   */
  ranges: Array<[number, number]> = [];
  /** Offset (from RCV.NXT) of the latest out-of-order insert, for SACK ordering (RFC 2018 §4); -1 if none. */
  recent = -1;

  constructor(capacity: number, private readonly maxRanges: number) {
    super(capacity);
  }

  protected override idle(): boolean {
    return this.ranges.length === 0;
  }

  /** Free space past the in-order bytes: the receive window. */
  get window(): number {
    return this.capacity - this.length;
  }

  /**
   * Store `data` at offset `off` from RCV.NXT (the caller trimmed it to the window).
   * Returns how many bytes became in order (RCV.NXT advances by that much), or -1
   * when the data was dropped because too many ranges are already held.
   */
  insert(off: number, data: Uint8Array): number {
    const end = off + data.length;
    if (data.length === 0) return 0;
    // Merge [off, end) into the range list.
    let lo = off;
    let hi = end;
    const kept: Array<[number, number]> = [];
    let placed = false;
    for (const r of this.ranges) {
      if (r[1] < lo) kept.push(r);
      else if (r[0] > hi) {
        if (!placed) { kept.push([lo, hi]); placed = true; }
        kept.push(r);
      } else {
        lo = Math.min(lo, r[0]);
        hi = Math.max(hi, r[1]);
      }
    }
    if (!placed) kept.push([lo, hi]);
    const inOrder = kept[0]![0] === 0;
    if (!inOrder && kept.length > this.maxRanges) return -1;
    this.copyIn(this.length + off, data);
    if (!inOrder) {
      this.ranges = kept;
      this.recent = off;
      return 0;
    }
    const adv = kept[0]![1];
    this.length += adv;
    this.ranges = kept.slice(1).map(([s, e]) => [s - adv, e - adv] as [number, number]);
    this.recent = this.recent - adv;
    if (this.recent < 0 || !this.ranges.some(([s, e]) => this.recent >= s && this.recent < e)) this.recent = -1;
    return adv;
  }

  /** Read (and remove) up to `max` in-order bytes. */
  read(max: number): Uint8Array {
    const n = Math.max(0, Math.min(max, this.length));
    const out = this.copyOut(0, n);
    this.drop(n);
    return out;
  }
}
