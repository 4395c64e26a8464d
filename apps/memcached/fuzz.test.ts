// Fuzz: 100,000 random and mutated inputs (from a corpus of valid text, meta and binary
// commands) through both parsers and their executors, fed in random pieces to long-lived
// sessions on a small cache. Nothing may throw, the cache stays under its limit and a
// parser never holds more than an item plus a command line.
// Reproduce a failure with FUZZ_SEED=<seed printed below> (and FUZZ_INPUTS to run more).
import { expect, test } from "vitest";
import { mulberry32 } from "../../lib/sys/prng.ts";
import { keyBytes, Store } from "./store.ts";
import type { Ctx } from "./framing.ts";
import { execText, MAX_GET_LINE, TextParser } from "./text.ts";
import { BinaryParser, execBinary, HEADER, OP } from "./binary.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x6d656d63) >>> 0;
const INPUTS = Number(process.env.FUZZ_INPUTS ?? 100_000);
const ITEM_MAX = 8192;

function bin(opcode: number, key: string, extras: number[], value: string, cas = 0n): Uint8Array {
  const k = keyBytes(key);
  const v = keyBytes(value);
  const b = new Uint8Array(HEADER + extras.length + k.length + v.length);
  const d = new DataView(b.buffer);
  d.setUint8(0, 0x80);
  d.setUint8(1, opcode);
  d.setUint16(2, k.length);
  d.setUint8(4, extras.length);
  d.setUint32(8, extras.length + k.length + v.length);
  d.setUint32(12, 0x1234);
  d.setBigUint64(16, cas);
  b.set(extras, HEADER);
  b.set(k, HEADER + extras.length);
  b.set(v, HEADER + extras.length + k.length);
  return b;
}

const TEXT_SEEDS = [
  "set a 0 0 5\r\nhello\r\n", "get a b c\r\n", "gets a\r\n", "gat 10 a\r\n", "gats 0 a b\r\n", "add b 1 2 3\r\nabc\r\n",
  "replace a 0 0 1\r\nx\r\n", "append a 0 0 2\r\nyz\r\n", "prepend a 0 0 1 noreply\r\nq\r\n", "cas a 0 0 1 1\r\nz\r\n",
  "delete a\r\n", "delete a 0 noreply\r\n", "incr n 5\r\n", "decr n 18446744073709551615\r\n", "touch a 100\r\n",
  "flush_all\r\n", "flush_all 10 noreply\r\n", "stats\r\n", "stats items\r\n", "stats slabs\r\n", "stats settings\r\n", "version\r\n",
  "verbosity 1\r\n", "quit\r\n", "shutdown\r\n", "mn\r\n", "me a\r\n", "mg a v k t f c s O99 q h l\r\n", "mg a N30 R10 T5 v\r\n",
  "ms a 3 T10 F7 C1 I q O5 k c b\r\nabc\r\n", "ms Zm9v 2 b MA\r\nhi\r\n", "md a q C5 I T30 O1 k\r\n",
  "ma n N0 J5 D3 T10 MI q O1 v t c\r\n", "ma n MD D1 v\r\n", "set n 0 0 2\r\n10\r\n", "GET / HTTP/1.1\r\n",
  "set big 0 0 100000\r\n", "get " + "k ".repeat(1200) + "\r\n",
];
const BIN_SEEDS = [
  bin(OP.SET, "a", [0, 0, 0, 1, 0, 0, 0, 0], "value"), bin(OP.GET, "a", [], ""), bin(OP.GETKQ, "a", [], ""),
  bin(OP.ADDQ, "b", [0, 0, 0, 0, 0, 0, 0, 0], "v"), bin(OP.APPEND, "a", [], "more"), bin(OP.PREPEND, "a", [], "pre"),
  bin(OP.INCREMENT, "n", [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0], ""),
  bin(OP.DECREMENTQ, "n", [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 255, 255, 255, 255], ""),
  bin(OP.DELETE, "a", [], "", 3n), bin(OP.TOUCH, "a", [0, 0, 0, 9], ""), bin(OP.GATK, "a", [0, 0, 0, 9], ""),
  bin(OP.FLUSH, "", [0, 0, 0, 1], ""), bin(OP.NOOP, "", [], ""), bin(OP.VERSION, "", [], ""), bin(OP.STAT, "", [], ""),
  bin(OP.STAT, "items", [], ""), bin(OP.QUITQ, "", [], ""), bin(0x55, "x", [], "junk"), bin(OP.VERBOSITY, "", [0, 0, 0, 1], ""),
];
const INTERESTING = [0x00, 0x0a, 0x0d, 0x20, 0x2d, 0x30, 0x39, 0x7f, 0x80, 0x81, 0xff, 0x62, 0x6d];

