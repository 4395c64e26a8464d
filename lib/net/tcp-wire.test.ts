// Tests for TCP segments and options, from literal captured-style bytes.
import { test, expect, describe } from "vitest";
import {
  TcpPacket,
  emitTcp,
  emitTcpOptions,
  parseTcp,
  parseTcpOptions,
  tcpBufferLen,
  tcpOptionsLen,
  tcpSeqLen,
} from "./tcp-wire.ts";
import { TcpFlag, type TcpOptions, type TcpRepr } from "./types.ts";
import { IpProtocol, parseIpv4 } from "./ipv4.ts";
import { parseEthernet } from "./ethernet.ts";

const hex = (...lines: string[]): Uint8Array => Uint8Array.from(lines.join(" ").trim().split(/\s+/), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

const GUEST = 0x0a00020f; // 10.0.2.15
const SERVER = 0x5db8d822; // 93.184.216.34

// `curl http://93.184.216.34/` from Linux: the SYN. Options as Linux writes them:
// MSS 1460, SACK-permitted + timestamps (TSval 0x001d8a4b), NOP, window scale 7.
const SYN_FRAME = hex(
  "52 55 0a 00 02 02 52 54 00 12 34 56 08 00 45 00",
  "00 3c 8c 2e 40 00 40 06 6c a4 0a 00 02 0f 5d b8",
  "d8 22 a8 ca 00 50 5b 9c 1e 3a 00 00 00 00 a0 02",
  "fa f0 5d cc 00 00 02 04 05 b4 04 02 08 0a 00 1d",
  "8a 4b 00 00 00 00 01 03 03 07",
);
// The server's PSH|ACK with data, timestamps and two SACK blocks (data offset 13).
const SACK_FRAME = hex(
  "52 54 00 12 34 56 52 55 0a 00 02 02 08 00 45 00",
  "00 59 4e 21 40 00 40 06 aa 94 5d b8 d8 22 0a 00",
  "02 0f 00 50 a8 ca 12 34 56 78 5b 9c 1e 8a d0 18",
  "01 f5 71 6c 00 00 01 01 08 0a 9a 3c 1f 07 00 1d",
  "8a 60 01 01 05 12 12 34 5c 2d 12 34 61 e1 12 34",
  "67 95 12 34 6d 49 48 54 54 50 2f 31 2e 31 20 32",
  "30 30 20 4f 4b 0d 0a",
);
const SYN = SYN_FRAME.subarray(34);
const SACK = SACK_FRAME.subarray(34);

/** A copy of a segment with byte i set to v and the checksum redone for GUEST -> SERVER. */
function edited(seg: Uint8Array, i: number, v: number): Uint8Array {
  const c = seg.slice();
  c[i] = v;
  new TcpPacket(c).fillChecksum(GUEST, SERVER);
  return c;
}

/** A SYN segment whose option bytes are `opts` (padded with EOL to 4), checksummed GUEST -> SERVER. */
function withOptions(opts: number[]): Uint8Array {
  const olen = (opts.length + 3) & ~3;
  const seg = new Uint8Array(20 + olen);
  seg.set(SYN.subarray(0, 20));
  seg.set(opts, 20);
  new TcpPacket(seg).headerLen = 20 + olen;
  seg[13] = TcpFlag.SYN;
  new TcpPacket(seg).fillChecksum(GUEST, SERVER);
  return seg;
}

describe("tcp segments", () => {
  test("deconstruct a Linux SYN", () => {
    const c = TcpPacket.check(SYN);
    if (!c.ok) throw new Error(c.error);
    const p = c.value;
    expect([p.srcPort, p.dstPort]).toEqual([43210, 80]);
    expect(p.seq).toBe(0x5b9c1e3a);
    expect(p.ack).toBe(0);
    expect(p.headerLen).toBe(40);
    expect(p.flags).toBe(TcpFlag.SYN);
    expect(p.window).toBe(64240);
    expect(p.checksum).toBe(0x5dcc);
    expect(p.urgent).toBe(0);
    expect(p.options.length).toBe(20);
    expect(p.payload.length).toBe(0);
    expect(p.verifyChecksum(GUEST, SERVER)).toBe(true);
  });

  test("parse a SYN through the stack, emit it back byte for byte", () => {
    const e = parseEthernet(SYN_FRAME);
    if (!e.ok) throw new Error(e.error);
    const ip = parseIpv4(e.value.payload);
    if (!ip.ok) throw new Error(ip.error);
    expect(ip.value.protocol).toBe(IpProtocol.TCP);
    const r = parseTcp(ip.value.payload, ip.value.src, ip.value.dst);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.options).toEqual({ mss: 1460, sackPermitted: true, timestamp: { val: 0x001d8a4b, ecr: 0 }, wscale: 7 });
    expect(tcpSeqLen(r.value)).toBe(1);
    const out = new Uint8Array(tcpBufferLen(r.value));
    emitTcp(r.value, out, GUEST, SERVER);
    expect(toHex(out)).toBe(toHex(SYN));
  });

  test("parse data with timestamps and SACK blocks, emit back byte for byte", () => {
    const r = parseTcp(SACK, SERVER, GUEST);
    if (!r.ok) throw new Error(r.error);
    const v = r.value;
    expect(v.flags).toBe(TcpFlag.PSH | TcpFlag.ACK);
    expect([v.seq, v.ack, v.window]).toEqual([0x12345678, 0x5b9c1e8a, 501]);
    expect(v.options.timestamp).toEqual({ val: 0x9a3c1f07, ecr: 0x001d8a60 });
    expect(v.options.sack).toEqual([
      [0x12345678 + 1461, 0x12345678 + 2921],
      [0x12345678 + 4381, 0x12345678 + 5841],
    ]);
    expect(new TextDecoder().decode(v.payload)).toBe("HTTP/1.1 200 OK\r\n");
    expect(tcpSeqLen(v)).toBe(17);
    const out = new Uint8Array(tcpBufferLen(v));
    emitTcp(v, out, SERVER, GUEST);
    expect(toHex(out)).toBe(toHex(SACK));
  });

  test("construct a SYN from a Repr into a subarray", () => {
    const repr: TcpRepr = {
      srcPort: 43210,
      dstPort: 80,
      seq: 0x5b9c1e3a,
      ack: 0,
      flags: TcpFlag.SYN,
      window: 64240,
      urgent: 0,
      options: { mss: 1460, sackPermitted: true, timestamp: { val: 0x001d8a4b, ecr: 0 }, wscale: 7 },
      payload: new Uint8Array(0),
    };
    const backing = new Uint8Array(80).fill(0xcc);
    const buf = backing.subarray(9, 9 + tcpBufferLen(repr));
    emitTcp(repr, buf, GUEST, SERVER);
    expect(toHex(buf)).toBe(toHex(SYN));
    expect(backing[8]).toBe(0xcc);
    expect(backing[49]).toBe(0xcc);
  });

  test("payload built in place at the wrong guess is moved, not clobbered, by the options", () => {
    const buf = new Uint8Array(60);
    buf.set([1, 2, 3, 4, 5], 20); // written assuming no options
    const repr: TcpRepr = {
      srcPort: 1,
      dstPort: 2,
      seq: 3,
      ack: 4,
      flags: TcpFlag.ACK | TcpFlag.PSH,
      window: 5,
      urgent: 0,
      options: { timestamp: { val: 1, ecr: 2 } },
      payload: buf.subarray(20, 25),
    };
    emitTcp(repr, buf.subarray(0, tcpBufferLen(repr)), GUEST, SERVER);
    const r = parseTcp(buf.subarray(0, tcpBufferLen(repr)), GUEST, SERVER);
    expect(r.ok && Array.from(r.value.payload)).toEqual([1, 2, 3, 4, 5]);
  });

  test("emit can leave the checksum to the device", () => {
    const r = parseTcp(SYN, GUEST, SERVER);
    if (!r.ok) throw new Error(r.error);
    const out = new Uint8Array(tcpBufferLen(r.value) + 10);
    emitTcp(r.value, out, GUEST, SERVER, false);
    expect(new TcpPacket(out).checksum).toBe(0);
    expect(parseTcp(out.subarray(0, 40), GUEST, SERVER).ok).toBe(false);
    expect(parseTcp(out.subarray(0, 40), GUEST, SERVER, false).ok).toBe(true);
  });

  test("malformed segments are errors that say what was wrong", () => {
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array(0), "tcp: segment length 0 < minimum header length 20"],
      [SYN.subarray(0, 19), "tcp: segment length 19 < minimum header length 20"],
      [edited(SYN, 12, 0x40), "tcp: data offset 4 < 5"],
      [edited(SYN, 12, 0x00), "tcp: data offset 0 < 5"],
      [edited(SYN, 12, 0xb0), "tcp: header length 44 (data offset 11) > segment length 40"],
      [SYN.subarray(0, 39), "tcp: header length 40 (data offset 10) > segment length 39"],
      [edited(edited(SYN, 0, 0), 1, 0), "tcp: port 0 (0 -> 80) is reserved"],
      [edited(edited(SYN, 2, 0), 3, 0), "tcp: port 0 (43210 -> 0) is reserved"],
    ];
    const zeroed = SYN.slice();
    zeroed[16] = 0;
    zeroed[17] = 0;
    cases.push([zeroed, "tcp: bad checksum 0x0000"]);
    const corrupt = SYN.slice();
    corrupt[4] ^= 0x80; // one bit of the sequence number
    cases.push([corrupt, "tcp: bad checksum 0x5dcc"]);
    for (const [bytes, msg] of cases) {
      const r = parseTcp(bytes, GUEST, SERVER);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(msg);
    }
    expect(parseTcp(corrupt, GUEST, SERVER, false).ok).toBe(true);
  });
});

