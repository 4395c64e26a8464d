// Packet-buffer pools: allocation, custody, return, reclaim after a holder's restart.
import { describe, expect, test } from "vitest";
import { createPool, DESC_BYTES, Pool, PoolOwner, readDesc, writeDesc } from "./pool.ts";

const OWNER = 3;
const PF = 4;
const IP = 5;

describe("packet pools", () => {
  test("allocate, write in place, hand on, read, release, collect", () => {
    const sab = createPool(4, 2048);
    const owner = new PoolOwner(7, sab, OWNER, true);
    const user = new Pool(7, sab);
    const d = owner.alloc(100)!;
    expect(d.len).toBe(100);
    owner.view(d)!.set([1, 2, 3]);
    expect(owner.transfer(d, PF)).toBe(true);
    expect(user.holder(d.index)).toBe(PF);
    expect([...user.view(d)!.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect(user.release(d)).toBe(true);
    expect(user.release(d)).toBe(false); // twice is refused
    expect(user.view(d)).toBeNull(); // no longer in use
    // three left; the returned one comes back when the free list runs dry
    for (let i = 0; i < 3; i++) expect(owner.alloc()).not.toBeNull();
    expect(owner.alloc()).not.toBeNull();
    expect(owner.stats.collected).toBe(1);
    expect(owner.alloc()).toBeNull();
    expect(owner.stats.exhausted).toBe(1);
  });

  test("reclaiming a restarted holder's buffers makes descriptors in flight stale", () => {
    const sab = createPool(8, 256);
    const owner = new PoolOwner(1, sab, OWNER, true);
    const user = new Pool(1, sab);
    const atIp = owner.alloc(10)!;
    owner.transfer(atIp, IP);
    const atPf = owner.alloc(10)!;
    owner.transfer(atPf, PF);
    expect(owner.reclaim(IP)).toBe(1);
    expect(user.view(atIp)).toBeNull(); // stale generation
    expect(user.release(atIp)).toBe(false);
    expect(user.view(atPf)).not.toBeNull(); // pf's buffer is untouched
    expect(owner.freeCount).toBe(7);
  });

  test("hostile descriptors are refused, never thrown on", () => {
    const sab = createPool(2, 128);
    const owner = new PoolOwner(9, sab, OWNER, true);
    const d = owner.alloc(10)!;
    for (const bad of [
      { ...d, pool: 8 }, { ...d, index: 2 }, { ...d, index: -1 }, { ...d, off: 120, len: 9 },
      { ...d, len: -1 }, { ...d, gen: d.gen + 1 }, { ...d, index: Number.NaN },
    ]) {
      expect(owner.view(bad)).toBeNull();
      expect(owner.release(bad)).toBe(false);
    }
  });

  test("a restarted owner keeps buffers lent to others and takes back its own", () => {
    const sab = createPool(4, 128);
    const first = new PoolOwner(2, sab, OWNER, true);
    const lent = first.alloc(5)!;
    first.transfer(lent, IP);
    first.alloc(5); // held by the owner when it died
    const again = new PoolOwner(2, sab, OWNER, false);
    expect(again.freeCount).toBe(3);
    expect(again.view(lent)).not.toBeNull();
  });

  test("descriptors round-trip through a slot's bytes", () => {
    const v = new DataView(new ArrayBuffer(DESC_BYTES));
    const d = { pool: 3, index: 1000, gen: 7, off: 34, len: 1514, tag: 0x11 };
    writeDesc(v, 0, d);
    expect(readDesc(v, 0)).toEqual(d);
  });

  test("bad pool geometry is refused", () => {
    expect(() => createPool(0, 2048)).toThrow(RangeError);
    expect(() => createPool(4, 100)).toThrow(RangeError);
    expect(() => new Pool(1, new SharedArrayBuffer(4096))).toThrow(/not a pool/);
  });
});
