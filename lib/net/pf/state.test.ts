// Tests of the pf state table: lookup both ways, TCP tracking, timeouts, the size limit, snapshot/restore.
import { test, expect, describe } from "vitest";
import { DEFAULT_TIMEOUTS, StateTable, type StateEntry, type Tuple } from "./state.ts";
import { TcpFlag, ip } from "./packets.fixture.ts";

const { SYN, ACK, FIN, RST } = TcpFlag;
const T = (sp = 40000, proto = 6): Tuple => ({ proto, src: ip("10.0.2.15"), srcPort: sp, dst: ip("93.184.216.34"), dstPort: 80 });
const rev = (t: Tuple): Tuple => ({ proto: t.proto, src: t.dst, srcPort: t.dstPort, dst: t.src, dstPort: t.srcPort });

describe("lookup", () => {
  test("an entry matches its own direction forward and the other direction reversed, nothing else", () => {
    const s = new StateTable();
    s.insert(0, "out", T(), SYN, 3, 60);
    expect(s.lookup(1, "out", T())?.forward).toBe(true);
    expect(s.lookup(1, "in", rev(T()))?.forward).toBe(false);
    expect(s.lookup(1, "in", T())).toBeNull(); // a spoofed copy arriving from outside
    expect(s.lookup(1, "out", rev(T()))).toBeNull();
    expect(s.lookup(1, "out", T(40001))).toBeNull();
    expect(s.lookup(1, "out", { ...T(), proto: 17 })).toBeNull();
    expect(s.lookup(1, "out", T())?.entry.rule).toBe(3);
  });
});

describe("TCP tracking", () => {
  function run(steps: Array<[boolean, number]>, first: number = SYN): StateEntry {
    const s = new StateTable();
    const e = s.insert(0, "out", T(), first, 0, 40)!;
    for (const [fwd, flags] of steps) s.track(1, { entry: e, forward: fwd }, flags, 40);
    return e;
  }
  test("SYN -> SYN_SENT -> (SYN+ACK back) ESTABLISHED -> FIN_WAIT -> CLOSED", () => {
    expect(run([]).state).toBe("SYN_SENT");
    expect(run([[true, SYN]]).state).toBe("SYN_SENT");
    expect(run([[false, SYN | ACK]]).state).toBe("ESTABLISHED");
    expect(run([[false, SYN | ACK], [true, ACK | FIN]]).state).toBe("FIN_WAIT");
    expect(run([[false, SYN | ACK], [true, ACK | FIN], [true, ACK | FIN]]).state).toBe("FIN_WAIT");
    expect(run([[false, SYN | ACK], [true, ACK | FIN], [false, ACK | FIN]]).state).toBe("CLOSED");
  });
  test("a RST from either side closes; CLOSED stays closed; mid-stream pick-up is ESTABLISHED", () => {
    expect(run([[false, RST]]).state).toBe("CLOSED");
    expect(run([[false, SYN | ACK], [true, RST | ACK], [false, SYN | ACK]]).state).toBe("CLOSED");
    expect(run([], ACK).state).toBe("ESTABLISHED");
  });
  test("UDP goes SINGLE -> MULTIPLE on the first reply; counters per direction", () => {
    const s = new StateTable();
    const e = s.insert(0, "out", T(5353, 17), 0, 0, 100)!;
    expect(e.state).toBe("SINGLE");
    s.track(1, { entry: e, forward: true }, 0, 50);
    expect(e.state).toBe("SINGLE");
    s.track(2, { entry: e, forward: false }, 0, 70);
    expect([e.state, e.fwdPackets, e.fwdBytes, e.revPackets, e.revBytes]).toEqual(["MULTIPLE", 2, 150, 1, 70]);
  });
});

describe("timeouts", () => {
  test("each state's timeout, refreshed by traffic; expire() drops and counts", () => {
    const s = new StateTable();
    const tcp = s.insert(0, "out", T(1), SYN, 0, 40)!;
    const udp = s.insert(0, "out", T(2, 17), 0, 0, 40)!;
    const icmp = s.insert(0, "out", { proto: 1, src: 1, srcPort: 7, dst: 2, dstPort: 7 }, 0, 0, 40)!;
    expect([tcp.expires, udp.expires, icmp.expires]).toEqual([DEFAULT_TIMEOUTS.synSent, 60_000, 20_000]);
    s.track(10_000, { entry: tcp, forward: false }, SYN | ACK, 40);
    expect(tcp.expires).toBe(10_000 + 24 * 3600_000);
    s.track(10_000, { entry: tcp, forward: true }, FIN | ACK, 40);
    expect(tcp.expires).toBe(10_000 + 30_000);
    expect(s.expire(19_999)).toBe(0);
    expect(s.expire(20_000)).toBe(1); // icmp
    expect(s.expire(39_999)).toBe(0);
    expect(s.expire(40_000)).toBe(1); // tcp in FIN_WAIT
    expect(s.lookup(59_999, "out", T(2, 17))).not.toBeNull();
    expect(s.lookup(60_000, "out", T(2, 17))).toBeNull(); // lookup drops a dead entry itself
    expect([s.size, s.counters.expired]).toEqual([0, 3]);
  });
  test("timeouts can be configured", () => {
    const s = new StateTable({ timeouts: { ...DEFAULT_TIMEOUTS, udp: 5 } });
    expect(s.insert(100, "in", T(1, 17), 0, 0, 1)!.expires).toBe(105);
  });
});

