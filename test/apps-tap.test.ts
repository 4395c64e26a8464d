// Interop of the ported apps with the real tools the paper used: httpd and
// memcached on newts fast sockets, driven over a TAP device from inside a network namespace
// this file creates (and newts removes at shutdown), and the same apps on the Linux backend,
// driven from this machine's 127.0.0.1. The same checks on both:
//   - curl downloads of the 20 B, 11 kB and 512 kB files match www/ byte for byte;
//   - memccapable passes every ASCII and binary test;
//   - memcslap with 16 client threads (a set run and a get run) stores and fetches every key;
//   - httperf, 10 000 connections with 1 and with 10 calls each, completes with zero errors;
//   - wrk with 64 connections for 20 s: no socket errors, no non-2xx/3xx answers.
// The tools come from Debian (curl, httperf, wrk, libmemcached-tools; .ci/run installs them);
// without them, root or /dev/net/tun a suite is skipped with the printed reason. The rates
// and times each tool reports are printed; nothing is asserted about them.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Machine } from "../kernel/boot.ts";
import { DEFAULT_DOCROOT } from "../apps/httpd/site.ts";
import { lacking } from "../lib/sys/needs.ts";
import { killAll, nsExec, type Ran } from "./support/net.ts";
import { sleep } from "./support/machine.ts";
import { freePort } from "../lib/sys/hostport.ts";

const NS = "nt-appstap";
const DEV = "ntappstap0";
const NEWTS_ADDR = "10.0.2.15";
const TOOLS = ["curl", "httperf", "wrk", "memccapable", "memcslap"];
const whyTap = lacking({ root: true, tun: true, tools: ["ip", ...TOOLS] }, "apps on newts fast sockets over TAP");
const whyLinux = lacking({ tools: TOOLS }, "apps on the Linux backend");

/** httperf's connections per run (with 1, then with 10 calls each). */
const HTTPERF_CONNS = 10_000;
const MEMCSLAP_THREADS = 16;
/** Operations per memcslap thread (it runs as many sets or gets per thread as keys). */
const MEMCSLAP_KEYS = 250;
const WRK_SECONDS = 20;

// ---- running the tools -----------------------------------------------------------------

type Exec = (argv: string[], timeoutMs?: number) => Promise<Ran>;

const hostChildren = new Set<ChildProcess>();

