// Fast TCP sockets: apps on libc/newts.ts move stream bytes through the tcp
// server with no system call on the data path — socket buffers are rings in the app's
// arena, granted by tcp; accept takes children tcp premapped into the listener's ring.
// The same app code runs on newts fast sockets, newts syscall sockets (the baseline)
// and the Linux backend. One machine: ip turns 127.0.0.1 around.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Machine } from "../kernel/boot.ts";
import { row, untilAnswers, untilListening } from "./support/machine.ts";

const FIX = "test/fixtures/fasttcp.ts";
type Stats = { calls: Record<string, number>; total: number; syscalls: number; userspace: number; blocked?: number };

async function echo(m: Machine, backend: string, port: number, bytes: number, conns: number) {
  const srv = await m.spawn(FIX, ["serve", String(port), String(conns), "--sockets", backend]);
  if (backend === "linux") await new Promise((r) => setTimeout(r, 200));
  else await untilListening(m, port);
  const cl = await m.spawn(FIX, ["client", String(port), String(bytes), String(conns), "--sockets", backend]);
  const c = await m.waitApp(cl, 120_000);
  // The client gives up on a stream that stops moving and says where it stopped.
  expect((c.result as { stalled?: string } | undefined)?.stalled).toBeUndefined();
  const s = await m.waitApp(srv, 20_000);
  return { c, s };
}

async function settle(m: Machine, name: string) {
  // The apps' exits reach tcp shortly after (kernel -> syscall -> tcp): their arenas and sockets go with them.
  let st = { violations: 0, arenas: -1, sockets: 0, connections: 0 };
  for (let i = 0; i < 100 && st.arenas !== 0; i++) {
    if (i > 0) await new Promise((res) => setTimeout(res, 20));
    st = (await m.ctl("srv", [name, "show"])) as typeof st;
  }
  return st;
}

