import { describe, expect, test } from "vitest";
import { type TcpRepr, TcpFlag } from "../types.ts";
import { Prng, Scripted, SimLink } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);
const OPTS = { mss: 1460, sackPermitted: true, wscale: 2 };
const TS = (val: number, ecr = 0) => ({ timestamp: { val, ecr } });

describe("RST rules (RFC 9293 §3.10.7.4, RFC 5961 §3)", () => {
  test("a RST at exactly RCV.NXT resets the connection", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS);
    s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(0) });
    expect(s.c.state).toBe(TcpState.CLOSED);
    expect(s.c.events()).toEqual(["reset", "closed"]);
    expect(s.poll()).toEqual([]);
  });

  test("a RST in the window but not exact draws a challenge ACK and changes nothing", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS);
    s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(1000) });
    expect(s.c.state).toBe(TcpState.ESTABLISHED);
    expect(s.poll().map((x) => [x.flags, x.seq, x.ack])).toEqual([[TcpFlag.ACK, s.ourSeq(0), s.peerSeq(0)]]);
  });

  test("a RST outside the window is dropped silently", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS);
    s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(-10) });
    s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(10_000_000) });
    expect(s.c.state).toBe(TcpState.ESTABLISHED);
    expect(s.poll()).toEqual([]);
  });

  test("challenge ACKs are rate limited per second (RFC 5961 §7)", () => {
    const { s } = Scripted.client({ timestamps: false, challengeAckLimit: 5 }, OPTS);
    for (let i = 0; i < 50; i++) s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(100 + i) });
    expect(s.poll().length).toBe(5);
    s.now += 1000;
    s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(7) });
    expect(s.poll().length).toBe(1);
  });

  test("a RST in CLOSE-WAIT resets; in LAST-ACK it just closes", () => {
    const a = Scripted.client({ timestamps: false }, OPTS).s;
    a.deliver({ flags: TcpFlag.ACK | TcpFlag.FIN });
    a.c.events();
    a.deliver({ flags: TcpFlag.RST, seq: a.peerSeq(1) });
    expect(a.c.events()).toEqual(["reset", "closed"]);
    const b = Scripted.client({ timestamps: false }, OPTS).s;
    b.deliver({ flags: TcpFlag.ACK | TcpFlag.FIN });
    b.c.shutdownWrite();
    b.poll();
    b.c.events();
    b.deliver({ flags: TcpFlag.RST, seq: b.peerSeq(1) });
    expect(b.c.events()).toEqual(["closed"]);
  });

  test("abort() sends <SEQ=SND.NXT><CTL=RST>", () => {
    const { s } = Scripted.client({ timestamps: false, noDelay: true }, OPTS);
    s.c.send(bytes(10));
    s.poll();
    s.c.abort();
    expect(s.poll().map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.RST, s.ourSeq(10)]]);
    expect(s.c.events()).toEqual(["closed"]);
  });
});

describe("SYN and ACK in synchronized states (RFC 5961 §4, §5)", () => {
  test("a SYN, in window or not, draws a challenge ACK; the connection lives on", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS);
    s.deliver({ flags: TcpFlag.SYN, seq: s.peerSeq(0) });
    s.deliver({ flags: TcpFlag.SYN, seq: 12345 });
    expect(s.c.state).toBe(TcpState.ESTABLISHED);
    const out = s.poll();
    expect(out.length).toBeGreaterThanOrEqual(1);
    expect(out.every((x) => x.flags === TcpFlag.ACK && x.ack === s.peerSeq(0))).toBe(true);
  });

  test("an ACK of data never sent is answered with an ACK and its data dropped", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS);
    s.deliver({ ack: s.ourSeq(5000), payload: bytes(10) });
    expect(s.c.readableBytes).toBe(0);
    expect(s.poll().map((x) => [x.flags, x.ack])).toEqual([[TcpFlag.ACK, s.peerSeq(0)]]);
  });

  test("an ACK far below SND.UNA (more than the max window) is challenged and its data dropped", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS, 1000);
    s.deliver({ ack: s.ourSeq(-100_000), payload: bytes(10) });
    expect(s.c.readableBytes).toBe(0);
    expect(s.poll().length).toBe(1);
  });

  test("an old duplicate (entirely before RCV.NXT) is acknowledged, not delivered", () => {
    const { s } = Scripted.client({ timestamps: false }, OPTS);
    s.deliver({ payload: bytes(100) });
    s.c.recv();
    s.deliver({ payload: bytes(100, 9) });
    expect(s.c.readableBytes).toBe(0);
    expect(s.poll().at(-1)!.ack).toBe(s.peerSeq(100));
  });
});

