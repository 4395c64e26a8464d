// libc's socket-call counters (libc/counters.ts): counting, snapshot, reset, the PCB's
// counters area (claimed once per process, read back as the kernel reads it), Table 5.2,
// and `ctl stats`'s tables (kernel/statsformat.ts).
import { describe, expect, test } from "vitest";
import {
  CALLS, K, processCounters, procSockStats, readPcbCounters, SockCounters, table52,
} from "./counters.ts";
import { PCB, PCB_BASE_BYTES, PCB_BYTES, SOCK_DATA, SOCK_FIELDS, SOCK_MAX_KINDS } from "../lib/sys/pcb.ts";
import { formatStats, formatStatsKinds } from "../kernel/statsformat.ts";

const pcb = () => new SharedArrayBuffer(PCB_BYTES);

/** A few calls of each sort: 2 recv (1 EAGAIN, in user space), 1 poll that blocked, 1 accept EAGAIN, 1 refused bind. */
function some(c: SockCounters): void {
  c.call(K.recv);
  c.user(K.recv);
  c.call(K.recv);
  c.sys(K.recv);
  c.again(K.recv);
  c.call(K.poll);
  c.sys(K.poll);
  c.block(K.poll);
  c.call(K.accept);
  c.sys(K.accept);
  c.again(K.accept);
  c.call(K.bind);
  c.user(K.bind);
  c.error(K.bind);
}

describe("SockCounters", () => {
  test("the 26 calls of the SocketApi, K their indices", () => {
    expect(CALLS.length).toBe(26);
    expect(CALLS[K.socket]).toBe("socket");
    expect(CALLS[K.epoll_wait]).toBe("epoll_wait");
    expect(new Set(CALLS).size).toBe(CALLS.length);
  });

  test("counts by kind; snapshot has the totals and the SocketStats of before", () => {
    const c = new SockCounters(null, "linux");
    expect(c.inPcb).toBe(false);
    some(c);
    const s = c.snapshot();
    expect(s.calls).toEqual({ recv: 2, poll: 1, accept: 1, bind: 1 });
    expect(s.total).toBe(5);
    expect(s.userspace).toBe(2);
    expect(s.syscalls).toBe(3);
    expect(s.wouldBlock).toBe(2);
    expect(s.blocked).toBe(1);
    expect(s.errors).toBe(1);
    expect(s.kinds!.recv).toEqual({ calls: 2, userspace: 1, syscalls: 1, wouldBlock: 1, blocked: 0, errors: 0 });
    expect(Object.keys(s.kinds!)).toEqual(["bind", "accept", "recv", "poll"]); // in CALLS order, only those used
  });

  test("reset zeroes every counter; counting goes on", () => {
    const c = new SockCounters();
    some(c);
    c.reset();
    expect(c.snapshot()).toEqual({ calls: {}, total: 0, syscalls: 0, userspace: 0, wouldBlock: 0, errors: 0, blocked: 0, kinds: {} });
    c.call(K.send);
    expect(c.snapshot().calls).toEqual({ send: 1 });
  });

  test("in a PCB: the kernel's reading is the process's own snapshot; the first 64 bytes are untouched", () => {
    const sab = pcb();
    const base = new Int32Array(sab, 0, PCB_BASE_BYTES / 4);
    for (let i = 0; i < base.length; i++) base[i] = 1000 + i;
    expect(readPcbCounters(sab)).toBeNull(); // not in use yet
    const c = new SockCounters(sab, "newts");
    expect(c.inPcb).toBe(true);
    some(c);
    const r = readPcbCounters(sab)!;
    expect(r.backend).toBe("newts");
    expect(r.stats).toEqual(c.snapshot());
    for (let i = 0; i < base.length; i++) expect(base[i]).toBe(1000 + i);
    c.reset();
    expect(readPcbCounters(sab)!.stats.total).toBe(0); // still in use, at zero
    // the layout: calls of recv at field 0, kind K.recv
    c.call(K.recv);
    expect(new Float64Array(sab, SOCK_DATA, SOCK_FIELDS * SOCK_MAX_KINDS)[K.recv]).toBe(1);
    // a PCB cleared by the kernel (respawn) is not in use
    new Uint8Array(sab).fill(0);
    expect(readPcbCounters(sab)).toBeNull();
  });

  test("a PCB too small for counters is refused", () => {
    expect(() => new SockCounters(new SharedArrayBuffer(64), "linux")).toThrow(RangeError);
    expect(readPcbCounters(new SharedArrayBuffer(64))).toBeNull();
  });

  test("processCounters: the first backend of a process takes the PCB, later ones count privately; outside newts: private", () => {
    const sab = pcb();
    const proc = { init: { pcb: sab } };
    const a = processCounters("linux", proc);
    const b = processCounters("newts", proc);
    expect(a.inPcb).toBe(true);
    expect(b.inPcb).toBe(false);
    b.call(K.socket);
    a.call(K.recv);
    expect(readPcbCounters(sab)!.stats.calls).toEqual({ recv: 1 });
    expect(readPcbCounters(sab)!.backend).toBe("linux");
    expect(Atomics.load(new Int32Array(sab), PCB.SOCK_KINDS)).toBe(CALLS.length);
    expect(processCounters("linux", null).inPcb).toBe(false);
    expect(processCounters("linux").inPcb).toBe(false); // a vitest worker is no newts process
  });

  test("unknown backend names read back as '?'", () => {
    const sab = pcb();
    new SockCounters(sab, "something-else");
    expect(readPcbCounters(sab)!.backend).toBe("?");
  });
});

