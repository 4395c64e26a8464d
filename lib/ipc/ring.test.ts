// Rings within one thread: layout, wrap-around, full and empty, and hostile indices.
import { describe, expect, test } from "vitest";
import { ByteRing, CORRUPT, createByteRingBuffer, createSlotRingBuffer, HDR_BYTES, MsgRing, SlotRing } from "./ring.ts";

describe("ByteRing", () => {
  test("wraps around and reports full and empty", () => {
    const sab = createByteRingBuffer(16);
    const p = new ByteRing(sab);
    const c = new ByteRing(sab);
    expect(c.readable()).toBe(0);
    expect(p.write(new Uint8Array(12).fill(1))).toBe(12);
    const out = new Uint8Array(16);
    expect(c.read(out.subarray(0, 10))).toBe(10);
    // 2 left in flight; write 14 to fill it, crossing the end of the data area
    expect(p.write(Uint8Array.from({ length: 20 }, (_, i) => i + 100))).toBe(14);
    expect(p.writable()).toBe(0);
    expect(p.write(new Uint8Array(1))).toBe(0);
    expect(c.read(out)).toBe(16);
    expect([...out.subarray(0, 4)]).toEqual([1, 1, 100, 101]);
    expect(out[15]).toBe(113);
    expect(c.readable()).toBe(0);
  });

  test("an impossible tail is CORRUPT, and nothing is read", () => {
    const sab = createByteRingBuffer(16);
    const c = new ByteRing(sab);
    new Int32Array(sab)[0] = 1000; // hostile producer: 1000 bytes in a 16-byte ring
    expect(c.readable()).toBe(CORRUPT);
    expect(c.read(new Uint8Array(8))).toBe(CORRUPT);
  });

  test("capacity must be a power of two and fit the buffer", () => {
    expect(() => createByteRingBuffer(100)).toThrow(/power of two/);
    const sab = new SharedArrayBuffer(HDR_BYTES + 16);
    new Int32Array(sab)[1] = 1 << 20;
    expect(() => new ByteRing(sab)).toThrow(/does not fit/);
  });
});

describe("MsgRing", () => {
  test("messages stay whole across the wrap", () => {
    const sab = createByteRingBuffer(64);
    const p = new MsgRing(sab);
    const c = new MsgRing(sab);
    for (let round = 0; round < 50; round++) {
      const a = Uint8Array.from({ length: 10 + (round % 7) }, (_, i) => (i + round) & 0xff);
      expect(p.tryWrite(a)).toBe(true);
      const got = c.tryRead();
      expect(got).toEqual(a);
    }
    expect(c.tryRead()).toBeNull();
  });

  test("a full ring refuses a message whole; an oversized one throws", () => {
    const sab = createByteRingBuffer(64);
    const p = new MsgRing(sab, 40);
    expect(p.tryWrite(new Uint8Array(36))).toBe(true);
    expect(p.tryWrite(new Uint8Array(30))).toBe(false);
    expect(() => p.tryWrite(new Uint8Array(41))).toThrow(/exceeds/);
  });

  test("a lying length prefix is CORRUPT and the consumer resynchronises", () => {
    const sab = createByteRingBuffer(64);
    const p = new ByteRing(sab);
    const c = new MsgRing(sab, 32);
    p.write(Uint8Array.of(0xff, 0xff, 0, 0, 1, 2, 3)); // claims 65535 bytes
    expect(c.tryRead()).toBe(CORRUPT);
    expect(c.tryRead()).toBeNull();
    const good = new MsgRing(sab, 32);
    expect(good.tryWrite(Uint8Array.of(9, 9))).toBe(true);
    expect(c.tryRead()).toEqual(Uint8Array.of(9, 9));
  });
});

describe("SlotRing", () => {
  test("fills, batches and empties", () => {
    const sab = createSlotRingBuffer(4, 8);
    const p = new SlotRing(sab);
    const c = new SlotRing(sab);
    for (let k = 0; k < 4; k++) {
      const o = p.produceSlot(k);
      expect(o).toBeGreaterThanOrEqual(0);
      p.view.setUint32(o, k * 10, true);
    }
    expect(p.produceSlot(4)).toBe(-1);
    p.produce(4);
    expect(p.produceSlot()).toBe(-1);
    expect(c.available()).toBe(4);
    expect(c.view.getUint32(c.consumeSlot(3), true)).toBe(30);
    c.consume(4);
    expect(c.consumeSlot()).toBe(-1);
    expect(p.produceSlot()).toBeGreaterThanOrEqual(0);
  });

  test("a hostile tail is refused", () => {
    const sab = createSlotRingBuffer(4, 8);
    const c = new SlotRing(sab);
    new Int32Array(sab)[0] = -5;
    expect(c.available()).toBe(CORRUPT);
    expect(c.consumeSlot()).toBe(-1);
  });

  test("slot size must be a positive multiple of 4", () => {
    expect(() => createSlotRingBuffer(4, 6)).toThrow(/multiple of 4/);
    expect(() => createSlotRingBuffer(3, 8)).toThrow(/power of two/);
  });
});