describe("after a go-back-N retransmission", () => {
  test("pure ACKs carry SND.MAX, so that a peer that already has the data accepts them (no ACK war)", () => {
    const { s } = Scripted.client({ timestamps: false, noDelay: true }, OPTS);
    s.c.send(bytes(3000));
    s.poll();
    s.fire(); // RTO: SND.NXT goes back to SND.UNA, the first segment is resent
    const [rx] = s.poll();
    expect(rx!.seq).toBe(s.ourSeq(0));
    expect(s.c.tcb.sndNxt).toBe(s.ourSeq(rx!.payload.length));
    s.deliver({ ack: s.ourSeq(0), payload: bytes(10) }); // the peer's data (its ACK lost the race)
    s.tick(200);
    const out = s.poll().filter((x) => x.payload.length === 0);
    expect(out.map((x) => [x.seq, x.ack])).toEqual([[s.ourSeq(3000), s.peerSeq(10)]]);
  });
});

describe("timestamps and PAWS (RFC 7323 §5)", () => {
  test("TS.Recent follows the peer; a segment with an older TSval is dropped and ACKed", () => {
    const { s } = Scripted.client({ delayedAckMs: 0 }, { ...OPTS, ...TS(1000, 1000) });
    expect(s.c.tcb.tsRecent).toBe(1000);
    s.deliver({ payload: bytes(10, 1), options: TS(1005) });
    expect(s.c.tcb.tsRecent).toBe(1005);
    expect(s.poll()[0]!.options.timestamp!.ecr).toBe(1005);
    s.deliver({ seq: s.peerSeq(10), payload: bytes(10, 2), options: TS(1001) }); // a wrapped old duplicate
    expect(s.c.readableBytes).toBe(10);
    expect(s.poll().map((x) => x.ack)).toEqual([s.peerSeq(10)]);
    s.deliver({ seq: s.peerSeq(10), payload: bytes(10, 3), options: TS(1006) });
    expect(s.c.readableBytes).toBe(20);
  });

  test("PAWS compares TSvals modulo 2^32", () => {
    const { s } = Scripted.client({ delayedAckMs: 0 }, { ...OPTS, ...TS(0xfffffff0, 1000) });
    s.deliver({ payload: bytes(10), options: TS(5) }); // after the wrap: newer
    expect(s.c.readableBytes).toBe(10);
    expect(s.c.tcb.tsRecent).toBe(5);
  });

  test("a RST is not subject to PAWS", () => {
    const { s } = Scripted.client({}, { ...OPTS, ...TS(1000, 1000) });
    s.deliver({ flags: TcpFlag.RST, seq: s.peerSeq(0), options: TS(1) });
    expect(s.c.state).toBe(TcpState.CLOSED);
  });
});

describe("hostile and edge values", () => {
  test("a transfer across the 2^32 sequence wrap", () => {
    const link = new SimLink({ seed: 5 });
    const a = link.host(0x0a000001, { delayedAckMs: 0 });
    const b = link.host(0x0a000002);
    const l = b.listen(80);
    const c2 = a.connect(link.now, 40001, 0x0a000002, 80, { noDelay: true }, 0xffffff00); // ISS just below the wrap
    expect(link.run({ until: () => c2.state === TcpState.ESTABLISHED && l.acceptQueueLength > 0 })).toBe(true);
    const s = l.accept()!;
    const data = new Prng(9).bytes(100_000);
    let sent = 0;
    const got: number[] = [];
    link.run({
      app: () => {
        sent += c2.send(data.subarray(sent));
        got.push(...s.recv());
      },
      until: () => got.length === data.length,
    });
    expect(c2.tcb.sndUna < 0xffffff00).toBe(true); // it wrapped
    expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
  });

  test("10,000 random segments never throw and keep the invariants", () => {
    const { s } = Scripted.client({}, { ...OPTS, ...TS(1, 1) });
    s.c.send(bytes(50_000));
    s.poll();
    const r = new Prng(1234);
    for (let i = 0; i < 10_000; i++) {
      const near = (base: number) => (r.float() < 0.5 ? (base + (r.next() % 200_000) - 100_000) >>> 0 : r.next());
      const seg: TcpRepr = {
        srcPort: s.remote.port, dstPort: s.local.port, seq: near(s.c.tcb.rcvNxt), ack: near(s.c.tcb.sndUna),
        flags: r.next() & 0xff & ~TcpFlag.RST, window: r.next() & 0xffff, urgent: 0,
        options: {
          ...(r.float() < 0.3 ? { sack: [[near(s.c.tcb.sndUna), near(s.c.tcb.sndUna)]] as Array<[number, number]> } : {}),
          ...(r.float() < 0.5 ? TS(r.next(), r.next()) : {}),
          ...(r.float() < 0.1 ? { mss: r.next() & 0xffff, wscale: r.next() & 0xff } : {}),
        },
        payload: bytes(r.next() % 3000, 7),
      };
      s.now += r.next() % 50;
      s.c.onSegment(s.now, seg);
      s.c.onTick(s.now);
      s.poll();
      s.c.recv();
      const t = s.c.tcb;
      if (t.state === TcpState.CLOSED) break;
      expect(((t.sndNxt - t.sndUna) | 0) >= 0 && ((t.sndMax - t.sndNxt) | 0) >= 0).toBe(true);
      expect(t.cwnd).toBeGreaterThanOrEqual(t.sndMss);
      expect(t.sndMss).toBeGreaterThanOrEqual(64);
      expect(s.c.unackedBytes).toBeLessThanOrEqual(50_000);
    }
  });
});
