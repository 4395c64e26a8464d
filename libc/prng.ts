// The system's seeded PRNG (mulberry32) for apps and their tests, so that a fuzz run
// is replayed exactly from its seed.
export { mulberry32 } from "../lib/sys/prng.ts";
