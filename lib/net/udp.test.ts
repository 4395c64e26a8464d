// Tests for UDP datagrams over IPv4, from literal captured-style bytes.
import { test, expect, describe } from "vitest";
import { UdpPacket, emitUdp, parseUdp, udpBufferLen, type UdpRepr } from "./udp.ts";
import { IpProtocol, parseIpv4 } from "./ipv4.ts";
import { parseEthernet } from "./ethernet.ts";
import { fold, pseudoHeaderSum, sum } from "./checksum.ts";

const hex = (...lines: string[]): Uint8Array => Uint8Array.from(lines.join(" ").trim().split(/\s+/), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

// A DNS query for example.com/A from 10.0.2.15:54321 to the slirp resolver 10.0.2.3:53.
const DNS_FRAME = hex(
  "52 55 0a 00 02 02 52 54 00 12 34 56 08 00 45 00",
  "00 39 1a 2b 40 00 40 11 08 78 0a 00 02 0f 0a 00",
  "02 03 d4 31 00 35 00 25 97 f0 ab cd 01 00 00 01",
  "00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63",
  "6f 6d 00 00 01 00 01",
);
const SRC = 0x0a00020f;
const DST = 0x0a000203;
const DNS_UDP = DNS_FRAME.subarray(34);
const QUERY = DNS_UDP.subarray(8);

const edit = (b: Uint8Array, i: number, v: number): Uint8Array => {
  const c = b.slice();
  c[i] = v;
  return c;
};

describe("udp", () => {
  test("deconstruct", () => {
    const c = UdpPacket.check(DNS_UDP);
    if (!c.ok) throw new Error(c.error);
    const p = c.value;
    expect([p.srcPort, p.dstPort, p.length, p.checksum]).toEqual([54321, 53, 37, 0x97f0]);
    expect(p.payload.length).toBe(29);
    expect(p.verifyChecksum(SRC, DST)).toBe(true);
    expect(p.verifyChecksum(SRC, DST + 1)).toBe(false); // the pseudo-header counts
  });

  test("parse through the stack and emit back byte for byte", () => {
    const e = parseEthernet(DNS_FRAME);
    if (!e.ok) throw new Error(e.error);
    const ip = parseIpv4(e.value.payload);
    if (!ip.ok) throw new Error(ip.error);
    expect(ip.value.protocol).toBe(IpProtocol.UDP);
    const r = parseUdp(ip.value.payload, ip.value.src, ip.value.dst);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.srcPort).toBe(54321);
    expect(r.value.dstPort).toBe(53);
    expect(toHex(r.value.payload)).toBe(toHex(QUERY));
    const out = new Uint8Array(udpBufferLen(r.value));
    emitUdp(r.value, out, SRC, DST);
    expect(toHex(out)).toBe(toHex(DNS_UDP));
  });

  test("construct from a Repr into a subarray of a bigger buffer", () => {
    const repr: UdpRepr = { srcPort: 54321, dstPort: 53, payload: QUERY };
    const backing = new Uint8Array(100).fill(0x55);
    const buf = backing.subarray(3, 3 + udpBufferLen(repr));
    emitUdp(repr, buf, SRC, DST);
    expect(toHex(buf)).toBe(toHex(DNS_UDP));
    expect(backing[2]).toBe(0x55);
    expect(backing[3 + 37]).toBe(0x55);
  });

  test("checksum 0 means none; a computed 0 is sent as 0xffff (RFC 768)", () => {
    const none = new Uint8Array(udpBufferLen({ srcPort: 1, dstPort: 2, payload: QUERY }));
    emitUdp({ srcPort: 1, dstPort: 2, payload: QUERY }, none, SRC, DST, false);
    expect(new UdpPacket(none).checksum).toBe(0);
    expect(parseUdp(none, 1, 2).ok).toBe(true); // any addresses: nothing to verify

    // Pick two payload bytes so the ones'-complement sum is 0xffff, i.e. the checksum computes to 0.
    const payload = new Uint8Array(2);
    const base = fold(sum(payload, 0, 2, pseudoHeaderSum(SRC, DST, IpProtocol.UDP, 10) + 7 + 9 + 10));
    const x = 0xffff - base;
    payload[0] = x >> 8;
    payload[1] = x & 0xff;
    const buf = new Uint8Array(10);
    emitUdp({ srcPort: 7, dstPort: 9, payload }, buf, SRC, DST);
    expect(new UdpPacket(buf).checksum).toBe(0xffff);
    expect(parseUdp(buf, SRC, DST).ok).toBe(true);
  });

  test("bytes past the length field are ignored", () => {
    const slack = new Uint8Array(DNS_UDP.length + 5);
    slack.set(DNS_UDP);
    const r = parseUdp(slack, SRC, DST);
    expect(r.ok && r.value.payload.length).toBe(29);
  });

  test("malformed datagrams are errors that say what was wrong", () => {
    const withLen = (n: number): Uint8Array => {
      const b = edit(DNS_UDP, 4, n >> 8);
      b[5] = n & 0xff;
      return b;
    };
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array(0), "udp: buffer length 0 < header length 8"],
      [DNS_UDP.subarray(0, 7), "udp: buffer length 7 < header length 8"],
      [withLen(7), "udp: length field 7 < header length 8"],
      [withLen(0), "udp: length field 0 < header length 8"],
      [withLen(38), "udp: length field 38 > buffer length 37"],
      [DNS_UDP.subarray(0, 20), "udp: length field 37 > buffer length 20"],
      [edit(DNS_UDP, 3, 0), "udp: destination port 0"],
      [edit(DNS_UDP, 10, 0xac), "udp: bad checksum 0x97f0"],
    ];
    for (const [bytes, msg] of cases) {
      const r = parseUdp(bytes, SRC, DST);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(msg);
    }
    expect(parseUdp(edit(DNS_UDP, 10, 0xac), SRC, DST, false).ok).toBe(true);
  });
});
