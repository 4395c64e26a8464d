// IPv4 fragmentation (RFC 791 §3.2) and bounded reassembly (RFC 791, RFC 815; overlaps dropped as in RFC 5722).
import { IPV4_HEADER_LEN, Ipv4Packet, type Ipv4Repr, emitIpv4 } from "../ipv4.ts";
import { ICMP_MAX_QUOTE } from "../icmp.ts";

/** Largest IPv4 datagram (the 16-bit total length field). */
export const MAX_DATAGRAM = 65535;

export type FragmentResult =
  | { ok: true; datagrams: Uint8Array[] }
  /** dontFrag: too big for `mtu` with DF set (the sender learns the MTU, RFC 1191); tooBig: over 65535 or MTU unusable. */
  | { ok: false; error: "dontFrag" | "tooBig"; mtu: number };

/**
 * Emits `repr` as one datagram, or as fragments of at most `mtu` bytes if it does not fit and DF is
 * clear. Each result is a fresh buffer with `headroom` free bytes before the IP header (for the link
 * header). Fragments carry no options (emit writes none), so nothing needs the copy flag.
 */
export function fragment(repr: Ipv4Repr, mtu: number, headroom = 0): FragmentResult {
  const total = IPV4_HEADER_LEN + repr.payload.length;
  if (total > MAX_DATAGRAM) return { ok: false, error: "tooBig", mtu };
  if (total <= mtu) {
    const buf = new Uint8Array(headroom + total);
    emitIpv4(repr, buf.subarray(headroom));
    return { ok: true, datagrams: [buf] };
  }
  if (repr.dontFrag) return { ok: false, error: "dontFrag", mtu };
  // Every fragment but the last carries a multiple of 8 data bytes (offsets count 8-byte units).
  const step = Math.floor((mtu - IPV4_HEADER_LEN) / 8) * 8;
  if (step <= 0) return { ok: false, error: "tooBig", mtu };
  const out: Uint8Array[] = [];
  const pl = repr.payload;
  for (let off = 0; off < pl.length; off += step) {
    const end = Math.min(off + step, pl.length);
    const buf = new Uint8Array(headroom + IPV4_HEADER_LEN + (end - off));
    const last = end === pl.length;
    emitIpv4(
      { ...repr, payload: pl.subarray(off, end), fragOffset: repr.fragOffset + off, moreFrags: last ? repr.moreFrags : true },
      buf.subarray(headroom),
    );
    out.push(buf);
  }
  return { ok: true, datagrams: out };
}

export interface ReasmOptions {
  /** Time from a datagram's first fragment to giving up (RFC 1122 §3.3.2 suggests 60-120 s; Linux uses 30 s). */
  timeoutMs: number;
  /** Datagrams being reassembled at once; the oldest is evicted beyond it. */
  maxReassemblies: number;
  /** Fragment data bytes held across all reassemblies; the oldest are evicted to make room. */
  maxBytes: number;
  /** Fragments held per datagram (bounds the per-fragment work an attacker can cause). */
  maxFragments: number;
}

export const DEFAULT_REASM_OPTIONS: ReasmOptions = {
  timeoutMs: 30_000,
  maxReassemblies: 64,
  maxBytes: 1 << 20,
  maxFragments: 256,
};

export function newFragStats() {
  return {
    /** Fragments offered to reassembly. */
    in: 0,
    reassembled: 0,
    /** Fragments wholly covered by identical data already held (ignored, harmless). */
    duplicate: 0,
    /** Datagrams dropped because fragments overlapped with different bytes (RFC 5722). */
    overlap: 0,
    /** Inconsistent fragments: bad length, conflicting end, data past the end. Their datagram is dropped. */
    bad: 0,
    /** Fragments that would build a datagram over 65535 bytes (the "ping of death"). */
    tooBig: 0,
    /** Fragments that arrived for a datagram already dropped (RFC 5722: discard the rest too). */
    afterDrop: 0,
    /** Reassemblies given up at the timeout. */
    timeout: 0,
    /** Reassemblies evicted for the count or byte limits. */
    evicted: 0,
    /** Datagrams dropped because they alone exceed a limit (bytes or fragments). */
    overLimit: 0,
  };
}
export type FragStats = ReturnType<typeof newFragStats>;

