// Tests for ICMP echo, destination unreachable and time exceeded, from literal captured-style bytes.
import { test, expect, describe } from "vitest";
import {
  IcmpPacket,
  IcmpType,
  TimeExceededCode,
  UnreachableCode,
  emitIcmp,
  icmpBufferLen,
  parseIcmp,
  parseQuoted,
  quoteDatagram,
  type IcmpRepr,
} from "./icmp.ts";
import { IpProtocol, emitIpv4, ipv4BufferLen, parseIpv4 } from "./ipv4.ts";
import { parseEthernet } from "./ethernet.ts";
import { parseUdp } from "./udp.ts";

const hex = (...lines: string[]): Uint8Array => Uint8Array.from(lines.join(" ").trim().split(/\s+/), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

// `ping -c1 8.8.8.8` from a Linux guest: Ethernet + IPv4 + ICMP echo request, id 0x0c5a seq 1,
// 56 data bytes = 16-byte struct timeval then 0x10..0x37.
const PING_FRAME = hex(
  "52 55 0a 00 02 02 52 54 00 12 34 56 08 00 45 00",
  "00 54 3b 7e 40 00 40 01 e3 0c 0a 00 02 0f 08 08",
  "08 08 08 00 6d 06 0c 5a 00 01 b1 a3 64 65 00 00",
  "00 00 a5 c2 04 00 00 00 00 00 10 11 12 13 14 15",
  "16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25",
  "26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35",
  "36 37",
);
// Port unreachable from 10.0.2.3 (TOS 0xc0 as Linux sends errors) quoting a whole DNS query to port 53.
const UNREACH_FRAME = hex(
  "52 54 00 12 34 56 52 55 0a 00 02 02 08 00 45 c0",
  "00 55 00 00 00 00 40 01 61 d7 0a 00 02 03 0a 00",
  "02 0f 03 03 15 45 00 00 00 00 45 00 00 39 1a 2b",
  "40 00 40 11 08 78 0a 00 02 0f 0a 00 02 03 d4 31",
  "00 35 00 25 97 f0 ab cd 01 00 00 01 00 00 00 00",
  "00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00",
  "01 00 01",
);
// TTL exceeded in transit from router 10.0.2.2, quoting a traceroute UDP probe (TTL 1, port 33434):
// header + 64 bits, the RFC 792 minimum.
const TIMEX_FRAME = hex(
  "52 54 00 12 34 56 52 55 0a 00 02 02 08 00 45 c0",
  "00 38 77 aa 00 00 ff 01 2b 4a 0a 00 02 02 0a 00",
  "02 0f 0b 00 3d 52 00 00 00 00 45 00 00 3c 5c 01",
  "00 00 01 11 15 98 0a 00 02 0f cb 00 71 09 ab e1",
  "82 9a 00 28 89 09",
);

/** The ICMP message inside an Ethernet/IPv4 frame. */
function icmpOf(frame: Uint8Array): Uint8Array {
  const e = parseEthernet(frame);
  if (!e.ok) throw new Error(e.error);
  const ip = parseIpv4(e.value.payload);
  if (!ip.ok) throw new Error(ip.error);
  expect(ip.value.protocol).toBe(IpProtocol.ICMP);
  return ip.value.payload;
}

/** A copy of an ICMP message with byte i set to v and the checksum redone. */
function edited(msg: Uint8Array, i: number, v: number): Uint8Array {
  const c = msg.slice();
  c[i] = v;
  new IcmpPacket(c).fillChecksum();
  return c;
}

describe("icmp echo", () => {
  test("deconstruct", () => {
    const c = IcmpPacket.check(icmpOf(PING_FRAME));
    if (!c.ok) throw new Error(c.error);
    const p = c.value;
    expect(p.msgType).toBe(IcmpType.ECHO_REQUEST);
    expect(p.code).toBe(0);
    expect(p.checksum).toBe(0x6d06);
    expect(p.ident).toBe(0x0c5a);
    expect(p.seq).toBe(1);
    expect(p.data.length).toBe(56);
    expect(p.data[16]).toBe(0x10);
    expect(p.verifyChecksum()).toBe(true);
  });

  test("parse and emit back byte for byte", () => {
    const msg = icmpOf(PING_FRAME);
    const r = parseIcmp(msg);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.kind).toBe("echoRequest");
    if (r.value.kind !== "echoRequest") return;
    expect([r.value.ident, r.value.seq, r.value.data.length]).toEqual([0x0c5a, 1, 56]);
    const out = new Uint8Array(icmpBufferLen(r.value));
    emitIcmp(r.value, out);
    expect(toHex(out)).toBe(toHex(msg));
  });

  test("construct the echo reply a stack would send, inside IPv4", () => {
    const req = parseIcmp(icmpOf(PING_FRAME));
    if (!req.ok || req.value.kind !== "echoRequest") throw new Error("not an echo request");
    const reply: IcmpRepr = { kind: "echoReply", ident: req.value.ident, seq: req.value.seq, data: req.value.data };
    const icmpBuf = new Uint8Array(icmpBufferLen(reply));
    emitIcmp(reply, icmpBuf);
    // Only type and checksum change: 0x6d06 + 0x0800 (RFC 1624 reasoning).
    expect(toHex(icmpBuf.subarray(0, 4))).toBe("00 00 75 06");
    const ipRepr = {
      src: 0x08080808,
      dst: 0x0a00020f,
      protocol: IpProtocol.ICMP,
      ttl: 118,
      tos: 0,
      ident: 0,
      dontFrag: false,
      moreFrags: false,
      fragOffset: 0,
      payload: icmpBuf,
    };
    const ipBuf = new Uint8Array(ipv4BufferLen(ipRepr));
    emitIpv4(ipRepr, ipBuf);
    const back = parseIpv4(ipBuf);
    if (!back.ok) throw new Error(back.error);
    const r = parseIcmp(back.value.payload);
    expect(r.ok && r.value).toEqual(reply);
  });

  test("emit into a larger buffer checksums only the message", () => {
    const r = parseIcmp(icmpOf(PING_FRAME));
    if (!r.ok) throw new Error(r.error);
    const big = new Uint8Array(200).fill(0x99);
    emitIcmp(r.value, big);
    expect(toHex(big.subarray(0, 64))).toBe(toHex(icmpOf(PING_FRAME)));
    expect(big[64]).toBe(0x99);
  });
});

