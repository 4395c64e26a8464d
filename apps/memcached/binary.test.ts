// The binary protocol (binary.ts), parser and executor together, on literal packets: the
// responses memcached 1.6 gives (status, extras, key, CAS, opaque, error texts), quiet
// variants, byte-by-byte feeding, and every malformed packet the server must survive.
import { describe, expect, test } from "vitest";
import { keyBytes, Store } from "./store.ts";
import type { Ctx } from "./framing.ts";
import { BinaryParser, execBinary, HEADER, OP, STATUS } from "./binary.ts";

interface ReqOpts {
  key?: string;
  extras?: Uint8Array;
  value?: Uint8Array | string;
  cas?: bigint;
  opaque?: number;
  keylen?: number;
  extlen?: number;
  bodylen?: number;
  magic?: number;
}

/** A request packet; lengths are the true ones unless overridden (to lie). */
function req(opcode: number, o: ReqOpts = {}): Uint8Array {
  const key = keyBytes(o.key ?? "");
  const extras = o.extras ?? new Uint8Array(0);
  const value = typeof o.value === "string" ? keyBytes(o.value) : (o.value ?? new Uint8Array(0));
  const b = new Uint8Array(HEADER + extras.length + key.length + value.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, o.magic ?? 0x80);
  v.setUint8(1, opcode);
  v.setUint16(2, o.keylen ?? key.length);
  v.setUint8(4, o.extlen ?? extras.length);
  v.setUint32(8, o.bodylen ?? extras.length + key.length + value.length);
  v.setUint32(12, o.opaque ?? 0xdeadbeef);
  v.setBigUint64(16, o.cas ?? 0n);
  b.set(extras, HEADER);
  b.set(key, HEADER + extras.length);
  b.set(value, HEADER + extras.length + key.length);
  return b;
}

const be32 = (...xs: number[]) => {
  const b = new Uint8Array(4 * xs.length);
  xs.forEach((x, i) => new DataView(b.buffer).setUint32(4 * i, x));
  return b;
};
const setExtras = (flags: number, exptime: number) => be32(flags, exptime);
function incrExtras(delta: bigint, initial: bigint, exptime: number): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, delta);
  v.setBigUint64(8, initial);
  v.setUint32(16, exptime);
  return b;
}
const cat = (...bs: Uint8Array[]) => {
  const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of bs) {
    out.set(b, off);
    off += b.length;
  }
  return out;
};
const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString("latin1");

interface Res {
  magic: number;
  opcode: number;
  status: number;
  keylen: number;
  extlen: number;
  bodylen: number;
  opaque: number;
  cas: bigint;
  extras: Uint8Array;
  key: string;
  value: string;
}

function decode(b: Uint8Array): Res[] {
  const out: Res[] = [];
  let i = 0;
  while (i + HEADER <= b.length) {
    const v = new DataView(b.buffer, b.byteOffset + i);
    const r = {
      magic: v.getUint8(0), opcode: v.getUint8(1), keylen: v.getUint16(2), extlen: v.getUint8(4), status: v.getUint16(6),
      bodylen: v.getUint32(8), opaque: v.getUint32(12), cas: v.getBigUint64(16),
    };
    const body = b.subarray(i + HEADER, i + HEADER + r.bodylen);
    out.push({
      ...r, extras: body.slice(0, r.extlen), key: text(body.subarray(r.extlen, r.extlen + r.keylen)), value: text(body.subarray(r.extlen + r.keylen)),
    });
    i += HEADER + r.bodylen;
  }
  expect(i).toBe(b.length);
  return out;
}

