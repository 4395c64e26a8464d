// The timer heap pops in key order whatever the push order.
import { expect, test } from "vitest";
import { MinHeap } from "./heap.ts";

test("pops 10,000 random keys in order", () => {
  const h = new MinHeap<number>();
  const keys = Array.from({ length: 10_000 }, () => Math.floor(Math.random() * 1000));
  for (const k of keys) h.push(k, k);
  expect(h.size).toBe(10_000);
  const out: number[] = [];
  while (h.size > 0) out.push(h.pop()!);
  expect(out).toEqual([...keys].sort((a, b) => a - b));
  expect(h.pop()).toBeUndefined();
  expect(h.peekKey()).toBe(Number.POSITIVE_INFINITY);
});
