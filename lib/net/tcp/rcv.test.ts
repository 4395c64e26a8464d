import { describe, expect, test } from "vitest";
import { TcpFlag } from "../types.ts";
import { RecvBuffer, SendBuffer } from "./ring.ts";
import { Scripted } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);
const FULL = { mss: 1460, sackPermitted: true, wscale: 0 };

describe("receive buffer and assembler", () => {
  test("out-of-order ranges merge and release in order across the ring's wrap", () => {
    const r = new RecvBuffer(16, 4);
    expect(r.insert(0, bytes(10, 1))).toBe(10);
    expect(r.read(10).length).toBe(10); // head now at 10: the next bytes wrap
    expect(r.insert(4, bytes(4, 3))).toBe(0);
    expect(r.insert(10, bytes(2, 5))).toBe(0);
    expect(r.ranges).toEqual([[4, 8], [10, 12]]);
    expect(r.insert(8, bytes(2, 4))).toBe(0);
    expect(r.ranges).toEqual([[4, 12]]);
    expect(r.insert(0, bytes(4, 2))).toBe(12);
    expect(r.ranges).toEqual([]);
    expect([...r.read(100)]).toEqual([2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5]);
  });

  test("too many ranges: a new isolated range is refused, a merging one is not", () => {
    const r = new RecvBuffer(100, 2);
    expect(r.insert(10, bytes(1, 1))).toBe(0);
    expect(r.insert(20, bytes(1, 1))).toBe(0);
    expect(r.insert(30, bytes(1, 1))).toBe(-1);
    expect(r.insert(11, bytes(2, 1))).toBe(0);
    expect(r.ranges).toEqual([[10, 13], [20, 21]]);
  });

  test("send buffer keeps bytes until consumed, limited by capacity", () => {
    const s = new SendBuffer(8);
    expect(s.write(new Uint8Array([1, 2, 3, 4, 5, 6]))).toBe(6);
    s.consume(4);
    expect(s.write(new Uint8Array([7, 8, 9, 10, 11, 12, 13]))).toBe(6);
    expect([...s.peek(0, 100)]).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect([...s.peek(3, 2)]).toEqual([8, 9]);
  });
});

describe("reassembly and SACK generation (RFC 2018)", () => {
  test("segments after a hole are held, SACKed at once, and released when the hole fills", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.deliver({ seq: s.peerSeq(1000), payload: bytes(1000, 2) });
    let out = s.poll();
    expect(out.length).toBe(1); // an immediate duplicate ACK
    expect(out[0]!.ack).toBe(s.peerSeq(0));
    expect(out[0]!.options.sack).toEqual([[s.peerSeq(1000), s.peerSeq(2000)]]);
    s.deliver({ seq: s.peerSeq(3000), payload: bytes(500, 4) });
    out = s.poll();
    // Most recent block first (RFC 2018 §4).
    expect(out[0]!.options.sack).toEqual([[s.peerSeq(3000), s.peerSeq(3500)], [s.peerSeq(1000), s.peerSeq(2000)]]);
    expect(s.c.readableBytes).toBe(0);
    expect(s.c.events()).toEqual([]);

    s.deliver({ seq: s.peerSeq(0), payload: bytes(1000, 1) });
    out = s.poll();
    expect(out.length).toBe(1); // filling a hole is acknowledged at once (RFC 5681 §4.2)
    expect(out[0]!.ack).toBe(s.peerSeq(2000));
    expect(out[0]!.options.sack).toEqual([[s.peerSeq(3000), s.peerSeq(3500)]]);
    expect(s.c.events()).toEqual(["readable"]);
    const got = s.c.recv();
    expect(got.length).toBe(2000);
    expect(got[999]).toBe(1);
    expect(got[1000]).toBe(2);
  });

  test("beside timestamps at most 3 SACK blocks are sent", () => {
    const { s } = Scripted.client({}, { ...FULL, timestamp: { val: 1, ecr: 0 } });
    for (let i = 1; i <= 5; i++) s.deliver({ seq: s.peerSeq(i * 200), payload: bytes(100, i), options: { timestamp: { val: 2, ecr: 0 } } });
    const out = s.poll();
    expect(out.at(-1)!.options.sack!.length).toBe(3);
    expect(out.at(-1)!.options.sack![0]).toEqual([s.peerSeq(1000), s.peerSeq(1100)]);
  });

  test("no SACK blocks unless SACK was negotiated", () => {
    const { s } = Scripted.client({ timestamps: false }, { mss: 1460 });
    s.deliver({ seq: s.peerSeq(1000), payload: bytes(100, 1) });
    expect(s.poll()[0]!.options.sack).toBeUndefined();
  });

  test("a duplicate segment is acknowledged at once and not delivered twice", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.deliver({ payload: bytes(100, 1) });
    s.deliver({ payload: bytes(100, 1) });
    const out = s.poll();
    expect(out.length).toBe(1);
    expect(out[0]!.ack).toBe(s.peerSeq(100));
    expect(s.c.readableBytes).toBe(100);
  });

  test("overlapping retransmissions deliver each byte once", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.deliver({ seq: s.peerSeq(50), payload: bytes(100, 2) });
    s.deliver({ seq: s.peerSeq(0), payload: bytes(100, 1) });
    s.deliver({ seq: s.peerSeq(120), payload: bytes(80, 3) });
    const got = s.c.recv();
    expect(got.length).toBe(200);
    expect([got[0], got[99], got[100], got[149], got[150], got[199]]).toEqual([1, 1, 2, 2, 3, 3]);
  });

  test("a FIN that arrives before a hole is processed once the hole fills", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.deliver({ seq: s.peerSeq(100), payload: bytes(100, 2), flags: TcpFlag.ACK | TcpFlag.FIN });
    expect(s.c.state).toBe(TcpState.ESTABLISHED);
    s.deliver({ seq: s.peerSeq(0), payload: bytes(100, 1) });
    expect(s.c.state).toBe(TcpState.CLOSE_WAIT);
    expect(s.c.events()).toEqual(["readable", "peer-closed"]);
    expect(s.poll().at(-1)!.ack).toBe(s.peerSeq(201));
    expect(s.c.recv().length).toBe(200);
    expect(s.c.eof).toBe(true);
  });
});

