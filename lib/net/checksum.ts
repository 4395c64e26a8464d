// Internet checksum (RFC 1071): the ones'-complement sum of big-endian 16-bit words,
// kept as a running sum so a pseudo-header, a header and a payload can be summed apart.

/**
 * Adds bytes[start..end) to a running sum `acc`, as big-endian 16-bit words.
 * An odd last byte is padded with a zero byte on the right (RFC 1071 §4.1), so when
 * summing in pieces every piece but the last must have even length.
 * The range is clamped to the array. Returns a non-negative sum below 2^32.
 */
export function sum(bytes: Uint8Array, start = 0, end = bytes.length, acc = 0): number {
  if (end > bytes.length) end = bytes.length;
  let i = start < 0 ? 0 : start;
  for (; i + 1 < end; i += 2) acc += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) acc += bytes[i]! << 8;
  // Each word is < 2^16, so a double stays exact for 2^37 words; fold only to keep
  // the running sum 32-bit for callers who mix it with u32 arithmetic.
  return acc > 0xffffffff ? fold(acc) : acc;
}

/** Folds the carries of a running sum back into 16 bits (end-around carry, RFC 1071 §2(B)). */
export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

/** The value to store in a checksum field: the complement of the folded sum. */
export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
}

/** The checksum of bytes[start..end), ready to store. */
export function checksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return finish(sum(bytes, start, end));
}

/**
 * True when a region that includes its own checksum field sums to 0xffff (ones'-complement
 * zero), i.e. the stored checksum is right.
 */
export function verifies(acc: number): boolean {
  return fold(acc) === 0xffff;
}

/**
 * Sum of the IPv4 pseudo-header used by TCP and UDP (RFC 9293 §3.1, RFC 768):
 * source and destination address, zero byte + protocol, and the transport length.
 * `src` and `dst` are u32 addresses.
 */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + (protocol & 0xff) + (length & 0xffff)
  );
}

/**
 * Incremental update of a stored checksum when one 16-bit word changes from `oldWord`
 * to `newWord` (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')), e.g. for a TTL decrement.
 */
export function adjust(stored: number, oldWord: number, newWord: number): number {
  return finish((~stored & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff));
}
