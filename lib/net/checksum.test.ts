// Tests for the Internet checksum helpers (RFC 1071, RFC 1624).
import { test, expect, describe } from "vitest";
import { adjust, checksum, finish, fold, pseudoHeaderSum, sum, verifies } from "./checksum.ts";

const hex = (s: string): Uint8Array => Uint8Array.from(s.trim().split(/\s+/), (h) => parseInt(h, 16));

describe("checksum", () => {
  test("RFC 1071 §3 worked example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2", () => {
    const b = hex("00 01 f2 03 f4 f5 f6 f7");
    expect(fold(sum(b))).toBe(0xddf2);
    expect(checksum(b)).toBe(~0xddf2 & 0xffff);
  });

  test("a real IPv4 header (Linux ping) checks out and verifies", () => {
    const h = hex("45 00 00 54 3b 7e 40 00 40 01 e3 0c 0a 00 02 0f 08 08 08 08");
    expect(verifies(sum(h))).toBe(true);
    const z = h.slice();
    z[10] = 0;
    z[11] = 0;
    expect(checksum(z)).toBe(0xe30c);
    h[8] = 0x3f; // corrupt the TTL
    expect(verifies(sum(h))).toBe(false);
  });

  test("odd length pads the last byte on the right", () => {
    expect(sum(hex("01 02 03"))).toBe(0x0102 + 0x0300);
  });

  test("summing in even pieces equals summing at once, including through subarrays", () => {
    const big = new Uint8Array(1001);
    for (let i = 0; i < big.length; i++) big[i] = (i * 37 + 11) & 0xff;
    const whole = fold(sum(big));
    let acc = 0;
    acc = sum(big, 0, 400, acc);
    acc = sum(big.subarray(400), 0, 601, acc);
    expect(fold(acc)).toBe(whole);
  });

  test("range is clamped and the running sum stays below 2^32", () => {
    const ff = new Uint8Array(64).fill(0xff);
    expect(sum(ff, -5, 1000)).toBe(sum(ff));
    let acc = 0;
    for (let i = 0; i < 100_000; i++) acc = sum(ff, 0, 64, acc);
    expect(acc).toBeLessThan(2 ** 32);
    expect(fold(acc)).toBe(0xffff);
  });

  test("finish of an all-zero region is 0xffff and verifies", () => {
    expect(finish(0)).toBe(0xffff);
    expect(verifies(0xffff)).toBe(true);
    expect(verifies(0)).toBe(false);
  });

  test("pseudo-header sum matches summing the 12 bytes", () => {
    const ph = hex("0a 00 02 0f 5d b8 d8 22 00 06 00 28");
    expect(fold(pseudoHeaderSum(0x0a00020f, 0x5db8d822, 6, 40))).toBe(fold(sum(ph)));
  });

  test("RFC 1624 incremental update equals recomputation (TTL decrement)", () => {
    const h = hex("45 00 00 54 3b 7e 40 00 40 01 e3 0c 0a 00 02 0f 08 08 08 08");
    for (let ttl = 64; ttl > 0; ttl--) {
      const oldWord = (h[8]! << 8) | h[9]!;
      h[8] = ttl - 1;
      const newWord = (h[8]! << 8) | h[9]!;
      const stored = (h[10]! << 8) | h[11]!;
      const upd = adjust(stored, oldWord, newWord);
      h[10] = 0;
      h[11] = 0;
      expect(upd).toBe(checksum(h));
      h[10] = upd >> 8;
      h[11] = upd & 0xff;
    }
  });
});
