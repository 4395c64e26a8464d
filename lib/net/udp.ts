// UDP (RFC 768) over IPv4: a checked view over a datagram and a Repr; checksum over the pseudo-header.
import type { Parsed } from "./types.ts";
import { finish, pseudoHeaderSum, sum, verifies } from "./checksum.ts";
import { IpProtocol } from "./ipv4.ts";

//  0          2          4        6          8
//  +----------+----------+--------+----------+--------...
//  | src port | dst port | length | checksum | payload
//  +----------+----------+--------+----------+--------...
const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;
/** Header length; the payload starts here. */
export const UDP_HEADER_LEN = 8;

/** A view over a UDP datagram. After check(): 8 <= length field <= buffer length. */
export class UdpPacket {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Wraps bytes unchecked (trusted: at least 8 bytes and a length field that fits). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Checked constructor. Bytes past the length field (e.g. IP payload slack) are ignored. */
  static check(bytes: Uint8Array): Parsed<UdpPacket> {
    const n = bytes.length;
    if (n < UDP_HEADER_LEN) return { ok: false, error: `udp: buffer length ${n} < header length 8` };
    const p = new UdpPacket(bytes);
    const len = p.length;
    if (len < UDP_HEADER_LEN) return { ok: false, error: `udp: length field ${len} < header length 8` };
    if (len > n) return { ok: false, error: `udp: length field ${len} > buffer length ${n}` };
    return { ok: true, value: p };
  }

  get srcPort(): number {
    return this.dv.getUint16(SRC_PORT);
  }
  set srcPort(v: number) {
    this.dv.setUint16(SRC_PORT, v);
  }
  get dstPort(): number {
    return this.dv.getUint16(DST_PORT);
  }
  set dstPort(v: number) {
    this.dv.setUint16(DST_PORT, v);
  }
  /** Header plus payload length. */
  get length(): number {
    return this.dv.getUint16(LENGTH);
  }
  set length(v: number) {
    this.dv.setUint16(LENGTH, v);
  }
  /** 0 means the sender computed none (RFC 768). */
  get checksum(): number {
    return this.dv.getUint16(CHECKSUM);
  }
  set checksum(v: number) {
    this.dv.setUint16(CHECKSUM, v);
  }
  get payload(): Uint8Array {
    return this.bytes.subarray(UDP_HEADER_LEN, this.length);
  }
  /** True if the checksum is absent (0) or right for these IPv4 addresses. */
  verifyChecksum(src: number, dst: number): boolean {
    if (this.checksum === 0) return true;
    const len = this.length;
    return verifies(sum(this.bytes, 0, len, pseudoHeaderSum(src, dst, IpProtocol.UDP, len)));
  }
  /** Computes and stores the checksum; a computed 0 is sent as 0xffff (RFC 768). */
  fillChecksum(src: number, dst: number): void {
    const len = this.length;
    this.checksum = 0;
    this.checksum = finish(sum(this.bytes, 0, len, pseudoHeaderSum(src, dst, IpProtocol.UDP, len))) || 0xffff;
  }
}

/** A parsed UDP datagram. */
export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  /** Aliases the parsed bytes, trimmed to the length field. */
  payload: Uint8Array;
}

/**
 * Parses a datagram (the IP payload) sent from `src` to `dst` (u32, for the pseudo-header).
 * `verifyChecksum = false` skips the check (receive offload). Destination port 0 is an error.
 */
export function parseUdp(bytes: Uint8Array, src: number, dst: number, verifyChecksum = true): Parsed<UdpRepr> {
  const c = UdpPacket.check(bytes);
  if (!c.ok) return c;
  const p = c.value;
  if (p.dstPort === 0) return { ok: false, error: "udp: destination port 0" };
  if (verifyChecksum && !p.verifyChecksum(src, dst))
    return { ok: false, error: `udp: bad checksum 0x${p.checksum.toString(16).padStart(4, "0")}` };
  return { ok: true, value: { srcPort: p.srcPort, dstPort: p.dstPort, payload: p.payload } };
}

/** Bytes emitUdp writes (must be <= 65535). */
export function udpBufferLen(repr: UdpRepr): number {
  return UDP_HEADER_LEN + repr.payload.length;
}

/**
 * Writes the datagram into `buf` (at least udpBufferLen bytes); a payload already at buf[8..]
 * is not copied. `fillChecksum = false` writes checksum 0 (none, or left to the device).
 */
export function emitUdp(repr: UdpRepr, buf: Uint8Array, src: number, dst: number, fillChecksum = true): void {
  const pl = repr.payload; // copied first, in case it overlaps the header (see emitTcp)
  if (pl.buffer !== buf.buffer || pl.byteOffset !== buf.byteOffset + UDP_HEADER_LEN) buf.set(pl, UDP_HEADER_LEN);
  const p = new UdpPacket(buf);
  p.srcPort = repr.srcPort;
  p.dstPort = repr.dstPort;
  p.length = UDP_HEADER_LEN + pl.length;
  if (fillChecksum) p.fillChecksum(src, dst);
  else p.checksum = 0;
}
