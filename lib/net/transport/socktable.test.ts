// Tests for the transport servers' socket table.
import { describe, expect, test } from "vitest";
import { EBADF, ErrnoError } from "../../sys/errno.ts";
import { SockTable } from "./socktable.ts";

interface K {
  id: number;
  app: number;
  lport: number;
  closed?: boolean;
}

const errnoOf = (f: () => unknown): number => {
  try {
    f();
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno;
    throw e;
  }
  return 0;
};

describe("SockTable", () => {
  test("ids count up; add marks the table dirty unless told not to", () => {
    const t = new SockTable<K>();
    const a = t.add({ id: t.newId(), app: 7, lport: 0 });
    expect(a.id).toBe(1);
    expect(t.dirty).toBe(true);
    t.dirty = false;
    t.add({ id: t.newId(), app: 7, lport: 0 }, false);
    expect(t.dirty).toBe(false);
    expect(t.size).toBe(2);
  });

  test("of: only the owning app names a socket; EBADF otherwise or when `alive` says no", () => {
    const t = new SockTable<K>();
    const a = t.add({ id: t.newId(), app: 7, lport: 0 });
    expect(t.of(7, a.id)).toBe(a);
    expect(errnoOf(() => t.of(8, a.id))).toBe(EBADF);
    expect(errnoOf(() => t.of(7, 99))).toBe(EBADF);
    expect(errnoOf(() => t.of(7, undefined))).toBe(EBADF);
    a.closed = true;
    expect(errnoOf(() => t.of(7, a.id, (k) => !k.closed))).toBe(EBADF);
  });

  test("ports: setPort moves a socket between ports; users keep their order; empty ports leave the map", () => {
    const t = new SockTable<K>();
    const a = t.add({ id: t.newId(), app: 1, lport: 0 });
    const b = t.add({ id: t.newId(), app: 1, lport: 0 });
    t.setPort(a, 80);
    t.setPort(b, 80);
    expect([...t.users(80)]).toEqual([a, b]);
    t.setPort(a, 81);
    expect(a.lport).toBe(81);
    expect([...t.users(80)]).toEqual([b]);
    expect(t.find(81, (k) => k.app === 1)).toBe(a);
    t.remove(b);
    expect(t.byPort.has(80)).toBe(false);
    expect(t.socks.has(b.id)).toBe(false);
    expect([...t.users(80)]).toEqual([]);
  });

  test("freePort skips ports somebody is on (or that the given rule claims)", () => {
    const t = new SockTable<K>(40000);
    t.setPort(t.add({ id: t.newId(), app: 1, lport: 0 }), 40000);
    expect(t.freePort()).toBe(40001);
    expect(t.freePort((p) => p === 40002)).toBe(40003);
  });
});
