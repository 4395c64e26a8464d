// Test frames for the backend tests: Ethernet frames carrying a sequence number, ARP frames, and readers.
import { DEFAULT_MAC_TEXT, macOf } from "./backend.ts";
import { broadcastMac } from "../../lib/net/addr.ts";
import { type ArpRepr, emitArp, parseArp } from "../../lib/net/arp.ts";
import { emitEthernet, ETHERNET_HEADER_LEN, EtherType, parseEthernet } from "../../lib/net/ethernet.ts";

/** EtherType 0x88b5, IEEE's "local experimental" value: never a real protocol on the wire. */
export const ETHERTYPE_TEST = 0x88b5;

/** Payload byte i of frame seq: from a 32-bit hash of seq, so damage to any seq byte shows. */
function pattern(seq: number, i: number): number {
  const h = Math.imul(seq ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  return ((h >>> ((i & 3) * 8)) ^ i) & 0xff;
}

/** A `len`-byte frame to `dst` (default: the second loopback MAC) whose payload is seq then a pattern from it. */
export function seqFrame(seq: number, len = 64, dst = "52:54:00:12:34:57", src = DEFAULT_MAC_TEXT): Uint8Array {
  const f = new Uint8Array(Math.max(len, 18));
  f.set(macOf(dst), 0);
  f.set(macOf(src), 6);
  const dv = new DataView(f.buffer);
  dv.setUint16(12, ETHERTYPE_TEST);
  dv.setUint32(14, seq >>> 0);
  for (let i = 18; i < f.length; i++) f[i] = pattern(seq, i);
  return f;
}

/** The sequence number of a seqFrame, or -1 if the bytes are not an intact one. */
export function seqOf(f: Uint8Array): number {
  if (f.length < 18) return -1;
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (dv.getUint16(12) !== ETHERTYPE_TEST) return -1;
  const seq = dv.getUint32(14);
  for (let i = 18; i < f.length; i++) if (f[i] !== pattern(seq, i)) return -1;
  return seq;
}

/** A 60-byte Ethernet/ARP frame (padded to the Ethernet minimum). */
export function arpFrame(repr: ArpRepr, dst: Uint8Array = broadcastMac()): Uint8Array {
  const f = new Uint8Array(60);
  emitArp(repr, f.subarray(ETHERNET_HEADER_LEN));
  emitEthernet({ dst, src: repr.senderMac, etherType: EtherType.ARP, payload: f.subarray(ETHERNET_HEADER_LEN) }, f);
  return f;
}

/** The ARP packet in `f`, or null if `f` is not an Ethernet/IPv4 ARP frame. */
export function arpOf(f: Uint8Array): ArpRepr | null {
  const e = parseEthernet(f);
  if (!e.ok || e.value.etherType !== EtherType.ARP) return null;
  const a = parseArp(e.value.payload);
  return a.ok ? a.value : null;
}
