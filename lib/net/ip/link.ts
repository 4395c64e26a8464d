// Ethernet framing helpers for the IP layer: header writes in place and the IPv4 multicast MAC mapping.
import { ETHERNET_HEADER_LEN, EthernetFrame } from "../ethernet.ts";

export { ETHERNET_HEADER_LEN };

/** Writes dst, src and EtherType into frame[0..14) (the caller sized the frame; the payload is already there). */
export function writeEthernetHeader(frame: Uint8Array, dst: Uint8Array, src: Uint8Array, etherType: number): void {
  const f = new EthernetFrame(frame);
  f.dst = dst;
  f.src = src;
  f.etherType = etherType;
}

/** The Ethernet group address of an IPv4 multicast group: 01:00:5e + low 23 bits (RFC 1112 §6.4). */
export function multicastMac(group: number): Uint8Array {
  return new Uint8Array([0x01, 0x00, 0x5e, (group >>> 16) & 0x7f, (group >>> 8) & 0xff, group & 0xff]);
}