describe("fast TCP sockets", () => {
  let m: Machine;
  beforeAll(async () => {
    m = await Machine.boot({ apps: [] });
  });
  afterAll(async () => {
    await m?.shutdown();
  });

  test("connect, accept, bytes each way, EOF: the same results on fast, syscall and Linux sockets", async () => {
    const results: Record<string, unknown> = {};
    for (const be of ["fast", "syscall", "linux"]) {
      const e = await m.run(FIX, ["one", "--sockets", be], 20_000);
      expect(e.error, be).toBeUndefined();
      expect(e.status, `${be}: ${JSON.stringify(e.result)}`).toBe(0);
      const { stats: _s, names: _n, ...r } = e.result as { stats: Stats; names: unknown };
      results[be] = r;
    }
    expect(results.fast).toEqual(results.linux);
    expect(results.syscall).toEqual(results.linux);
  });

  test("setsockopt resizes a fast socket's rings (SO_SNDBUF, SO_RCVBUF, SOL_NEWTS slots); 1 MB each way through small rings", async () => {
    for (const be of ["fast", "syscall"]) {
      const e = await m.run(FIX, ["resize", "--sockets", be], 90_000);
      expect(e.error, be).toBeUndefined();
      const r = e.result as { sizes: number[]; gotC: number; gotA: number; bad: number };
      expect(r.sizes, be).toEqual([4096, 8192, 8]); // powers of two at least what was asked
      expect([r.gotC, r.gotA, r.bad], be).toEqual([1_000_000, 1_000_000, 0]);
    }
  }, 120_000);

  test("3 connections x 2 MB through an echo server, checked byte for byte, with few system calls on fast sockets", async () => {
    const { c, s } = await echo(m, "fast", 7101, 2_000_000, 3);
    expect(c.error).toBeUndefined();
    const r = c.result as { moved: number; bad: number; mbps: number; stats: Stats };
    console.log("fast:", JSON.stringify({ moved: r.moved, mbps: r.mbps, total: r.stats.total, syscalls: r.stats.syscalls, blocked: r.stats.blocked }));
    expect(r.moved).toBe(6_000_000);
    expect(r.bad).toBe(0);
    expect(s.status).toBe(0);
    // socket, connect, close per connection; the rest are the waits of polls that found nothing
    expect(r.stats.syscalls - (r.stats.blocked ?? 0)).toBeLessThanOrEqual(9);
    const srv = s.result as { stats: Stats };
    expect(srv.stats.calls.accept).toBe(3);
    // accept, recv and send resolved in user space unless they slept: socket, bind, listen, close(listener)
    expect(srv.stats.syscalls - (srv.stats.blocked ?? 0)).toBeLessThanOrEqual(4);
    const st = await settle(m, "tcp");
    expect(st.arenas).toBe(0);
  }, 150_000);

  test("the same transfer on syscall sockets: every data call is a system call", async () => {
    const { c, s } = await echo(m, "syscall", 7102, 1_000_000, 2);
    expect(c.error).toBeUndefined();
    const r = c.result as { moved: number; bad: number; mbps: number; stats: Stats };
    console.log("syscall:", JSON.stringify({ moved: r.moved, mbps: r.mbps, total: r.stats.total, syscalls: r.stats.syscalls }));
    expect(r.moved).toBe(2_000_000);
    expect(r.bad).toBe(0);
    expect(s.status).toBe(0);
    expect(r.stats.syscalls).toBeGreaterThanOrEqual(r.stats.calls.send! + r.stats.calls.recv!);
    expect(r.stats.userspace).toBeLessThan(r.stats.total / 10);
  }, 150_000);

  test("ctl stats shows the apps' counters and the Table 5.2 columns", async () => {
    const rows = (await m.ctl("stats", [])) as { name: string; backend: string; total: number; table52: Record<string, number | null> }[];
    const fast = rows.filter((x) => x.backend === "newts" && x.total > 0);
    expect(fast.length).toBeGreaterThan(0);
    for (const x of fast) expect(x.table52.userspacePct).toBeGreaterThan(50);
    expect(rows.some((x) => x.backend === "newts-syscall")).toBe(true);
  });

  test("a hostile app scribbling on its own arena for 30 s: tcp neither throws nor stalls, resets and counts; a good pair keeps serving", async () => {
    const before = await row(m, "tcp");
    const srv = await m.spawn(FIX, ["serve", "7300", "0"]);
    await untilListening(m, 7300);
    const bad = await m.spawn("test/fixtures/fasttcp-hostile.ts", ["30000", "7300"]);
    const cl = await m.spawn(FIX, ["client", "7300", "100000", "20", "30000"]);
    const c = await m.waitApp(cl, 90_000);
    const h = await m.waitApp(bad, 60_000);
    const s = await m.waitApp(srv, 20_000);
    const hr = h.result as { grantsRefused: number; kickOther: number; direct: number };
    const r = c.result as { moved: number; bad: number; conns: number; ms: number };
    console.log("hostile:", JSON.stringify(h.result), "client:", JSON.stringify({ ...r, stats: undefined }));
    expect(h.error).toBeUndefined();
    expect(c.error).toBeUndefined();
    expect(r.bad).toBe(0);
    expect(r.conns).toBeGreaterThanOrEqual(20);
    expect(r.moved).toBe(r.conns * 100_000);
    expect(s.status).toBe(0);
    // what it was not given stays out of reach
    expect(hr.grantsRefused).toBe(3);
    expect(hr.kickOther).toBe(9); // EBADF: a slot that is not its own
    expect(hr.direct).toBe(1); // EPERM: tcp is not its peer
    await untilAnswers(m, "tcp");
    const after = await row(m, "tcp");
    expect(after.generation).toBe(before.generation); // never crashed
    const st = await settle(m, "tcp");
    console.log("tcp:", JSON.stringify(st));
    expect(st.violations).toBeGreaterThan(0);
    expect(st.arenas).toBe(0);
  }, 150_000);
});

describe("fast TCP sockets on the single stack (--stack single)", () => {
  let m: Machine;
  beforeAll(async () => {
    m = await Machine.boot({ apps: [], stack: "single" });
  });
  afterAll(async () => {
    await m?.shutdown();
  });

  test("the same app and an echo transfer, byte for byte", async () => {
    const e = await m.run(FIX, ["one"], 20_000);
    expect(e.status, JSON.stringify(e.result ?? e.error)).toBe(0);
    const { c } = await echo(m, "fast", 7103, 1_000_000, 2);
    const r = c.result as { moved: number; bad: number; mbps: number };
    console.log("single:", JSON.stringify({ moved: r.moved, mbps: r.mbps }));
    expect(r.moved).toBe(2_000_000);
    expect(r.bad).toBe(0);
  }, 120_000);
});
