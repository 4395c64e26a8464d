import { describe, expect, test } from "vitest";
import { TcpFlag } from "../types.ts";
import { TcpConnection } from "./connection.ts";
import { rstFor } from "./rcv.ts";
import { Scripted, SimLink } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const A = 0x0a000001;
const B = 0x0a000002;

describe("active open", () => {
  test("the SYN offers MSS, window scale, SACK-permitted and timestamps; its window is unscaled", () => {
    const s = new Scripted({ tsOffset: 7 });
    s.c.connect(s.now, s.local, s.remote, s.iss);
    expect(s.c.state).toBe(TcpState.SYN_SENT);
    const [syn, ...rest] = s.poll();
    expect(rest).toEqual([]);
    expect(syn!.flags).toBe(TcpFlag.SYN);
    expect(syn!.seq).toBe(s.iss);
    expect(syn!.window).toBe(65535);
    expect(syn!.options).toEqual({ mss: 1460, wscale: 3, sackPermitted: true, timestamp: { val: s.now + 7, ecr: 0 } });
    expect(s.poll()).toEqual([]); // nothing more until the timer or an answer
  });

  test("SYN-ACK with every option: ESTABLISHED, options on, ACK of the SYN-ACK", () => {
    const { s, ack } = Scripted.client({}, { mss: 1400, wscale: 7, sackPermitted: true, timestamp: { val: 555, ecr: 1000 } }, 1000);
    const t = s.c.tcb;
    expect(s.c.state).toBe(TcpState.ESTABLISHED);
    expect([t.wsOk, t.sackOk, t.tsOk]).toEqual([true, true, true]);
    expect(t.sndWscale).toBe(7);
    expect(t.rcvWscale).toBe(3);
    expect(t.sndMss).toBe(1400 - 12); // timestamps take 12 bytes of every segment
    expect(t.sndWnd).toBe(1000); // the window of a SYN-ACK is not scaled (RFC 7323 §2.2)
    expect(ack.flags).toBe(TcpFlag.ACK);
    expect(ack.seq).toBe(s.ourSeq(0));
    expect(ack.ack).toBe(s.peerSeq(0));
    expect(ack.window).toBe((256 * 1024) >> 3);
    expect(ack.options.timestamp).toEqual({ val: s.now, ecr: 555 });
  });

  test("SYN-ACK without options: MSS 536, no scaling, no SACK, no timestamps", () => {
    const { s, ack } = Scripted.client({}, {});
    const t = s.c.tcb;
    expect([t.wsOk, t.sackOk, t.tsOk]).toEqual([false, false, false]);
    expect(t.sndMss).toBe(536);
    expect(ack.window).toBe(65535); // unscaled: capped at 64 KiB - 1
    expect(ack.options).toEqual({});
  });

  test("the first RTT sample comes from the SYN exchange", () => {
    const s = new Scripted({ timestamps: false });
    s.c.connect(s.now, s.local, s.remote, s.iss);
    s.poll();
    s.now += 30;
    s.deliver({ seq: s.peerIss, ack: s.ourSeq(0), flags: TcpFlag.SYN | TcpFlag.ACK, options: { mss: 1460 } });
    expect(s.c.tcb.srtt).toBe(30);
    expect(s.c.tcb.rto).toBe(200); // 30 + 4*15 = 90, raised to the 200 ms floor
  });

  test("the SYN is retransmitted with exponential backoff, then the attempt times out", () => {
    const s = new Scripted({ synRetries: 3 });
    s.c.connect(s.now, s.local, s.remote, s.iss);
    expect(s.poll().length).toBe(1);
    const gaps: number[] = [];
    for (;;) {
      const dt = s.fire();
      if (dt < 0) break;
      const out = s.poll();
      if (s.c.state === TcpState.CLOSED) break;
      expect(out.map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.SYN, s.iss]]);
      gaps.push(dt);
    }
    expect(gaps).toEqual([1000, 2000, 4000]);
    expect(s.c.events()).toEqual(["timed-out", "closed"]);
  });

  test("a RST acknowledging our SYN refuses the connection; one with a bad ACK is ignored", () => {
    const s = new Scripted();
    s.c.connect(s.now, s.local, s.remote, s.iss);
    s.poll();
    s.deliver({ seq: 0, ack: s.iss + 7, flags: TcpFlag.RST | TcpFlag.ACK });
    expect(s.c.state).toBe(TcpState.SYN_SENT);
    s.deliver({ seq: 0, ack: s.ourSeq(0), flags: TcpFlag.RST | TcpFlag.ACK });
    expect(s.c.state).toBe(TcpState.CLOSED);
    expect(s.c.events()).toEqual(["reset", "closed"]);
  });

  test("an ACK for something never sent in SYN-SENT gets <SEQ=SEG.ACK><CTL=RST>", () => {
    const s = new Scripted();
    s.c.connect(s.now, s.local, s.remote, s.iss);
    s.poll();
    s.deliver({ seq: 9, ack: s.iss + 100, flags: TcpFlag.SYN | TcpFlag.ACK });
    const out = s.poll();
    expect(out.map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.RST, s.iss + 100]]);
    expect(s.c.state).toBe(TcpState.SYN_SENT);
  });

  test("connecting to a port nobody listens on is refused with RST|ACK", () => {
    const link = new SimLink();
    const a = link.host(A);
    link.host(B);
    const c = a.connect(link.now, 40000, B, 81);
    link.run({ until: () => c.state === TcpState.CLOSED, maxMs: 5000 });
    expect(a.events(c)).toEqual(["reset", "closed"]);
    const rst = link.trace.find((w) => w.seg.flags & TcpFlag.RST)!;
    expect(rst.seg.flags).toBe(TcpFlag.RST | TcpFlag.ACK);
    expect(rst.seg.seq).toBe(0);
    expect(rst.seg.ack).toBe((c.tcb.iss + 1) >>> 0);
  });
});

