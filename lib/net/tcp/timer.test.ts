import { describe, expect, test } from "vitest";
import { TcpFlag } from "../types.ts";
import { Scripted } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

/** A client whose handshake took `rtt` ms (so the first RTT sample is `rtt`). */
function clientWithRtt(rtt: number, cfg = {}) {
  const s = new Scripted({ timestamps: false, noDelay: true, ...cfg });
  s.c.connect(s.now, s.local, s.remote, s.iss);
  s.poll();
  s.now += rtt;
  s.deliver({ seq: s.peerIss, ack: s.ourSeq(0), flags: TcpFlag.SYN | TcpFlag.ACK, options: { mss: 1460 } });
  s.poll();
  s.c.events();
  return s;
}
const closed = (s: Scripted) => s.c.state === TcpState.CLOSED;

describe("RTO (RFC 6298)", () => {
  test("SRTT, RTTVAR and RTO follow the estimator", () => {
    const s = clientWithRtt(100);
    expect([s.c.tcb.srtt, s.c.tcb.rttvar, s.c.tcb.rto]).toEqual([100, 50, 300]);
    s.c.send(bytes(10));
    s.poll();
    s.now += 200;
    s.deliver({ ack: s.ourSeq(10) });
    // RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5; RTO = 112.5 + 4*62.5
    expect([s.c.tcb.srtt, s.c.tcb.rttvar, s.c.tcb.rto]).toEqual([112.5, 62.5, 363]);
  });

  test("retransmission from SND.UNA with exponential backoff, capped at maxRto, then timed-out", () => {
    const s = clientWithRtt(100, { maxRtoMs: 2000, maxRetries: 6 });
    s.c.send(bytes(100));
    expect(s.poll().length).toBe(1);
    const gaps: number[] = [];
    while (!closed(s)) {
      gaps.push(s.fire());
      const out = s.poll();
      if (!closed(s)) expect(out.map((x) => [x.seq, x.payload.length])).toEqual([[s.ourSeq(0), 100]]);
    }
    expect(gaps).toEqual([300, 600, 1200, 2000, 2000, 2000, 2000]);
    expect(s.c.events()).toEqual(["timed-out", "closed"]);
  });

  test("Karn: the ACK of a retransmitted segment gives no sample; the backed-off RTO stays until one does", () => {
    const s = clientWithRtt(100);
    s.c.send(bytes(100));
    s.poll();
    s.fire(); // 300
    s.poll();
    s.fire(); // 600
    s.poll();
    expect(s.c.tcb.rto).toBe(1200);
    s.now += 10;
    s.deliver({ ack: s.ourSeq(100) });
    expect(s.c.tcb.srtt).toBe(100); // no sample from the ambiguous ACK
    expect(s.c.tcb.rto).toBe(1200);
    s.c.send(bytes(10));
    s.poll();
    s.now += 100;
    s.deliver({ ack: s.ourSeq(110) });
    expect(s.c.tcb.rto).toBe(250); // a clean sample ends the backoff: 100 + 4 * 37.5
  });

  test("with timestamps the echo times even a retransmission", () => {
    const { s } = Scripted.client({ noDelay: true }, { mss: 1460, timestamp: { val: 1, ecr: 1000 } });
    s.c.send(bytes(100));
    s.poll();
    s.fire();
    const [rx] = s.poll();
    s.now += 40;
    s.deliver({ ack: s.ourSeq(100), options: { timestamp: { val: 2, ecr: rx!.options.timestamp!.val } } });
    expect(s.c.tcb.srtt).toBeGreaterThan(1);
    expect(s.c.tcb.rto).toBe(200);
  });

  test("the timer stops when everything is acknowledged and restarts on new ACKs", () => {
    const s = clientWithRtt(100);
    s.c.send(bytes(3000));
    s.poll();
    expect(s.c.nextDeadline()).toBe(s.now + 300);
    s.now += 50;
    s.deliver({ ack: s.ourSeq(1460) });
    expect(s.c.nextDeadline()).toBe(s.now + s.c.tcb.rto);
    s.deliver({ ack: s.ourSeq(3000) });
    expect(s.c.nextDeadline()).toBe(-1);
  });
});

describe("keepalive (RFC 9293 §3.8.4)", () => {
  test("an idle connection is probed with SEQ=SND.UNA-1; an answer resets the count", () => {
    const { s } = Scripted.client({ timestamps: false }, { mss: 1460 });
    s.c.setKeepalive(true, 10_000, 1000, 3);
    expect(s.fire()).toBe(10_000);
    const out = s.poll();
    expect(out.map((x) => [x.flags, x.seq, x.payload.length])).toEqual([[TcpFlag.ACK, s.ourSeq(-1), 0]]);
    s.deliver({});
    expect(s.c.tcb.keepProbes).toBe(0);
    expect(s.c.nextDeadline()).toBe(s.now + 10_000);
  });

  test("unanswered probes reset the connection", () => {
    const { s } = Scripted.client({ timestamps: false }, { mss: 1460 });
    s.c.setKeepalive(true, 10_000, 1000, 3);
    const gaps: number[] = [];
    while (!closed(s)) {
      gaps.push(s.fire());
      const out = s.poll();
      if (closed(s)) expect(out.map((x) => x.flags)).toEqual([TcpFlag.RST]);
    }
    expect(gaps).toEqual([10_000, 1000, 1000, 1000]);
    expect(s.c.events()).toEqual(["timed-out", "closed"]);
  });

  test("a probe is answered by the receiving side with an ACK", () => {
    const { s } = Scripted.client({ timestamps: false }, { mss: 1460 });
    s.deliver({ seq: s.peerSeq(-1) }); // the peer's keepalive
    expect(s.poll().map((x) => [x.flags, x.seq, x.ack])).toEqual([[TcpFlag.ACK, s.ourSeq(0), s.peerSeq(0)]]);
  });

  test("off by default", () => {
    const { s } = Scripted.client({ timestamps: false }, { mss: 1460 });
    expect(s.c.nextDeadline()).toBe(-1);
  });
});
