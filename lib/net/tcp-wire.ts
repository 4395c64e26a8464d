// TCP segments (RFC 9293) over IPv4: a checked view, option codec (RFC 7323, RFC 2018) and TcpRepr parse/emit.
import type { Parsed, TcpOptions, TcpRepr } from "./types.ts";
import { TcpFlag } from "./types.ts";
import { finish, pseudoHeaderSum, sum, verifies } from "./checksum.ts";
import { IpProtocol } from "./ipv4.ts";

//  0          2          4     8     12          13    14       16         18       20
//  +----------+----------+-----+-----+-----------+-----+--------+----------+--------+---------+-----
//  | src port | dst port | seq | ack |doff|rsvd  |flags| window | checksum | urgent | options | data
//  +----------+----------+-----+-----+-----------+-----+--------+----------+--------+---------+-----
const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DATA_OFF = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;
/** Minimum (option-less) header length; options start here. */
export const TCP_HEADER_LEN = 20;
/** Most option bytes a header can hold (data offset 15 * 4 - 20). */
export const TCP_MAX_OPTIONS_LEN = 40;

/** Option kinds (IANA). */
export const TcpOptionKind = { EOL: 0, NOP: 1, MSS: 2, WSCALE: 3, SACK_PERMITTED: 4, SACK: 5, TIMESTAMP: 8 } as const;
/** Largest window shift (RFC 7323 §2.3); larger received values are clamped to it. */
export const TCP_MAX_WSCALE = 14;

/** A view over a TCP segment. After check(): 20 <= header length <= segment length. */
export class TcpPacket {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Wraps bytes unchecked (trusted: at least the header its data offset says). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Checked constructor. TCP has no length field: the segment is the whole (trimmed) IP payload. */
  static check(bytes: Uint8Array): Parsed<TcpPacket> {
    const n = bytes.length;
    if (n < TCP_HEADER_LEN) return { ok: false, error: `tcp: segment length ${n} < minimum header length 20` };
    const doff = bytes[DATA_OFF]! >> 4;
    if (doff < 5) return { ok: false, error: `tcp: data offset ${doff} < 5` };
    if (doff * 4 > n) return { ok: false, error: `tcp: header length ${doff * 4} (data offset ${doff}) > segment length ${n}` };
    return { ok: true, value: new TcpPacket(bytes) };
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
  /** Sequence number, u32. */
  get seq(): number {
    return this.dv.getUint32(SEQ);
  }
  set seq(v: number) {
    this.dv.setUint32(SEQ, v >>> 0);
  }
  /** Acknowledgment number, u32 (meaningful when ACK is set). */
  get ack(): number {
    return this.dv.getUint32(ACK);
  }
  set ack(v: number) {
    this.dv.setUint32(ACK, v >>> 0);
  }
  /** Header length in bytes (data offset * 4). */
  get headerLen(): number {
    return (this.bytes[DATA_OFF]! >> 4) * 4;
  }
  /** Sets the data offset from a byte count (a multiple of 4, 20..60); clears the reserved bits. */
  set headerLen(bytes: number) {
    this.bytes[DATA_OFF] = ((bytes >>> 2) & 0x0f) << 4;
  }
  /** Flag byte, a bitmask of TcpFlag. */
  get flags(): number {
    return this.bytes[FLAGS]!;
  }
  set flags(v: number) {
    this.bytes[FLAGS] = v;
  }
  /** Raw (unscaled) window. */
  get window(): number {
    return this.dv.getUint16(WINDOW);
  }
  set window(v: number) {
    this.dv.setUint16(WINDOW, v);
  }
  get checksum(): number {
    return this.dv.getUint16(CHECKSUM);
  }
  set checksum(v: number) {
    this.dv.setUint16(CHECKSUM, v);
  }
  get urgent(): number {
    return this.dv.getUint16(URGENT);
  }
  set urgent(v: number) {
    this.dv.setUint16(URGENT, v);
  }
  /** Raw option bytes. */
  get options(): Uint8Array {
    return this.bytes.subarray(TCP_HEADER_LEN, this.headerLen);
  }
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLen);
  }
  /** True if the checksum over pseudo-header + whole segment is right (RFC 9293 §3.1). */
  verifyChecksum(src: number, dst: number): boolean {
    const n = this.bytes.length;
    return verifies(sum(this.bytes, 0, n, pseudoHeaderSum(src, dst, IpProtocol.TCP, n)));
  }
  fillChecksum(src: number, dst: number): void {
    const n = this.bytes.length;
    this.checksum = 0;
    this.checksum = finish(sum(this.bytes, 0, n, pseudoHeaderSum(src, dst, IpProtocol.TCP, n)));
  }
}

