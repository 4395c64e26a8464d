import { describe, expect, test } from "vitest";
import { type TcpRepr, TcpFlag } from "../types.ts";
import { TcpListener } from "./listener.ts";
import { checkCookie, COOKIE_PERIOD_MS, halfSipHash, isnFor, makeCookie } from "./syncookie.ts";
import { Prng, SimLink } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const L = 0x0a000002; // listener address
const R = 0x0a000001; // client address
const seg = (p: Partial<TcpRepr>): TcpRepr => ({
  srcPort: 40000, dstPort: 80, seq: 7000, ack: 0, flags: TcpFlag.SYN, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...p,
});

describe("keyed hash and cookies", () => {
  test("HalfSipHash-2-4 matches the reference vectors", () => {
    // Reference vectors_hsip32[0] and [4]: key 00..07, messages "" and 00 01 02 03.
    expect(halfSipHash(0x03020100, 0x07060504, [])).toBe(0x5b9f35a9);
    expect(halfSipHash(0x03020100, 0x07060504, [0x03020100])).toBe(0x89466e2a);
  });

  test("ISNs differ per 4-tuple and advance with time (RFC 6528)", () => {
    const k = [1, 2] as const;
    expect(isnFor(k, 0, L, 80, R, 1)).not.toBe(isnFor(k, 0, L, 80, R, 2));
    expect((isnFor(k, 1000, L, 80, R, 1) - isnFor(k, 0, L, 80, R, 1)) >>> 0).toBe(250_000);
  });

  test("a cookie validates for its 4-tuple and ISN, carries the MSS class, and expires", () => {
    const k = [5, 6] as const;
    const c = makeCookie(k, 10_000, L, 80, R, 40000, 7000, 1460);
    expect(checkCookie(k, 10_000, c, L, 80, R, 40000, 7000)).toBe(1460);
    expect(checkCookie(k, 10_000 + COOKIE_PERIOD_MS, c, L, 80, R, 40000, 7000)).toBe(1460);
    expect(checkCookie(k, 10_000 + 2 * COOKIE_PERIOD_MS, c, L, 80, R, 40000, 7000)).toBeUndefined();
    expect(checkCookie(k, 10_000, c, L, 80, R, 40001, 7000)).toBeUndefined();
    expect(checkCookie(k, 10_000, c, L, 80, R, 40000, 7001)).toBeUndefined();
    expect(checkCookie([5, 7], 10_000, c, L, 80, R, 40000, 7000)).toBeUndefined();
    expect(checkCookie(k, 10_000, (c ^ 1) >>> 0, L, 80, R, 40000, 7000)).toBeUndefined();
    const small = makeCookie(k, 0, L, 80, R, 40000, 1, 1000);
    expect(checkCookie(k, 0, small, L, 80, R, 40000, 1)).toBe(536);
  });
});