describe("Table 5.2", () => {
  test("percentages of user space, selects that block, selects of all, accepts and reads that would block", () => {
    const c = new SockCounters();
    for (let i = 0; i < 8; i++) {
      c.call(K.recv);
      c.user(K.recv);
    }
    c.call(K.read);
    c.again(K.read);
    c.user(K.read);
    c.call(K.readv);
    c.sys(K.readv);
    for (let i = 0; i < 4; i++) c.call(K.accept4);
    c.again(K.accept4);
    c.call(K.accept);
    c.again(K.accept);
    c.call(K.select);
    c.block(K.select);
    c.call(K.epoll_wait);
    c.call(K.poll);
    c.block(K.poll);
    c.call(K.write);
    c.user(K.write);
    c.call(K.close);
    c.sys(K.close);
    // 20 calls: 10 reads (1 EAGAIN), 5 accepts (2 EAGAIN), 3 selects (2 blocked), 1 write, 1 close; 10 in user space
    const t = table52(c.snapshot());
    expect(t.userspacePct).toBeCloseTo(50, 10);
    expect(t.selectBlockPct).toBeCloseTo(200 / 3, 10);
    expect(t.selectPerCallPct).toBeCloseTo(15, 10);
    expect(t.acceptAgainPct).toBeCloseTo(40, 10);
    expect(t.readAgainPct).toBeCloseTo(10, 10);
  });

  test("no such calls: null", () => {
    const c = new SockCounters();
    expect(table52(c.snapshot())).toEqual({ userspacePct: null, selectBlockPct: null, selectPerCallPct: null, acceptAgainPct: null, readAgainPct: null });
    c.call(K.send);
    expect(table52(c.snapshot())).toEqual({ userspacePct: 0, selectBlockPct: null, selectPerCallPct: 0, acceptAgainPct: null, readAgainPct: null });
  });
});

describe("ctl stats tables", () => {
  test("one row per process in the form of Table 5.2, and one process's calls by kind", () => {
    const sab = pcb();
    some(new SockCounters(sab, "linux"));
    const row = procSockStats("web", 9, "exited", sab)!;
    expect(row).toMatchObject({ name: "web", ep: 9, state: "exited", backend: "linux", total: 5, userspace: 2, syscalls: 3 });
    expect(procSockStats("idle", 10, "running", pcb())).toBeNull();
    const t = formatStats([row]).split("\n");
    expect(t[0]).toMatch(/^EP +NAME +BACKEND +STATE +CALLS +USER SPACE +SELECT BLOCKS +SELECT\/ALL +ACCEPT EAGAIN +READ EAGAIN +SYSCALLS$/);
    // 5 calls: 40 % in user space; 1 select of 1 blocked; 1 of 5 calls a select; 1 of 1 accept and 1 of 2 reads EAGAIN
    expect(t[1]).toMatch(/^ 9 +web +linux +exited +5 +40\.00 % +100\.00 % +20\.00 % +100\.00 % +50\.00 % +3$/);
    expect(formatStats([])).toBe("no process has used the socket API");
    const k = formatStatsKinds(row).split("\n");
    expect(k[3]).toMatch(/^CALL +CALLS +USER SPACE +EAGAIN +BLOCKED +ERRORS +SYSCALLS$/);
    expect(k).toContainEqual(expect.stringMatching(/^recv +2 +1 +1 +0 +0 +1$/));
    expect(k.at(-1)).toMatch(/^total +5 +2 +2 +1 +1 +3$/);
    const none = { ...row, kinds: {}, calls: {}, total: 0, userspace: 0, syscalls: 0, wouldBlock: 0, blocked: 0, errors: 0, table52: table52({ calls: {}, total: 0, syscalls: 0, userspace: 0, wouldBlock: 0, errors: 0 }) };
    expect(formatStats([none]).split("\n")[1]).toMatch(/^ 9 +web +linux +exited +0 +- +- +- +- +- +0$/);
  });
});
