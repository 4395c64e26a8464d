import { describe, expect, test } from "vitest";
import type { TcpRepr } from "../types.ts";
import { initialCwnd, nextHole } from "./congestion.ts";
import { Scripted } from "./simlink.fixture.ts";
import { newTcb, resolveConfig } from "./tcb.ts";

const MSS = 1460;
const bytes = (n: number) => new Uint8Array(n).fill(3);

/** A client with `segs` full segments in flight after slow start grew cwnd. */
function inFlight(segs: number, cfg = {}, opts = {}) {
  const { s } = Scripted.client({ timestamps: false, sack: false, ...cfg }, { mss: MSS, ...opts });
  s.c.send(bytes(250_000));
  for (;;) {
    const out = s.poll();
    if (out.length >= segs) return { s, out };
    for (const x of out) s.deliver({ ack: (x.seq + x.payload.length) >>> 0 });
  }
}
const end = (x: TcpRepr) => (x.seq + x.payload.length) >>> 0;

describe("slow start and congestion avoidance (RFC 5681)", () => {
  test("initial window per RFC 5681 §3.1", () => {
    expect(initialCwnd(536)).toBe(4 * 536);
    expect(initialCwnd(1460)).toBe(3 * 1460);
    expect(initialCwnd(9000)).toBe(2 * 9000);
  });

  test("slow start: each ACK of a full segment opens cwnd by one segment", () => {
    const { s } = Scripted.client({ timestamps: false }, { mss: MSS });
    s.c.send(bytes(100_000));
    const first = s.poll();
    expect(first.length).toBe(3);
    expect(s.c.tcb.cwnd).toBe(3 * MSS);
    s.deliver({ ack: end(first[0]!) });
    expect(s.c.tcb.cwnd).toBe(4 * MSS);
    expect(s.poll().length).toBe(2); // one freed by the ACK, one from the larger window
    s.deliver({ ack: end(first[2]!) }); // one ACK for two segments: still one SMSS (L = 1)
    expect(s.c.tcb.cwnd).toBe(5 * MSS);
  });

  test("congestion avoidance: about one segment per window of data acknowledged", () => {
    const { s, out } = inFlight(12);
    // Enter recovery and leave it, so that cwnd = ssthresh.
    s.deliver({ ack: end(out[0]!) });
    for (let i = 0; i < 3; i++) s.deliver({ ack: end(out[0]!) });
    s.poll();
    s.deliver({ ack: s.c.tcb.sndMax });
    const t = s.c.tcb;
    expect(t.inRecovery).toBe(false);
    // RFC 6582 full ACK: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS); slow start back to ssthresh.
    while (t.cwnd < t.ssthresh) for (const x of s.poll()) s.deliver({ ack: end(x) });
    const w = t.cwnd;
    let counted = t.caAcked; // bytes already counted toward the next increase
    const growth: number[] = [];
    while (counted < w) {
      for (const x of s.poll()) {
        if (counted >= w) break;
        s.deliver({ ack: end(x) });
        counted += x.payload.length;
        growth.push(t.cwnd - w);
      }
    }
    // cwnd stays put until a whole window is acknowledged, then grows by one SMSS.
    expect(growth.length).toBeGreaterThan(1);
    expect(growth.slice(0, -1).every((g) => g === 0)).toBe(true);
    expect(growth.at(-1)).toBe(MSS);
  });
});

describe("restart after idle (RFC 5681 §4.1)", () => {
  test("after more than an RTO without sending, cwnd falls back to the initial window", () => {
    const { s } = inFlight(12);
    for (const x of s.poll()) s.deliver({ ack: end(x) });
    s.deliver({ ack: s.c.tcb.sndMax });
    expect(s.c.tcb.cwnd).toBeGreaterThan(3 * MSS);
    const grown = s.c.tcb.cwnd;
    s.now += 10;
    s.poll(); // short pause: cwnd kept
    expect(s.c.tcb.cwnd).toBeGreaterThanOrEqual(grown);
    s.deliver({ ack: s.c.tcb.sndMax });
    s.now += 5000;
    const out = s.poll();
    expect(s.c.tcb.cwnd).toBe(3 * MSS);
    expect(out.length).toBe(3);
  });
});

