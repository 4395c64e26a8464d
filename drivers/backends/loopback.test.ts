// Tests for the in-memory loopback pair: both directions, copies, capacity, bad frames, close.
import { describe, expect, test } from "vitest";
import { loopbackPair } from "./loopback.fixture.ts";
import { seqFrame, seqOf } from "./frames.fixture.ts";
import { formatMac } from "../../lib/net/addr.ts";

const drain = (b: { recv(max: number, f: (x: Uint8Array) => void): number }, max = 1 << 30): number[] => {
  const seqs: number[] = [];
  b.recv(max, (f) => seqs.push(seqOf(f)));
  return seqs;
};

describe("loopback pair", () => {
  test("frames sent on one end arrive in order on the other, both ways", () => {
    const [a, b] = loopbackPair();
    expect(formatMac(a.mac)).toBe("52:54:00:12:34:56");
    expect(formatMac(b.mac)).toBe("52:54:00:12:34:57");
    expect(a.fd).toBe(-1);
    for (let i = 0; i < 10; i++) expect(a.send(seqFrame(i, 60 + i))).toBe(true);
    expect(b.send(seqFrame(100))).toBe(true);
    expect(drain(a)).toEqual([100]);
    expect(drain(b, 4)).toEqual([0, 1, 2, 3]);
    expect(drain(b)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(drain(b)).toEqual([]);
    expect(a.stats()).toEqual({ rxFrames: 1, txFrames: 10, rxBytes: 64, txBytes: 645, txDropped: 0, rxErrors: 0 });
    expect(b.stats()).toMatchObject({ rxFrames: 10, rxBytes: 645, txFrames: 1 });
  });

  test("send copies: changing the buffer afterwards does not change the frame", () => {
    const [a, b] = loopbackPair();
    const f = seqFrame(7);
    a.send(f);
    f.fill(0);
    expect(drain(b)).toEqual([7]);
  });

  test("a full wire, runts, oversize frames and a closed end are txDropped", () => {
    const [a, b] = loopbackPair({ capacity: 3 });
    for (let i = 0; i < 5; i++) a.send(seqFrame(i));
    a.send(new Uint8Array(13));
    a.send(new Uint8Array(65536));
    expect(a.stats()).toMatchObject({ txFrames: 3, txDropped: 4 });
    expect(drain(b)).toEqual([0, 1, 2]);
    b.close();
    expect(b.send(seqFrame(9))).toBe(false);
    a.send(seqFrame(10));
    expect(drain(b)).toEqual([]);
  });

  test("many frames through a long-lived pair keep order (wire compaction)", () => {
    const [a, b] = loopbackPair();
    const got: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      a.send(seqFrame(i));
      if (i % 700 === 699) got.push(...drain(b, 1000));
    }
    got.push(...drain(b));
    expect(got.length).toBe(20_000);
    expect(got.every((s, i) => s === i)).toBe(true);
  });
});
