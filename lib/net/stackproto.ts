// What the words of a packet port's slot mean between the stack servers.
//
// up (ip -> tcp/udp):   desc = the IPv4 datagram (reassembled if it was fragmented)
//                       a = source address, b = destination address,
//                       tag = protocol | header length << 8
// down (tcp/udp -> ip): desc = the transport segment, with HEADROOM free bytes
//                       before it for the IPv4 and Ethernet headers,
//                       a = destination, b = source, tag = protocol | ttl << 8 | DF << 16
//                       or tag = UNREACH | code: desc = an IPv4 datagram that no
//                       socket wanted; ip answers it with ICMP unreachable (code)
//                       or tag = ICMP_ERR | code | kind << 8 (kind 0: destination
//                       unreachable, 1: time exceeded): an ICMP error about a datagram
//                       we sent; desc = its transport ports (src u16, dst u16, big
//                       endian), a = its destination, b = its source
// nic <-> pf <-> ip:    desc = an Ethernet frame; tag, a, b unused

export const ETH_HLEN = 14;
export const IP_HLEN = 20;
/** Free bytes a transport leaves before its segment. */
export const HEADROOM = ETH_HLEN + IP_HLEN;

export const TAG_DF = 1 << 16;
export const TAG_UNREACH = 0x10000000;
export const TAG_ICMP_ERR = 0x20000000;

export function upTag(proto: number, ihl: number): number {
  return proto | (ihl << 8);
}

export function downTag(proto: number, ttl = 64, df = true): number {
  return proto | ((ttl & 0xff) << 8) | (df ? TAG_DF : 0);
}

/** Ephemeral ports, as Linux's default ip_local_port_range. */
export const EPHEMERAL_LO = 32768;
export const EPHEMERAL_HI = 60999;
