// End to end over the hostfwd wire: fetch/curl on this machine reach the in-OS nc through 127.0.0.1:PORT, no root.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Machine } from "../kernel/boot.ts";
import { freePort } from "../lib/sys/hostport.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fnv(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return h;
}


/** Starts `nc -l GUESTPORT --http --size N` in newts; fetches it through the forward (retrying until nc listens). */
async function fetchFromNc(m: Machine, url: string, guestPort: number, size: number): Promise<{ bytes: Uint8Array; ms: number; ncHash: number }> {
  const app = await m.spawn("nc", ["-l", String(guestPort), "--http", "--size", String(size)]);
  for (let tries = 0; ; tries++) {
    await sleep(100);
    const t0 = performance.now();
    try {
      const r = await fetch(url);
      const bytes = new Uint8Array(await r.arrayBuffer());
      const ms = performance.now() - t0;
      const nc = await m.waitApp(app);
      return { bytes, ms, ncHash: (nc.result as { hash: number }).hash };
    } catch (e) {
      if (tries >= 30) throw e; // nc not listening yet: the guest refused, the host socket was reset
    }
  }
}

describe("hostfwd end to end", () => {
  const port = freePort();
  let m: Machine;
  beforeAll(async () => {
    m = await Machine.boot({ apps: [], net: "hostfwd", hostfwd: [`tcp:${port}:8080`] });
  });
  afterAll(async () => {
    await m?.shutdown();
  });

  test("the machine owns the listener; the wire spec says where", () => {
    expect(m.wire).toMatchObject({ kind: "hostfwd", forwards: [{ hostPort: port, guestPort: 8080 }] });
  });

  test("fetch gets 2,000,000 bytes from the in-OS nc, byte-identical", async () => {
    const size = 2_000_000;
    const r = await fetchFromNc(m, `http://127.0.0.1:${port}/`, 8080, size);
    expect(r.bytes.length).toBe(size);
    expect(fnv(r.bytes)).toBe(r.ncHash);
    console.log(`hostfwd e2e: fetch of ${size} bytes in ${r.ms.toFixed(0)} ms = ${((size * 8) / (r.ms / 1000) / 1e6).toFixed(1)} Mbit/s`);
  }, 60_000);

  test("newts pings the gateway 10.0.2.2", async () => {
    const e = await m.run("ping", ["-c", "3", "-i", "100", "10.0.2.2"]);
    expect(e.status).toBe(0);
    expect((e.result as { received: number }).received).toBe(3);
  });

  test.skipIf(!existsSync("/usr/bin/curl"))("curl through the forward, byte-identical", async () => {
    const size = 1_000_000;
    const out = join(tmpdir(), `newts-hostfwd-${process.pid}.bin`);
    const app = await m.spawn("nc", ["-l", "8080", "--http", "--size", String(size)]);
    try {
      let code = -1;
      for (let tries = 0; tries < 30 && code !== 0; tries++) {
        await sleep(100);
        const p = Bun.spawn(["curl", "-s", "-m", "30", "-o", out, `http://127.0.0.1:${port}/`], { stdout: "ignore", stderr: "ignore" });
        code = await p.exited;
      }
      expect(code).toBe(0);
      const nc = await m.waitApp(app);
      const got = new Uint8Array(readFileSync(out));
      expect(got.length).toBe(size);
      expect(fnv(got)).toBe((nc.result as { hash: number }).hash);
    } finally {
      rmSync(out, { force: true });
    }
  }, 60_000);

  test("after the nic driver restarts, new forwarded connections work", async () => {
    await m.ctl("restart", ["nic"]);
    await sleep(300);
    const r = await fetchFromNc(m, `http://127.0.0.1:${port}/`, 8080, 100_000);
    expect(r.bytes.length).toBe(100_000);
    expect(fnv(r.bytes)).toBe(r.ncHash);
  }, 60_000);
});
