// Tests for ARP over Ethernet/IPv4, from literal captured-style bytes.
import { test, expect, describe } from "vitest";
import { ArpOp, ArpPacket, arpBufferLen, emitArp, parseArp, type ArpRepr } from "./arp.ts";
import { parseEthernet } from "./ethernet.ts";
import { formatIpv4Addr, formatMac, parseMac } from "./addr.ts";

const hex = (...lines: string[]): Uint8Array => Uint8Array.from(lines.join(" ").trim().split(/\s+/), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

// Who has 10.0.2.2? Tell 10.0.2.15 — the ARP part of a QEMU guest's broadcast.
const REQUEST = hex(
  "00 01 08 00 06 04 00 01 52 54 00 12 34 56 0a 00",
  "02 0f 00 00 00 00 00 00 0a 00 02 02",
);
// The slirp gateway's reply as received: a 60-byte frame (Ethernet padding after the 28 ARP bytes).
const REPLY_FRAME = hex(
  "52 54 00 12 34 56 52 55 0a 00 02 02 08 06 00 01",
  "08 00 06 04 00 02 52 55 0a 00 02 02 0a 00 02 02",
  "52 54 00 12 34 56 0a 00 02 0f 00 00 00 00 00 00",
  "00 00 00 00 00 00 00 00 00 00 00 00",
);

describe("arp", () => {
  test("deconstruct a request", () => {
    const c = ArpPacket.check(REQUEST);
    if (!c.ok) throw new Error(c.error);
    const p = c.value;
    expect([p.htype, p.ptype, p.hlen, p.plen, p.oper]).toEqual([1, 0x0800, 6, 4, ArpOp.REQUEST]);
    expect(formatMac(p.senderHw)).toBe("52:54:00:12:34:56");
    expect(Array.from(p.senderProto)).toEqual([10, 0, 2, 15]);
    expect(formatMac(p.targetHw)).toBe("00:00:00:00:00:00");
    expect(Array.from(p.targetProto)).toEqual([10, 0, 2, 2]);
  });

  test("parse and emit a request byte for byte", () => {
    const r = parseArp(REQUEST);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.op).toBe(ArpOp.REQUEST);
    expect(formatIpv4Addr(r.value.senderIp)).toBe("10.0.2.15");
    expect(formatIpv4Addr(r.value.targetIp)).toBe("10.0.2.2");
    const out = new Uint8Array(arpBufferLen(r.value));
    emitArp(r.value, out);
    expect(toHex(out)).toBe(toHex(REQUEST));
  });

  test("a padded reply parses through ethernet, padding ignored", () => {
    const e = parseEthernet(REPLY_FRAME);
    if (!e.ok) throw new Error(e.error);
    const r = parseArp(e.value.payload);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.op).toBe(ArpOp.REPLY);
    expect(formatMac(r.value.senderMac)).toBe("52:55:0a:00:02:02");
    expect(formatIpv4Addr(r.value.senderIp)).toBe("10.0.2.2");
    expect(formatMac(r.value.targetMac)).toBe("52:54:00:12:34:56");
    expect(formatIpv4Addr(r.value.targetIp)).toBe("10.0.2.15");
    const out = new Uint8Array(28);
    emitArp(r.value, out);
    expect(toHex(out)).toBe(toHex(REPLY_FRAME.subarray(14, 42)));
  });

  test("construct a reply from a Repr at a byte offset", () => {
    const repr: ArpRepr = {
      op: ArpOp.REPLY,
      senderMac: parseMac("52:55:0a:00:02:02")!,
      senderIp: 0x0a000202,
      targetMac: parseMac("52:54:00:12:34:56")!,
      targetIp: 0x0a00020f,
    };
    const backing = new Uint8Array(40);
    emitArp(repr, backing.subarray(5, 33));
    expect(toHex(backing.subarray(5, 33))).toBe(toHex(REPLY_FRAME.subarray(14, 42)));
    expect(backing[4]).toBe(0);
    expect(backing[33]).toBe(0);
  });

  test("malformed packets are errors", () => {
    const cases: Array<[Uint8Array, string]> = [
      [REQUEST.subarray(0, 7), "arp: packet length 7 < fixed header length 8"],
      [REQUEST.subarray(0, 27), "arp: packet length 27 < 28 needed for hlen 6, plen 4"],
      [Uint8Array.of(0, 1, 8, 0, 255, 255, 0, 1, ...new Uint8Array(100)), "arp: packet length 108 < 1028 needed for hlen 255, plen 255"],
    ];
    const edit = (i: number, v: number): Uint8Array => {
      const b = REQUEST.slice();
      b[i] = v;
      return b;
    };
    cases.push([edit(1, 6), "arp: hardware type 6 is not Ethernet (1)"]);
    cases.push([edit(3, 0xdd), "arp: protocol type 0x8dd is not IPv4 (0x800)"]);
    cases.push([edit(7, 3), "arp: operation 3 is not request (1) or reply (2)"]);
    // 28 bytes still hold 8 + 2 * (4 + 4), so these pass the length check and fail on the value
    cases.push([edit(4, 4), "arp: hardware address length 4 != 6"]);
    cases.push([edit(5, 2), "arp: protocol address length 2 != 4"]);
    for (const [bytes, msg] of cases) {
      const r = parseArp(bytes);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(msg);
    }
  });
});
