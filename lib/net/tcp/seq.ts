// seq.ts — modular 32-bit TCP sequence-number arithmetic (RFC 9293 §3.4, RFC 1982 style).
//
// Sequence numbers are unsigned 32-bit integers (0..2^32-1) that wrap. Two numbers are
// compared through their signed 32-bit distance, which is meaningful as long as they
// are less than 2^31 apart: always true for TCP, whose windows are at most 2^30 bytes
// (RFC 7323 §2.3).

/** `a + n` modulo 2^32, as an unsigned 32-bit number. `n` may be negative. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** The signed 32-bit distance `a - b` (positive when `a` is after `b`). */
export function seqSub(a: number, b: number): number {
  return (a - b) | 0;
}

/** `a` comes before `b`. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** `a` comes before `b` or equals it. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** `a` comes after `b`. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** `a` comes after `b` or equals it. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return seqGe(a, b) ? a : b;
}

/** The earlier of two sequence numbers. */
export function seqMin(a: number, b: number): number {
  return seqLe(a, b) ? a : b;
}

/** `start <= x < start + len` in sequence space (`len` >= 0; empty when 0). */
export function seqInWindow(x: number, start: number, len: number): boolean {
  const d = seqSub(x, start);
  return d >= 0 && d < len;
}
