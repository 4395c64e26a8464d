import { describe, expect, test } from "vitest";
import { seqAdd, seqGe, seqGt, seqInWindow, seqLe, seqLt, seqMax, seqMin, seqSub } from "./seq.ts";

describe("sequence arithmetic", () => {
  test("add wraps modulo 2^32 and stays unsigned", () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0xfffffff0, 0x20)).toBe(0x10);
    expect(seqAdd(5, -10)).toBe(0xfffffffb);
    expect(seqAdd(0, 0)).toBe(0);
  });

  test("sub gives the signed distance across the wrap", () => {
    expect(seqSub(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqSub(0xfffffff0, 0x10)).toBe(-0x20);
    expect(seqSub(7, 7)).toBe(0);
    expect(seqSub(seqAdd(123456, 1000), 123456)).toBe(1000);
  });

  test("comparisons near zero and across the wrap", () => {
    expect(seqLt(1, 2)).toBe(true);
    expect(seqLt(2, 1)).toBe(false);
    expect(seqLt(0xffffffff, 0)).toBe(true);
    expect(seqGt(0, 0xffffffff)).toBe(true);
    expect(seqLe(5, 5)).toBe(true);
    expect(seqGe(5, 5)).toBe(true);
    expect(seqLt(5, 5)).toBe(false);
    expect(seqGt(5, 5)).toBe(false);
    expect(seqLe(0xfffffff0, 0x0000000f)).toBe(true);
    expect(seqGe(0x0000000f, 0xfffffff0)).toBe(true);
  });

  test("half the space apart: the order flips exactly at 2^31", () => {
    expect(seqLt(0, 0x7fffffff)).toBe(true);
    expect(seqGt(0, 0x80000001)).toBe(true);
  });

  test("max, min and window membership", () => {
    expect(seqMax(0xfffffff0, 3)).toBe(3);
    expect(seqMin(0xfffffff0, 3)).toBe(0xfffffff0);
    expect(seqInWindow(2, 0xfffffffe, 5)).toBe(true);
    expect(seqInWindow(3, 0xfffffffe, 5)).toBe(false);
    expect(seqInWindow(0xfffffffd, 0xfffffffe, 5)).toBe(false);
    expect(seqInWindow(0xfffffffe, 0xfffffffe, 0)).toBe(false);
  });

  test("agrees with a reference model on random pairs", () => {
    let x = 0x12345678;
    const next = () => {
      x ^= x << 13; x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5; x >>>= 0;
      return x;
    };
    for (let i = 0; i < 2000; i++) {
      const a = next();
      const d = (next() % 0x7fffffff) - 0x3fffffff; // |d| < 2^30
      const b = seqAdd(a, d);
      expect(seqSub(b, a)).toBe(d);
      expect(seqLt(a, b)).toBe(d > 0);
      expect(seqGt(a, b)).toBe(d < 0);
    }
  });
});
