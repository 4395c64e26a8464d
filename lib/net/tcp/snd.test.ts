import { describe, expect, test } from "vitest";
import { TcpFlag } from "../types.ts";
import { Scripted } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);
const FULL = { mss: 1460 };

describe("Nagle and TCP_NODELAY (RFC 896, RFC 9293 §3.7.4)", () => {
  test("a small write goes at once; the next small write waits for the ACK", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.c.send(bytes(10));
    expect(s.poll().map((x) => x.payload.length)).toEqual([10]);
    s.c.send(bytes(10));
    s.c.send(bytes(10));
    expect(s.poll()).toEqual([]);
    s.deliver({ ack: s.ourSeq(10) });
    expect(s.poll().map((x) => [x.seq, x.payload.length])).toEqual([[s.ourSeq(10), 20]]);
  });

  test("full-sized segments are not held back; only the small tail is", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.c.send(bytes(10));
    s.poll();
    s.c.send(bytes(3000));
    expect(s.poll().map((x) => x.payload.length)).toEqual([1460, 1460]);
    s.deliver({ ack: s.ourSeq(2930) });
    expect(s.poll().map((x) => x.payload.length)).toEqual([80]);
  });

  test("with TCP_NODELAY small writes go out at once", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.c.setNoDelay(true);
    s.c.send(bytes(10));
    expect(s.poll().length).toBe(1);
    s.c.send(bytes(10));
    expect(s.poll().map((x) => [x.seq, x.payload.length])).toEqual([[s.ourSeq(10), 10]]);
  });

  test("PSH marks the segment that empties the send queue; a tail after full segments goes at once (Minshall)", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.c.send(bytes(2000));
    // no small segment of ours is unacked: the 540-byte tail is not held (Linux's Nagle)
    expect(s.poll().map((x) => [x.flags, x.payload.length])).toEqual([[TcpFlag.ACK, 1460], [TcpFlag.ACK | TcpFlag.PSH, 540]]);
    s.c.send(bytes(100));
    expect(s.poll()).toEqual([]); // but the 540 is unacked: the next small one waits
    s.deliver({ ack: s.ourSeq(2000) });
    expect(s.poll().map((x) => x.payload.length)).toEqual([100]);
  });
});

describe("send buffer and windows", () => {
  test("send() takes at most the free space, and ACKs make room again", () => {
    const { s } = Scripted.client({ timestamps: false, sendBufferSize: 4096 }, FULL);
    expect(s.c.send(bytes(5000))).toBe(4096);
    expect(s.c.send(bytes(10))).toBe(0);
    s.poll();
    s.deliver({ ack: s.ourSeq(1460) });
    expect(s.c.events()).toEqual(["writable"]);
    expect(s.c.sendSpace).toBe(1460);
  });

  test("never more in flight than the peer's window; no silly runts while data is in flight", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL, 3000);
    s.c.send(bytes(10_000));
    // 1460 + 1460 fill 2920 of 3000; an 80-byte runt would be silly (RFC 9293 §3.8.6.2.1).
    expect(s.poll().map((x) => x.payload.length)).toEqual([1460, 1460]);
    s.deliver({ ack: s.ourSeq(1460), window: 3000 });
    expect(s.poll().map((x) => x.payload.length)).toEqual([1460]);
    s.deliver({ ack: s.ourSeq(4380), window: 500 });
    // Nothing in flight: a window smaller than the MSS is used, so the transfer cannot stall.
    expect(s.poll().map((x) => x.payload.length)).toEqual([500]);
  });
});

describe("zero-window probing (RFC 9293 §3.8.6.1)", () => {
  test("a closed window is probed with one byte, with backoff, for as long as the peer answers", () => {
    const { s } = Scripted.client({ timestamps: false, maxRetries: 3 }, FULL);
    s.c.send(bytes(100));
    s.poll();
    s.deliver({ ack: s.ourSeq(100), window: 0 });
    s.c.send(bytes(500, 7));
    expect(s.poll()).toEqual([]);
    const gaps: number[] = [];
    for (let i = 0; i < 6; i++) {
      gaps.push(s.fire());
      const out = s.poll();
      expect(out.map((x) => [x.seq, x.payload.length])).toEqual([[s.ourSeq(100), 1]]);
      s.deliver({ ack: s.ourSeq(100), window: 0 }); // the probe is refused, but answered
    }
    expect(s.c.state).toBe(TcpState.ESTABLISHED); // answered probes never time out
    expect(gaps).toEqual([200, 400, 800, 1600, 3200, 6400]);
    s.deliver({ ack: s.ourSeq(100), window: 65535 });
    const out = s.poll();
    expect(out.map((x) => [x.seq, x.payload.length])).toEqual([[s.ourSeq(100), 500]]);
  });

  test("a probe the peer takes advances the data", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.deliver({ window: 0 });
    s.c.send(bytes(10));
    expect(s.poll()).toEqual([]);
    s.fire();
    expect(s.poll().map((x) => x.payload.length)).toEqual([1]);
    s.deliver({ ack: s.ourSeq(1), window: 4000 });
    expect(s.poll().map((x) => [x.seq, x.payload.length])).toEqual([[s.ourSeq(1), 9]]);
  });

  test("unanswered probes time out", () => {
    const { s } = Scripted.client({ timestamps: false, maxRetries: 3 }, FULL);
    s.deliver({ window: 0 });
    s.c.send(bytes(10));
    s.poll();
    for (let i = 0; i < 10 && s.c.state !== TcpState.CLOSED; i++) {
      s.fire();
      s.poll();
    }
    expect(s.c.state).toBe(TcpState.CLOSED);
    expect(s.c.events()).toEqual(["timed-out", "closed"]);
  });
});
