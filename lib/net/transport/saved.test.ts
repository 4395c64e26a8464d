// Tests for what tcp and udp save across a restart, through a real store region.
import { describe, expect, test } from "vitest";
import { saveStore, STORE_BYTES, storeRegion } from "../../sys/store.ts";
import { loadTcp, loadUdp, saveTcp, saveUdp, type TcpSockView } from "./saved.ts";

const store = () => storeRegion(new SharedArrayBuffer(STORE_BYTES));
const tcpSock = (o: Partial<TcpSockView>): TcpSockView => ({
  id: 1, app: 9, laddr: 0, lport: 0, raddr: 0, rport: 0, closed: false, listener: null, conn: null, connected: false, backlog: 0, ...o,
});

describe("tcp", () => {
  test("round trip: listeners, connections and bare sockets with their kind; closed and fast ones are not saved", () => {
    const st = store();
    const socks = [
      tcpSock({ id: 1, lport: 80, listener: {}, backlog: 16 }),
      tcpSock({ id: 2, lport: 80, laddr: 0x0a00020f, raddr: 0x0a000202, rport: 5555, conn: {}, connected: true }),
      tcpSock({ id: 3, lport: 81 }),
      tcpSock({ id: 4, closed: true }),
      tcpSock({ id: 5, fast: {} }),
      tcpSock({ id: 6, connected: true }),
    ];
    expect(saveTcp(st, 7, [11, 22], socks)).toBe(true);
    const r = loadTcp(st)!;
    expect(r.nextId).toBe(7);
    expect(r.secret).toEqual([11, 22]);
    expect(r.socks.map((x) => [x.id, x.kind, x.lport])).toEqual([[1, "listen", 80], [2, "conn", 80], [3, "new", 81], [6, "conn", 0]]);
    expect(r.socks[0]!.backlog).toBe(16);
    expect(r.socks[1]).toMatchObject({ laddr: 0x0a00020f, raddr: 0x0a000202, rport: 5555 });
  });

  test("nothing saved, or something else saved, loads as null; bad records are skipped; defaults filled in", () => {
    expect(loadTcp(store())).toBeNull();
    expect(loadTcp(undefined)).toBeNull();
    const st = store();
    saveStore(st, { nope: 1 });
    expect(loadTcp(st)).toBeNull();
    saveStore(st, { nextId: "x", secret: [1], socks: [{ id: "1", app: 1 }, null, { id: 4, app: 2, laddr: -1, kind: "bogus" }] });
    const r = loadTcp(st)!;
    expect(r.nextId).toBe(1);
    expect(r.secret).toBeNull();
    expect(r.socks).toEqual([{ id: 4, app: 2, laddr: 0xffffffff, lport: 0, raddr: 0, rport: undefined, kind: "new", backlog: 128 }]);
  });
});

describe("udp", () => {
  test("round trip of bindings and peers; fast sockets are not saved", () => {
    const st = store();
    const socks = [
      { id: 1, app: 3, laddr: 0, lport: 5353, raddr: 0, rport: 0 },
      { id: 2, app: 3, laddr: 0x0a00020f, lport: 40000, raddr: 0x0a000202, rport: 53 },
      { id: 3, app: 3, laddr: 0, lport: 0, raddr: 0, rport: 0, fast: {} },
    ];
    expect(saveUdp(st, 4, socks)).toBe(true);
    expect(loadUdp(st)).toEqual({ nextId: 4, socks: socks.slice(0, 2) });
  });

  test("records without a numeric id or port are skipped; nothing saved is null", () => {
    expect(loadUdp(store())).toBeNull();
    const st = store();
    saveStore(st, { socks: [{ id: 1 }, { id: 2, app: 1, lport: 7, laddr: 0, raddr: 0, rport: 0 }] });
    expect(loadUdp(st)).toEqual({ nextId: 1, socks: [{ id: 2, app: 1, lport: 7, laddr: 0, raddr: 0, rport: 0 }] });
  });
});
