// Tests for IPv4 datagrams, from literal captured-style bytes.
import { test, expect, describe } from "vitest";
import { IpProtocol, Ipv4Packet, emitIpv4, ipv4BufferLen, parseIpv4, type Ipv4Repr } from "./ipv4.ts";
import { formatIpv4Addr } from "./addr.ts";

const hex = (...lines: string[]): Uint8Array => Uint8Array.from(lines.join(" ").trim().split(/\s+/), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

// IPv4 part of `ping -c1 8.8.8.8` from Linux (10.0.2.15): DF set, TTL 64, ICMP echo request, 84 bytes.
const PING = hex(
  "45 00 00 54 3b 7e 40 00 40 01 e3 0c 0a 00 02 0f",
  "08 08 08 08 08 00 6d 06 0c 5a 00 01 b1 a3 64 65",
  "00 00 00 00 a5 c2 04 00 00 00 00 00 10 11 12 13",
  "14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23",
  "24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33",
  "34 35 36 37",
);
// An IGMPv2 report with the Router Alert option (RFC 2113): IHL 6, 4 option bytes, then 8 bytes.
const WITH_OPTIONS = hex(
  "46 c0 00 20 00 00 40 00 01 02 f7 0d 0a 00 02 0f",
  "e0 00 00 fb 94 04 00 00 16 00 09 04 e0 00 00 fb",
);

/** A copy of `b` with byte i set to v. */
const edit = (b: Uint8Array, i: number, v: number): Uint8Array => {
  const c = b.slice();
  c[i] = v;
  return c;
};

describe("ipv4", () => {
  test("deconstruct", () => {
    const c = Ipv4Packet.check(PING);
    if (!c.ok) throw new Error(c.error);
    const p = c.value;
    expect(p.version).toBe(4);
    expect(p.headerLen).toBe(20);
    expect(p.tos).toBe(0);
    expect(p.totalLen).toBe(84);
    expect(p.ident).toBe(0x3b7e);
    expect(p.dontFrag).toBe(true);
    expect(p.moreFrags).toBe(false);
    expect(p.fragOffset).toBe(0);
    expect(p.ttl).toBe(64);
    expect(p.protocol).toBe(IpProtocol.ICMP);
    expect(p.checksum).toBe(0xe30c);
    expect(formatIpv4Addr(p.src)).toBe("10.0.2.15");
    expect(formatIpv4Addr(p.dst)).toBe("8.8.8.8");
    expect(p.options.length).toBe(0);
    expect(p.payload.length).toBe(64);
    expect(p.verifyChecksum()).toBe(true);
  });

  test("parse and emit back byte for byte", () => {
    const r = parseIpv4(PING);
    if (!r.ok) throw new Error(r.error);
    expect(r.value).toMatchObject({ src: 0x0a00020f, dst: 0x08080808, protocol: 1, ttl: 64, ident: 0x3b7e, dontFrag: true });
    const out = new Uint8Array(ipv4BufferLen(r.value));
    emitIpv4(r.value, out);
    expect(toHex(out)).toBe(toHex(PING));
  });

  test("construct from a Repr into a subarray, payload in place", () => {
    const backing = new Uint8Array(200).fill(0xee);
    const buf = backing.subarray(14, 14 + 84);
    buf.set(PING.subarray(20), 20);
    const repr: Ipv4Repr = {
      src: 0x0a00020f,
      dst: 0x08080808,
      protocol: IpProtocol.ICMP,
      ttl: 64,
      tos: 0,
      ident: 0x3b7e,
      dontFrag: true,
      moreFrags: false,
      fragOffset: 0,
      payload: buf.subarray(20),
    };
    emitIpv4(repr, buf);
    expect(toHex(buf)).toBe(toHex(PING));
    expect(backing[13]).toBe(0xee);
    expect(backing[98]).toBe(0xee);
  });

  test("options are length-checked and skipped; header checksum covers them", () => {
    const r = parseIpv4(WITH_OPTIONS);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.protocol).toBe(2);
    expect(r.value.tos).toBe(0xc0);
    expect(r.value.payload.length).toBe(8);
    expect(r.value.payload[0]).toBe(0x16);
    const c = Ipv4Packet.check(WITH_OPTIONS);
    if (!c.ok) throw new Error(c.error);
    expect(toHex(c.value.options)).toBe("94 04 00 00");
    // re-emitting drops the options (IHL 5)
    const out = new Uint8Array(ipv4BufferLen(r.value));
    emitIpv4(r.value, out);
    expect(out.length).toBe(28);
    expect(out[0]).toBe(0x45);
    const again = parseIpv4(out);
    expect(again.ok && toHex(again.value.payload)).toBe(toHex(r.value.payload));
  });

  test("Ethernet padding after total length is trimmed from the payload", () => {
    const padded = new Uint8Array(WITH_OPTIONS.length + 18);
    padded.set(WITH_OPTIONS);
    const r = parseIpv4(padded);
    expect(r.ok && r.value.payload.length).toBe(8);
  });

  test("fragment fields round trip", () => {
    const repr: Ipv4Repr = {
      src: 0xc0000201,
      dst: 0xc6336401,
      protocol: IpProtocol.UDP,
      ttl: 17,
      tos: 0x2e,
      ident: 0xbeef,
      dontFrag: false,
      moreFrags: true,
      fragOffset: 1480,
      payload: new Uint8Array(24).fill(7),
    };
    const buf = new Uint8Array(ipv4BufferLen(repr));
    emitIpv4(repr, buf);
    expect(toHex(buf.subarray(6, 8))).toBe("20 b9"); // MF | 1480/8 = 185
    const r = parseIpv4(buf);
    if (!r.ok) throw new Error(r.error);
    expect(r.value).toEqual(repr);
  });

  test("view setters touch only their bits", () => {
    const b = PING.slice();
    const p = new Ipv4Packet(b);
    p.moreFrags = true;
    p.fragOffset = 8 * 0x1fff;
    expect(p.dontFrag).toBe(true);
    p.dontFrag = false;
    expect(p.moreFrags).toBe(true);
    expect(p.fragOffset).toBe(8 * 0x1fff);
    p.version = 4;
    p.headerLen = 24;
    expect(b[0]).toBe(0x46);
    p.headerLen = 20;
    p.ttl = 63;
    expect(p.verifyChecksum()).toBe(false);
    p.fillChecksum();
    expect(p.verifyChecksum()).toBe(true);
  });

  test("unchecked emit can leave the checksum to the device", () => {
    const r = parseIpv4(PING);
    if (!r.ok) throw new Error(r.error);
    const out = new Uint8Array(84);
    emitIpv4(r.value, out, false);
    expect(toHex(out.subarray(10, 12))).toBe("00 00");
    expect(parseIpv4(out).ok).toBe(false);
    expect(parseIpv4(out, false).ok).toBe(true);
  });

  test("malformed datagrams are errors that say what was wrong", () => {
    const withTotal = (n: number): Uint8Array => {
      const b = edit(PING, 2, n >> 8);
      b[3] = n & 0xff;
      return b;
    };
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array(0), "ipv4: buffer length 0 < minimum header length 20"],
      [PING.subarray(0, 19), "ipv4: buffer length 19 < minimum header length 20"],
      [edit(PING, 0, 0x44), "ipv4: header length 4 < 5"],
      [edit(PING, 0, 0x40), "ipv4: header length 0 < 5"],
      [edit(PING.subarray(0, 40), 0, 0x4f), "ipv4: header length 60 bytes > buffer length 40"],
      [withTotal(19), "ipv4: total length 19 < header length 20"],
      [withTotal(85), "ipv4: total length 85 > buffer length 84"],
      [edit(PING, 0, 0x65), "ipv4: version 6 != 4"],
      [edit(PING, 8, 0x3f), "ipv4: bad header checksum 0xe30c"],
    ];
    for (const [bytes, msg] of cases) {
      const r = parseIpv4(bytes);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(msg);
    }
    // a wrong checksum is accepted when verification is off (receive offload)
    expect(parseIpv4(edit(PING, 8, 0x3f), false).ok).toBe(true);
  });
});
