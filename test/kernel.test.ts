// The booted system: pinning, system calls, IPC permissions, message validation,
// channels, blocking without CPU, supervision of killed and hung servers, shutdown.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Machine } from "../kernel/boot.ts";
import { K } from "../lib/ipc/calls.ts";
import { SERVERS } from "../kernel/table.ts";
import { EBADMSG, EMSGSIZE, EPERM } from "../lib/sys/errno.ts";
import { getAffinity } from "../lib/sys/ffi.ts";
import { row, sleep, threadCount, threadTicks, untilAnswers } from "./support/machine.ts";

const SERVER_NAMES = SERVERS.map((s) => s.name);

describe("a booted machine", () => {
  let m: Machine;
  beforeAll(async () => {
    m = await Machine.boot({
      apps: [{ name: "sysinfo", args: [] }],
      extra: [
        { name: "chan-b", module: "test/fixtures/chan.ts", kind: "app", cpu: 1, ipc: ["chan-a"], kcalls: [], args: ["20000"] },
        { name: "chan-a", module: "test/fixtures/chan.ts", kind: "app", cpu: 0, ipc: ["chan-b"], kcalls: [K.CHAN_OPEN], args: ["20000"] },
        { name: "notify-b", module: "test/fixtures/notify.ts", kind: "app", cpu: 1, ipc: [], kcalls: [] },
        { name: "notify-a", module: "test/fixtures/notify.ts", kind: "app", cpu: 0, ipc: ["notify-b"], kcalls: [] },
      ],
    });
  });
  afterAll(async () => {
    await m?.shutdown();
  });

  test("every process is pinned, and the boot log shows endpoint, thread id and CPU set", async () => {
    const allowed = getAffinity();
    const rows = await m.ps();
    for (const name of SERVER_NAMES) {
      const r = rows.find((x) => x.name === name)!;
      expect(r, name).toBeDefined();
      expect(r.tid, name).toBeGreaterThan(0);
      expect(r.cpus.length, name).toBe(1);
      expect(allowed).toContain(r.cpus[0]);
      const line = m.logs.find((l) => l.startsWith("[boot]") && l.includes(` ${name} `));
      expect(line, name).toMatch(new RegExp(`ep +${r.ep} +${name} .* tid ${r.tid} cpu \\d+ -> sched_getaffinity \\{${r.cpus[0]}\\}`));
    }
  });

  test("getpid, uptime and uname work end to end from an app", async () => {
    const e = await m.waitApp("sysinfo");
    expect(e.status).toBe(0);
    const r = e.result as { pid: number; uptime: number; uname: { sysname: string; machine: string } };
    expect(r.pid).toBe((await row(m, "sysinfo")).pid);
    expect(r.uptime).toBeGreaterThan(0);
    expect(r.uptime).toBeLessThan(600);
    expect(r.uname.sysname).toBe("newts");
    expect(r.uname.machine.length).toBeGreaterThan(0);
  });

  test("a call to an endpoint outside the ACL fails with EPERM and is counted", async () => {
    const e = await m.run("test/fixtures/deny.ts");
    expect(e.status).toBe(0);
    const r = e.result as { errno: number; pid: number };
    expect(r.errno).toBe(EPERM);
    expect(r.pid).toBeGreaterThan(0); // an allowed call still works afterwards
    expect((await row(m, "deny")).denied).toBe(1);
  });

  test("undecodable and oversized messages come back as errors; the kernel carries on", async () => {
    const e = await m.run("test/fixtures/badmsg.ts");
    expect(e.error).toBeUndefined();
    const r = e.result as { undecodable: { errno: number; id: number }; oversized: { errno: number }; pid: number };
    expect(r.undecodable.errno).toBe(EBADMSG);
    expect(r.undecodable.id).toBe(4242);
    expect(r.oversized.errno).toBe(EMSGSIZE);
    expect(r.pid).toBeGreaterThan(0);
    expect((await row(m, "badmsg")).rejected).toBe(2);
  });

  test("a channel set up through the kernel carries 20,000 messages without it", async () => {
    const a = await m.waitApp("chan-a");
    const b = await m.waitApp("chan-b");
    const ra = a.result as { count: number; hash: number; ack: boolean };
    const rb = b.result as { count: number; hash: number };
    expect(rb.count).toBe(20000);
    expect(rb.hash).toBe(ra.hash);
    expect(ra.ack).toBe(true);
    // Only set-up and exit went through the kernel, not the 20,000 messages.
    expect((await row(m, "chan-a")).msgsOut).toBeLessThan(10);
  });

  test("notify is a coalescing, non-blocking event bit", async () => {
    expect((await m.waitApp("notify-a")).status).toBe(0);
    const b = await m.waitApp("notify-b");
    const r = b.result as { seen: number[]; a: number };
    expect(r.seen).toEqual([r.a]);
  });

  test("ctl restart starts a new generation of a server", async () => {
    const before = await row(m, "pf");
    await m.ctl("restart", ["pf"]);
    await untilAnswers(m, "pf");
    const after = await row(m, "pf");
    expect(after.generation).toBe(before.generation + 1);
    expect(after.pid).not.toBe(before.pid);
  });

  test("a process blocked in a system call uses no CPU", async () => {
    await m.ctl("spawn", ["test/fixtures/sleeper.ts", "1500"]);
    await sleep(300);
    const r = await row(m, "sleeper");
    expect(r.state).toBe("blocked");
    const t1 = threadTicks(r.tid);
    await sleep(1000);
    const t2 = threadTicks(r.tid);
    // 100 ticks would be a whole second of spinning; the 50 ms heartbeat wake-ups cost ~0.
    expect(t2 - t1).toBeLessThanOrEqual(5);
    const e = await m.waitApp("sleeper");
    expect((e.result as { slept: number }).slept).toBeGreaterThanOrEqual(1490);
  });

  for (const name of ["tcp", "ip", "syscall", "rs"]) {
    test(`${name} killed is restarted and answers again within 1 s`, async () => {
      const before = await row(m, name);
      await m.ctl("kill", [name]);
      const ms = await untilAnswers(m, name);
      const after = await row(m, name);
      expect(after.generation).toBe(before.generation + 1);
      expect(after.restarts).toBe(before.restarts + 1);
      expect(ms).toBeLessThan(1000);
    });
  }

  for (const name of ["nic", "udp"]) {
    test(`${name} hung is caught by its heartbeat and answers again within 1 s`, async () => {
      const before = await row(m, name);
      await m.ctl("hang", [name]);
      await sleep(50);
      expect((await row(m, name)).state).toBe("hung");
      await expect(m.ctl("ping", [name, "100"])).rejects.toThrow(/did not answer/);
      const ms = await untilAnswers(m, name);
      const after = await row(m, name);
      expect(after.generation).toBe(before.generation + 1);
      expect(after.restarts).toBe(before.restarts + 1);
      expect(ms).toBeLessThan(1000);
    });
  }

  test("system calls keep working after the syscall server was restarted", async () => {
    const e = await m.run("sysinfo");
    expect(e.status).toBe(0);
  });
});

describe("shutdown", () => {
  test("stops every worker: the thread count returns to where it was", async () => {
    await sleep(200);
    const start = threadCount();
    const m = await Machine.boot({ apps: [] });
    expect(threadCount()).toBeGreaterThanOrEqual(start + SERVER_NAMES.length + 1);
    const t0 = performance.now();
    await m.shutdown();
    expect(performance.now() - t0).toBeLessThan(2000);
    let n = threadCount();
    for (let i = 0; i < 50 && n > start; i++) {
      await sleep(50);
      n = threadCount();
    }
    expect(n).toBeLessThanOrEqual(start);
  });
});
