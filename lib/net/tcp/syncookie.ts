// syncookie.ts — keyed hashing for initial sequence numbers (RFC 6528) and SYN cookies (RFC 4987 §3.6).
//
// The keyed hash is HalfSipHash-2-4 (32-bit output, 64-bit key), the function Linux
// uses for the same job (hsiphash), here over 32-bit words.
//
// Cookie layout (an ISN, D. J. Bernstein's scheme as in RFC 4987):
//
//    31      27 26  24 23                                  0
//   +----------+------+-------------------------------------+
//   | counter  | mss  |  MAC(secret, 4-tuple, peer ISN,     |
//   | (5 bits) | idx  |      counter, mss idx) low 24 bits  |
//   +----------+------+-------------------------------------+
//
// counter = floor(now / 64 s) mod 32; a cookie is valid for the current and previous
// counter (64–128 s). When the SYN carried timestamps, the peer's window-scale shift
// and SACK-permitted ride in the low 6 bits of our TSval, which the final ACK echoes
// (as Linux does); without timestamps, a cookie connection has neither option.

/** HalfSipHash-2-4 of 32-bit words with a 64-bit key (k0, k1). */
export function halfSipHash(k0: number, k1: number, words: ArrayLike<number>): number {
  let v0 = k0 >>> 0;
  let v1 = k1 >>> 0;
  let v2 = (0x6c796765 ^ k0) >>> 0;
  let v3 = (0x74656462 ^ k1) >>> 0;
  const rotl = (x: number, b: number) => ((x << b) | (x >>> (32 - b))) >>> 0;
  const round = () => {
    v0 = (v0 + v1) >>> 0; v1 = rotl(v1, 5); v1 ^= v0; v0 = rotl(v0, 16);
    v2 = (v2 + v3) >>> 0; v3 = rotl(v3, 8); v3 ^= v2;
    v0 = (v0 + v3) >>> 0; v3 = rotl(v3, 7); v3 ^= v0;
    v2 = (v2 + v1) >>> 0; v1 = rotl(v1, 13); v1 ^= v2; v2 = rotl(v2, 16);
    v1 >>>= 0; v3 >>>= 0;
  };
  for (let i = 0; i < words.length; i++) {
    const m = words[i]! >>> 0;
    v3 = (v3 ^ m) >>> 0;
    round(); round();
    v0 = (v0 ^ m) >>> 0;
  }
  const b = ((words.length * 4) << 24) >>> 0;
  v3 = (v3 ^ b) >>> 0;
  round(); round();
  v0 = (v0 ^ b) >>> 0;
  v2 = (v2 ^ 0xff) >>> 0;
  round(); round(); round(); round();
  return (v1 ^ v3) >>> 0;
}

/** A 64-bit secret as two u32 words. Servers draw it at random at boot (and keep it across restarts). */
export type Secret = readonly [number, number];

/**
 * RFC 6528 ISN: a 4 µs clock plus a keyed hash of the 4-tuple, so sequence numbers
 * of one 4-tuple increase over time while being unguessable across 4-tuples.
 */
export function isnFor(secret: Secret, now: number, localAddr: number, localPort: number, remoteAddr: number, remotePort: number): number {
  const h = halfSipHash(secret[0], secret[1], [localAddr, remoteAddr, ((localPort & 0xffff) << 16) | (remotePort & 0xffff), 0x15]);
  return (h + Math.floor(now * 250)) >>> 0;
}

/** MSS values a cookie can carry (Linux's table); the index rounds the peer's MSS down. */
export const COOKIE_MSS = [536, 1300, 1440, 1460] as const;
export const COOKIE_PERIOD_MS = 64_000;

function cookieMac(secret: Secret, la: number, lp: number, ra: number, rp: number, irs: number, counter: number, idx: number): number {
  return halfSipHash(secret[0], secret[1], [la, ra, ((lp & 0xffff) << 16) | (rp & 0xffff), irs, (counter << 8) | idx, 0xc0]) & 0xffffff;
}

/** The cookie ISN for a SYN whose sequence number is `irs` and MSS option `mss` (536 when absent). */
export function makeCookie(secret: Secret, now: number, la: number, lp: number, ra: number, rp: number, irs: number, mss: number): number {
  let idx = 0;
  for (let i = COOKIE_MSS.length - 1; i >= 0; i--) if (COOKIE_MSS[i]! <= mss) { idx = i; break; }
  const counter = Math.floor(now / COOKIE_PERIOD_MS) & 31;
  return ((counter << 27) | (idx << 24) | cookieMac(secret, la, lp, ra, rp, irs >>> 0, counter, idx)) >>> 0;
}

/**
 * Validate a cookie (the final ACK's SEG.ACK - 1; `irs` is its SEG.SEQ - 1). Returns the
 * MSS it encodes, or undefined when forged or expired.
 */
export function checkCookie(secret: Secret, now: number, cookie: number, la: number, lp: number, ra: number, rp: number, irs: number): number | undefined {
  cookie >>>= 0;
  const counter = cookie >>> 27;
  const idx = (cookie >>> 24) & 7;
  if (idx >= COOKIE_MSS.length) return undefined;
  const age = ((Math.floor(now / COOKIE_PERIOD_MS) & 31) - counter) & 31;
  if (age > 1) return undefined;
  if ((cookie & 0xffffff) !== cookieMac(secret, la, lp, ra, rp, irs >>> 0, counter, idx)) return undefined;
  return COOKIE_MSS[idx];
}

/** Low 6 bits of a cookie SYN-ACK's TSval: wscale (0..14, 15 = none) and SACK-permitted. */
export function encodeTsOptions(wscale: number | undefined, sackOk: boolean): number {
  return (wscale === undefined ? 15 : Math.min(14, wscale)) | (sackOk ? 16 : 0);
}

export function decodeTsOptions(bits: number): { wscale?: number; sackPermitted: boolean } {
  const ws = bits & 15;
  return ws === 15 ? { sackPermitted: (bits & 16) !== 0 } : { wscale: ws, sackPermitted: (bits & 16) !== 0 };
}
