// Tests for Ethernet II frames, from literal captured-style bytes.
import { test, expect, describe } from "vitest";
import { EtherType, EthernetFrame, emitEthernet, ethernetBufferLen, parseEthernet, type EthernetRepr } from "./ethernet.ts";
import { formatMac, parseMac } from "./addr.ts";

const hex = (...lines: string[]): Uint8Array => Uint8Array.from(lines.join(" ").trim().split(/\s+/), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

// ARP request broadcast by a QEMU guest (52:54:00:12:34:56) for its gateway 10.0.2.2.
const ARP_FRAME = hex(
  "ff ff ff ff ff ff 52 54 00 12 34 56 08 06 00 01",
  "08 00 06 04 00 01 52 54 00 12 34 56 0a 00 02 0f",
  "00 00 00 00 00 00 0a 00 02 02",
);

describe("ethernet", () => {
  test("deconstruct", () => {
    const c = EthernetFrame.check(ARP_FRAME);
    expect(c.ok).toBe(true);
    if (!c.ok) return;
    expect(formatMac(c.value.dst)).toBe("ff:ff:ff:ff:ff:ff");
    expect(formatMac(c.value.src)).toBe("52:54:00:12:34:56");
    expect(c.value.etherType).toBe(EtherType.ARP);
    expect(c.value.payload.length).toBe(28);
    expect(c.value.payload[0]).toBe(0x00);
    expect(c.value.payload[7]).toBe(0x01);
  });

  test("parse, emit back byte for byte", () => {
    const r = parseEthernet(ARP_FRAME);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.etherType).toBe(0x0806);
    expect(ethernetBufferLen(r.value)).toBe(ARP_FRAME.length);
    const out = new Uint8Array(ethernetBufferLen(r.value));
    emitEthernet(r.value, out);
    expect(toHex(out)).toBe(toHex(ARP_FRAME));
  });

  test("parsed MACs are copies; payload aliases", () => {
    const frame = ARP_FRAME.slice();
    const r = parseEthernet(frame);
    if (!r.ok) throw new Error(r.error);
    frame[6] = 0xaa;
    frame[14] = 0xbb;
    expect(r.value.src[0]).toBe(0x52);
    expect(r.value.payload[0]).toBe(0xbb);
  });

  test("construct from a Repr, and setters through a view at a byte offset", () => {
    const repr: EthernetRepr = {
      dst: parseMac("ff:ff:ff:ff:ff:ff")!,
      src: parseMac("52:54:00:12:34:56")!,
      etherType: EtherType.ARP,
      payload: ARP_FRAME.subarray(14),
    };
    const backing = new Uint8Array(100);
    const buf = backing.subarray(7, 7 + ethernetBufferLen(repr));
    emitEthernet(repr, buf);
    expect(toHex(buf)).toBe(toHex(ARP_FRAME));
    const f = new EthernetFrame(buf);
    f.etherType = EtherType.IPV4;
    expect(toHex(backing.subarray(19, 21))).toBe("08 00");
    expect(backing[6]).toBe(0);
  });

  test("payload built in place is left alone", () => {
    const buf = new Uint8Array(20);
    buf.set([1, 2, 3, 4, 5, 6], 14);
    emitEthernet({ dst: new Uint8Array(6), src: new Uint8Array(6), etherType: 0x0800, payload: buf.subarray(14) }, buf);
    expect(Array.from(buf.subarray(12))).toEqual([8, 0, 1, 2, 3, 4, 5, 6]);
  });

  test("short frames are errors", () => {
    for (const n of [0, 1, 13]) {
      const r = parseEthernet(new Uint8Array(n));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(`ethernet: frame length ${n} < header length 14`);
    }
    expect(parseEthernet(new Uint8Array(14)).ok).toBe(true);
  });
});