function session(opts: { itemSizeMax?: number; maxBytes?: number; evict?: boolean } = {}) {
  const clock = { t: 1_700_000_000 };
  const store = new Store({ ...opts, clock: () => clock.t });
  const ctx: Ctx = {
    store, version: "1.6.0-newts", verbosity: 0, shutdownEnabled: false, settings: { port: 11211, iface: "0.0.0.0", maxConns: 1024 },
    stats: (sub) => (sub === "" ? [["pid", 1], ["curr_items", store.count]] : sub === "items" ? [] : null),
    resetStats: () => {},
  };
  const parser = new BinaryParser({ itemSizeMax: opts.itemSizeMax });
  let out: Uint8Array[] = [];
  let closed = false;
  let afterWrite = false;
  const run = () => {
    for (;;) {
      if (closed || afterWrite) return;
      const ev = parser.next();
      if (!ev) return;
      const a = execBinary(ev, ctx, (b) => out.push(b));
      if (a === "close") closed = true;
      if (a === "close-after-write") afterWrite = true;
    }
  };
  return {
    store, clock, parser,
    raw(input: Uint8Array, step = 0): Uint8Array {
      if (step > 0) {
        for (let i = 0; i < input.length; i += step) {
          parser.push(input.subarray(i, i + step));
          run();
        }
      } else {
        parser.push(input);
        run();
      }
      const all = cat(...out);
      out = [];
      return all;
    },
    send(input: Uint8Array, step = 0): Res[] {
      return decode(this.raw(input, step));
    },
    get closed() {
      return closed;
    },
    get hangup() {
      return closed || afterWrite;
    },
  };
}