describe("MSS clamping", () => {
  test.each([0, 1, 20])("a hostile MSS of %i is raised to the 64-byte floor, and data still flows", (mss) => {
    const { s } = Scripted.client({ timestamps: false }, { mss });
    expect(s.c.tcb.sndMss).toBe(64);
    expect(s.c.send(new Uint8Array(1000).fill(9))).toBe(1000);
    const segs: number[] = [];
    for (let round = 0; round < 100 && segs.reduce((a, b) => a + b, 0) < 1000; round++) {
      const out = s.poll();
      for (const x of out) segs.push(x.payload.length);
      s.deliver({ ack: s.c.tcb.sndNxt });
    }
    expect(segs.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(Math.max(...segs)).toBe(64);
  });

  test("a huge MSS is clamped to our own", () => {
    const { s } = Scripted.client({ mss: 1200 }, { mss: 65535 });
    expect(s.c.tcb.sndMss).toBe(1200);
  });
});

describe("window scaling (RFC 7323)", () => {
  test("windows from the peer are shifted by its scale; a scale above 14 is taken as 14", () => {
    const { s } = Scripted.client({}, { mss: 1460, wscale: 7 });
    s.deliver({ window: 100 });
    expect(s.c.tcb.sndWnd).toBe(12800);
    const h = Scripted.client({}, { mss: 1460, wscale: 20 });
    expect(h.s.c.tcb.sndWscale).toBe(14);
  });

  test("without the peer's option neither side scales", () => {
    const { s, ack } = Scripted.client({ recvBufferSize: 1 << 20 }, { mss: 1460 });
    expect(s.c.tcb.rcvWscale).toBe(0);
    expect(ack.window).toBe(65535);
    s.deliver({ window: 100 });
    expect(s.c.tcb.sndWnd).toBe(100);
  });

  test("small buffers do not offer scaling by default", () => {
    const s = new Scripted({ sendBufferSize: 32768, recvBufferSize: 32768 });
    s.c.connect(s.now, s.local, s.remote, s.iss);
    const [syn] = s.poll();
    expect(syn!.options.wscale).toBeUndefined();
    expect(syn!.window).toBe(32768);
  });

  test("a 1 MiB window flows through a scaled connection", () => {
    const link = new SimLink();
    const cfg = { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 };
    const a = link.host(A, cfg);
    const b = link.host(B, cfg);
    const l = b.listen(80);
    const c = a.connect(link.now, 40000, B, 80);
    link.run({ until: () => l.acceptQueueLength === 1 && c.state === TcpState.ESTABLISHED });
    const s = l.accept()!;
    expect(c.tcb.sndWscale).toBe(5);
    expect(c.tcb.sndWnd).toBe(65535); // from the SYN-ACK, unscaled
    expect(s.tcb.sndWnd).toBe(1 << 20);
    s.send(new Uint8Array([1]));
    link.run({ until: () => c.readableBytes === 1 });
    expect(c.tcb.sndWnd).toBe(1 << 20);
  });
});

describe("passive open", () => {
  test("the listener echoes only the options the SYN offered", () => {
    const link = new SimLink();
    const a = link.host(A, { sack: false, timestamps: false });
    const b = link.host(B);
    const l = b.listen(80);
    const c = a.connect(link.now, 40000, B, 80);
    link.run({ until: () => l.acceptQueueLength === 1 && c.state === TcpState.ESTABLISHED });
    const synAck = link.trace[1]!.seg;
    expect(synAck.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    expect(synAck.options).toEqual({ mss: 1460, wscale: 3 });
    const s = l.accept()!;
    expect([s.tcb.wsOk, s.tcb.sackOk, s.tcb.tsOk]).toEqual([true, false, false]);
    expect(b.events(s)).toEqual(["connected"]);
  });

  test("simultaneous open: crossing SYNs end ESTABLISHED on both sides", () => {
    const link = new SimLink();
    const a = link.host(A);
    const b = link.host(B);
    const ca = a.connect(link.now, 5000, B, 6000);
    const cb = b.connect(link.now, 6000, A, 5000);
    expect(link.run({ until: () => ca.state === TcpState.ESTABLISHED && cb.state === TcpState.ESTABLISHED, maxMs: 5000 })).toBe(true);
    const synAcks = link.trace.filter((w) => w.seg.flags === (TcpFlag.SYN | TcpFlag.ACK));
    expect(synAcks.length).toBe(2);
    expect(ca.tcb.rcvNxt).toBe((cb.tcb.iss + 1) >>> 0);
    expect(cb.tcb.rcvNxt).toBe((ca.tcb.iss + 1) >>> 0);
    ca.send(new Uint8Array([1, 2, 3]));
    expect(link.run({ until: () => cb.readableBytes === 3, maxMs: 5000 })).toBe(true);
    expect(a.events(ca)[0]).toBe("connected");
    expect(b.events(cb)[0]).toBe("connected");
  });
});

describe("rstFor (RFC 9293 §3.10.7.1)", () => {
  const base = { srcPort: 1234, dstPort: 80, seq: 100, ack: 0, window: 0, urgent: 0, options: {}, payload: new Uint8Array(0) };
  test("a segment with ACK gets <SEQ=SEG.ACK><CTL=RST>", () => {
    const r = rstFor({ ...base, flags: TcpFlag.ACK, ack: 777 })!;
    expect([r.flags, r.seq, r.srcPort, r.dstPort]).toEqual([TcpFlag.RST, 777, 80, 1234]);
  });
  test("a SYN (with data and FIN) gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>", () => {
    const r = rstFor({ ...base, flags: TcpFlag.SYN | TcpFlag.FIN, seq: 0xffffffff, payload: new Uint8Array(3) })!;
    expect([r.flags, r.seq, r.ack]).toEqual([TcpFlag.RST | TcpFlag.ACK, 0, 4]);
  });
  test("a RST gets nothing", () => {
    expect(rstFor({ ...base, flags: TcpFlag.RST })).toBeUndefined();
  });
  test("a CLOSED connection answers like a closed port", () => {
    const c = new TcpConnection();
    c.onSegment(0, { ...base, flags: TcpFlag.ACK, ack: 5 });
    expect(c.poll(0).map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.RST, 5]]);
  });
});
