// Test helpers for lib/net/ip: a seeded PRNG, a standard host and peer, and frame builders.
import { parseIpv4Addr, parseMac } from "../addr.ts";
import { type ArpRepr, ARP_LEN, ArpOp, emitArp } from "../arp.ts";
import { ETHERNET_HEADER_LEN, EtherType, emitEthernet, parseEthernet } from "../ethernet.ts";
import { type IcmpRepr, emitIcmp, icmpBufferLen } from "../icmp.ts";
import { IpProtocol, type Ipv4Repr, emitIpv4, ipv4BufferLen, parseIpv4 } from "../ipv4.ts";
import { IpLayer, type IpAction, type IpOptions } from "./ip.ts";
import { unitRandom } from "../../sys/prng.ts";

export const rng = unitRandom;

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function randBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

export const ip = (s: string): number => parseIpv4Addr(s)!;
export const mac = (s: string): Uint8Array => parseMac(s)!;

/** Our host: eth0 52:54:00:12:34:56, 10.0.2.15/24, default route via 10.0.2.2. */
export const US = { mac: mac("52:54:00:12:34:56"), ip: ip("10.0.2.15") };
/** The gateway 10.0.2.2. */
export const GW = { mac: mac("52:55:0a:00:02:02"), ip: ip("10.0.2.2") };
/** A neighbour on the subnet. */
export const PEER = { mac: mac("52:54:00:aa:bb:cc"), ip: ip("10.0.2.3") };
export const BCAST = mac("ff:ff:ff:ff:ff:ff");

export function host(opts: Partial<IpOptions> = {}): IpLayer {
  const l = new IpLayer(opts);
  const r = l.addIface({ name: "eth0", mac: US.mac, addr: US.ip, prefixLen: 24 });
  if (!r.ok) throw new Error(r.error);
  const d = l.setDefaultRoute(GW.ip, "eth0");
  if (!d.ok) throw new Error(d.error);
  return l;
}

export function ethFrame(dst: Uint8Array, src: Uint8Array, etherType: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(ETHERNET_HEADER_LEN + payload.length);
  emitEthernet({ dst, src, etherType, payload }, f);
  return f;
}

export function arpFrameOf(r: ArpRepr, dst: Uint8Array): Uint8Array {
  const b = new Uint8Array(ARP_LEN);
  emitArp(r, b);
  return ethFrame(dst, r.senderMac, EtherType.ARP, b);
}

/** A who-has from `from` for `target`. */
export function arpRequest(from: { mac: Uint8Array; ip: number }, target: number): Uint8Array {
  return arpFrameOf({ op: ArpOp.REQUEST, senderMac: from.mac, senderIp: from.ip, targetMac: new Uint8Array(6), targetIp: target }, BCAST);
}

/** An is-at from `from` to us. */
export function arpReply(from: { mac: Uint8Array; ip: number }): Uint8Array {
  return arpFrameOf({ op: ArpOp.REPLY, senderMac: from.mac, senderIp: from.ip, targetMac: US.mac, targetIp: US.ip }, US.mac);
}

export function datagram(p: Partial<Ipv4Repr> & { src: number; dst: number; payload: Uint8Array }): Uint8Array {
  const repr: Ipv4Repr = { protocol: IpProtocol.UDP, ttl: 64, tos: 0, ident: 1, dontFrag: false, moreFrags: false, fragOffset: 0, ...p };
  const b = new Uint8Array(ipv4BufferLen(repr));
  emitIpv4(repr, b);
  return b;
}

export function icmpBytesOf(r: IcmpRepr): Uint8Array {
  const b = new Uint8Array(icmpBufferLen(r));
  emitIcmp(r, b);
  return b;
}

/** An IPv4 frame from `from` (MAC and IP) to us. */
export function ipFrame(from: { mac: Uint8Array; ip: number }, p: Partial<Ipv4Repr> & { payload: Uint8Array }, dstMac = US.mac): Uint8Array {
  return ethFrame(dstMac, from.mac, EtherType.IPV4, datagram({ src: from.ip, dst: US.ip, ...p }));
}

/** The frames of the send actions. */
export function sends(actions: IpAction[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const a of actions) if ("send" in a) out.push(a.send);
  return out;
}

/** Parses a sent frame down to its IPv4 repr (throws in tests if it is not one). */
export function ipOf(frame: Uint8Array): Ipv4Repr {
  const e = parseEthernet(frame);
  if (!e.ok || e.value.etherType !== EtherType.IPV4) throw new Error("not an IPv4 frame");
  const p = parseIpv4(e.value.payload);
  if (!p.ok) throw new Error(p.error);
  return p.value;
}