describe("delayed ACK (RFC 1122 §4.2.3.2, RFC 5681 §4.2)", () => {
  test("one segment waits for the delayed-ACK timer", () => {
    const { s } = Scripted.client({ timestamps: false, delayedAckMs: 40 }, FULL);
    s.deliver({ payload: bytes(1460, 1) });
    expect(s.poll()).toEqual([]);
    expect(s.c.nextDeadline()).toBe(s.now + 40);
    expect(s.fire()).toBe(40);
    const out = s.poll();
    expect(out.map((x) => [x.flags, x.ack])).toEqual([[TcpFlag.ACK, s.peerSeq(1460)]]);
  });

  test("every second full-sized segment is acknowledged at once", () => {
    const { s } = Scripted.client({ timestamps: false }, FULL);
    s.deliver({ payload: bytes(1460, 1) });
    s.deliver({ seq: s.peerSeq(1460), payload: bytes(1460, 1) });
    const out = s.poll();
    expect(out.map((x) => x.ack)).toEqual([s.peerSeq(2920)]);
    expect(s.c.nextDeadline()).toBe(-1);
  });

  test("with delayedAckMs 0 every segment is acknowledged", () => {
    const { s } = Scripted.client({ timestamps: false, delayedAckMs: 0 }, FULL);
    s.deliver({ payload: bytes(10, 1) });
    expect(s.poll().map((x) => x.ack)).toEqual([s.peerSeq(10)]);
  });

  test("data we send carries the pending ACK", () => {
    const { s } = Scripted.client({ timestamps: false, noDelay: true }, FULL);
    s.deliver({ payload: bytes(10, 1) });
    s.c.send(bytes(5, 7));
    const out = s.poll();
    expect(out.length).toBe(1);
    expect(out[0]!.payload.length).toBe(5);
    expect(out[0]!.ack).toBe(s.peerSeq(10));
    expect(s.c.nextDeadline()).not.toBe(s.now + 40); // the delayed-ACK timer is gone (only the RTO runs)
  });
});

describe("receive window", () => {
  test("a full buffer advertises a zero window, drops data, and reopens with a window update", () => {
    const { s } = Scripted.client({ timestamps: false, recvBufferSize: 4096, delayedAckMs: 0 }, FULL);
    s.deliver({ payload: bytes(3000, 1) });
    s.deliver({ seq: s.peerSeq(3000), payload: bytes(1460, 2) }); // only 1096 fit
    let out = s.poll();
    expect(out.at(-1)!.ack).toBe(s.peerSeq(4096));
    expect(out.at(-1)!.window).toBe(0);
    // A zero-window probe at RCV.NXT: not taken, answered with the zero window.
    s.deliver({ seq: s.peerSeq(4096), payload: bytes(1, 3) });
    out = s.poll();
    expect(out.map((x) => [x.ack, x.window])).toEqual([[s.peerSeq(4096), 0]]);
    expect(s.c.readableBytes).toBe(4096);
    // Reading a little does not advertise a silly window; reading enough does.
    s.c.recv(100);
    expect(s.poll()).toEqual([]);
    s.c.recv(2000);
    out = s.poll();
    expect(out.map((x) => [x.ack, x.window])).toEqual([[s.peerSeq(4096), 2100]]);
  });

  test("an ACK riding on a segment refused for a zero window is still processed", () => {
    const { s } = Scripted.client({ timestamps: false, recvBufferSize: 2048, delayedAckMs: 0, noDelay: true }, FULL);
    s.deliver({ payload: bytes(2048, 1) });
    s.poll();
    s.c.send(bytes(10, 5));
    s.poll();
    expect(s.c.unackedBytes).toBe(10);
    s.deliver({ seq: s.peerSeq(2048), ack: s.ourSeq(10), payload: bytes(100, 2) });
    expect(s.c.unackedBytes).toBe(0);
    expect(s.c.readableBytes).toBe(2048);
  });
});