class Rng {
  private readonly u: () => number;
  constructor(seed: number) {
    this.u = mulberry32(seed);
  }
  int(n: number): number {
    return this.u() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

function generate(r: Rng): Uint8Array {
  const kind = r.int(10);
  if (kind === 0) {
    const b = new Uint8Array(r.int(600));
    for (let i = 0; i < b.length; i++) b[i] = r.int(256);
    return b;
  }
  if (kind === 1) {
    // A binary header with random lengths, then some body.
    const b = new Uint8Array(HEADER + r.int(64));
    for (let i = 0; i < b.length; i++) b[i] = r.int(256);
    b[0] = 0x80;
    b[1] = r.int(4) === 0 ? r.int(256) : r.pick(Object.values(OP));
    return b;
  }
  if (kind === 2) {
    // A storage line with random numbers, then some data.
    const n = (x: number) => (r.int(3) === 0 ? String(r.int(x)) : r.pick(["-1", "0", "4294967296", "99999999999", "+3", "x", "", "2147483647"]));
    return keyBytes(`${r.pick(["set", "add", "cas", "ms", "append"])} k${r.int(20)} ${n(100)} ${n(100)} ${n(ITEM_MAX * 2)} ${n(10)}\r\n${"d".repeat(r.int(200))}\r\n`);
  }
  // A mutated seed (or several spliced).
  let b = Uint8Array.from(r.int(2) === 0 ? keyBytes(r.pick(TEXT_SEEDS)) : r.pick(BIN_SEEDS));
  for (let m = r.int(5); m >= 0; m--) {
    const op = r.int(6);
    if (op === 0 && b.length > 0) b[r.int(b.length)] ^= 1 << r.int(8);
    else if (op === 1 && b.length > 0) b[r.int(b.length)] = r.pick(INTERESTING);
    else if (op === 2 && b.length > 0) b = b.slice(0, r.int(b.length));
    else if (op === 3) {
      const other = r.int(2) === 0 ? keyBytes(r.pick(TEXT_SEEDS)) : r.pick(BIN_SEEDS);
      const c = new Uint8Array(b.length + other.length);
      c.set(b);
      c.set(other, b.length);
      b = c;
    } else if (op === 4 && b.length > 2) {
      const at = r.int(b.length);
      b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + r.int(3))]);
    } else if (op === 5) {
      const at = r.int(b.length + 1);
      const ins = Array.from({ length: 1 + r.int(4) }, () => r.pick(INTERESTING));
      b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
    }
  }
  return b;
}

function makeCtx(store: Store): Ctx {
  return {
    store, version: "1.6.0-newts", verbosity: 0, shutdownEnabled: true, settings: { port: 11211, iface: "0.0.0.0", maxConns: 4 },
    stats: (sub) => (sub === "" ? [["curr_items", store.count]] : sub === "items" || sub === "slabs" ? [] : null),
    resetStats: () => {},
  };
}

test(`fuzz: ${INPUTS} random and mutated inputs through the text and binary parsers and executors (seed ${SEED})`, () => {
  const r = new Rng(SEED);
  const clock = { t: 1_700_000_000 };
  const store = new Store({ maxBytes: 64 * 1024, itemSizeMax: ITEM_MAX, clock: () => clock.t });
  const ctx = makeCtx(store);
  let text = new TextParser({ itemSizeMax: ITEM_MAX });
  let binary = new BinaryParser({ itemSizeMax: ITEM_MAX });
  let textDone = false;
  let binDone = false;
  let outBytes = 0;
  const out = (b: Uint8Array) => {
    outBytes += b.length;
  };
  let commands = 0;
  let hangups = 0;
  for (let i = 0; i < INPUTS; i++) {
    const input = generate(r);
    if (i % 1000 === 0) clock.t += r.int(20);
    // Each input goes to both parsers, in random pieces.
    for (let off = 0; off < input.length; ) {
      const n = 1 + r.int(Math.max(1, input.length - off));
      const piece = input.subarray(off, off + n);
      off += n;
      try {
        if (!textDone) {
          text.push(piece);
          for (let c = text.next(); c; c = text.next()) {
            commands++;
            const a = execText(c, ctx, out);
            if (a !== "ok") {
              textDone = true;
              break;
            }
          }
        }
        if (!binDone) {
          binary.push(piece);
          for (let e = binary.next(); e; e = binary.next()) {
            commands++;
            const a = execBinary(e, ctx, out);
            if (a !== "ok") {
              binDone = true;
              break;
            }
          }
        }
      } catch (e) {
        throw new Error(`input ${i} (seed ${SEED}) threw ${e instanceof Error ? e.stack : String(e)}: ${JSON.stringify(Array.from(input))}`);
      }
      expect(text.buffered).toBeLessThanOrEqual(MAX_GET_LINE + ITEM_MAX + 1024);
      expect(binary.buffered).toBeLessThanOrEqual(ITEM_MAX + 1024);
    }
    expect(store.bytes).toBeLessThanOrEqual(store.maxBytes);
    // A session that hung up (or was told to quit) starts again, as a new connection would.
    if (textDone || r.int(200) === 0) {
      text = new TextParser({ itemSizeMax: ITEM_MAX });
      textDone = false;
      hangups++;
    }
    if (binDone || r.int(50) === 0) {
      binary = new BinaryParser({ itemSizeMax: ITEM_MAX });
      binDone = false;
      hangups++;
    }
  }
  console.log(`fuzz: ${INPUTS} inputs, ${commands} commands, ${hangups} new sessions, ${outBytes} reply bytes, ${store.count} items (seed ${SEED})`);
  expect(commands).toBeGreaterThan(INPUTS / 2);
}, 180_000);
