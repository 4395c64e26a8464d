import { describe, expect, test } from "vitest";
import { gettid, loadLibc } from "./ffi.ts";
import { type HangRule, isHung, sampleThread } from "./threadstat.ts";

const RULE: HangRule = { silentMs: 300, busyCpuMs: 100, wakes: 2, anyMs: 5000 };
const at = (cpuMs: number, sleeps: number) => ({ runnable: false, cpuMs, sleeps });

describe("telling a hung server from a starved one", () => {
  test("short silence is never a hang", () => {
    expect(isHung(RULE, 250, at(0, 0), at(1000, 50))).toBe(false);
  });
  test("a loop that never beats: CPU used in the silence", () => {
    expect(isHung(RULE, 320, at(500, 7), at(600, 7))).toBe(true);
    expect(isHung(RULE, 320, at(500, 7), at(590, 7))).toBe(false);
  });
  test("a wait that never ends: it keeps waking without beating", () => {
    expect(isHung(RULE, 320, at(500, 7), at(500, 9))).toBe(true);
    expect(isHung(RULE, 320, at(500, 7), at(500, 8))).toBe(false);
  });
  test("neither ran nor woke (starved, or behind another thread's lock): only a long silence counts", () => {
    expect(isHung(RULE, 4000, at(500, 7), at(500, 7))).toBe(false);
    expect(isHung(RULE, 5001, at(500, 7), at(500, 7))).toBe(true);
    expect(isHung(RULE, 4000, null, null)).toBe(false);
  });
  test("this thread's own figures: sleeping raises the count, spinning the CPU time", () => {
    loadLibc(new Int32Array(new SharedArrayBuffer(4)));
    const tid = gettid();
    const a = sampleThread(tid)!;
    expect(a).not.toBeNull();
    const cell = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 3; i++) Atomics.wait(cell, 0, 0, 5);
    const t0 = performance.now();
    while (performance.now() - t0 < 60);
    const b = sampleThread(tid)!;
    expect(b.sleeps - a.sleeps).toBeGreaterThanOrEqual(3);
    expect(b.cpuMs).toBeGreaterThanOrEqual(a.cpuMs);
    expect(sampleThread(-1)).toBeNull();
    expect(sampleThread(99_999_999)).toBeNull();
  });
});
