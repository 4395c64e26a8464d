// The store: what a server saves survives; torn or corrupt contents read as nothing.
import { expect, test } from "vitest";
import { loadStore, saveStore, storeRegion } from "./store.ts";

test("saves and loads, and refuses what does not fit", () => {
  const sab = new SharedArrayBuffer(1024);
  expect(loadStore(sab)).toBeNull();
  expect(saveStore(sab, { rules: "pass all", n: [1, 2, 3] })).toBe(true);
  expect(loadStore(sab)).toEqual({ rules: "pass all", n: [1, 2, 3] });
  expect(saveStore(sab, "x".repeat(2000))).toBe(false);
  expect(loadStore(sab)).toEqual({ rules: "pass all", n: [1, 2, 3] });
});

test("a corrupted payload or a write in progress loads as null", () => {
  const sab = new SharedArrayBuffer(1024);
  saveStore(sab, { a: 1 });
  new Uint8Array(sab)[17] ^= 0xff;
  expect(loadStore(sab)).toBeNull();
  saveStore(sab, { a: 2 });
  Atomics.add(new Int32Array(sab), 0, 1);
  expect(loadStore(sab)).toBeNull();
});

test("slices of one SAB are independent stores", () => {
  const sab = new SharedArrayBuffer(4096);
  const a = storeRegion(sab, 0, 2);
  const b = storeRegion(sab, 1, 2);
  saveStore(a, { layer: "pf" });
  saveStore(b, { layer: "ip" });
  expect(loadStore(a)).toEqual({ layer: "pf" });
  expect(loadStore(b)).toEqual({ layer: "ip" });
  expect(saveStore(a, "y".repeat(3000))).toBe(false);
});