describe("tcp options", () => {
  test("each kind, NOP padding, EOL ends the list, unknown kinds skipped by length", () => {
    const r = parseTcpOptions(
      Uint8Array.of(1, 1, 0x1e, 6, 9, 9, 9, 9, 2, 4, 0x23, 0x28, 3, 3, 14, 4, 2, 0, 2, 4, 0, 1),
    );
    expect(r.ok && r.value).toEqual({ mss: 9000, wscale: 14, sackPermitted: true });
    const sack = parseTcpOptions(Uint8Array.of(5, 10, 0, 0, 0, 1, 0, 0, 0, 2));
    expect(sack.ok && sack.value).toEqual({ sack: [[1, 2]] });
    expect(parseTcpOptions(new Uint8Array(0))).toEqual({ ok: true, value: {} });
    expect(parseTcpOptions(new Uint8Array(40))).toEqual({ ok: true, value: {} }); // all EOL
  });

  test("window scale above 14 is clamped to 14 (RFC 7323 §2.3)", () => {
    const r = parseTcpOptions(Uint8Array.of(3, 3, 200));
    expect(r.ok && r.value.wscale).toBe(14);
  });

  test("option errors: lengths 0 and 1, running past the header, wrong sizes", () => {
    const cases: Array<[number[], string]> = [
      [[2], "tcp: option kind 2 at 0 has no length byte"],
      [[1, 1, 1, 0x1e], "tcp: option kind 30 at 3 has no length byte"],
      [[0x1e, 0], "tcp: option kind 30 at 0 has length 0 < 2"],
      [[8, 1, 0, 0], "tcp: option kind 8 at 0 has length 1 < 2"],
      [[1, 8, 10, 0, 0, 0, 0, 0, 0], "tcp: option kind 8 at 1 length 10 runs past the header (9 option bytes)"],
      [[0x1e, 40, 0, 0], "tcp: option kind 30 at 0 length 40 runs past the header (4 option bytes)"],
      [[2, 3, 5, 0], "tcp: MSS option length 3 != 4"],
      [[3, 4, 7, 0], "tcp: window scale option length 4 != 3"],
      [[4, 3, 0, 0], "tcp: SACK-permitted option length 3 != 2"],
      [[5, 9, 0, 0, 0, 0, 0, 0, 0], "tcp: SACK option length 9 != 2 + 8n with n in 1..4"],
      [[5, 2, 0, 0], "tcp: SACK option length 2 != 2 + 8n with n in 1..4"],
      [[8, 8, 0, 0, 0, 0, 0, 0], "tcp: timestamp option length 8 != 10"],
    ];
    for (const [bytes, msg] of cases) {
      const r = parseTcpOptions(Uint8Array.from(bytes));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(msg);
    }
    // and the same errors come out of a whole segment
    const seg = parseTcp(withOptions([0x1e, 0]), GUEST, SERVER);
    expect(seg.ok ? "parsed" : seg.error).toBe("tcp: option kind 30 at 0 has length 0 < 2");
    const seg2 = parseTcp(withOptions([0x1e, 6, 1, 2]), GUEST, SERVER);
    expect(seg2.ok ? "parsed" : seg2.error).toBe(
      "tcp: option kind 30 at 0 length 6 runs past the header (4 option bytes)",
    );
  });

  test("emit layouts match Linux and are 4-byte aligned", () => {
    const enc = (o: TcpOptions): string => {
      const b = new Uint8Array(40);
      const n = emitTcpOptions(o, b);
      expect(n).toBe(tcpOptionsLen(o));
      expect(n % 4).toBe(0);
      return toHex(b.subarray(0, n));
    };
    expect(enc({})).toBe("");
    expect(enc({ mss: 1460 })).toBe("02 04 05 b4");
    expect(enc({ sackPermitted: true })).toBe("01 01 04 02");
    expect(enc({ timestamp: { val: 1, ecr: 2 } })).toBe("01 01 08 0a 00 00 00 01 00 00 00 02");
    expect(enc({ wscale: 0 })).toBe("01 03 03 00");
    expect(enc({ sack: [[0xffffffff, 5]] })).toBe("01 01 05 0a ff ff ff ff 00 00 00 05");
  });

  test("SACK blocks that do not fit in 40 bytes are dropped (3 with timestamps, RFC 2018 §3)", () => {
    const blocks: Array<[number, number]> = [
      [1, 2],
      [3, 4],
      [5, 6],
      [7, 8],
    ];
    expect(tcpOptionsLen({ sack: blocks })).toBe(36);
    expect(tcpOptionsLen({ sack: blocks, timestamp: { val: 0, ecr: 0 } })).toBe(40);
    expect(tcpOptionsLen({ sack: [...blocks, [9, 10]] })).toBe(36);
    const repr: TcpRepr = {
      srcPort: 80,
      dstPort: 43210,
      seq: 1,
      ack: 2,
      flags: TcpFlag.ACK,
      window: 100,
      urgent: 0,
      options: { sack: blocks, timestamp: { val: 7, ecr: 8 } },
      payload: new Uint8Array(0),
    };
    const buf = new Uint8Array(tcpBufferLen(repr));
    expect(buf.length).toBe(60);
    emitTcp(repr, buf, SERVER, GUEST);
    const r = parseTcp(buf, SERVER, GUEST);
    if (!r.ok) throw new Error(r.error);
    expect(r.value.options.sack).toEqual(blocks.slice(0, 3));
    expect(r.value.options.timestamp).toEqual({ val: 7, ecr: 8 });
  });

  test("every option set round trips through emit and parse", () => {
    const sets: TcpOptions[] = [
      {},
      { mss: 536 },
      { mss: 65535, wscale: 14, sackPermitted: true },
      { timestamp: { val: 0xffffffff, ecr: 0x80000000 } },
      { sackPermitted: true, wscale: 2 },
      { sack: [[0xfffffff0, 0x10]], timestamp: { val: 1, ecr: 1 } },
      { mss: 1400, sackPermitted: true, timestamp: { val: 3, ecr: 4 }, wscale: 9, sack: [[1, 2]] },
    ];
    for (const o of sets) {
      const b = new Uint8Array(tcpOptionsLen(o));
      emitTcpOptions(o, b);
      const r = parseTcpOptions(b);
      expect(r.ok && r.value).toEqual(o);
    }
  });

  test("sequence length counts SYN and FIN", () => {
    const base: TcpRepr = { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0, urgent: 0, options: {}, payload: new Uint8Array(3) };
    expect(tcpSeqLen(base)).toBe(3);
    expect(tcpSeqLen({ ...base, flags: TcpFlag.SYN | TcpFlag.FIN })).toBe(5);
  });
});