describe("binary protocol", () => {
  test("set, get, getk, add, replace, append, prepend, with CAS and opaque", () => {
    const s = session();
    const [set] = s.send(req(OP.SET, { key: "k", extras: setExtras(5, 0), value: "val", opaque: 7 }));
    expect(set).toMatchObject({ magic: 0x81, opcode: OP.SET, status: 0, keylen: 0, extlen: 0, bodylen: 0, opaque: 7, cas: 1n });
    const [get, getk] = s.send(cat(req(OP.GET, { key: "k" }), req(OP.GETK, { key: "k" })));
    expect(get).toMatchObject({ opcode: OP.GET, status: 0, extlen: 4, keylen: 0, cas: 1n, value: "val", opaque: 0xdeadbeef });
    expect(get!.extras).toEqual(be32(5));
    expect(getk).toMatchObject({ opcode: OP.GETK, status: 0, extlen: 4, keylen: 1, key: "k", value: "val" });
    expect(s.send(req(OP.ADD, { key: "k", extras: setExtras(0, 0), value: "x" }))[0]).toMatchObject({ status: STATUS.KEY_EEXISTS, value: "Data exists for key.", cas: 0n });
    expect(s.send(req(OP.REPLACE, { key: "zz", extras: setExtras(0, 0), value: "x" }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT, value: "Not found" });
    expect(s.send(req(OP.APPEND, { key: "zz", value: "x" }))[0]).toMatchObject({ status: STATUS.NOT_STORED, value: "Not stored." });
    expect(s.send(req(OP.APPEND, { key: "k", value: "ue" }))[0]).toMatchObject({ status: 0 });
    expect(s.send(req(OP.PREPEND, { key: "k", value: ">" }))[0]).toMatchObject({ status: 0 });
    const [g2] = s.send(req(OP.GET, { key: "k" }));
    expect(g2).toMatchObject({ value: ">value" });
    expect(g2!.extras).toEqual(be32(5)); // append/prepend keep the flags
    // set with a CAS: a wrong one is EEXISTS, the right one stores
    expect(s.send(req(OP.SET, { key: "k", extras: setExtras(0, 0), value: "n", cas: g2!.cas + 1n }))[0]).toMatchObject({ status: STATUS.KEY_EEXISTS });
    expect(s.send(req(OP.SET, { key: "k", extras: setExtras(0, 0), value: "n", cas: g2!.cas }))[0]).toMatchObject({ status: 0 });
    // replace/add with a CAS act as cas
    expect(s.send(req(OP.REPLACE, { key: "nokey", extras: setExtras(0, 0), value: "n", cas: 5n }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
  });

  test("misses: Get 'Not found', GetK the key, GetQ/GetKQ nothing; Noop flushes", () => {
    const s = session();
    const r = s.send(cat(req(OP.GET, { key: "a" }), req(OP.GETK, { key: "bb" }), req(OP.GETQ, { key: "a" }), req(OP.GETKQ, { key: "a" }), req(OP.NOOP)));
    expect(r.map((x) => [x.opcode, x.status])).toEqual([[OP.GET, 1], [OP.GETK, 1], [OP.NOOP, 0]]);
    expect(r[0]).toMatchObject({ value: "Not found", keylen: 0 });
    expect(r[1]).toMatchObject({ key: "bb", keylen: 2, bodylen: 2, value: "" });
  });

  test("quiet variants: nothing on success, errors still sent", () => {
    const s = session();
    const r = s.send(cat(
      req(OP.SETQ, { key: "a", extras: setExtras(0, 0), value: "1" }),
      req(OP.ADDQ, { key: "a", extras: setExtras(0, 0), value: "1" }),
      req(OP.REPLACEQ, { key: "a", extras: setExtras(0, 0), value: "2" }),
      req(OP.APPENDQ, { key: "a", value: "3" }),
      req(OP.PREPENDQ, { key: "a", value: "0" }),
      req(OP.INCREMENTQ, { key: "a", extras: incrExtras(1n, 0n, 0) }),
      req(OP.DECREMENTQ, { key: "a", extras: incrExtras(2n, 0n, 0) }),
      req(OP.DELETEQ, { key: "nokey" }),
      req(OP.GATQ, { key: "a", extras: be32(100) }),
      req(OP.FLUSHQ),
      req(OP.GETQ, { key: "a" }),
      req(OP.NOOP),
    ));
    expect(r.map((x) => [x.opcode, x.status])).toEqual([[OP.ADDQ, STATUS.KEY_EEXISTS], [OP.DELETEQ, STATUS.KEY_ENOENT], [OP.GATQ, 0], [OP.NOOP, 0]]);
    expect(r[2]).toMatchObject({ value: "22 " }); // "023" + 1 - 2, padded in place as memcached does
  });

  test("incr/decr: 8-byte value, initial value on a miss, 0xffffffff refuses, non-numeric, wrap", () => {
    const s = session();
    const seq = [0n, 1n, 2n].map(() => s.send(req(OP.INCREMENT, { key: "n", extras: incrExtras(1n, 0n, 0) }))[0]!);
    expect(seq.map((x) => x.bodylen)).toEqual([8, 8, 8]);
    expect(seq.map((x) => new DataView(x.value === "" ? new ArrayBuffer(8) : keyBytes(x.value).buffer).getBigUint64(0))).toEqual([0n, 1n, 2n]);
    expect(seq.every((x) => x.cas > 0n)).toBe(true);
    expect(s.send(req(OP.DECREMENT, { key: "m", extras: incrExtras(1n, 5n, 0xffffffff) }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
    const [d] = s.send(req(OP.DECREMENT, { key: "m", extras: incrExtras(100n, 5n, 0) }));
    expect(new DataView(keyBytes(d!.value).buffer).getBigUint64(0)).toBe(5n);
    const [d2] = s.send(req(OP.DECREMENT, { key: "m", extras: incrExtras(100n, 5n, 0) }));
    expect(new DataView(keyBytes(d2!.value).buffer).getBigUint64(0)).toBe(0n);
    s.send(req(OP.SET, { key: "t", extras: setExtras(0, 0), value: "text" }));
    expect(s.send(req(OP.INCREMENT, { key: "t", extras: incrExtras(1n, 0n, 0) }))[0]).toMatchObject({
      status: STATUS.DELTA_BADVAL, value: "Non-numeric server-side value for incr or decr",
    });
    s.send(req(OP.SET, { key: "w", extras: setExtras(0, 0), value: "18446744073709551615" }));
    const [w] = s.send(req(OP.INCREMENT, { key: "w", extras: incrExtras(2n, 0n, 0) }));
    expect(new DataView(keyBytes(w!.value).buffer).getBigUint64(0)).toBe(1n);
    // with a wrong CAS
    expect(s.send(req(OP.INCREMENT, { key: "w", extras: incrExtras(1n, 0n, 0), cas: w!.cas + 9n }))[0]).toMatchObject({ status: STATUS.KEY_EEXISTS });
  });

  test("delete, touch, gat/gatk, flush with and without a delay, version, verbosity, stat", () => {
    const s = session();
    s.send(req(OP.SET, { key: "k", extras: setExtras(3, 0), value: "v" }));
    expect(s.send(req(OP.DELETE, { key: "k", cas: 12345n }))[0]).toMatchObject({ status: STATUS.KEY_EEXISTS });
    expect(s.send(req(OP.DELETE, { key: "k" }))[0]).toMatchObject({ status: 0, cas: 0n, bodylen: 0 });
    expect(s.send(req(OP.DELETE, { key: "k" }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
    s.send(req(OP.SET, { key: "k", extras: setExtras(3, 10), value: "v" }));
    const [t] = s.send(req(OP.TOUCH, { key: "k", extras: be32(100) }));
    expect(t).toMatchObject({ status: 0, extlen: 4, bodylen: 4 });
    s.clock.t += 50;
    const [gat, gatk] = s.send(cat(req(OP.GAT, { key: "k", extras: be32(1) }), req(OP.GATK, { key: "k", extras: be32(1) })));
    expect(gat).toMatchObject({ status: 0, value: "v", keylen: 0 });
    expect(gatk).toMatchObject({ status: 0, value: "v", key: "k" });
    s.clock.t += 1;
    expect(s.send(req(OP.GAT, { key: "k", extras: be32(1) }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
    s.send(req(OP.SET, { key: "f", extras: setExtras(0, 0), value: "v" }));
    expect(s.send(req(OP.FLUSH, { extras: be32(10) }))[0]).toMatchObject({ status: 0, cas: 0n });
    expect(s.send(req(OP.GET, { key: "f" }))[0]).toMatchObject({ status: 0 });
    s.clock.t += 10;
    expect(s.send(req(OP.GET, { key: "f" }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
    expect(s.send(req(OP.VERSION))[0]).toMatchObject({ status: 0, value: "1.6.0-newts" });
    expect(s.send(req(OP.VERBOSITY, { extras: be32(1) }))[0]).toMatchObject({ status: 0 });
    const st = s.send(req(OP.STAT));
    expect(st.map((x) => [x.key, x.value])).toEqual([["pid", "1"], ["curr_items", "0"], ["", ""]]);
    expect(st.every((x) => x.cas === 0n && x.opcode === OP.STAT)).toBe(true);
    expect(s.send(req(OP.STAT, { key: "bogus" }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
    expect(s.send(req(OP.STAT, { key: "settings" })).length).toBeGreaterThan(5);
  });

  test("quit answers then hangs up; quitq hangs up silently", () => {
    const s = session();
    expect(s.send(cat(req(OP.QUIT), req(OP.NOOP))).map((x) => x.opcode)).toEqual([OP.QUIT]);
    expect(s.hangup).toBe(true);
    const q = session();
    expect(q.send(cat(req(OP.NOOP), req(OP.QUITQ), req(OP.NOOP))).map((x) => x.opcode)).toEqual([OP.NOOP]);
    expect(q.hangup).toBe(true);
  });

  test("byte by byte: the same responses", () => {
    const input = cat(
      req(OP.SET, { key: "key", extras: setExtras(1, 0), value: "x".repeat(300) }),
      req(OP.GETK, { key: "key" }),
      req(OP.INCREMENT, { key: "n", extras: incrExtras(5n, 7n, 0) }),
      req(OP.GETQ, { key: "none" }),
      req(0x55, { key: "junk", value: "junk" }),
      req(OP.STAT),
      req(OP.NOOP),
    );
    const a = session().raw(input);
    expect(session().raw(input, 1)).toEqual(a);
    expect(session().raw(input, 5)).toEqual(a);
    expect(decode(a).length).toBeGreaterThan(5);
  });
});

describe("binary protocol: hostile and malformed packets", () => {
  test("a key longer than the body: Unknown command, then hang-up", () => {
    const s = session();
    const r = s.send(req(OP.GET, { key: "k", keylen: 10, bodylen: 1 }));
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ status: STATUS.UNKNOWN_COMMAND, value: "Unknown command" });
    expect(s.hangup).toBe(true);
    const t = session();
    expect(t.send(req(OP.SET, { key: "k", extras: setExtras(0, 0), value: "v", extlen: 200, bodylen: 10 }))[0]).toMatchObject({ status: STATUS.UNKNOWN_COMMAND });
    expect(t.hangup).toBe(true);
  });

  test("a key over 250 bytes, or extras that do not fit the opcode: Invalid arguments, then hang-up", () => {
    const cases: Uint8Array[] = [
      req(OP.GET, { key: "k".repeat(251) }),
      req(OP.GET, { key: "k", extras: be32(1) }),
      req(OP.SET, { key: "k", value: "v" }), // no extras
      req(OP.SET, { extras: setExtras(0, 0), value: "v" }), // no key
      req(OP.NOOP, { value: "xx" }),
      req(OP.VERSION, { key: "k" }),
      req(OP.INCREMENT, { key: "k", extras: be32(1) }),
      req(OP.DELETE, { key: "k", value: "extra" }),
      req(OP.FLUSH, { extras: be32(1, 2) }),
      req(OP.TOUCH, { key: "k" }),
      req(OP.STAT, { key: "k", value: "trailing" }),
      req(OP.APPEND, { key: "k", extras: be32(1), value: "v" }),
    ];
    for (const [i, c] of cases.entries()) {
      const s = session();
      const r = s.send(cat(c, req(OP.NOOP)));
      expect(r, `case ${i}`).toHaveLength(1);
      expect(r[0], `case ${i}`).toMatchObject({ status: STATUS.EINVAL, value: "Invalid arguments" });
      expect(s.hangup).toBe(true);
    }
  });

  test("an unknown opcode: Unknown command, its body swallowed, the connection goes on", () => {
    const s = session();
    const r = s.send(cat(req(0x55, { key: "kk", value: "some body" }), req(0x20), req(OP.NOOP)));
    expect(r.map((x) => [x.opcode, x.status])).toEqual([[0x55, STATUS.UNKNOWN_COMMAND], [0x20, STATUS.UNKNOWN_COMMAND], [OP.NOOP, 0]]);
    expect(s.hangup).toBe(false);
  });

  test("a value over -I: Too large., swallowed without buffering, the old value dropped", () => {
    const s = session({ itemSizeMax: 1 << 20 });
    s.send(req(OP.SET, { key: "big", extras: setExtras(0, 0), value: "small" }));
    const n = 3_000_000;
    const head = req(OP.SET, { key: "big", extras: setExtras(0, 0), bodylen: 3 + 8 + n });
    expect(s.send(head)[0]).toMatchObject({ status: STATUS.E2BIG, value: "Too large." });
    const chunk = new Uint8Array(65536);
    for (let sent = 0; sent < n; sent += chunk.length) {
      expect(s.send(chunk.subarray(0, Math.min(chunk.length, n - sent)))).toEqual([]);
      expect(s.parser.buffered).toBeLessThan(70_000);
    }
    expect(s.send(req(OP.GET, { key: "big" }))[0]).toMatchObject({ status: STATUS.KEY_ENOENT });
  });

  test("a body length that lies upward (4 GB): the server waits for it, buffering at most an item", () => {
    const s = session({ itemSizeMax: 1 << 20 });
    // A Get whose body would be huge is invalid at once; a Set of 4 GB is too large and swallowed.
    expect(s.send(req(OP.GET, { key: "k", bodylen: 0xffffffff }))[0]).toMatchObject({ status: STATUS.EINVAL });
    const t = session({ itemSizeMax: 1 << 20 });
    expect(t.send(req(OP.SET, { key: "k", extras: setExtras(0, 0), bodylen: 0xffffffff }))[0]).toMatchObject({ status: STATUS.E2BIG });
    t.send(new Uint8Array(100_000));
    expect(t.parser.buffered).toBe(0);
    expect(t.hangup).toBe(false);
  });

  test("a byte other than 0x80 where a header starts hangs up", () => {
    const s = session();
    expect(s.send(cat(req(OP.NOOP), keyBytes("get k\r\n")))).toHaveLength(1);
    expect(s.closed).toBe(true);
    const t = session();
    t.send(req(OP.NOOP, { magic: 0x81 }));
    expect(t.closed).toBe(true);
  });

  test("-M: Out of memory (0x82)", () => {
    const s = session({ maxBytes: 4096, itemSizeMax: 2048, evict: false });
    const v = "x".repeat(1000);
    for (const k of ["a", "b", "c"]) expect(s.send(req(OP.SET, { key: k, extras: setExtras(0, 0), value: v }))[0]).toMatchObject({ status: 0 });
    expect(s.send(req(OP.SET, { key: "d", extras: setExtras(0, 0), value: v }))[0]).toMatchObject({ status: STATUS.ENOMEM, value: "Out of memory" });
  });
});