describe("fast retransmit and NewReno recovery (RFC 5681 §3.2, RFC 6582)", () => {
  test("three duplicate ACKs: retransmit the lost segment, halve the window; limited transmit before", () => {
    const { s, out } = inFlight(12);
    const lost = out[1]!;
    s.deliver({ ack: end(out[0]!) });
    const sndMaxBefore = s.c.tcb.sndMax;
    s.poll();
    const flight = s.c.tcb.sndMax - s.c.tcb.sndUna;
    s.deliver({ ack: end(out[0]!) });
    s.deliver({ ack: end(out[0]!) });
    // RFC 3042: the first two duplicates each let a new segment out.
    const lt = s.poll();
    expect(lt.length).toBe(2);
    expect(lt.every((x) => x.seq >= sndMaxBefore)).toBe(true);
    s.deliver({ ack: end(out[0]!) });
    const t = s.c.tcb;
    expect(t.inRecovery).toBe(true);
    expect(t.ssthresh).toBe(Math.floor((flight + 2 * MSS) / 2));
    expect(t.cwnd).toBe(t.ssthresh + 3 * MSS);
    const rx = s.poll();
    expect(rx[0]!.seq).toBe(lost.seq);
    expect(rx[0]!.payload.length).toBe(MSS);
    expect(t.statFastRetransmits).toBe(1);
  });

  test("a partial ACK retransmits the next lost segment at once; the full ACK ends recovery", () => {
    const { s, out } = inFlight(12);
    // Segments 1 and 4 are lost; the others arrive and produce duplicate ACKs.
    const ack0 = end(out[0]!);
    s.deliver({ ack: ack0 });
    for (let i = 0; i < 3; i++) s.deliver({ ack: ack0 });
    const rx1 = s.poll().filter((x) => x.seq === out[1]!.seq);
    expect(rx1.length).toBe(1);
    const t = s.c.tcb;
    const recover = t.recover;
    s.deliver({ ack: out[4]!.seq }); // the retransmission filled the first hole only
    expect(t.inRecovery).toBe(true);
    const rx2 = s.poll();
    expect(rx2[0]!.seq).toBe(out[4]!.seq);
    s.deliver({ ack: recover });
    expect(t.inRecovery).toBe(false);
    expect(t.cwnd).toBeLessThanOrEqual(t.ssthresh);
    expect(t.statRtoExpiries).toBe(0);
  });

  test("an RTO collapses cwnd to one segment and halves ssthresh", () => {
    const { s } = inFlight(12);
    const flight = s.c.tcb.sndMax - s.c.tcb.sndUna;
    s.fire();
    const out = s.poll();
    expect(s.c.tcb.cwnd).toBe(MSS);
    expect(s.c.tcb.ssthresh).toBe(Math.floor(flight / 2));
    expect(out.length).toBe(1);
    expect(out[0]!.seq).toBe(s.c.tcb.sndUna);
  });
});

describe("SACK-based recovery (RFC 2018, RFC 6675-lite)", () => {
  test("SACKed segments are never retransmitted; holes below the highest SACK are", () => {
    const { s, out } = inFlight(12, { sack: true }, { sackPermitted: true });
    // Lost: 1 and 4. SACK blocks describe what arrived.
    const ack0 = end(out[0]!);
    s.deliver({ ack: ack0 });
    s.poll();
    const sacks: Array<Array<[number, number]>> = [
      [[out[2]!.seq, end(out[2]!)]],
      [[out[2]!.seq, end(out[3]!)]],
      [[out[5]!.seq, end(out[5]!)], [out[2]!.seq, end(out[3]!)]],
      [[out[5]!.seq, end(out[6]!)], [out[2]!.seq, end(out[3]!)]],
      [[out[5]!.seq, end(out[7]!)], [out[2]!.seq, end(out[3]!)]],
    ];
    const rexmits: number[] = [];
    const highBefore = s.c.tcb.sndMax;
    for (const blocks of sacks) {
      s.deliver({ ack: ack0, options: { sack: blocks } });
      for (const x of s.poll()) if (x.seq < highBefore) rexmits.push(x.seq);
    }
    expect(rexmits).toEqual([out[1]!.seq, out[4]!.seq]);
    const sacked = s.c.tcb.sacked;
    expect(sacked).toEqual([[out[2]!.seq, end(out[3]!)], [out[5]!.seq, end(out[7]!)]]);
  });

  test("three segments SACKed above SND.UNA start recovery even with fewer duplicate ACKs", () => {
    const { s, out } = inFlight(12, { sack: true }, { sackPermitted: true });
    s.deliver({ ack: out[0]!.seq, options: { sack: [[out[1]!.seq, end(out[3]!)]] } });
    expect(s.c.tcb.dupAcks).toBe(1);
    expect(s.c.tcb.inRecovery).toBe(true);
    expect(s.poll()[0]!.seq).toBe(out[0]!.seq);
  });

  test("hostile SACK blocks (outside the window, inverted) are ignored", () => {
    const { s, out } = inFlight(6, { sack: true }, { sackPermitted: true });
    s.deliver({ ack: out[0]!.seq, options: { sack: [[0, 10], [end(out[5]!) + 5000, end(out[5]!) + 9000], [end(out[3]!), out[2]!.seq]] } });
    expect(s.c.tcb.sacked).toEqual([]);
  });

  test("nextHole walks the scoreboard", () => {
    const t = newTcb(resolveConfig());
    t.sndUna = 1000;
    t.sndMax = 9000;
    t.highRxt = 1000;
    t.sacked = [[2000, 3000], [5000, 6000]];
    expect(nextHole(t, 500)).toEqual({ seq: 1000, len: 500 });
    t.highRxt = 1500;
    expect(nextHole(t, 1460)).toEqual({ seq: 1500, len: 500 });
    t.highRxt = 2000;
    expect(nextHole(t, 1460)).toEqual({ seq: 3000, len: 1460 });
    t.highRxt = 6000;
    expect(nextHole(t, 1460)).toBeUndefined(); // above the highest SACK nothing is known lost
  });
});
