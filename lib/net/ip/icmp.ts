// ICMP policy for the IP layer: when an error may be sent (RFC 1122 §3.2.2), rate limiting, echo bookkeeping.
import { IPV4_BROADCAST, isMulticastIpv4 } from "../addr.ts";
import { type IcmpRepr, IcmpType, emitIcmp, icmpBufferLen } from "../icmp.ts";
import { IPV4_HEADER_LEN, IpProtocol } from "../ipv4.ts";

/** ICMP types that are queries, not errors: an error may be sent about them (RFC 1122 §3.2.2; RFC 792, RFC 950). */
const QUERY_TYPES = new Set([0, 8, 13, 14, 15, 16, 17, 18]);

/** TOS of the errors we send: precedence 6, "internetwork control" (RFC 1812 §4.3.2.5; Linux does the same). */
export const ICMP_ERROR_TOS = 0xc0;

/** Header fields of a datagram an error would be about, or null if the bytes are not even a plausible header. */
export function errorSubject(dg: Uint8Array): { src: number; dst: number; protocol: number; fragOffset: number; headerLen: number } | null {
  if (dg.length < IPV4_HEADER_LEN || dg[0]! >> 4 !== 4) return null;
  const hl = (dg[0]! & 0x0f) * 4;
  if (hl < IPV4_HEADER_LEN || hl > dg.length) return null;
  const dv = new DataView(dg.buffer, dg.byteOffset, dg.byteLength);
  return { src: dv.getUint32(12), dst: dv.getUint32(16), protocol: dg[9]!, fragOffset: (dv.getUint16(6) & 0x1fff) * 8, headerLen: hl };
}

/**
 * True if RFC 1122 §3.2.2 allows an ICMP error about datagram `dg`: not about an ICMP error, not
 * about a non-initial fragment, not to or from a broadcast/multicast address, not from a non-host
 * source. `isBroadcast` says whether an address is a broadcast on one of our links.
 */
export function mayReportError(dg: Uint8Array, isBroadcast: (addr: number) => boolean): boolean {
  const h = errorSubject(dg);
  if (!h || h.fragOffset !== 0) return false;
  const { src, dst } = h;
  if (src === 0 || src === IPV4_BROADCAST || isMulticastIpv4(src) || src >>> 28 === 0xf || isBroadcast(src)) return false;
  if (isMulticastIpv4(dst) || isBroadcast(dst)) return false;
  if (h.protocol === IpProtocol.ICMP) {
    if (dg.length <= h.headerLen) return false;
    if (!QUERY_TYPES.has(dg[h.headerLen]!)) return false;
  }
  return true;
}

/** Serialises an ICMP message to a fresh buffer with its checksum. */
export function icmpBytes(repr: IcmpRepr): Uint8Array {
  const b = new Uint8Array(icmpBufferLen(repr));
  emitIcmp(repr, b);
  return b;
}

/** True for the ICMP types parseIcmp understands (others are "unknown", not "malformed"). */
export function icmpTypeKnown(t: number): boolean {
  return t === IcmpType.ECHO_REPLY || t === IcmpType.ECHO_REQUEST || t === IcmpType.DEST_UNREACHABLE || t === IcmpType.TIME_EXCEEDED;
}

/** A token bucket for ICMP errors (RFC 1812 §4.3.2.8). Time is the caller's clock in ms. */
export class TokenBucket {
  private tokens: number;
  private last: number | null = null;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes a token if one is there. */
  take(now: number): boolean {
    if (this.last !== null && now > this.last) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    if (this.last === null || now > this.last) this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Echo requests this host sent and still expects a reply to, for the in-OS ping client. */
export class EchoTracker {
  private readonly sent = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
  ) {}

  /** Records a request to `dst`; the oldest is forgotten beyond `max`. */
  record(now: number, dst: number, ident: number, seq: number): void {
    const k = key(dst, ident, seq);
    this.sent.delete(k);
    this.sent.set(k, now);
    if (this.sent.size > this.max) {
      const oldest = this.sent.keys().next();
      if (!oldest.done) this.sent.delete(oldest.value);
    }
  }

  /** The send time of the request a reply from `src` answers, consuming it; null if none. */
  match(src: number, ident: number, seq: number): number | null {
    const k = key(src, ident, seq);
    const t = this.sent.get(k);
    if (t === undefined) return null;
    this.sent.delete(k);
    return t;
  }

  /** Forgets requests older than the timeout; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (const [k, t] of [...this.sent]) {
      if (now - t < this.timeoutMs) continue;
      this.sent.delete(k);
      n++;
    }
    return n;
  }

  get size(): number {
    return this.sent.size;
  }
}

function key(addr: number, ident: number, seq: number): string {
  return `${addr >>> 0}/${ident & 0xffff}/${seq & 0xffff}`;
}