describe("icmp errors", () => {
  test("port unreachable: parse, find the DNS socket from the quote, emit back", () => {
    const msg = icmpOf(UNREACH_FRAME);
    const r = parseIcmp(msg);
    if (!r.ok) throw new Error(r.error);
    if (r.value.kind !== "destUnreachable") throw new Error(r.value.kind);
    expect(r.value.code).toBe(UnreachableCode.PORT);
    expect(r.value.mtu).toBe(0);
    expect(r.value.quoted.length).toBe(57);
    const q = parseQuoted(r.value.quoted);
    if (!q.ok) throw new Error(q.error);
    expect(q.value).toMatchObject({ src: 0x0a00020f, dst: 0x0a000203, protocol: IpProtocol.UDP });
    expect(toHex(q.value.data.subarray(0, 4))).toBe("d4 31 00 35"); // 54321 -> 53
    // the quote is the whole original datagram here, so it even parses as UDP
    const u = parseUdp(q.value.data, q.value.src, q.value.dst);
    expect(u.ok && u.value.dstPort).toBe(53);
    const out = new Uint8Array(icmpBufferLen(r.value));
    emitIcmp(r.value, out);
    expect(toHex(out)).toBe(toHex(msg));
  });

  test("construct port unreachable from the offending datagram", () => {
    const offending = icmpOf(UNREACH_FRAME).subarray(8);
    const repr: IcmpRepr = { kind: "destUnreachable", code: UnreachableCode.PORT, mtu: 0, quoted: quoteDatagram(offending) };
    const out = new Uint8Array(icmpBufferLen(repr));
    emitIcmp(repr, out);
    expect(toHex(out)).toBe(toHex(icmpOf(UNREACH_FRAME)));
    expect(quoteDatagram(new Uint8Array(1500)).length).toBe(548);
  });

  test("fragmentation needed carries the next-hop MTU (RFC 1191)", () => {
    const quoted = icmpOf(UNREACH_FRAME).subarray(8);
    const repr: IcmpRepr = { kind: "destUnreachable", code: UnreachableCode.FRAG_NEEDED, mtu: 1400, quoted };
    const out = new Uint8Array(icmpBufferLen(repr));
    emitIcmp(repr, out);
    expect(toHex(out.subarray(4, 8))).toBe("00 00 05 78");
    const r = parseIcmp(out);
    expect(r.ok && r.value).toEqual(repr);
  });

  test("time exceeded: parse, quote, emit back", () => {
    const msg = icmpOf(TIMEX_FRAME);
    const r = parseIcmp(msg);
    if (!r.ok) throw new Error(r.error);
    expect(r.value).toMatchObject({ kind: "timeExceeded", code: TimeExceededCode.TTL });
    if (r.value.kind !== "timeExceeded") return;
    const q = parseQuoted(r.value.quoted);
    if (!q.ok) throw new Error(q.error);
    expect(q.value.protocol).toBe(IpProtocol.UDP);
    expect(q.value.dst).toBe(0xcb007109);
    expect(q.value.data.length).toBe(8);
    expect((q.value.data[2]! << 8) | q.value.data[3]!).toBe(33434);
    const out = new Uint8Array(icmpBufferLen(r.value));
    emitIcmp(r.value, out);
    expect(toHex(out)).toBe(toHex(msg));
  });

  test("malformed messages are errors that say what was wrong", () => {
    const ping = icmpOf(PING_FRAME);
    const unr = icmpOf(UNREACH_FRAME);
    const timex = icmpOf(TIMEX_FRAME);
    const shortQuote = timex.slice(0, 8 + 27);
    new IcmpPacket(shortQuote).fillChecksum();
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array(0), "icmp: message length 0 < header length 8"],
      [ping.subarray(0, 7), "icmp: message length 7 < header length 8"],
      [ping.subarray(0, 60), "icmp: bad checksum 0x6d06"],
      [edited(ping, 0, 13), "icmp: unsupported type 13 (code 0)"],
      [edited(unr, 8, 0x65), "icmp: type 3: quoted IP version 6 != 4"],
      [edited(unr, 8, 0x44), "icmp: type 3: quoted IPv4 header length 4 < 5"],
      [edited(unr, 8, 0x4f), "icmp: type 3: quoted length 57 < header length 60 + 8 data bytes"],
      [shortQuote, "icmp: type 11: quoted length 27 < header length 20 + 8 data bytes"],
      [edited(unr.subarray(0, 27), 0, 3), "icmp: type 3: quoted length 19 < IPv4 header length 20"],
    ];
    for (const [bytes, msg] of cases) {
      const r = parseIcmp(bytes);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(msg);
    }
    const corrupt = ping.slice();
    corrupt[10] ^= 1;
    expect(parseIcmp(corrupt).ok).toBe(false);
    expect(parseIcmp(corrupt, false).ok).toBe(true);
  });
});