/** Runs argv on this machine (root namespace), killed after timeoutMs; see nsExec. */
function hostExec(argv: string[], timeoutMs = 30_000): Promise<Ran> {
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  hostChildren.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) => {
    child.on("error", (e) => (stderr += String(e)));
    child.on("close", (code) => {
      clearTimeout(t);
      hostChildren.delete(child);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

function killHost(): void {
  for (const c of hostChildren) c.kill("SIGKILL");
  hostChildren.clear();
}

const inNs: Exec = (argv, timeoutMs) => nsExec(NS, argv, timeoutMs);


/** Waits for the start-up line `NAME: listening on ...:PORT` of a spawned app. */
async function listening(m: Machine, name: string, port: number, ms = 30_000): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (m.logs.some((l) => l.startsWith(`${name}: listening on `) && new RegExp(`:${port}[ ,]`).test(l))) return;
    const failed = m.exits.find((e) => e.name === name);
    if (failed) throw new Error(`${name} exited: ${JSON.stringify(failed)}`);
    await sleep(50);
  }
  throw new Error(`${name} did not start listening on ${port}:\n${m.logs.slice(-20).join("\n")}`);
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** What one run printed, for the failure message and the log. */
const shown = (r: Ran) => `exit ${r.code} after ${(r.ms / 1000).toFixed(1)} s\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

// ---- the checks, the same against each backend ---------------------------------------------

interface Target {
  label: string;
  exec: Exec;
  host: string;
  http: number;
  memcache: number;
  /** httperf --rate for 1 and for 10 calls per connection (0: one connection after another). */
  rate1: number;
  rate10: number;
  /** Servers rs restarted since the last look (a restart of tcp takes the apps' sockets along). */
  restarts: () => string[];
}

/** A check's failure message: what the tool printed, and the restarts meanwhile. */
function why(t: Target, r: Ran): string {
  const rs = t.restarts();
  if (rs.length > 0) console.warn(`${t.label}: restarts during the run:\n${rs.join("\n")}`);
  return `${shown(r)}${rs.length > 0 ? `\n--- restarts meanwhile\n${rs.join("\n")}` : ""}`;
}

/** Returns a function that yields the machine's restart lines logged since its last call. */
function restartWatch(m: () => Machine | undefined): () => string[] {
  let seen = 0;
  return () => {
    const logs = m()?.logs ?? [];
    const fresh = logs.slice(Math.min(seen, logs.length)).filter((l) => /^rs: |^\[kernel\] restarting /.test(l));
    seen = logs.length;
    return fresh;
  };
}

function interop(target: () => Target, out: string): void {
  test("curl: the 20 B, 11 kB and 512 kB files, byte for byte", async () => {
    const t = target();
    t.restarts();
    for (const name of ["20b.txt", "11k.bin", "512k.bin"]) {
      if (existsSync(out)) rmSync(out);
      const r = await t.exec(["curl", "-s", "-m", "30", "-o", out, "-w", "%{http_code} %{size_download}", `http://${t.host}:${t.http}/${name}`], 40_000);
      const msg = `${name}: ${why(t, r)}`;
      const want = readFileSync(join(DEFAULT_DOCROOT, name));
      expect(r.stdout, msg).toBe(`200 ${want.length}`);
      expect(r.code, msg).toBe(0);
      expect(sha256(readFileSync(out)), name).toBe(sha256(want));
    }
  }, 120_000);

  test("memccapable passes every ASCII and binary test", async () => {
    const t = target();
    t.restarts();
    const r = await t.exec(["memccapable", "-h", t.host, "-p", String(t.memcache), "-t", "10"], 120_000);
    const msg = why(t, r);
    const all = r.stdout + r.stderr;
    const lines = all.split("\n").filter((l) => /^(ascii|binary) /.test(l));
    const passed = lines.filter((l) => l.includes("[pass]")).length;
    console.log(`${t.label} memccapable: ${passed} of ${lines.length} passed in ${(r.ms / 1000).toFixed(1)} s`);
    expect(lines.filter((l) => !l.includes("[pass]")), msg).toEqual([]);
    expect(lines.filter((l) => l.startsWith("ascii ")).length, msg).toBe(27);
    expect(lines.filter((l) => l.startsWith("binary ")).length, msg).toBe(27);
    expect(all, msg).toContain("All tests passed");
    expect(r.code, msg).toBe(0);
  }, 150_000);

  // memcslap exits 0 even when it cannot connect (it then reports 0 keys and prints "Fatal
  // error ..." per key), so the check is the count it reports: every set or get succeeded.
  // Its values are 50 to 5000 bytes; on newts a get whose answer ends in a short segment after
  // an odd number of full ones waits ~40 ms for Linux's delayed ACK (Nagle: TCP_NODELAY is
  // recorded but not acted on), so the get run takes seconds there, not a quarter of one.
  for (const what of ["set", "get"] as const) {
    test(`memcslap: ${MEMCSLAP_THREADS} threads x ${MEMCSLAP_KEYS} ${what}s complete`, async () => {
      const t = target();
      t.restarts();
      const r = await t.exec(
        ["memcslap", `--servers=${t.host}:${t.memcache}`, `--concurrency=${MEMCSLAP_THREADS}`, `--execute-number=${MEMCSLAP_KEYS}`, `--test=${what}`],
        120_000,
      );
      const msg = why(t, r);
      const all = r.stdout + r.stderr;
      const m = new RegExp(`Time to ${what}\\s+(\\d+) keys by\\s+(\\d+) threads:\\s+([\\d.]+) seconds`).exec(all);
      console.log(`${t.label} memcslap --test=${what}: ${m ? `${m[1]} keys by ${m[2]} threads in ${m[3]} s` : "no result line"}`);
      expect(m, msg).not.toBeNull();
      expect(Number(m![1]), msg).toBe(MEMCSLAP_THREADS * MEMCSLAP_KEYS);
      expect(Number(m![2]), msg).toBe(MEMCSLAP_THREADS);
      if (what === "get") expect(all, `the initial load: ${msg}`).toMatch(new RegExp(`Time to set\\s+${MEMCSLAP_KEYS} keys:`));
      expect(all, msg).not.toMatch(/Fatal|Failed|error/i);
      expect(r.code, msg).toBe(0);
    }, 150_000);
  }

  for (const calls of [1, 10]) {
    test(`httperf: ${HTTPERF_CONNS} connections x ${calls} call${calls > 1 ? "s" : ""}, zero errors`, async () => {
      const t = target();
      t.restarts();
      const rate = calls === 1 ? t.rate1 : t.rate10;
      const argv = ["httperf", "--hog", "--server", t.host, "--port", String(t.http), "--uri", "/20b.txt",
        "--num-conns", String(HTTPERF_CONNS), "--num-calls", String(calls), "--timeout", "10"];
      if (rate > 0) argv.push("--rate", String(rate));
      const r = await t.exec(argv, 170_000);
      const msg = why(t, r);
      const o = r.stdout;
      const total = /^Total: connections (\d+) requests (\d+) replies (\d+) test-duration ([\d.]+) s/m.exec(o);
      const reqRate = /^Request rate: ([\d.]+) req\/s/m.exec(o)?.[1];
      const conc = /<=(\d+) concurrent connections/.exec(o)?.[1];
      console.log(
        `${t.label} httperf ${HTTPERF_CONNS} conns x ${calls} (${rate > 0 ? `--rate ${rate}` : "one at a time"}): ` +
          `${reqRate ?? "?"} req/s, ${total?.[4] ?? "?"} s, <=${conc ?? "?"} concurrent; ${/^Errors: total .*$/m.exec(o)?.[0] ?? "no Errors line"}`,
      );
      expect(total, msg).not.toBeNull();
      expect(o, msg).toMatch(/^Errors: total 0 client-timo 0 socket-timo 0 connrefused 0 connreset 0$/m);
      expect(o, msg).toMatch(/^Errors: fd-unavail 0 addrunavail 0 ftab-full 0 other 0$/m);
      const n = HTTPERF_CONNS * calls;
      expect(total!.slice(1, 4).map(Number), msg).toEqual([HTTPERF_CONNS, n, n]);
      expect(o, msg).toMatch(new RegExp(`^Reply status: 1xx=0 2xx=${n} 3xx=0 4xx=0 5xx=0$`, "m"));
      expect(r.code, msg).toBe(0);
    }, 180_000);
  }

  test(`wrk: 64 connections for ${WRK_SECONDS} s, no socket errors, every answer 2xx`, async () => {
    const t = target();
    t.restarts();
    const r = await t.exec(["wrk", "-c", "64", "-t", "2", "-d", `${WRK_SECONDS}s`, "--timeout", "10s", `http://${t.host}:${t.http}/11k.bin`], (WRK_SECONDS + 40) * 1000);
    const msg = why(t, r);
    const o = r.stdout;
    const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(o)?.[1];
    const reqs = /^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read/m.exec(o);
    console.log(`${t.label} wrk -c 64 -t 2 -d ${WRK_SECONDS}s /11k.bin: ${rps ?? "?"} req/s (${reqs?.[1] ?? "?"} requests, ${reqs?.[3] ?? "?"} read)`);
    expect(reqs, msg).not.toBeNull();
    expect(Number(reqs![1]), msg).toBeGreaterThan(0);
    expect(o, msg).not.toMatch(/Socket errors/);
    expect(o, msg).not.toMatch(/Non-2xx or 3xx responses/);
    expect(rps, msg).toBeDefined();
    expect(r.code, msg).toBe(0);
  }, (WRK_SECONDS + 60) * 1000);
}

