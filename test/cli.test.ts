// `npm start` and `npm run ctl` as a person uses them: a real child process, the
// control socket, kill and hang seen in ps, shutdown and Ctrl-C, bad flags.
import { afterEach, describe, expect, test } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../kernel/boot.ts";
import type { ProcRow } from "../kernel/kernel.ts";

const BUN = join(ROOT, "node_modules/.bin/bun");
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

function boot(ctl: string, extra: string[] = []): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(BUN, ["kernel/main.ts", "--ctl", ctl, ...extra], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no boot within 20 s:\n${out}`)), 20_000);
    child.stdout!.on("data", () => {
      if (out.includes("newts booted")) {
        clearTimeout(t);
        resolve({ child, out: () => out });
      }
    });
    child.on("exit", (c) => reject(new Error(`exited ${c} during boot:\n${out}`)));
  });
}

function ctl(path: string, ...args: string[]) {
  const r = spawnSync(BUN, ["kernel/ctl.ts", "--ctl", path, ...args], { cwd: ROOT, encoding: "utf8", timeout: 10_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function exited(child: ChildProcess): Promise<{ code: number | null; ms: number }> {
  const t0 = performance.now();
  return new Promise((r) => child.on("exit", (code) => r({ code, ms: performance.now() - t0 })));
}

async function until(f: () => boolean, ms = 3000) {
  const t0 = performance.now();
  while (!f()) {
    if (performance.now() - t0 > ms) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ctlPath = () => join(tmpdir(), `newts-test-${process.pid}-${Math.random().toString(36).slice(2)}.ctl`);

describe("npm start and ctl", () => {
  test("boots, answers ps (table and --json), shows kill and hang as restarts, shuts down with exit 0", async () => {
    const path = ctlPath();
    const { child, out } = await boot(path, ["--no-apps"]);
    expect(out()).toMatch(/\[boot\] ep +1 rs .* tid \d+ cpu \d+ -> sched_getaffinity \{\d+\}/);
    const table = ctl(path, "ps");
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/^EP +NAME +KIND/);
    const rows = (): ProcRow[] => JSON.parse(ctl(path, "ps", "--json").out) as ProcRow[];
    expect(rows().map((r) => r.name)).toEqual(["rs", "syscall", "nic", "pf", "ip", "udp", "tcp"]);

    expect(ctl(path, "kill", "pf").code).toBe(0);
    expect(ctl(path, "hang", "tcp").code).toBe(0);
    await until(() => {
      const r = rows();
      return r.find((x) => x.name === "pf")!.restarts === 1 && r.find((x) => x.name === "tcp")!.restarts === 1;
    });
    expect(ctl(path, "ping", "tcp").code).toBe(0);

    const bad = ctl(path, "kill", "nosuch");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/no process named 'nosuch'/);

    const gone = exited(child);
    expect(ctl(path, "shutdown").code).toBe(0);
    const { code, ms } = await gone;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2000);
    expect(existsSync(path)).toBe(false);
  });

  test("ctl stats: Table 5.2 per process, one process's calls by kind, --json; errors for no socket use and no process", async () => {
    const path = ctlPath();
    const { child } = await boot(path, ["--no-apps"]);
    const none = ctl(path, "stats");
    expect(none.code).toBe(0);
    expect(none.out.trim()).toBe("no process has used the socket API");
    expect(ctl(path, "spawn", "test/fixtures/sockstats.ts").code).toBe(0);
    // the app's 30 calls (test/fixtures/sockstats.ts); it keeps its counters after it exits
    type Row = { name: string; total: number; state: string };
    await until(() => ((JSON.parse(ctl(path, "stats", "--json").out) as Row[])[0]?.state === "exited"), 10_000);
    const rows = JSON.parse(ctl(path, "stats", "--json").out) as Row[];
    expect(rows.map((r) => [r.name, r.total])).toEqual([["sockstats", 30]]);
    const table = ctl(path, "stats");
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^EP +NAME +BACKEND +STATE +CALLS +USER SPACE +SELECT BLOCKS +SELECT\/ALL +ACCEPT EAGAIN +READ EAGAIN +SYSCALLS$/);
    expect(lines[1]).toMatch(/^ *\d+ +sockstats +linux +exited +30 +3\.33 % +50\.00 % +13\.33 % +80\.00 % +83\.33 % +\d+$/);
    const one = ctl(path, "stats", "sockstats");
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/^CALL +CALLS +USER SPACE +EAGAIN +BLOCKED +ERRORS +SYSCALLS$/m);
    expect(one.out).toMatch(/^accept +3 +0 +3 +0 +0 +3$/m);
    expect(one.out).toMatch(/^total +30 +1 +9 +2 +1 +\d+$/m);
    const unused = ctl(path, "stats", "tcp");
    expect(unused.code).toBe(1);
    expect(unused.err).toMatch(/tcp has not used the socket API/);
    expect(ctl(path, "stats", "nosuch").code).toBe(1);
    expect(ctl(path, "stats", "a", "b").code).toBe(2);
    const gone = exited(child);
    expect(ctl(path, "shutdown").code).toBe(0);
    expect((await gone).code).toBe(0);
  });

  test("Ctrl-C (SIGINT) stops everything with exit 0", async () => {
    const path = ctlPath();
    const { child, out } = await boot(path, ["--app", "sysinfo"]);
    await until(() => out().includes("sysinfo: newts"));
    const gone = exited(child);
    child.kill("SIGINT");
    const { code, ms } = await gone;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2000);
  });

  test("bad flags and values are a one-line error and exit 2", () => {
    for (const args of [["--bogus"], ["--app"], ["--app", "no-such-app"], ["--app", "sysinfo", "--no-apps"], ["--app", "$(rm)"]]) {
      const r = spawnSync(BUN, ["kernel/main.ts", ...args], { cwd: ROOT, encoding: "utf8", timeout: 10_000 });
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n").length, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/^newts: /);
    }
    const h = spawnSync(BUN, ["kernel/main.ts", "--help"], { cwd: ROOT, encoding: "utf8" });
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/--app "NAME ARGS"/);
    const c = ctl("/nonexistent.ctl", "frobnicate");
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/unknown command 'frobnicate'/);
    const d = ctl("/nonexistent.ctl", "ps");
    expect(d.code).toBe(1);
    expect(d.err).toMatch(/nonexistent\.ctl/);
  });
});
