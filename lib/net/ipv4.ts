// IPv4 (RFC 791): a checked view over a datagram and a Repr. Options are length-checked and skipped.
import type { Parsed } from "./types.ts";
import { checksum, sum, verifies } from "./checksum.ts";

//  0       1     2           4       6              8     9     10       12    16    20
//  +-------+-----+-----------+-------+--------------+-----+-----+--------+-----+-----+---------+
//  |ver|ihl| tos |total len  | ident |flags|frag off| ttl |proto|checksum| src | dst | options |
//  +-------+-----+-----------+-------+--------------+-----+-----+--------+-----+-----+---------+
const VER_IHL = 0;
const TOS = 1;
const TOTAL_LEN = 2;
const IDENT = 4;
const FLAGS_FRAG = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;
/** Minimum (option-less) header length; emit always writes this. */
export const IPV4_HEADER_LEN = 20;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAG_MASK = 0x1fff;

/** IP protocol numbers newts handles (IANA). */
export const IpProtocol = { ICMP: 1, TCP: 6, UDP: 17 } as const;

/** A view over an IPv4 datagram. After check(): header and total length are within the buffer. */
export class Ipv4Packet {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Wraps bytes unchecked (trusted: at least 20 bytes, lengths sane, e.g. a buffer sized for emit). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /**
   * Checked constructor: 20 <= header length <= total length <= buffer length. The buffer may be
   * longer than the total length (Ethernet padding); payload is then trimmed.
   */
  static check(bytes: Uint8Array): Parsed<Ipv4Packet> {
    const n = bytes.length;
    if (n < IPV4_HEADER_LEN) return { ok: false, error: `ipv4: buffer length ${n} < minimum header length 20` };
    const ihl = bytes[VER_IHL]! & 0x0f;
    if (ihl < 5) return { ok: false, error: `ipv4: header length ${ihl} < 5` };
    const hl = ihl * 4;
    if (hl > n) return { ok: false, error: `ipv4: header length ${hl} bytes > buffer length ${n}` };
    const p = new Ipv4Packet(bytes);
    const tl = p.totalLen;
    if (tl < hl) return { ok: false, error: `ipv4: total length ${tl} < header length ${hl}` };
    if (tl > n) return { ok: false, error: `ipv4: total length ${tl} > buffer length ${n}` };
    return { ok: true, value: p };
  }

  get version(): number {
    return this.bytes[VER_IHL]! >> 4;
  }
  set version(v: number) {
    this.bytes[VER_IHL] = ((v & 0xf) << 4) | (this.bytes[VER_IHL]! & 0x0f);
  }
  /** Header length in bytes (IHL * 4). */
  get headerLen(): number {
    return (this.bytes[VER_IHL]! & 0x0f) * 4;
  }
  /** Sets IHL from a byte count (a multiple of 4, 20..60). */
  set headerLen(bytes: number) {
    this.bytes[VER_IHL] = (this.bytes[VER_IHL]! & 0xf0) | ((bytes >>> 2) & 0x0f);
  }
  /** Type of service byte: DSCP (high 6 bits) and ECN (low 2), RFC 2474 / RFC 3168. */
  get tos(): number {
    return this.bytes[TOS]!;
  }
  set tos(v: number) {
    this.bytes[TOS] = v;
  }
  get totalLen(): number {
    return this.dv.getUint16(TOTAL_LEN);
  }
  set totalLen(v: number) {
    this.dv.setUint16(TOTAL_LEN, v);
  }
  get ident(): number {
    return this.dv.getUint16(IDENT);
  }
  set ident(v: number) {
    this.dv.setUint16(IDENT, v);
  }
  get dontFrag(): boolean {
    return (this.dv.getUint16(FLAGS_FRAG) & FLAG_DF) !== 0;
  }
  set dontFrag(v: boolean) {
    const w = this.dv.getUint16(FLAGS_FRAG);
    this.dv.setUint16(FLAGS_FRAG, v ? w | FLAG_DF : w & ~FLAG_DF);
  }
  get moreFrags(): boolean {
    return (this.dv.getUint16(FLAGS_FRAG) & FLAG_MF) !== 0;
  }
  set moreFrags(v: boolean) {
    const w = this.dv.getUint16(FLAGS_FRAG);
    this.dv.setUint16(FLAGS_FRAG, v ? w | FLAG_MF : w & ~FLAG_MF);
  }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragOffset(): number {
    return (this.dv.getUint16(FLAGS_FRAG) & FRAG_MASK) * 8;
  }
  set fragOffset(bytes: number) {
    const w = this.dv.getUint16(FLAGS_FRAG);
    this.dv.setUint16(FLAGS_FRAG, (w & ~FRAG_MASK) | ((bytes >>> 3) & FRAG_MASK));
  }
  get ttl(): number {
    return this.bytes[TTL]!;
  }
  set ttl(v: number) {
    this.bytes[TTL] = v;
  }
  get protocol(): number {
    return this.bytes[PROTOCOL]!;
  }
  set protocol(v: number) {
    this.bytes[PROTOCOL] = v;
  }
  get checksum(): number {
    return this.dv.getUint16(CHECKSUM);
  }
  set checksum(v: number) {
    this.dv.setUint16(CHECKSUM, v);
  }
  /** Source address, u32. */
  get src(): number {
    return this.dv.getUint32(SRC);
  }
  set src(v: number) {
    this.dv.setUint32(SRC, v >>> 0);
  }
  /** Destination address, u32. */
  get dst(): number {
    return this.dv.getUint32(DST);
  }
  set dst(v: number) {
    this.dv.setUint32(DST, v >>> 0);
  }
  /** Option bytes (header after the fixed 20 bytes); not interpreted. */
  get options(): Uint8Array {
    return this.bytes.subarray(IPV4_HEADER_LEN, this.headerLen);
  }
  /** Payload: from the header's end to the total length (trailing padding dropped). */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLen, this.totalLen);
  }
  /** True if the header checksum is right (RFC 791 §3.1: sum over the header only). */
  verifyChecksum(): boolean {
    return verifies(sum(this.bytes, 0, this.headerLen));
  }
  /** Computes and stores the header checksum. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, 0, this.headerLen);
  }
}

/** A parsed IPv4 datagram (options dropped). */
export interface Ipv4Repr {
  /** u32. */
  src: number;
  /** u32. */
  dst: number;
  /** IpProtocol number. */
  protocol: number;
  ttl: number;
  /** DSCP and ECN byte. */
  tos: number;
  ident: number;
  dontFrag: boolean;
  moreFrags: boolean;
  /** Fragment offset in bytes, a multiple of 8. */
  fragOffset: number;
  /** Aliases the parsed bytes, trimmed to the total length. */
  payload: Uint8Array;
}