/**
 * Decodes option bytes. EOL ends the list, NOP is skipped, unknown kinds are skipped by their
 * length (RFC 9293 §3.1: "must be prepared to handle an illegal option length"). A length < 2, an
 * option running past the end, or a known option of the wrong size is an error.
 */
export function parseTcpOptions(opts: Uint8Array): Parsed<TcpOptions> {
  const out: TcpOptions = {};
  const dv = new DataView(opts.buffer, opts.byteOffset, opts.byteLength);
  let i = 0;
  while (i < opts.length) {
    const kind = opts[i]!;
    if (kind === TcpOptionKind.EOL) break;
    if (kind === TcpOptionKind.NOP) {
      i++;
      continue;
    }
    if (i + 1 >= opts.length) return { ok: false, error: `tcp: option kind ${kind} at ${i} has no length byte` };
    const len = opts[i + 1]!;
    if (len < 2) return { ok: false, error: `tcp: option kind ${kind} at ${i} has length ${len} < 2` };
    if (i + len > opts.length)
      return { ok: false, error: `tcp: option kind ${kind} at ${i} length ${len} runs past the header (${opts.length} option bytes)` };
    const bad = (name: string, want: string): Parsed<TcpOptions> => ({
      ok: false,
      error: `tcp: ${name} option length ${len} != ${want}`,
    });
    switch (kind) {
      case TcpOptionKind.MSS:
        if (len !== 4) return bad("MSS", "4");
        out.mss = dv.getUint16(i + 2);
        break;
      case TcpOptionKind.WSCALE:
        if (len !== 3) return bad("window scale", "3");
        out.wscale = Math.min(opts[i + 2]!, TCP_MAX_WSCALE);
        break;
      case TcpOptionKind.SACK_PERMITTED:
        if (len !== 2) return bad("SACK-permitted", "2");
        out.sackPermitted = true;
        break;
      case TcpOptionKind.SACK: {
        const n = (len - 2) / 8;
        if (!Number.isInteger(n) || n < 1 || n > 4) return bad("SACK", "2 + 8n with n in 1..4");
        const blocks: Array<[number, number]> = [];
        for (let b = 0; b < n; b++) blocks.push([dv.getUint32(i + 2 + 8 * b), dv.getUint32(i + 6 + 8 * b)]);
        out.sack = blocks;
        break;
      }
      case TcpOptionKind.TIMESTAMP:
        if (len !== 10) return bad("timestamp", "10");
        out.timestamp = { val: dv.getUint32(i + 2), ecr: dv.getUint32(i + 6) };
        break;
      default:
        break; // unknown: skipped by length
    }
    i += len;
  }
  return { ok: true, value: out };
}

/** How many SACK blocks emit writes: up to 4, fewer if the other options leave no room (RFC 2018 §3). */
function sackBlocksThatFit(o: TcpOptions): number {
  const want = Math.min(o.sack?.length ?? 0, 4);
  if (want === 0) return 0;
  const room = TCP_MAX_OPTIONS_LEN - fixedOptionsLen(o) - 4; // 4 = NOP NOP kind len
  return Math.max(0, Math.min(want, Math.floor(room / 8)));
}

/** Bytes of every option but SACK blocks, in emit's 4-byte-aligned layout. */
function fixedOptionsLen(o: TcpOptions): number {
  let n = 0;
  if (o.mss !== undefined) n += 4;
  if (o.timestamp) n += 12; // SACK-permitted rides in the timestamp's two padding bytes
  else if (o.sackPermitted) n += 4;
  if (o.wscale !== undefined) n += 4;
  return n;
}

/** Length of the options emitTcpOptions writes: a multiple of 4, at most 40. */
export function tcpOptionsLen(o: TcpOptions): number {
  const blocks = sackBlocksThatFit(o);
  return fixedOptionsLen(o) + (blocks ? 4 + 8 * blocks : 0);
}

/**
 * Writes options in Linux's layout (tcp_options_write), each padded with NOPs to 4 bytes, so
 * that segments from Linux re-emit byte for byte: MSS; SACK-perm+TS or NOP NOP TS;
 * NOP NOP SACK-perm; NOP WS; NOP NOP SACK blocks. Returns the bytes written.
 */
