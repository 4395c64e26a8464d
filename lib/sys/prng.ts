// mulberry32: the one small seeded PRNG of newts (fault injection, fuzz tests),
// so that a run can be replayed exactly from its seed.

/** A generator of u32 values. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A generator of floats uniform in [0, 1). */
export function unitRandom(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() / 4294967296;
}
