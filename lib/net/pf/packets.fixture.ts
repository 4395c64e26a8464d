// Test helpers for pf: whole IPv4 packets (TCP, UDP, ICMP) built with the lib/net emitters.
import { parseIpv4Addr } from "../addr.ts";
import { emitIcmp, icmpBufferLen, type IcmpRepr } from "../icmp.ts";
import { IpProtocol, emitIpv4, ipv4BufferLen, type Ipv4Repr } from "../ipv4.ts";
import { emitTcp, tcpBufferLen } from "../tcp-wire.ts";
import { emitUdp, udpBufferLen } from "../udp.ts";
import { TcpFlag } from "../types.ts";

export { TcpFlag };

/** Dotted quad to u32 (throws on bad text: tests only). */
export function ip(text: string): number {
  const a = parseIpv4Addr(text);
  if (a === null) throw new Error(`bad address ${text}`);
  return a;
}

/** An IPv4 packet carrying `payload` from `src` to `dst`, with optional header overrides. */
export function ipv4(src: string, dst: string, protocol: number, payload: Uint8Array, extra: Partial<Ipv4Repr> = {}): Uint8Array {
  const r: Ipv4Repr = {
    src: ip(src), dst: ip(dst), protocol, ttl: 64, tos: 0, ident: 1, dontFrag: false, moreFrags: false, fragOffset: 0, payload, ...extra,
  };
  const b = new Uint8Array(ipv4BufferLen(r));
  emitIpv4(r, b);
  return b;
}

/** A TCP segment `src:sp -> dst:dp` with `flags` (default SYN) in an IPv4 packet. */
export function tcp(src: string, sp: number, dst: string, dp: number, flags: number = TcpFlag.SYN, payload = new Uint8Array(0)): Uint8Array {
  const r = { srcPort: sp, dstPort: dp, seq: 1000, ack: flags & TcpFlag.ACK ? 2000 : 0, flags, window: 65535, urgent: 0, options: {}, payload };
  const seg = new Uint8Array(tcpBufferLen(r));
  emitTcp(r, seg, ip(src), ip(dst));
  return ipv4(src, dst, IpProtocol.TCP, seg);
}

/** A UDP datagram `src:sp -> dst:dp` in an IPv4 packet. */
export function udp(src: string, sp: number, dst: string, dp: number, payload = Uint8Array.of(1, 2, 3, 4)): Uint8Array {
  const r = { srcPort: sp, dstPort: dp, payload };
  const d = new Uint8Array(udpBufferLen(r));
  emitUdp(r, d, ip(src), ip(dst));
  return ipv4(src, dst, IpProtocol.UDP, d);
}

/** An ICMP message in an IPv4 packet. */
export function icmp(src: string, dst: string, repr: IcmpRepr): Uint8Array {
  const m = new Uint8Array(icmpBufferLen(repr));
  emitIcmp(repr, m);
  return ipv4(src, dst, IpProtocol.ICMP, m);
}

/** An ICMP echo request (or reply) with `ident`. */
export function ping(src: string, dst: string, ident: number, reply = false): Uint8Array {
  return icmp(src, dst, { kind: reply ? "echoReply" : "echoRequest", ident, seq: 1, data: Uint8Array.of(9, 9, 9, 9) });
}

/** An ICMP port-unreachable from `src` to `dst` quoting `datagram` (an IPv4 packet). */
export function unreachable(src: string, dst: string, datagram: Uint8Array): Uint8Array {
  return icmp(src, dst, { kind: "destUnreachable", code: 3, mtu: 0, quoted: datagram.subarray(0, 28) });
}