/** What add() did with a fragment. */
export type ReasmResult =
  | { kind: "done"; datagram: Uint8Array }
  | { kind: "pending" }
  | { kind: "dropped"; reason: "duplicate" | "overlap" | "bad" | "tooBig" | "afterDrop" | "overLimit" };

/** A reassembly given up at the timeout. `quote` is set when fragment zero had arrived (RFC 792: only then is time-exceeded sent). */
export interface ReasmExpired {
  src: number;
  dst: number;
  protocol: number;
  ident: number;
  /** The first fragment's header and leading data, as an ICMP error quotes it; null without fragment zero. */
  quote: Uint8Array | null;
}

interface Piece {
  start: number;
  end: number;
  data: Uint8Array;
}

interface Reassembly {
  src: number;
  dst: number;
  protocol: number;
  ident: number;
  expires: number;
  /** Payload length, known once the last fragment (MF clear) arrived; -1 before. */
  total: number;
  /** Sorted by start; identical overlaps may exist (they were checked byte for byte). */
  pieces: Piece[];
  bytes: number;
  /** Copy of fragment zero's header (with options), or null. */
  header: Uint8Array | null;
  /** Dropped (overlap or inconsistency): held without data until the timeout to discard late fragments. */
  poisoned: boolean;
}

/** Reassembles fragments keyed by (src, dst, protocol, ident) (RFC 791 §3.2). Never throws. */
export class Reassembler {
  readonly stats: FragStats = newFragStats();
  readonly opts: ReasmOptions;
  private readonly table = new Map<string, Reassembly>();
  private held = 0;

  constructor(opts: Partial<ReasmOptions> = {}) {
    this.opts = { ...DEFAULT_REASM_OPTIONS, ...opts };
  }

  /** Reassemblies in progress (including dropped ones waiting out their timeout). */
  get count(): number {
    return this.table.size;
  }

  /** Fragment data bytes held. */
  get bytes(): number {
    return this.held;
  }

  /**
   * Adds one fragment: `p` is a checked datagram (trimmed to its total length, checksum verified) with
   * MF set or a non-zero offset.
   */
  add(now: number, p: Ipv4Packet): ReasmResult {
    this.stats.in++;
    const hl = p.headerLen;
    const data = p.payload;
    const start = p.fragOffset;
    const end = start + data.length;
    const mf = p.moreFrags;
    const key = `${p.src}/${p.dst}/${p.protocol}/${p.ident}`;
    let r = this.table.get(key);
    if (r?.poisoned) {
      this.stats.afterDrop++;
      return { kind: "dropped", reason: "afterDrop" };
    }
    if (hl + end > MAX_DATAGRAM) {
      this.stats.tooBig++;
      if (r) this.poison(r);
      return { kind: "dropped", reason: "tooBig" };
    }
    // RFC 791: all but the last fragment carry a non-empty multiple of 8 bytes.
    if (mf && (data.length === 0 || data.length % 8 !== 0)) {
      this.stats.bad++;
      if (r) this.poison(r);
      return { kind: "dropped", reason: "bad" };
    }
    if (!r) {
      while (this.table.size >= this.opts.maxReassemblies) if (!this.evictOldest()) break;
      r = { src: p.src, dst: p.dst, protocol: p.protocol, ident: p.ident, expires: now + this.opts.timeoutMs, total: -1, pieces: [], bytes: 0, header: null, poisoned: false };
      this.table.set(key, r);
    }
    // Consistency with the end of the datagram.
    if (!mf) {
      if ((r.total >= 0 && r.total !== end) || r.pieces.some((x) => x.end > end)) return this.drop(r, "bad");
      r.total = end;
    } else if (r.total >= 0 && end > r.total) {
      return this.drop(r, "bad");
    }
    // Overlaps: identical bytes are a retransmission; different bytes drop the datagram (RFC 5722 spirit).
    for (const x of r.pieces) {
      if (x.end <= start || x.start >= end) continue;
      const lo = Math.max(x.start, start);
      const hi = Math.min(x.end, end);
      for (let i = lo; i < hi; i++) if (x.data[i - x.start] !== data[i - start]) return this.drop(r, "overlap");
      if (x.start <= start && x.end >= end) {
        this.stats.duplicate++;
        return { kind: "dropped", reason: "duplicate" };
      }
    }
    if (r.pieces.length >= this.opts.maxFragments || data.length > this.opts.maxBytes) {
      this.stats.overLimit++;
      this.discard(r);
      return { kind: "dropped", reason: "overLimit" };
    }
    while (this.held + data.length > this.opts.maxBytes) {
      if (this.evictOldest(r)) continue;
      this.stats.overLimit++; // this datagram alone holds too much
      this.discard(r);
      return { kind: "dropped", reason: "overLimit" };
    }
    const piece: Piece = { start, end, data: data.slice() };
    let i = r.pieces.length;
    while (i > 0 && r.pieces[i - 1]!.start > start) i--;
    r.pieces.splice(i, 0, piece);
    r.bytes += data.length;
    this.held += data.length;
    if (start === 0) r.header = p.bytes.slice(0, hl);
    return this.tryComplete(r);
  }

