// `ctl stats`: libc's socket-call counters read by the kernel out of an app's PCB, while
// the app runs and after it exited, and the paper's Table 5.2 computed from them. The app
// (test/fixtures/sockstats.ts) makes a known sequence of calls on the Linux backend.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Machine } from "../kernel/boot.ts";
import type { ProcSockStats } from "../libc/counters.ts";
import type { SocketStats } from "../libc/api.ts";
import { sleep } from "./support/machine.ts";

const FIX = "test/fixtures/sockstats.ts";

const CALLS = {
  socket: 2, bind: 1, listen: 1, getsockname: 1, connect: 1, accept4: 2, fcntl: 1, accept: 3, recv: 3, recvfrom: 1,
  poll: 2, send: 1, select: 1, read: 2, epoll_create1: 1, epoll_ctl: 1, epoll_wait: 1, setsockopt: 1, close: 4,
};
const TOTAL = 30;

/** What every reading of the fixture's counters must show. */
function checkCounts(r: ProcSockStats): void {
  expect(r.backend).toBe("linux");
  expect(r.calls).toEqual(CALLS);
  expect(r.total).toBe(TOTAL);
  expect(r.userspace).toBe(1);
  expect(r.wouldBlock).toBe(9);
  expect(r.errors).toBe(1);
  expect(r.blocked).toBe(2);
  expect(r.kinds.accept).toMatchObject({ calls: 3, wouldBlock: 3, syscalls: 3, userspace: 0 });
  expect(r.kinds.accept4).toMatchObject({ calls: 2, wouldBlock: 1 });
  expect(r.kinds.recv).toMatchObject({ calls: 3, wouldBlock: 3, syscalls: 3 });
  expect(r.kinds.read).toMatchObject({ calls: 2, wouldBlock: 1, syscalls: 2 });
  expect(r.kinds.poll).toMatchObject({ calls: 2, blocked: 1 });
  expect(r.kinds.select).toMatchObject({ calls: 1, blocked: 0, syscalls: 1 });
  expect(r.kinds.epoll_wait).toMatchObject({ calls: 1, blocked: 1 });
  expect(r.kinds.setsockopt).toEqual({ calls: 1, userspace: 1, syscalls: 0, wouldBlock: 0, blocked: 0, errors: 1 });
  // Every call but the refused setsockopt is at least one system call (a sleeping one may be retried after EINTR).
  expect(r.syscalls).toBeGreaterThanOrEqual(TOTAL - 1);
  const t = r.table52;
  expect(t.userspacePct).toBeCloseTo((100 * 1) / 30, 10);
  expect(t.selectBlockPct).toBeCloseTo(50, 10); // poll 1 of 2 and epoll_wait 1 of 1, of 4 selects
  expect(t.selectPerCallPct).toBeCloseTo((100 * 4) / 30, 10);
  expect(t.acceptAgainPct).toBeCloseTo(80, 10); // 4 of 5 accepts
  expect(t.readAgainPct).toBeCloseTo((100 * 5) / 6, 10); // recv 3 + recvfrom 1 + read 1 of 6 reads
}

describe("ctl stats", () => {
  let m: Machine;
  beforeAll(async () => {
    m = await Machine.boot({ apps: [] });
  });
  afterAll(async () => {
    await m?.shutdown();
  });

  test("no process has used sockets at boot; a server that has not is an error by name", async () => {
    expect(await m.ctl("stats", [])).toEqual([]);
    await expect(m.ctl("stats", ["udp"])).rejects.toThrow(/udp has not used the socket API/);
    await expect(m.ctl("stats", ["nosuch"])).rejects.toThrow(/no process named 'nosuch'/);
  });

  test("an app's counters by kind and its Table 5.2, read from its PCB while it runs and after it exited", async () => {
    const name = await m.spawn(FIX, ["5000"]);
    // While it lingers: the kernel reads the PCB without asking the app (busy in Atomics.wait).
    let alive: ProcSockStats | undefined;
    for (let i = 0; i < 500; i++) {
      const rows = (await m.ctl("stats", [])) as ProcSockStats[];
      alive = rows.find((r) => r.name === name);
      if (alive && alive.total === TOTAL) break;
      await sleep(10);
    }
    expect(alive).toBeDefined();
    expect(alive!.state).not.toBe("exited");
    checkCounts(alive!);

    const e = await m.waitApp(name, 30_000);
    expect(e.error).toBeUndefined();
    const res = e.result as { stats: SocketStats; inPcb: boolean; auxInPcb: boolean; auxTotal: number; bad: string[] };
    expect(res.bad).toEqual([]);
    expect(e.status).toBe(0);
    expect(res.inPcb).toBe(true); // the process's first backend counts in its PCB
    expect(res.auxInPcb).toBe(false); // the second one privately
    expect(res.auxTotal).toBe(1);

    // After the exit (the app's result comes first, then the kernel ends its worker):
    // the last counters stay (the endpoint is not reused).
    let after = (await m.sockStats(name))[0]!;
    for (let i = 0; i < 500 && after.state !== "exited"; i++) {
      await sleep(10);
      after = (await m.sockStats(name))[0]!;
    }
    expect(after.name).toBe(name);
    expect(after.state).toBe("exited");
    checkCounts(after);
    // The kernel's reading is the app's own stats().
    expect(after.kinds).toEqual(res.stats.kinds);
    expect(after.syscalls).toBe(res.stats.syscalls);
    console.log("stats:", JSON.stringify(after.table52), "syscalls", after.syscalls);
  });
});