export function emitTcpOptions(o: TcpOptions, buf: Uint8Array): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let i = 0;
  const put4 = (a: number, b: number, c: number, d: number): void => {
    buf[i] = a;
    buf[i + 1] = b;
    buf[i + 2] = c;
    buf[i + 3] = d;
    i += 4;
  };
  const K = TcpOptionKind;
  if (o.mss !== undefined) {
    put4(K.MSS, 4, 0, 0);
    dv.setUint16(i - 2, o.mss);
  }
  if (o.timestamp) {
    if (o.sackPermitted) put4(K.SACK_PERMITTED, 2, K.TIMESTAMP, 10);
    else put4(K.NOP, K.NOP, K.TIMESTAMP, 10);
    dv.setUint32(i, o.timestamp.val >>> 0);
    dv.setUint32(i + 4, o.timestamp.ecr >>> 0);
    i += 8;
  } else if (o.sackPermitted) put4(K.NOP, K.NOP, K.SACK_PERMITTED, 2);
  if (o.wscale !== undefined) put4(K.NOP, K.WSCALE, 3, o.wscale);
  const blocks = sackBlocksThatFit(o);
  if (blocks) {
    put4(K.NOP, K.NOP, K.SACK, 2 + 8 * blocks);
    for (let b = 0; b < blocks; b++) {
      const [left, right] = o.sack![b]!;
      dv.setUint32(i, left >>> 0);
      dv.setUint32(i + 4, right >>> 0);
      i += 8;
    }
  }
  return i;
}

/**
 * Parses a segment (the trimmed IP payload) sent from `src` to `dst` (u32, for the pseudo-header).
 * `verifyChecksum = false` skips the check (receive offload). Port 0 and bad options are errors.
 */
export function parseTcp(bytes: Uint8Array, src: number, dst: number, verifyChecksum = true): Parsed<TcpRepr> {
  const c = TcpPacket.check(bytes);
  if (!c.ok) return c;
  const p = c.value;
  if (p.srcPort === 0 || p.dstPort === 0)
    return { ok: false, error: `tcp: port 0 (${p.srcPort} -> ${p.dstPort}) is reserved` };
  if (verifyChecksum && !p.verifyChecksum(src, dst))
    return { ok: false, error: `tcp: bad checksum 0x${p.checksum.toString(16).padStart(4, "0")}` };
  const o = parseTcpOptions(p.options);
  if (!o.ok) return o;
  return {
    ok: true,
    value: {
      srcPort: p.srcPort,
      dstPort: p.dstPort,
      seq: p.seq,
      ack: p.ack,
      flags: p.flags,
      window: p.window,
      urgent: p.urgent,
      options: o.value,
      payload: p.payload,
    },
  };
}

/** Bytes emitTcp writes: header, options, payload. */
export function tcpBufferLen(repr: TcpRepr): number {
  return TCP_HEADER_LEN + tcpOptionsLen(repr.options) + repr.payload.length;
}

/** Sequence space the segment occupies: payload plus one each for SYN and FIN (RFC 9293 §3.4). */
export function tcpSeqLen(repr: TcpRepr): number {
  return repr.payload.length + (repr.flags & TcpFlag.SYN ? 1 : 0) + (repr.flags & TcpFlag.FIN ? 1 : 0);
}

/**
 * Writes the segment into `buf` (at least tcpBufferLen bytes) with its checksum for `src` -> `dst`
 * unless `fillChecksum` is false (then 0, for the device). The payload is copied unless it already
 * sits where it belongs.
 */
export function emitTcp(repr: TcpRepr, buf: Uint8Array, src: number, dst: number, fillChecksum = true): void {
  // Payload first: if it overlaps where the header goes (built in place at a guessed offset),
  // copying it before writing the header keeps it intact (TypedArray.set is a memmove).
  const hl = TCP_HEADER_LEN + tcpOptionsLen(repr.options);
  const pl = repr.payload;
  if (pl.buffer !== buf.buffer || pl.byteOffset !== buf.byteOffset + hl) buf.set(pl, hl);
  emitTcpOptions(repr.options, buf.subarray(TCP_HEADER_LEN, hl));
  const end = hl + pl.length;
  const p = new TcpPacket(end === buf.length ? buf : buf.subarray(0, end));
  p.srcPort = repr.srcPort;
  p.dstPort = repr.dstPort;
  p.seq = repr.seq;
  p.ack = repr.ack;
  p.headerLen = hl;
  p.flags = repr.flags;
  p.window = repr.window;
  p.urgent = repr.urgent;
  if (fillChecksum) p.fillChecksum(src, dst);
  else p.checksum = 0;
}
