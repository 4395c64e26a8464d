// ICMP for IPv4 (RFC 792): echo, destination unreachable and time exceeded; a checked view and a Repr.
import type { Parsed } from "./types.ts";
import { checksum, sum, verifies } from "./checksum.ts";

//  0      1      2          4                 8
//  +------+------+----------+-----------------+-------...
//  | type | code | checksum | rest of header  | data
//  +------+------+----------+-----------------+-------...
//  Rest of header: echo = ident(4..6), seq(6..8); dest unreachable = unused(4..6), next-hop MTU(6..8)
//  (RFC 1191); time exceeded = unused. Errors' data is the quoted datagram: IP header + >= 8 bytes.
const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const IDENT = 4;
const SEQ = 6;
const REST = 4;
const MTU = 6;
/** Header length; data starts here. */
export const ICMP_HEADER_LEN = 8;

export const IcmpType = { ECHO_REPLY: 0, DEST_UNREACHABLE: 3, ECHO_REQUEST: 8, TIME_EXCEEDED: 11 } as const;

/** Destination-unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1). */
export const UnreachableCode = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  FRAG_NEEDED: 4,
  SOURCE_ROUTE_FAILED: 5,
  NET_UNKNOWN: 6,
  HOST_UNKNOWN: 7,
  ADMIN_PROHIBITED: 13,
} as const;

/** Time-exceeded codes (RFC 792). */
export const TimeExceededCode = { TTL: 0, REASSEMBLY: 1 } as const;

/**
 * Most of a datagram an ICMP error quotes: RFC 1812 §4.3.2.3 says as much as fits without the
 * error exceeding 576 bytes, i.e. 576 - 20 (IP) - 8 (ICMP).
 */
export const ICMP_MAX_QUOTE = 548;

/** A view over an ICMP message. After check(): at least the 8-byte header is present. */
export class IcmpPacket {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Wraps bytes unchecked (trusted: at least 8 bytes). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Checked constructor. ICMP has no length field: the message is the whole IP payload. */
  static check(bytes: Uint8Array): Parsed<IcmpPacket> {
    if (bytes.length < ICMP_HEADER_LEN)
      return { ok: false, error: `icmp: message length ${bytes.length} < header length ${ICMP_HEADER_LEN}` };
    return { ok: true, value: new IcmpPacket(bytes) };
  }

  get msgType(): number {
    return this.bytes[TYPE]!;
  }
  set msgType(v: number) {
    this.bytes[TYPE] = v;
  }
  get code(): number {
    return this.bytes[CODE]!;
  }
  set code(v: number) {
    this.bytes[CODE] = v;
  }
  get checksum(): number {
    return this.dv.getUint16(CHECKSUM);
  }
  set checksum(v: number) {
    this.dv.setUint16(CHECKSUM, v);
  }
  /** Echo identifier. */
  get ident(): number {
    return this.dv.getUint16(IDENT);
  }
  set ident(v: number) {
    this.dv.setUint16(IDENT, v);
  }
  /** Echo sequence number. */
  get seq(): number {
    return this.dv.getUint16(SEQ);
  }
  set seq(v: number) {
    this.dv.setUint16(SEQ, v);
  }
  /** The 4 bytes after the checksum as one u32 (unused in errors, except the MTU below). */
  get rest(): number {
    return this.dv.getUint32(REST);
  }
  set rest(v: number) {
    this.dv.setUint32(REST, v >>> 0);
  }
  /** Next-hop MTU of a fragmentation-needed error (RFC 1191); 0 from old routers. */
  get mtu(): number {
    return this.dv.getUint16(MTU);
  }
  set mtu(v: number) {
    this.dv.setUint16(MTU, v);
  }
  /** Echo data, or the quoted datagram of an error. */
  get data(): Uint8Array {
    return this.bytes.subarray(ICMP_HEADER_LEN);
  }
  /** True if the checksum over the whole message is right. */
  verifyChecksum(): boolean {
    return verifies(sum(this.bytes));
  }
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes);
  }
}

/** The header fields of a quoted datagram, for finding the socket an error is about. */
export interface QuotedDatagram {
  src: number;
  dst: number;
  protocol: number;
  /** The bytes after the quoted IP header (the first >= 8 bytes of its payload: ports, TCP seq). */
  data: Uint8Array;
}

/**
 * Parses the datagram quoted by an ICMP error leniently: its total length and checksum refer to the
 * original datagram, so only the header's own shape is checked, plus the 64 bits of data RFC 792 requires.
 */
