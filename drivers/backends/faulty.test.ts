// Tests for the fault injector: rates over many frames with a fixed seed, replay, both directions.
import { describe, expect, test } from "vitest";
import { FaultyBackend, Prng, type FaultOptions } from "./faulty.ts";
import { loopbackPair } from "./loopback.fixture.ts";
import { seqFrame, seqOf } from "./frames.fixture.ts";
import type { Backend } from "./backend.ts";

const N = 10_000;

/** Sends N frames from `tx` and collects what `rx` gets, as [seq or -1 for a damaged frame]. */
async function run(tx: Backend, rx: Backend, flush: Backend, batch = 100): Promise<number[]> {
  const got: number[] = [];
  const take = (f: Uint8Array): void => {
    const s = seqOf(f);
    const intact = s >= 0 && f.length === 64 && seqFrame(s).every((x, i) => x === f[i]);
    got.push(intact ? s : -1);
  };
  for (let i = 0; i < N; i++) {
    tx.send(seqFrame(i));
    if (i % batch === batch - 1) while (rx.recv(64, take) > 0);
  }
  await new Promise((r) => setTimeout(r, 20)); // past holdMs: a held frame must come out
  flush.recv(0, () => {});
  while (rx.recv(64, take) > 0);
  return got;
}

/** What a run looks like: intact frames, damaged ones, distinct seqs, repeats, out-of-order arrivals. */
function summary(got: number[]) {
  const seen = new Map<number, number>();
  let inversions = 0;
  let last = -1;
  for (const s of got) {
    if (s < 0) continue;
    seen.set(s, (seen.get(s) ?? 0) + 1);
    if (s < last) inversions++;
    last = Math.max(last, s);
  }
  const repeats = [...seen.values()].filter((n) => n > 1).length;
  return { total: got.length, damaged: got.filter((s) => s < 0).length, distinct: seen.size, repeats, inversions };
}

const RATES: FaultOptions = { loss: 0.05, duplicate: 0.03, reorder: 0.03, corrupt: 0.02, seed: 42 };

describe("faulty wrapper", () => {
  test("prng: seeded, in [0, 1), roughly uniform", () => {
    const a = new Prng(7);
    const b = new Prng(7);
    let sum = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = a.next();
      expect(x).toBe(b.next());
      expect(x >= 0 && x < 1).toBe(true);
      sum += x;
    }
    expect(sum / 10_000).toBeGreaterThan(0.48);
    expect(sum / 10_000).toBeLessThan(0.52);
    expect(new Prng(8).next()).not.toBe(new Prng(7).next());
  });

  test("tx faults over 10,000 frames: loss ~5%, duplicates, reordering and corruption all seen and counted", async () => {
    const [a, b] = loopbackPair({ capacity: 4096 });
    const fa = new FaultyBackend(a, { ...RATES, rx: false });
    const got = await run(fa, b, fa);
    const f = fa.faults();
    const s = summary(got);
    console.log("faulty tx, seed 42:", JSON.stringify(f.tx), JSON.stringify(s));
    expect(f.rx).toEqual({ lost: 0, duplicated: 0, reordered: 0, corrupted: 0 });
    // Rates within about 4 standard deviations of the mean.
    expect(f.tx.lost).toBeGreaterThan(400);
    expect(f.tx.lost).toBeLessThan(600);
    expect(f.tx.duplicated).toBeGreaterThan(200);
    expect(f.tx.duplicated).toBeLessThan(400);
    expect(f.tx.reordered).toBeGreaterThan(200);
    expect(f.tx.corrupted).toBeGreaterThan(100);
    expect(f.tx.corrupted).toBeLessThan(300);
    // Every frame is accounted for: sent - lost + duplicated arrive; damaged ones are the corrupted
    // ones (twice when also duplicated).
    expect(s.total).toBe(N - f.tx.lost + f.tx.duplicated);
    expect(s.damaged).toBeGreaterThanOrEqual(f.tx.corrupted);
    expect(s.repeats).toBeGreaterThan(0);
    expect(s.inversions).toBeGreaterThan(100);
    expect(s.inversions).toBeLessThanOrEqual(f.tx.reordered);
    // The wrapper accepted every frame; the wire took what came out.
    expect(fa.stats()).toMatchObject({ txFrames: N, txDropped: 0 });
    expect(b.stats().rxFrames).toBe(s.total);
  });

  test("the same seed replays the same run; another seed does not", async () => {
    const once = async (seed: number) => {
      const [a, b] = loopbackPair({ capacity: 4096 });
      return run(new FaultyBackend(a, { ...RATES, seed, rx: false }), b, a);
    };
    const x = await once(42);
    expect(await once(42)).toEqual(x);
    expect(await once(43)).not.toEqual(x);
  });

  test("rx faults, with a small max: duplicates beyond max wait for the next recv", async () => {
    const [a, b] = loopbackPair({ capacity: 4096 });
    const fb = new FaultyBackend(b, { loss: 0.1, duplicate: 0.2, reorder: 0.05, seed: 5, tx: false });
    const got: number[] = [];
    for (let i = 0; i < 2000; i++) a.send(seqFrame(i));
    let n: number;
    while ((n = fb.recv(3, (f) => got.push(seqOf(f)))) > 0) expect(n).toBeLessThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 20));
    while (fb.recv(3, (f) => got.push(seqOf(f))) > 0);
    const f = fb.faults();
    expect(f.tx.lost).toBe(0);
    expect(got.length).toBe(2000 - f.rx.lost + f.rx.duplicated);
    expect(got.every((s) => s >= 0)).toBe(true);
    expect(fb.stats().rxFrames).toBe(got.length);
  });

  test("no faults configured: a transparent wrapper", async () => {
    const [a, b] = loopbackPair({ capacity: 4096 });
    const got = await run(new FaultyBackend(a, { seed: 1 }), b, a);
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
  });

  test("rates outside [0, 1] are configuration errors", () => {
    const [a] = loopbackPair();
    expect(() => new FaultyBackend(a, { loss: 1.5 })).toThrow(/loss rate 1.5/);
    expect(() => new FaultyBackend(a, { corrupt: -0.1 })).toThrow(/corrupt/);
    expect(() => new FaultyBackend(a, { reorder: Number.NaN })).toThrow(/reorder/);
  });
});
