// The cache (store.ts) alone, on an injected clock: LRU eviction under the memory limit,
// -M errors, item size limit, expiry (relative, absolute, negative, touch), flush_all now
// and later, CAS, incr/decr on 64-bit unsigned decimals.
import { describe, expect, test } from "vitest";
import { itemTotal, keyBytes, parseU64Data, REALTIME_MAXDELTA, Store } from "./store.ts";

const T0 = 1_700_000_000;
const v = (s: string) => keyBytes(s);
const str = (b: Uint8Array | undefined) => (b ? String.fromCharCode(...b) : undefined);

function clocked(opts: ConstructorParameters<typeof Store>[0] = {}) {
  const clock = { t: T0 };
  const s = new Store({ ...opts, clock: () => clock.t });
  return { s, clock };
}

describe("store", () => {
  test("set, get, flags, sizes as memcached's ITEM_ntotal, CAS unique per store", () => {
    const { s } = clocked();
    expect(s.store("set", "a", v("x"), 7, 0).status).toBe("STORED");
    const it = s.fetch("a")!;
    expect(str(it.value)).toBe("x");
    expect(it.flags).toBe(7);
    expect(it.size).toBe(61); // memcached's `me a` for a 1-byte value says size=61
    expect(itemTotal(1, 1)).toBe(61);
    const cas1 = it.cas;
    s.store("set", "a", v("y"), 0, 0);
    expect(s.fetch("a")!.cas).toBeGreaterThan(cas1);
    expect(s.bytes).toBe(61);
    expect(s.count).toBe(1);
    expect(s.counters.get_hits).toBe(2);
    expect(s.fetch("nope")).toBeNull();
    expect(s.counters.get_misses).toBe(1);
  });

  test("add, replace, append, prepend, cas", () => {
    const { s } = clocked();
    expect(s.store("add", "k", v("1"), 0, 0).status).toBe("STORED");
    expect(s.store("add", "k", v("2"), 0, 0).status).toBe("NOT_STORED");
    expect(s.store("replace", "nope", v("2"), 0, 0).status).toBe("NOT_STORED");
    expect(s.store("replace", "k", v("3"), 5, 0).status).toBe("STORED");
    expect(s.store("append", "k", v("45"), 9, 0).status).toBe("STORED");
    expect(s.store("prepend", "k", v("0"), 9, 0).status).toBe("STORED");
    expect(str(s.fetch("k")!.value)).toBe("0345");
    expect(s.fetch("k")!.flags).toBe(5); // append/prepend keep the old flags
    expect(s.store("append", "nope", v("x"), 0, 0).status).toBe("NOT_STORED");
    const cas = BigInt(s.fetch("k")!.cas);
    expect(s.store("cas", "k", v("new"), 0, 0, cas + 1n).status).toBe("EXISTS");
    expect(s.store("cas", "nope", v("new"), 0, 0, cas).status).toBe("NOT_FOUND");
    expect(s.store("cas", "k", v("new"), 0, 0, cas).status).toBe("STORED");
    expect(s.store("cas", "k", v("again"), 0, 0, cas).status).toBe("EXISTS");
    expect(s.counters).toMatchObject({ cas_hits: 1, cas_badval: 2, cas_misses: 1 });
    // append with a CAS unique checks it
    const c2 = BigInt(s.fetch("k")!.cas);
    expect(s.store("append", "k", v("!"), 0, 0, c2 + 5n).status).toBe("EXISTS");
    expect(s.store("append", "k", v("!"), 0, 0, c2).status).toBe("STORED");
    expect(str(s.fetch("k")!.value)).toBe("new!");
  });

  test("delete, with and without a CAS unique", () => {
    const { s } = clocked();
    s.store("set", "k", v("1"), 0, 0);
    const cas = BigInt(s.fetch("k")!.cas);
    expect(s.delete("k", cas + 1n)).toBe("EXISTS");
    expect(s.delete("k", cas)).toBe("DELETED");
    expect(s.delete("k")).toBe("NOT_FOUND");
    expect(s.bytes).toBe(0);
  });

  test("LRU eviction under the memory limit: least recently used first, a get protects", () => {
    const size = itemTotal(2, 1000); // keys "k0".."k9"
    const { s } = clocked({ maxBytes: size * 5, itemSizeMax: size * 2 });
    const val = new Uint8Array(1000);
    for (let i = 0; i < 5; i++) expect(s.store("set", `k${i}`, val, 0, 0).status).toBe("STORED");
    expect(s.count).toBe(5);
    s.fetch("k0"); // k0 is now the most recently used; k1 the least
    s.store("set", "k5", val, 0, 0);
    expect(s.peek("k1")).toBeNull();
    expect(s.peek("k0")).not.toBeNull();
    s.store("set", "k6", val, 0, 0);
    expect(s.peek("k2")).toBeNull();
    expect(s.keys()).toEqual(["k6", "k5", "k0", "k4", "k3"]);
    expect(s.counters.evictions).toBe(2);
    expect(s.counters.evicted_unfetched).toBe(2);
    expect(s.bytes).toBeLessThanOrEqual(s.maxBytes);
    // Replacing a key does not evict another when the new item fits in the old one's place.
    s.store("set", "k3", val, 0, 0);
    expect(s.count).toBe(5);
    expect(s.counters.evictions).toBe(2);
  });

  test("-M: out of memory instead of evicting; a failed set drops the old value", () => {
    const size = itemTotal(2, 1000);
    const { s } = clocked({ maxBytes: size * 3, itemSizeMax: size * 2, evict: false });
    const val = new Uint8Array(1000);
    for (let i = 0; i < 3; i++) expect(s.store("set", `k${i}`, val, 0, 0).status).toBe("STORED");
    expect(s.store("set", "k3", val, 0, 0).status).toBe("NO_MEMORY");
    expect(s.store("add", "k4", val, 0, 0).status).toBe("NO_MEMORY");
    expect(s.count).toBe(3);
    expect(s.counters.evictions).toBe(0);
    expect(s.counters.store_no_memory).toBe(2);
    // a same-size replacement fits; a bigger one does not, and set then unlinks the key
    expect(s.store("set", "k0", val, 0, 0).status).toBe("STORED");
    expect(s.store("set", "k0", new Uint8Array(1500), 0, 0).status).toBe("NO_MEMORY");
    expect(s.peek("k0")).toBeNull();
    expect(s.incrDecr("k1", true, 1n).status).toBe("NON_NUMERIC");
  });

  test("-M still reclaims expired items", () => {
    const size = itemTotal(2, 1000);
    const { s, clock } = clocked({ maxBytes: size * 2, itemSizeMax: size * 2, evict: false });
    const val = new Uint8Array(1000);
    s.store("set", "k0", val, 0, 10);
    s.store("set", "k1", val, 0, 0);
    expect(s.store("set", "k2", val, 0, 0).status).toBe("NO_MEMORY");
    clock.t += 11;
    expect(s.store("set", "k2", val, 0, 0).status).toBe("STORED");
    expect(s.counters.reclaimed).toBe(1);
    expect(s.keys()).toEqual(["k2", "k1"]);
  });

  test("item size limit (-I): TOO_LARGE, and a failed set unlinks the old item", () => {
    const { s } = clocked({ itemSizeMax: 1024 });
    s.store("set", "big", v("small"), 0, 0);
    const max = 1024 - itemTotal(3, 0);
    expect(s.itemSizeOk(3, max)).toBe(true);
    expect(s.itemSizeOk(3, max + 1)).toBe(false);
    expect(s.store("set", "big", new Uint8Array(max + 1), 0, 0).status).toBe("TOO_LARGE");
    expect(s.peek("big")).toBeNull();
    expect(s.store("set", "big", new Uint8Array(max), 0, 0).status).toBe("STORED");
    // append past the limit is NOT_STORED
    expect(s.store("append", "big", v("x"), 0, 0).status).toBe("NOT_STORED");
  });

  test("expiry on the injected clock: relative, absolute beyond 30 days, negative, 0 = never", () => {
    const { s, clock } = clocked();
    s.store("set", "rel", v("1"), 0, 10);
    s.store("set", "abs", v("1"), 0, T0 + 100);
    s.store("set", "neg", v("1"), 0, -1);
    s.store("set", "past", v("1"), 0, REALTIME_MAXDELTA + 1); // absolute, long gone
    s.store("set", "never", v("1"), 0, 0);
    expect(s.peek("neg")).toBeNull();
    expect(s.peek("past")).toBeNull();
    expect(s.peek("rel")).not.toBeNull();
    clock.t += 9;
    expect(s.peek("rel")).not.toBeNull();
    clock.t += 1;
    expect(s.fetch("rel")).toBeNull();
    expect(s.peek("abs")).not.toBeNull();
    clock.t = T0 + 100;
    expect(s.peek("abs")).toBeNull();
    clock.t += 10 * 365 * 86400;
    expect(s.peek("never")).not.toBeNull();
    expect(s.counters.get_expired).toBeGreaterThanOrEqual(4);
    expect(s.count).toBe(1);
  });

  test("touch and gat-style fetch replace the expiry", () => {
    const { s, clock } = clocked();
    s.store("set", "k", v("1"), 0, 5);
    expect(s.touch("k", s.realtime(100))).not.toBeNull();
    clock.t += 50;
    expect(s.peek("k")).not.toBeNull();
    expect(s.fetch("k", { touch: s.realtime(1) })).not.toBeNull();
    clock.t += 1;
    expect(s.peek("k")).toBeNull();
    expect(s.touch("k", 0)).toBeNull();
    expect(s.counters).toMatchObject({ cmd_touch: 3, touch_hits: 2, touch_misses: 1 });
  });

  test("flush_all now, and flush_all with a delay", () => {
    const { s, clock } = clocked();
    s.store("set", "a", v("1"), 0, 0);
    s.flush();
    expect(s.peek("a")).toBeNull();
    expect(s.bytes).toBe(0);
    s.store("set", "b", v("1"), 0, 0);
    s.flush(10);
    clock.t += 5;
    expect(s.peek("b")).not.toBeNull();
    s.store("set", "c", v("1"), 0, 0);
    clock.t += 5;
    expect(s.peek("b")).toBeNull();
    expect(s.peek("c")).toBeNull(); // stored before the flush time
    s.store("set", "d", v("1"), 0, 0);
    clock.t += 100;
    expect(s.peek("d")).not.toBeNull(); // after it: kept
    expect(s.counters.cmd_flush).toBe(2);
  });

  test("incr/decr: 64-bit unsigned, incr wraps, decr stops at 0, memcached's space padding", () => {
    const { s } = clocked();
    s.store("set", "n", v("10"), 3, 0);
    expect(s.incrDecr("n", false, 1n)).toMatchObject({ status: "OK", value: 9n });
    expect(str(s.fetch("n")!.value)).toBe("9 "); // shorter result padded in place, as memcached
    expect(s.fetch("n")!.flags).toBe(3);
    expect(s.incrDecr("n", true, 91n)).toMatchObject({ status: "OK", value: 100n });
    expect(str(s.fetch("n")!.value)).toBe("100");
    expect(s.incrDecr("n", false, 1000n)).toMatchObject({ status: "OK", value: 0n });
    s.store("set", "n", v("18446744073709551615"), 0, 0);
    expect(s.incrDecr("n", true, 2n)).toMatchObject({ status: "OK", value: 1n });
    s.store("set", "n", v("18446744073709551615"), 0, 0);
    expect(s.incrDecr("n", true, 18446744073709551615n).value).toBe(18446744073709551614n);
    s.store("set", "n", v("18446744073709551616"), 0, 0);
    expect(s.incrDecr("n", true, 1n).status).toBe("NON_NUMERIC");
    for (const bad of ["abc", "12a", "-1", ""]) {
      s.store("set", "n", v(bad), 0, 0);
      expect(s.incrDecr("n", true, 1n).status, bad).toBe("NON_NUMERIC");
    }
    expect(s.incrDecr("missing", true, 1n).status).toBe("NOT_FOUND");
    s.store("set", "n", v("5"), 0, 0);
    const cas = BigInt(s.fetch("n")!.cas);
    expect(s.incrDecr("n", true, 1n, cas + 1n).status).toBe("EXISTS");
    const r = s.incrDecr("n", true, 1n, cas);
    expect(r.status).toBe("OK");
    expect(BigInt(r.item!.cas)).toBeGreaterThan(cas);
    expect(s.counters).toMatchObject({ incr_hits: 4, decr_hits: 2, incr_misses: 1 });
  });

  test("the value parser is memcached's safe_strtoull", () => {
    expect(parseU64Data(v("42"))).toBe(42n);
    expect(parseU64Data(v("  42"))).toBe(42n);
    expect(parseU64Data(v("42  "))).toBe(42n);
    expect(parseU64Data(v("42\r\nxyz"))).toBe(42n);
    expect(parseU64Data(v("+7"))).toBe(7n);
    expect(parseU64Data(v("0"))).toBe(0n);
    expect(parseU64Data(v("18446744073709551615"))).toBe(18446744073709551615n);
    expect(parseU64Data(v("18446744073709551616"))).toBeNull();
    expect(parseU64Data(v("4x"))).toBeNull();
    expect(parseU64Data(v(" "))).toBeNull();
    expect(parseU64Data(v("-3"))).toBeNull();
  });
});