/**
 * Parses a datagram. `verifyChecksum = false` skips the header checksum (a device that
 * checked it already, i.e. receive offload).
 */
export function parseIpv4(bytes: Uint8Array, verifyChecksum = true): Parsed<Ipv4Repr> {
  // Check the version first: an IPv6 packet would otherwise be blamed for its "IHL" nibble.
  if (bytes.length > 0 && bytes[VER_IHL]! >> 4 !== 4)
    return { ok: false, error: `ipv4: version ${bytes[VER_IHL]! >> 4} != 4` };
  const c = Ipv4Packet.check(bytes);
  if (!c.ok) return c;
  const p = c.value;
  if (verifyChecksum && !p.verifyChecksum())
    return { ok: false, error: `ipv4: bad header checksum 0x${p.checksum.toString(16).padStart(4, "0")}` };
  return {
    ok: true,
    value: {
      src: p.src,
      dst: p.dst,
      protocol: p.protocol,
      ttl: p.ttl,
      tos: p.tos,
      ident: p.ident,
      dontFrag: p.dontFrag,
      moreFrags: p.moreFrags,
      fragOffset: p.fragOffset,
      payload: p.payload,
    },
  };
}

/** Bytes emitIpv4 writes: a 20-byte header and the payload (must total <= 65535). */
export function ipv4BufferLen(repr: Ipv4Repr): number {
  return IPV4_HEADER_LEN + repr.payload.length;
}

/**
 * Writes header and payload into `buf` (at least ipv4BufferLen bytes). A payload already
 * at buf[20..] is not copied. `fillChecksum = false` leaves the checksum 0 for the device.
 */
export function emitIpv4(repr: Ipv4Repr, buf: Uint8Array, fillChecksum = true): void {
  const pl = repr.payload; // copied first, in case it overlaps the header (see emitTcp)
  if (pl.buffer !== buf.buffer || pl.byteOffset !== buf.byteOffset + IPV4_HEADER_LEN) buf.set(pl, IPV4_HEADER_LEN);
  const p = new Ipv4Packet(buf);
  buf[VER_IHL] = 0x45;
  p.tos = repr.tos;
  p.totalLen = IPV4_HEADER_LEN + repr.payload.length;
  p.ident = repr.ident;
  buf[FLAGS_FRAG] = 0;
  buf[FLAGS_FRAG + 1] = 0;
  p.dontFrag = repr.dontFrag;
  p.moreFrags = repr.moreFrags;
  p.fragOffset = repr.fragOffset;
  p.ttl = repr.ttl;
  p.protocol = repr.protocol;
  p.src = repr.src;
  p.dst = repr.dst;
  if (fillChecksum) p.fillChecksum();
  else p.checksum = 0;
}
