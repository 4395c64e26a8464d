// Ethernet II frames (RFC 894 framing of IEEE 802.3): a checked view over bytes and a Repr.
import type { Parsed } from "./types.ts";

//  0      6      12        14
//  +------+------+---------+---------...
//  | dst  | src  |EtherType| payload
//  +------+------+---------+---------...
const DST = 0;
const SRC = 6;
const ETHERTYPE = 12;
/** Header length; the payload starts here. The 4-byte FCS is not seen (NICs strip it). */
export const ETHERNET_HEADER_LEN = 14;

/** EtherType values newts looks at (IEEE registry). */
export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
} as const;

/** A view over an Ethernet II frame. After check() every getter is in range. */
export class EthernetFrame {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Wraps bytes unchecked (trusted: at least 14 bytes, e.g. a buffer sized for emit). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Checked constructor for untrusted bytes. */
  static check(bytes: Uint8Array): Parsed<EthernetFrame> {
    if (bytes.length < ETHERNET_HEADER_LEN)
      return { ok: false, error: `ethernet: frame length ${bytes.length} < header length ${ETHERNET_HEADER_LEN}` };
    return { ok: true, value: new EthernetFrame(bytes) };
  }

  /** Destination MAC (a subarray aliasing the frame). */
  get dst(): Uint8Array {
    return this.bytes.subarray(DST, DST + 6);
  }
  set dst(mac: Uint8Array) {
    this.bytes.set(mac.subarray(0, 6), DST);
  }
  /** Source MAC (a subarray aliasing the frame). */
  get src(): Uint8Array {
    return this.bytes.subarray(SRC, SRC + 6);
  }
  set src(mac: Uint8Array) {
    this.bytes.set(mac.subarray(0, 6), SRC);
  }
  get etherType(): number {
    return this.dv.getUint16(ETHERTYPE);
  }
  set etherType(v: number) {
    this.dv.setUint16(ETHERTYPE, v);
  }
  /** Everything after the header, including any padding up to the 60-byte minimum. */
  get payload(): Uint8Array {
    return this.bytes.subarray(ETHERNET_HEADER_LEN);
  }
}

/** A parsed Ethernet II frame. */
export interface EthernetRepr {
  /** 6 bytes. */
  dst: Uint8Array;
  /** 6 bytes. */
  src: Uint8Array;
  /** Values below 0x0600 are IEEE 802.3 lengths, not types; a stack drops them like any unknown type. */
  etherType: number;
  /** Aliases the parsed bytes (not copied). May end in link-layer padding. */
  payload: Uint8Array;
}

/** Parses a frame. MACs are copied (they get stored in tables); the payload aliases `bytes`. */
export function parseEthernet(bytes: Uint8Array): Parsed<EthernetRepr> {
  const c = EthernetFrame.check(bytes);
  if (!c.ok) return c;
  const f = c.value;
  return { ok: true, value: { dst: f.dst.slice(), src: f.src.slice(), etherType: f.etherType, payload: f.payload } };
}

/** Bytes emitEthernet writes. Padding to the 60-byte minimum is the device's job. */
export function ethernetBufferLen(repr: EthernetRepr): number {
  return ETHERNET_HEADER_LEN + repr.payload.length;
}

/**
 * Writes the header and payload into `buf` (at least ethernetBufferLen bytes). A payload
 * that already sits at buf[14..] (built in place) is not copied.
 */
export function emitEthernet(repr: EthernetRepr, buf: Uint8Array): void {
  const p = repr.payload; // copied first, in case it overlaps the header (see emitTcp)
  if (p.buffer !== buf.buffer || p.byteOffset !== buf.byteOffset + ETHERNET_HEADER_LEN) buf.set(p, ETHERNET_HEADER_LEN);
  const f = new EthernetFrame(buf);
  f.dst = repr.dst;
  f.src = repr.src;
  f.etherType = repr.etherType;
}