export function parseQuoted(quoted: Uint8Array): Parsed<QuotedDatagram> {
  if (quoted.length < 20) return { ok: false, error: `quoted length ${quoted.length} < IPv4 header length 20` };
  const ver = quoted[0]! >> 4;
  if (ver !== 4) return { ok: false, error: `quoted IP version ${ver} != 4` };
  const hl = (quoted[0]! & 0x0f) * 4;
  if (hl < 20) return { ok: false, error: `quoted IPv4 header length ${hl / 4} < 5` };
  if (quoted.length < hl + 8)
    return { ok: false, error: `quoted length ${quoted.length} < header length ${hl} + 8 data bytes` };
  const dv = new DataView(quoted.buffer, quoted.byteOffset, quoted.byteLength);
  return {
    ok: true,
    value: { src: dv.getUint32(12), dst: dv.getUint32(16), protocol: quoted[9]!, data: quoted.subarray(hl) },
  };
}

/** What an error quotes of `datagram` (an IP packet, header first): at most ICMP_MAX_QUOTE bytes. */
export function quoteDatagram(datagram: Uint8Array, maxLen = ICMP_MAX_QUOTE): Uint8Array {
  return datagram.subarray(0, Math.min(datagram.length, maxLen));
}

/** A parsed ICMP message of a kind newts handles. Byte arrays alias the parsed bytes. */
export type IcmpRepr =
  | { kind: "echoRequest" | "echoReply"; ident: number; seq: number; data: Uint8Array }
  | { kind: "destUnreachable"; code: number; /** Next-hop MTU (code 4), else 0. */ mtu: number; quoted: Uint8Array }
  | { kind: "timeExceeded"; code: number; quoted: Uint8Array };

/**
 * Parses an ICMP message (the whole IP payload). Other types are an error (the stack drops them).
 * Errors must quote a plausible IPv4 header + 8 bytes. `verifyChecksum = false` skips the checksum.
 */
export function parseIcmp(bytes: Uint8Array, verifyChecksum = true): Parsed<IcmpRepr> {
  const c = IcmpPacket.check(bytes);
  if (!c.ok) return c;
  const p = c.value;
  if (verifyChecksum && !p.verifyChecksum())
    return { ok: false, error: `icmp: bad checksum 0x${p.checksum.toString(16).padStart(4, "0")}` };
  switch (p.msgType) {
    case IcmpType.ECHO_REQUEST:
    case IcmpType.ECHO_REPLY:
      return {
        ok: true,
        value: {
          kind: p.msgType === IcmpType.ECHO_REQUEST ? "echoRequest" : "echoReply",
          ident: p.ident,
          seq: p.seq,
          data: p.data,
        },
      };
    case IcmpType.DEST_UNREACHABLE:
    case IcmpType.TIME_EXCEEDED: {
      const q = parseQuoted(p.data);
      if (!q.ok) return { ok: false, error: `icmp: type ${p.msgType}: ${q.error}` };
      if (p.msgType === IcmpType.TIME_EXCEEDED)
        return { ok: true, value: { kind: "timeExceeded", code: p.code, quoted: p.data } };
      return {
        ok: true,
        value: {
          kind: "destUnreachable",
          code: p.code,
          mtu: p.code === UnreachableCode.FRAG_NEEDED ? p.mtu : 0,
          quoted: p.data,
        },
      };
    }
    default:
      return { ok: false, error: `icmp: unsupported type ${p.msgType} (code ${p.code})` };
  }
}

/** Bytes emitIcmp writes. */
export function icmpBufferLen(repr: IcmpRepr): number {
  return ICMP_HEADER_LEN + ("data" in repr ? repr.data.length : repr.quoted.length);
}

/**
 * Writes the message into `buf` (at least icmpBufferLen bytes) and, unless `fillChecksum` is
 * false, its checksum. Data already at buf[8..] is not copied.
 */
export function emitIcmp(repr: IcmpRepr, buf: Uint8Array, fillChecksum = true): void {
  const body = "data" in repr ? repr.data : repr.quoted; // copied first, in case it overlaps the header
  if (body.buffer !== buf.buffer || body.byteOffset !== buf.byteOffset + ICMP_HEADER_LEN) buf.set(body, ICMP_HEADER_LEN);
  const end = ICMP_HEADER_LEN + body.length;
  const p = new IcmpPacket(end === buf.length ? buf : buf.subarray(0, end));
  switch (repr.kind) {
    case "echoRequest":
    case "echoReply":
      p.msgType = repr.kind === "echoRequest" ? IcmpType.ECHO_REQUEST : IcmpType.ECHO_REPLY;
      p.code = 0;
      p.ident = repr.ident;
      p.seq = repr.seq;
      break;
    case "destUnreachable":
      p.msgType = IcmpType.DEST_UNREACHABLE;
      p.code = repr.code;
      p.rest = repr.code === UnreachableCode.FRAG_NEEDED ? repr.mtu & 0xffff : 0;
      break;
    case "timeExceeded":
      p.msgType = IcmpType.TIME_EXCEEDED;
      p.code = repr.code;
      p.rest = 0;
      break;
  }
  if (fillChecksum) p.fillChecksum();
  else p.checksum = 0;
}