  /** Gives up reassemblies past their timeout and frees them. */
  expire(now: number): ReasmExpired[] {
    const out: ReasmExpired[] = [];
    for (const [key, r] of [...this.table]) {
      if (now < r.expires) continue;
      this.table.delete(key);
      this.held -= r.bytes;
      if (r.poisoned) continue;
      this.stats.timeout++;
      out.push({ src: r.src, dst: r.dst, protocol: r.protocol, ident: r.ident, quote: quoteOf(r) });
    }
    return out;
  }

  private tryComplete(r: Reassembly): ReasmResult {
    if (r.total < 0 || !r.header) return { kind: "pending" };
    let covered = 0;
    for (const x of r.pieces) {
      if (x.start > covered) return { kind: "pending" };
      if (x.end > covered) covered = x.end;
    }
    if (covered < r.total) return { kind: "pending" };
    const hl = r.header.length;
    if (hl + r.total > MAX_DATAGRAM) {
      this.stats.tooBig++;
      this.poison(r);
      return { kind: "dropped", reason: "tooBig" };
    }
    const buf = new Uint8Array(hl + r.total);
    buf.set(r.header, 0);
    for (const x of r.pieces) buf.set(x.data, hl + x.start);
    const p = new Ipv4Packet(buf);
    p.totalLen = buf.length;
    p.moreFrags = false;
    p.fragOffset = 0;
    p.fillChecksum();
    this.discard(r);
    this.stats.reassembled++;
    return { kind: "done", datagram: buf };
  }

  private drop(r: Reassembly, reason: "bad" | "overlap"): ReasmResult {
    this.stats[reason]++;
    this.poison(r);
    return { kind: "dropped", reason };
  }

  /** Frees a datagram's data but remembers it until its timeout, so its later fragments are discarded too. */
  private poison(r: Reassembly): void {
    this.held -= r.bytes;
    r.bytes = 0;
    r.pieces = [];
    r.header = null;
    r.poisoned = true;
  }

  private discard(r: Reassembly): void {
    this.held -= r.bytes;
    this.table.delete(`${r.src}/${r.dst}/${r.protocol}/${r.ident}`);
  }

  /** Evicts the oldest reassembly other than `keep` (Map order is creation order); false if there was none. */
  private evictOldest(keep?: Reassembly): boolean {
    for (const r of this.table.values()) {
      if (r === keep) continue;
      this.discard(r);
      this.stats.evicted++;
      return true;
    }
    return false;
  }
}

/** Fragment zero's header plus as much leading data as an ICMP error quotes. */
function quoteOf(r: Reassembly): Uint8Array | null {
  if (!r.header) return null;
  const first = r.pieces[0];
  const hl = r.header.length;
  const dataLen = first && first.start === 0 ? Math.min(first.data.length, ICMP_MAX_QUOTE - hl) : 0;
  const q = new Uint8Array(hl + dataLen);
  q.set(r.header, 0);
  if (dataLen > 0) q.set(first!.data.subarray(0, dataLen), hl);
  return q;
}