// ---- newts fast sockets, over TAP --------------------------------------------------------------

describe.skipIf(whyTap !== null)("apps on newts fast sockets over TAP", () => {
  let m: Machine | undefined;
  const out = join(tmpdir(), `newts-apps-tap-${process.pid}.bin`);

  beforeAll(async () => {
    m = await Machine.boot({ apps: [], net: `tap,ns=${NS},dev=${DEV},addr=10.0.2.2/24` });
    const httpd = await m.spawn("httpd", ["--sockets", "fast", "--port", "80"]);
    const memcached = await m.spawn("memcached", ["--sockets", "fast", "-p", "11211"]);
    await listening(m, httpd, 80);
    await listening(m, memcached, 11211);
  }, 60_000);
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await m?.shutdown();
    if (existsSync(out)) rmSync(out);
  }, 30_000);

  // One connection after another through the TAP device is bound by its round trips (160 to
  // 600 connections/s here), so httperf opens them at a fixed rate: 10 000 take 17 s and 25 s,
  // with a few dozen open at once (httperf's select() stops at 1024 open connections).
  const restarts = restartWatch(() => m);
  interop(() => ({ label: "newts fast/TAP", exec: inNs, host: NEWTS_ADDR, http: 80, memcache: 11211, rate1: 600, rate10: 400, restarts }), out);
});

// ---- the Linux backend, on 127.0.0.1 -------------------------------------------------------------

describe.skipIf(whyLinux !== null)("apps on the Linux backend", () => {
  let m: Machine | undefined;
  const port = { http: 0, memcache: 0 };
  const out = join(tmpdir(), `newts-apps-linux-${process.pid}.bin`);

  beforeAll(async () => {
    port.http = freePort();
    port.memcache = freePort();
    m = await Machine.boot({ apps: [] });
    const httpd = await m.spawn("httpd", ["--sockets", "linux", "--addr", "127.0.0.1", "--port", String(port.http)]);
    const memcached = await m.spawn("memcached", ["--sockets", "linux", "-l", "127.0.0.1", "-p", String(port.memcache)]);
    await listening(m, httpd, port.http);
    await listening(m, memcached, port.memcache);
  }, 60_000);
  afterEach(() => killHost());
  afterAll(async () => {
    killHost();
    await m?.shutdown();
    if (existsSync(out)) rmSync(out);
  }, 30_000);

  // On loopback one connection after another is fast enough (about 3 and 10 s).
  const restarts = restartWatch(() => m);
  interop(() => ({ label: "Linux", exec: hostExec, host: "127.0.0.1", http: port.http, memcache: port.memcache, rate1: 0, rate10: 0, restarts }), out);
});