describe("half-close", () => {
  test("after the peer's FIN we keep sending; our FIN then closes from LAST-ACK", () => {
    const { s } = Scripted.client({ timestamps: false, noDelay: true }, FULL);
    s.deliver({ flags: TcpFlag.ACK | TcpFlag.FIN });
    expect(s.c.state).toBe(TcpState.CLOSE_WAIT);
    expect(s.c.events()).toEqual(["peer-closed"]);
    expect(s.poll().map((x) => [x.flags, x.ack])).toEqual([[TcpFlag.ACK, s.peerSeq(1)]]);
    expect(s.c.send(bytes(100, 1))).toBe(100);
    s.c.shutdownWrite();
    expect(s.c.state).toBe(TcpState.LAST_ACK);
    const out = s.poll();
    expect(out.map((x) => [x.flags, x.payload.length])).toEqual([[TcpFlag.ACK | TcpFlag.PSH | TcpFlag.FIN, 100]]);
    expect(s.c.send(bytes(1, 1))).toBe(0);
    s.deliver({ seq: s.peerSeq(1), ack: s.ourSeq(101) });
    expect(s.c.state).toBe(TcpState.CLOSED);
    expect(s.c.events()).toEqual(["writable", "closed"]);
  });

  test("our FIN first: FIN-WAIT-1, FIN-WAIT-2 while the peer still sends, then TIME-WAIT for 2*MSL", () => {
    const { s } = Scripted.client({ timestamps: false, mslMs: 500, delayedAckMs: 0 }, FULL);
    s.c.shutdownWrite();
    expect(s.c.state).toBe(TcpState.FIN_WAIT_1);
    expect(s.poll().map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.ACK | TcpFlag.FIN, s.ourSeq(0)]]);
    s.deliver({ ack: s.ourSeq(1) });
    expect(s.c.state).toBe(TcpState.FIN_WAIT_2);
    s.deliver({ ack: s.ourSeq(1), payload: bytes(50, 1) });
    expect(s.c.recv().length).toBe(50);
    s.deliver({ seq: s.peerSeq(50), ack: s.ourSeq(1), flags: TcpFlag.ACK | TcpFlag.FIN });
    expect(s.c.state).toBe(TcpState.TIME_WAIT);
    s.poll();
    // A retransmitted FIN in TIME-WAIT is acknowledged again and restarts the 2*MSL timer.
    s.tick(600);
    expect(s.c.state).toBe(TcpState.TIME_WAIT);
    s.deliver({ seq: s.peerSeq(50), ack: s.ourSeq(1), flags: TcpFlag.ACK | TcpFlag.FIN });
    expect(s.poll().map((x) => x.ack)).toEqual([s.peerSeq(51)]);
    s.tick(999);
    expect(s.c.state).toBe(TcpState.TIME_WAIT);
    s.tick(1);
    expect(s.c.state).toBe(TcpState.CLOSED);
    expect(s.c.events().at(-1)).toBe("closed");
  });

  test("simultaneous close goes through CLOSING", () => {
    const { s } = Scripted.client({ timestamps: false, mslMs: 10 }, FULL);
    s.c.shutdownWrite();
    s.poll();
    s.deliver({ ack: s.ourSeq(0), flags: TcpFlag.ACK | TcpFlag.FIN });
    expect(s.c.state).toBe(TcpState.CLOSING);
    s.deliver({ seq: s.peerSeq(1), ack: s.ourSeq(1) });
    expect(s.c.state).toBe(TcpState.TIME_WAIT);
  });

  test("close() with unread data resets; data arriving after close() resets", () => {
    const a = Scripted.client({ timestamps: false }, FULL).s;
    a.deliver({ payload: bytes(10, 1) });
    a.c.close();
    expect(a.poll().map((x) => [x.flags, x.seq])).toEqual([[TcpFlag.RST, a.ourSeq(0)]]);
    expect(a.c.state).toBe(TcpState.CLOSED);

    const b = Scripted.client({ timestamps: false }, FULL).s;
    b.c.close();
    b.poll();
    b.deliver({ ack: b.ourSeq(1) });
    expect(b.c.state).toBe(TcpState.FIN_WAIT_2);
    b.deliver({ ack: b.ourSeq(1), payload: bytes(10, 1) });
    expect(b.poll().map((x) => x.flags)).toEqual([TcpFlag.RST]);
    expect(b.c.state).toBe(TcpState.CLOSED);
  });

  test("an orphan in FIN-WAIT-2 is reaped after finWait2TimeoutMs", () => {
    const { s } = Scripted.client({ timestamps: false, finWait2TimeoutMs: 3000 }, FULL);
    s.c.close();
    s.poll();
    s.deliver({ ack: s.ourSeq(1) });
    expect(s.c.state).toBe(TcpState.FIN_WAIT_2);
    expect(s.fire()).toBe(3000);
    expect(s.c.state).toBe(TcpState.CLOSED);
  });
});
