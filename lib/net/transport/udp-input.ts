// Datagrams from ip to the udp server's sockets, and ICMP errors about datagrams it
// sent. A datagram arrives as a descriptor into the driver's pool; an arena socket
// gets it in its RX ring, a socket by message a copy in its queue. A datagram that
// no socket wants goes back to ip, which answers it with ICMP port unreachable.
import { ECONNREFUSED, EHOSTUNREACH, EMSGSIZE, ENETUNREACH } from "../../sys/errno.ts";
import { UnreachableCode } from "../icmp.ts";
import type { Packet, Port } from "../port.ts";
import { TAG_ICMP_ERR, TAG_UNREACH } from "../stackproto.ts";
import { parseUdp } from "../udp.ts";
import { deliver, deliverError } from "./udp-kipc.ts";
import { pushDatagram, pushError } from "./udp-rings.ts";
import type { UdpState } from "./udp-state.ts";

/** ICMP errors (Linux's errno for each destination-unreachable code, RFC 1122 §4.1.3.3). */
const UNREACH_ERRNO: Record<number, number> = { 0: ENETUNREACH, 1: EHOSTUNREACH, 2: 92 /* ENOPROTOOPT */, 3: ECONNREFUSED, 4: EMSGSIZE };

/** An ICMP error about a datagram we sent: reported to the socket connected to where it went (as Linux). */
function onIcmpError(s: UdpState, p: Packet, bytes: Uint8Array): void {
  s.links.pools.release(p);
  if (bytes.length < 4) return;
  const sport = (bytes[0]! << 8) | bytes[1]!;
  const dport = (bytes[2]! << 8) | bytes[3]!;
  const dst = p.a >>> 0;
  const code = p.tag & 0xff;
  const errno = (p.tag >>> 8) & 0xff ? EHOSTUNREACH : (UNREACH_ERRNO[code] ?? EHOSTUNREACH);
  const k = s.socks.find(sport, (o) => o.rport === dport && o.raddr === dst);
  if (!k) return;
  s.stats.icmpErrors++;
  if (k.fast) pushError(s, k, errno);
  else deliverError(s, k, errno);
}

/** A datagram (or an ICMP error) from ip: find its socket, or ask ip to answer "port unreachable". */
export function onPacket(s: UdpState, ip: Port, p: Packet, bytes: Uint8Array): void {
  if ((p.tag & TAG_ICMP_ERR) !== 0) return onIcmpError(s, p, bytes);
  const ihl = (p.tag >>> 8) & 0xff;
  const src = p.a >>> 0;
  const dst = p.b >>> 0;
  const u = parseUdp(bytes.subarray(ihl), src, dst);
  if (!u.ok) {
    s.stats.badChecksum++;
    s.links.pools.release(p);
    return;
  }
  const port = u.value.dstPort;
  const k = s.socks.find(port, (o) => o.laddr === dst) ?? s.socks.find(port, (o) => o.laddr === 0);
  if (!k || (k.rport !== 0 && (k.raddr !== src || k.rport !== u.value.srcPort))) {
    s.stats.noPort++;
    // Hand the datagram back to ip for an ICMP port unreachable (RFC 1122 §4.1.3.1).
    if (!ip.send({ ...p, tag: TAG_UNREACH | UnreachableCode.PORT })) s.links.pools.release(p);
    return;
  }
  s.stats.rx++;
  if (k.fast) pushDatagram(s, k, u.value.payload, src, u.value.srcPort);
  else deliver(s, k, u.value.payload, src, u.value.srcPort);
  s.links.pools.release(p);
}
