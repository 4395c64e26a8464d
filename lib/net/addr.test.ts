// Tests for IPv4/MAC address text helpers.
import { test, expect, describe } from "vitest";
import {
  broadcastMac,
  formatIpv4Addr,
  formatMac,
  inSubnet,
  ipv4FromBytes,
  ipv4ToBytes,
  isBroadcastMac,
  isMulticastIpv4,
  isMulticastMac,
  macEqual,
  parseIpv4Addr,
  parseMac,
  prefixMask,
} from "./addr.ts";

describe("ipv4 text", () => {
  test("parses and formats round trip", () => {
    expect(parseIpv4Addr("10.0.2.15")).toBe(0x0a00020f);
    expect(parseIpv4Addr("255.255.255.255")).toBe(0xffffffff);
    expect(parseIpv4Addr("0.0.0.0")).toBe(0);
    expect(formatIpv4Addr(0x0a00020f)).toBe("10.0.2.15");
    expect(formatIpv4Addr(0xc0a80001)).toBe("192.168.0.1");
    expect(formatIpv4Addr(-1)).toBe("255.255.255.255");
  });

  test("bad text is null, never a throw", () => {
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1..2.3", "a.b.c.d", " 1.2.3.4", "1.2.3.-4", "1e2.0.0.1", "1.2.3.4."])
      expect(parseIpv4Addr(bad)).toBeNull();
  });

  test("bytes, masks, subnets, multicast", () => {
    expect(Array.from(ipv4ToBytes(0x0a00020f))).toEqual([10, 0, 2, 15]);
    expect(ipv4FromBytes(Uint8Array.of(9, 10, 0, 2, 15), 1)).toBe(0x0a00020f);
    expect(ipv4FromBytes(Uint8Array.of(10, 0, 2))).toBeNull();
    expect(prefixMask(24)).toBe(0xffffff00);
    expect(prefixMask(0)).toBe(0);
    expect(prefixMask(32)).toBe(0xffffffff);
    expect(inSubnet(0x0a00020f, 0x0a000200, 24)).toBe(true);
    expect(inSubnet(0x0a00030f, 0x0a000200, 24)).toBe(false);
    expect(isMulticastIpv4(0xe0000001)).toBe(true);
    expect(isMulticastIpv4(0x0a000001)).toBe(false);
  });
});

describe("mac text", () => {
  test("parses and formats round trip", () => {
    const m = parseMac("52:54:00:12:34:56");
    expect(m && Array.from(m)).toEqual([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    expect(formatMac(m!)).toBe("52:54:00:12:34:56");
    expect(formatMac(parseMac("AA-BB-CC-0-1-f")!)).toBe("aa:bb:cc:00:01:0f");
  });

  test("bad text is null", () => {
    for (const bad of ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:5g", "525:4:00:12:34:56", "52-54:00:12:34:56", "52::00:12:34:56"])
      expect(parseMac(bad)).toBeNull();
  });

  test("broadcast, multicast, equality", () => {
    const b = broadcastMac();
    expect(isBroadcastMac(b)).toBe(true);
    expect(isMulticastMac(b)).toBe(true);
    b[0] = 0; // a fresh copy each call: scribbling does not leak
    expect(isBroadcastMac(broadcastMac())).toBe(true);
    expect(isMulticastMac(parseMac("01:00:5e:00:00:01")!)).toBe(true);
    expect(isMulticastMac(parseMac("52:54:00:12:34:56")!)).toBe(false);
    expect(macEqual(parseMac("52:54:00:12:34:56")!, Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56))).toBe(true);
    expect(macEqual(parseMac("52:54:00:12:34:56")!, parseMac("52:54:00:12:34:57")!)).toBe(false);
  });
});
