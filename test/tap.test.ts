// Interop with the real Linux stack through a TAP device whose Linux end lives in
// a namespace this test creates (and removes): ping both ways, curl from in-OS nc,
// newts connecting out, RST from a closed port, pf at run time, and servers killed
// during a transfer. Needs root, /dev/net/tun, ip, ping and curl.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Machine, ROOT } from "../kernel/boot.ts";
import { lacking } from "../lib/sys/needs.ts";
import { fnvFile, killAll, nsExec } from "./support/net.ts";
import { sleep, untilAnswers, untilBound, untilListening } from "./support/machine.ts";

const NS = "nt-tap";
const DEV = "nttap0";
const why = lacking({ root: true, tun: true, tools: ["ip", "ping", "curl"] }, "tap interop");
const BUN = join(ROOT, "node_modules/.bin/bun");
const OUT = join(tmpdir(), `newts-tap-${process.pid}.bin`);

describe.skipIf(why !== null)("over TAP against the Linux stack", () => {
  let m: Machine;
  beforeAll(async () => {
    m = await Machine.boot({ apps: [], net: `tap,ns=${NS},dev=${DEV},addr=10.0.2.2/24` });
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await m?.shutdown();
    if (existsSync(OUT)) rmSync(OUT);
  });

  test("Linux pings newts", async () => {
    const r = await nsExec(NS, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.15"]);
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    expect(r.code).toBe(0);
  });

  test("newts pings Linux", async () => {
    const e = await m.run("ping", ["-c", "3", "-i", "100", "10.0.2.2"]);
    expect(e.status).toBe(0);
    expect((e.result as { received: number }).received).toBe(3);
  });

  test("curl fetches 100 MB from in-OS nc, byte-identical", async () => {
    const size = 100 * 1024 * 1024;
    const app = await m.spawn("nc", ["-l", "8080", "--http", "--size", String(size)]);
    await untilListening(m, 8080);
    const r = await nsExec(NS, ["curl", "-s", "-m", "240", "-o", OUT, "-w", "%{http_code} %{size_download}", "http://10.0.2.15:8080/"], 250_000);
    expect(r.stdout).toBe(`200 ${size}`);
    const nc = await m.waitApp(app);
    const got = fnvFile(OUT);
    expect(got.bytes).toBe(size);
    expect(got.hash).toBe((nc.result as { hash: number }).hash);
  }, 300_000);

  test("newts connects out to a Linux listener", async () => {
    const sink = nsExec(NS, [BUN, join(ROOT, "test/fixtures/ns-sink.ts"), "10.0.2.2", "9000"], 60_000);
    await sleep(700);
    const e = await m.run("nc", ["10.0.2.2", "9000", "--size", "1000000"]);
    expect(e.status).toBe(0);
    const r = await sink;
    const [bytes, hash] = r.stdout.trim().split("\n").pop()!.split(" ").map(Number);
    expect(bytes).toBe(1_000_000);
    expect(hash).toBe((e.result as { hash: number }).hash);
  });

  test("in-OS nc sends a file to curl", async () => {
    const file = join(ROOT, "README.md");
    const app = await m.spawn("nc", ["-l", "8083", "--http", "--file", file]);
    await untilListening(m, 8083);
    const r = await nsExec(NS, ["curl", "-s", "-m", "10", "-o", OUT, "http://10.0.2.15:8083/"]);
    expect(r.code).toBe(0);
    expect(fnvFile(OUT)).toEqual(fnvFile(file));
    expect((await m.waitApp(app)).status).toBe(0);
  });

  test("a UDP socket keeps its binding across a udp server restart and echoes a datagram", async () => {
    const app = await m.spawn("nc", ["-u", "-l", "5353"]);
    await untilBound(m, 5353);
    await m.ctl("kill", ["udp"]);
    await untilAnswers(m, "udp");
    const r = await nsExec(NS, ["bash", "-c", "exec 3<>/dev/udp/10.0.2.15/5353; printf 'hello newts' >&3; timeout 3 head -c 11 <&3"]);
    expect(r.stdout).toBe("hello newts");
    const e = await m.waitApp(app);
    expect(e.status).toBe(0);
    expect((e.result as { bytes: number }).bytes).toBe(11);
  });

  test("a listening socket survives a tcp server restart; new connections are served", async () => {
    const app = await m.spawn("nc", ["-l", "8084", "--http", "--size", "5000"]);
    await untilListening(m, 8084);
    await m.ctl("kill", ["tcp"]);
    await untilAnswers(m, "tcp");
    const r = await nsExec(NS, ["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "http://10.0.2.15:8084/"]);
    expect(r.stdout).toBe("200 5000");
    expect((await m.waitApp(app)).status).toBe(0);
  });

  test("a closed port answers with RST (connection refused at once)", async () => {
    const r = await nsExec(NS, ["curl", "-s", "-m", "5", "http://10.0.2.15:9/"]);
    expect(r.code).toBe(7); // curl: couldn't connect (refused), not 28 (timed out)
    expect(r.ms).toBeLessThan(5000);
  });

  test("a pf rule blocks a port, and lifting it at run time restores service", async () => {
    await m.ctl("spawn", ["nc", "-l", "8081", "--http", "--size", "1000"]);
    await untilListening(m, 8081);
    expect(await m.ctl("srv", ["pf", "load", "block in proto tcp to port 8081"])).toMatch(/loaded 1 rule/);
    const blocked = await nsExec(NS, ["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", "http://10.0.2.15:8081/"]);
    expect(blocked.code).toBe(28); // timed out: the SYNs were dropped
    expect(await m.ctl("srv", ["pf", "show"])).toMatch(/block in proto tcp .*port = 8081/);
    await m.ctl("srv", ["pf", "load", ""]);
    const ok = await nsExec(NS, ["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "http://10.0.2.15:8081/"]);
    expect(ok.stdout).toBe("200 1000");
  });

  test("killing nic, pf and ip during a transfer is invisible to it", async () => {
    const size = 30_000_000;
    const app = await m.spawn("nc", ["-l", "8082", "--http", "--size", String(size)]);
    await untilListening(m, 8082);
    const before = await m.ps();
    const curl = nsExec(NS, ["curl", "-s", "-m", "120", "-o", OUT, "-w", "%{http_code} %{size_download}", "http://10.0.2.15:8082/"], 130_000);
    for (const name of ["nic", "pf", "ip"]) {
      await sleep(700);
      await m.ctl("kill", [name]);
    }
    const r = await curl;
    // On a cut stream, say what each end saw: curl's exit status and nc's outcome.
    if (r.stdout !== `200 ${size}`) {
      const nc = await m.waitApp(app, 5_000).catch((e: Error) => e.message);
      const stats: Record<string, unknown> = {};
      for (const name of ["nic", "pf", "ip", "tcp"]) stats[name] = await m.ctl("srv", [name, "show"]).catch((e: Error) => e.message);
      expect(r.stdout, `curl exit ${r.code}; nc: ${JSON.stringify(nc)}; ${JSON.stringify(stats)}`).toBe(`200 ${size}`);
    }
    const nc = await m.waitApp(app);
    expect(fnvFile(OUT).hash).toBe((nc.result as { hash: number }).hash);
    const after = await m.ps();
    for (const name of ["nic", "pf", "ip"]) {
      const b = before.find((x) => x.name === name)!;
      expect(after.find((x) => x.name === name)!.restarts, name).toBe(b.restarts + 1);
    }
  }, 180_000);
});
