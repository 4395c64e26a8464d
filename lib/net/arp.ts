// ARP (RFC 826) for IPv4 over Ethernet: a checked view over bytes and a Repr.
import type { Parsed } from "./types.ts";
import { ipv4FromBytes, ipv4ToBytes } from "./addr.ts";

//  0      2      4    5    6      8
//  +------+------+----+----+------+-----+-----+-----+-----+
//  |htype |ptype |hlen|plen| oper | sha | spa | tha | tpa |
//  +------+------+----+----+------+-----+-----+-----+-----+
//  The four addresses follow at 8, lengths hlen, plen, hlen, plen.
const HTYPE = 0;
const PTYPE = 2;
const HLEN = 4;
const PLEN = 5;
const OPER = 6;
const ADDRS = 8;

/** Fixed part before the addresses. */
export const ARP_FIXED_LEN = 8;
/** Length of an Ethernet/IPv4 ARP packet (8 + 2 * (6 + 4)). */
export const ARP_LEN = 28;
/** Hardware type for Ethernet. */
export const ARP_HTYPE_ETHERNET = 1;
/** Protocol type for IPv4 (the EtherType). */
export const ARP_PTYPE_IPV4 = 0x0800;

export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;

/** A view over an ARP packet of any hardware/protocol lengths. After check() every getter is in range. */
export class ArpPacket {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Wraps bytes unchecked (trusted: at least 8 + 2 * (hlen + plen) bytes). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Checked constructor: the fixed part and all four addresses must be present. Trailing bytes (padding) are allowed. */
  static check(bytes: Uint8Array): Parsed<ArpPacket> {
    if (bytes.length < ARP_FIXED_LEN)
      return { ok: false, error: `arp: packet length ${bytes.length} < fixed header length ${ARP_FIXED_LEN}` };
    const need = ARP_FIXED_LEN + 2 * (bytes[HLEN]! + bytes[PLEN]!);
    if (bytes.length < need)
      return {
        ok: false,
        error: `arp: packet length ${bytes.length} < ${need} needed for hlen ${bytes[HLEN]}, plen ${bytes[PLEN]}`,
      };
    return { ok: true, value: new ArpPacket(bytes) };
  }

  get htype(): number {
    return this.dv.getUint16(HTYPE);
  }
  set htype(v: number) {
    this.dv.setUint16(HTYPE, v);
  }
  get ptype(): number {
    return this.dv.getUint16(PTYPE);
  }
  set ptype(v: number) {
    this.dv.setUint16(PTYPE, v);
  }
  get hlen(): number {
    return this.bytes[HLEN]!;
  }
  set hlen(v: number) {
    this.bytes[HLEN] = v;
  }
  get plen(): number {
    return this.bytes[PLEN]!;
  }
  set plen(v: number) {
    this.bytes[PLEN] = v;
  }
  get oper(): number {
    return this.dv.getUint16(OPER);
  }
  set oper(v: number) {
    this.dv.setUint16(OPER, v);
  }

  // Address offsets depend on hlen and plen, so set those first when building a packet.
  private get sha0(): number {
    return ADDRS;
  }
  private get spa0(): number {
    return ADDRS + this.hlen;
  }
  private get tha0(): number {
    return ADDRS + this.hlen + this.plen;
  }
  private get tpa0(): number {
    return ADDRS + 2 * this.hlen + this.plen;
  }

  /** Sender hardware address (subarray aliasing the packet). */
  get senderHw(): Uint8Array {
    return this.bytes.subarray(this.sha0, this.sha0 + this.hlen);
  }
  set senderHw(v: Uint8Array) {
    this.bytes.set(v.subarray(0, this.hlen), this.sha0);
  }
  /** Sender protocol address. */
  get senderProto(): Uint8Array {
    return this.bytes.subarray(this.spa0, this.spa0 + this.plen);
  }
  set senderProto(v: Uint8Array) {
    this.bytes.set(v.subarray(0, this.plen), this.spa0);
  }
  /** Target hardware address. */
  get targetHw(): Uint8Array {
    return this.bytes.subarray(this.tha0, this.tha0 + this.hlen);
  }
  set targetHw(v: Uint8Array) {
    this.bytes.set(v.subarray(0, this.hlen), this.tha0);
  }
  /** Target protocol address. */
  get targetProto(): Uint8Array {
    return this.bytes.subarray(this.tpa0, this.tpa0 + this.plen);
  }
  set targetProto(v: Uint8Array) {
    this.bytes.set(v.subarray(0, this.plen), this.tpa0);
  }
}

/** An Ethernet/IPv4 ARP request or reply. */
export interface ArpRepr {
  /** ArpOp.REQUEST or ArpOp.REPLY. */
  op: number;
  /** 6 bytes. */
  senderMac: Uint8Array;
  /** u32. */
  senderIp: number;
  /** 6 bytes; zero in a request (RFC 826 leaves it unspecified). */
  targetMac: Uint8Array;
  /** u32. */
  targetIp: number;
}

/** Parses an ARP packet; anything but Ethernet/IPv4 request/reply is an error. MACs are copied. */
export function parseArp(bytes: Uint8Array): Parsed<ArpRepr> {
  const c = ArpPacket.check(bytes);
  if (!c.ok) return c;
  const p = c.value;
  if (p.htype !== ARP_HTYPE_ETHERNET) return { ok: false, error: `arp: hardware type ${p.htype} is not Ethernet (1)` };
  if (p.ptype !== ARP_PTYPE_IPV4)
    return { ok: false, error: `arp: protocol type 0x${p.ptype.toString(16)} is not IPv4 (0x800)` };
  if (p.hlen !== 6) return { ok: false, error: `arp: hardware address length ${p.hlen} != 6` };
  if (p.plen !== 4) return { ok: false, error: `arp: protocol address length ${p.plen} != 4` };
  if (p.oper !== ArpOp.REQUEST && p.oper !== ArpOp.REPLY)
    return { ok: false, error: `arp: operation ${p.oper} is not request (1) or reply (2)` };
  return {
    ok: true,
    value: {
      op: p.oper,
      senderMac: p.senderHw.slice(),
      senderIp: ipv4FromBytes(p.senderProto) ?? 0, // plen is 4, so never null
      targetMac: p.targetHw.slice(),
      targetIp: ipv4FromBytes(p.targetProto) ?? 0,
    },
  };
}

/** Always ARP_LEN; Ethernet padding to 60 bytes is the device's job. */
export function arpBufferLen(_repr: ArpRepr): number {
  return ARP_LEN;
}

/** Writes an Ethernet/IPv4 ARP packet into `buf` (at least ARP_LEN bytes). */
export function emitArp(repr: ArpRepr, buf: Uint8Array): void {
  const p = new ArpPacket(buf);
  p.htype = ARP_HTYPE_ETHERNET;
  p.ptype = ARP_PTYPE_IPV4;
  p.hlen = 6;
  p.plen = 4;
  p.oper = repr.op;
  p.senderHw = repr.senderMac;
  p.senderProto = ipv4ToBytes(repr.senderIp);
  p.targetHw = repr.targetMac;
  p.targetProto = ipv4ToBytes(repr.targetIp);
}
