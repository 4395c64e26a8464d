// A server's store: a SharedArrayBuffer the kernel keeps per endpoint across
// restarts (MINIX's data store, in shared memory). A server saves a snapshot of
// the state it must not lose (pf rules, ip routes) and loads it on restart.
//
// Layout of a store region: [0] u32 sequence (odd while a write is in progress),
// [4] u32 length, [8] u32 FNV-1a of the payload, [16..] msgpack payload. A region
// is a whole SAB, or a slice of one (servers/stack.ts gives each layer a slice).
import { Packr } from "msgpackr";

export const STORE_BYTES = 256 * 1024;
const HDR = 16;
const packr = new Packr({ useRecords: false, moreTypes: false });

function fnv(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return h;
}

/** A region of a SAB used as a store (offset a multiple of 8). */
export interface Store {
  sab: SharedArrayBuffer;
  off: number;
  len: number;
}

/** The whole SAB, or slice `index` of `count` equal slices. */
export function storeRegion(sab: SharedArrayBuffer, index = 0, count = 1): Store {
  const len = Math.floor(sab.byteLength / count / 8) * 8;
  return { sab, off: index * len, len };
}

function region(r: Store | SharedArrayBuffer): Store {
  return r instanceof SharedArrayBuffer ? { sab: r, off: 0, len: r.byteLength } : r;
}

/** Saves `value`; false if it does not fit. */
export function saveStore(where: Store | SharedArrayBuffer, value: unknown): boolean {
  const { sab, off, len } = region(where);
  const body = packr.pack(value);
  if (HDR + body.length > len) return false;
  const h = new Int32Array(sab, off, 4);
  Atomics.add(h, 0, 1); // odd: being written
  new Uint8Array(sab, off + HDR, body.length).set(body);
  Atomics.store(h, 1, body.length);
  Atomics.store(h, 2, fnv(body) | 0);
  Atomics.add(h, 0, 1); // even: complete
  return true;
}

/** The saved value, or null when nothing (or nothing intact) was saved. Never throws. */
export function loadStore(where: Store | SharedArrayBuffer | undefined): unknown {
  if (!where) return null;
  const { sab, off, len: size } = region(where);
  const h = new Int32Array(sab, off, 4);
  const seq = Atomics.load(h, 0);
  const len = Atomics.load(h, 1);
  if (seq === 0 || seq % 2 !== 0 || len <= 0 || HDR + len > size) return null;
  const body = new Uint8Array(sab, off + HDR, len).slice();
  if ((fnv(body) | 0) !== Atomics.load(h, 2)) return null;
  try {
    return packr.unpack(body);
  } catch {
    return null;
  }
}