describe("listener", () => {
  test("SYN → SYN-ACK; a retransmitted SYN gets the same SYN-ACK; the ACK completes", () => {
    const l = new TcpListener({ timestamps: false }, 8);
    const r1 = l.onSegment(0, seg({ options: { mss: 1400, sackPermitted: true } }), L, R);
    expect(r1.replies.length).toBe(1);
    const sa = r1.replies[0]!;
    expect(sa.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    expect(sa.ack).toBe(7001);
    expect(sa.options).toEqual({ mss: 1460, sackPermitted: true });
    const r2 = l.onSegment(5, seg({}), L, R);
    expect(r2.replies[0]!.seq).toBe(sa.seq);
    expect(l.synQueueLength).toBe(1);
    const r3 = l.onSegment(20, seg({ flags: TcpFlag.ACK, seq: 7001, ack: (sa.seq + 1) >>> 0 }), L, R);
    const c = r3.accepted!;
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(c.tcb.sndMss).toBe(1400);
    expect(c.tcb.sackOk).toBe(true);
    expect(c.events()).toEqual(["connected"]);
    expect(l.synQueueLength).toBe(0);
    expect(l.accept()).toBe(c);
    expect(l.accept()).toBeUndefined();
  });

  test("data on the handshake-completing ACK is delivered", () => {
    const l = new TcpListener({ timestamps: false }, 8);
    const sa = l.onSegment(0, seg({}), L, R).replies[0]!;
    const r = l.onSegment(1, seg({ flags: TcpFlag.ACK | TcpFlag.PSH, seq: 7001, ack: (sa.seq + 1) >>> 0, payload: new Uint8Array([1, 2, 3]) }), L, R);
    expect([...r.accepted!.recv()]).toEqual([1, 2, 3]);
  });

  test("an ACK matching nothing gets a RST; a RST frees a half-open entry", () => {
    const l = new TcpListener({}, 8);
    const r = l.onSegment(0, seg({ flags: TcpFlag.ACK, ack: 99 }), L, R);
    expect(r.replies.map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.RST, 99]]);
    l.onSegment(0, seg({ srcPort: 40001 }), L, R);
    expect(l.synQueueLength).toBe(1);
    l.onSegment(0, seg({ srcPort: 40001, flags: TcpFlag.RST, seq: 7001 }), L, R);
    expect(l.synQueueLength).toBe(0);
    expect(l.onSegment(0, seg({ flags: TcpFlag.SYN | TcpFlag.ACK, ack: 5 }), L, R).replies[0]!.flags).toBe(TcpFlag.RST);
  });

  test("SYN-ACKs are retransmitted with backoff, then the entry is dropped", () => {
    const l = new TcpListener({ initialRtoMs: 1000 }, 8 as number);
    l.onSegment(0, seg({}), L, R);
    const times: number[] = [];
    for (let now = 0; now < 100_000 && l.synQueueLength > 0; now += 100) {
      if (l.onTick(now).length) times.push(now);
    }
    expect(times).toEqual([1000, 3000, 7000, 15000, 31000]);
    expect(l.stats.synTimeouts).toBe(1);
  });

  test("a full accept queue drops new SYNs", () => {
    const l = new TcpListener({ timestamps: false }, 1);
    const sa = l.onSegment(0, seg({}), L, R).replies[0]!;
    l.onSegment(0, seg({ flags: TcpFlag.ACK, seq: 7001, ack: (sa.seq + 1) >>> 0 }), L, R);
    expect(l.acceptQueueLength).toBe(1);
    expect(l.onSegment(0, seg({ srcPort: 40001 }), L, R).replies).toEqual([]);
    expect(l.stats.acceptQueueDrops).toBe(1);
  });

  test("SYN cookies when the SYN queue is full: stateless, and the options come back through the timestamp", () => {
    const l = new TcpListener({ synQueueSize: 0 }, 8);
    const syn = seg({ options: { mss: 1460, wscale: 6, sackPermitted: true, timestamp: { val: 111, ecr: 0 } } });
    const sa = l.onSegment(70_000, syn, L, R).replies[0]!;
    expect(l.synQueueLength).toBe(0);
    expect(l.stats.cookiesSent).toBe(1);
    expect(checkCookie([0x6e657774, 0x73746370], 70_000, sa.seq, L, 80, R, 40000, 7000)).toBe(1460);
    const ack = seg({ flags: TcpFlag.ACK, seq: 7001, ack: (sa.seq + 1) >>> 0, window: 1000, options: { timestamp: { val: 112, ecr: sa.options.timestamp!.val } } });
    const r = l.onSegment(70_010, ack, L, R);
    const c = r.accepted!;
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(c.tcb.sndMss).toBe(1460 - 12);
    expect(c.tcb.sndWscale).toBe(6);
    expect(c.tcb.sndWnd).toBe(64000);
    expect(c.tcb.sackOk).toBe(true);
    expect(c.tcb.tsOk).toBe(true);
    expect(l.stats.cookiesAccepted).toBe(1);
    // A forged ACK (wrong cookie) and a stale one are refused with RST.
    expect(l.onSegment(70_020, seg({ flags: TcpFlag.ACK, seq: 9001, ack: 12345, srcPort: 40002 }), L, R).replies[0]!.flags).toBe(TcpFlag.RST);
    expect(l.onSegment(70_000 + 3 * COOKIE_PERIOD_MS, { ...ack, srcPort: 40000 }, L, R).accepted).toBeUndefined();
    expect(l.stats.cookiesRejected).toBe(2);
  });

  test("a listener flooded with 10,000 SYNs still completes a real handshake and carries data", () => {
    const link = new SimLink({ seed: 8 });
    const a = link.host(R);
    const b = link.host(L);
    const l = b.listen(80, 64);
    const r = new Prng(99);
    for (let i = 0; i < 10_000; i++) {
      // Spoofed sources: their SYN-ACKs go nowhere, their half-open entries never complete.
      b.receive(link.now, seg({ srcPort: 1024 + (r.next() % 60000), seq: r.next(), options: { mss: 1460 } }), r.next() | 0x01000000);
    }
    expect(l.synQueueLength).toBe(128); // the SYN queue holds max(backlog, 128)
    expect(l.stats.cookiesSent).toBe(10_000 - 128);
    const c = a.connect(link.now, 40000, L, 80);
    expect(link.run({ until: () => c.state === TcpState.ESTABLISHED && l.acceptQueueLength === 1, maxMs: 10_000 })).toBe(true);
    expect(l.stats.cookiesAccepted).toBe(1);
    const s = l.accept()!;
    c.send(new Uint8Array(100_000).fill(4));
    let got = 0;
    link.run({ app: () => { got += s.recv().length; }, until: () => got === 100_000, maxMs: 60_000 });
    expect(got).toBe(100_000);
    expect(s.tcb.sackOk && s.tcb.wsOk).toBe(true); // recovered from the timestamp echo
  });
});