describe("limit", () => {
  test("refuse: a full table refuses new entries (counted) but sweeps expired ones first", () => {
    const s = new StateTable({ limit: 2 });
    expect(s.insert(0, "out", T(1), SYN, 0, 1)).not.toBeNull();
    expect(s.insert(0, "out", T(2), SYN, 0, 1)).not.toBeNull();
    expect(s.insert(1, "out", T(3), SYN, 0, 1)).toBeNull();
    expect(s.insert(1, "out", T(4), SYN, 0, 1)).toBeNull();
    expect([s.size, s.counters.refused, s.counters.inserts]).toEqual([2, 2, 2]);
    expect(s.insert(30_000, "out", T(5), SYN, 0, 1)).not.toBeNull(); // the SYN_SENT ones expired
    expect([s.size, s.counters.expired]).toEqual([1, 2]);
  });
  test("evictOldest: the least recently used entry makes room", () => {
    const s = new StateTable({ limit: 2, onFull: "evictOldest" });
    const a = s.insert(0, "out", T(1), SYN, 0, 1)!;
    s.insert(0, "out", T(2), SYN, 0, 1);
    s.track(1, { entry: a, forward: true }, ACK, 1); // a is now the most recent
    expect(s.insert(2, "out", T(3), SYN, 0, 1)).not.toBeNull();
    expect(s.lookup(2, "out", T(1))).not.toBeNull();
    expect(s.lookup(2, "out", T(2))).toBeNull();
    expect([s.size, s.counters.evicted]).toEqual([2, 1]);
  });
  test("limit 0 refuses everything", () => {
    const s = new StateTable({ limit: 0, onFull: "evictOldest" });
    expect(s.insert(0, "out", T(), SYN, 0, 1)).toBeNull();
  });
});

describe("snapshot", () => {
  test("round trip through JSON keeps entries, order and counters", () => {
    const s = new StateTable({ limit: 5, onFull: "evictOldest" });
    const a = s.insert(0, "out", T(1), SYN, 0, 10)!;
    s.insert(1, "in", rev(T(2, 17)), 0, 4, 20);
    s.track(2, { entry: a, forward: false }, SYN | ACK, 30);
    s.insert(3, "out", T(3), SYN, 1, 10);
    s.expire(30_000_000);
    s.insert(30_000_000, "out", T(4), ACK, 2, 10);
    const snap = s.snapshot();
    const t = new StateTable({ limit: 5, onFull: "evictOldest" });
    expect(t.restore(JSON.parse(JSON.stringify(snap)))).toEqual({ restored: snap.entries.length, rejected: 0 });
    expect(t.snapshot()).toEqual(snap);
    expect(t.lookup(30_000_001, "in", rev(T(4)))?.entry.rule).toBe(2);
    // The copy is deep: changing the original does not change the snapshot.
    expect(snap.entries.map((e) => [e.srcPort, e.state])).toEqual([[1, "ESTABLISHED"], [4, "ESTABLISHED"]]);
    s.flush();
    a.fwdPackets = 99;
    expect(snap.entries.length).toBe(2);
    expect(snap.entries[0]!.fwdPackets).toBe(1);
  });
  test("restore rejects malformed entries and trims to the limit, keeping the most recent", () => {
    const s = new StateTable();
    for (let i = 1; i <= 3; i++) s.insert(i, "out", T(i), SYN, 0, 1);
    const snap = s.snapshot();
    const bad = [{ ...snap.entries[0]!, srcPort: 70000 }, { ...snap.entries[0]!, state: "LISTEN" }, null, "x"];
    const t = new StateTable({ limit: 2 });
    expect(t.restore({ ...snap, entries: [...(bad as StateEntry[]), ...snap.entries] })).toEqual({ restored: 2, rejected: 5 });
    expect([...t.entries()].map((e) => e.srcPort)).toEqual([2, 3]);
    expect(t.restore(null as never)).toEqual({ restored: 0, rejected: 0 });
  });
});
