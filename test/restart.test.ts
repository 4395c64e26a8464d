// A server killed in the middle of a stream over a channel and a shared pool comes
// back with the same channel and pool (re-granted by the kernel), the pool's owner
// reclaims the buffers the dead server held, and no request is lost for good.
import { afterEach, expect, test } from "vitest";
import { Machine } from "../kernel/boot.ts";
import { K } from "../lib/ipc/calls.ts";
import { sleep, untilAnswers } from "./support/machine.ts";

let m: Machine | undefined;
afterEach(async () => {
  await m?.shutdown();
  m = undefined;
});

test("channels and pools survive a server's restart mid-stream", async () => {
  m = await Machine.boot({
    apps: [],
    extra: [
      { name: "echo-srv", module: "test/fixtures/echo-server.ts", kind: "server", cpu: 1, ipc: ["echo-client"], kcalls: [] },
      { name: "echo-client", module: "test/fixtures/echo-client.ts", kind: "app", cpu: 0, ipc: ["echo-srv"], kcalls: [K.CHAN_OPEN, K.POOL_CREATE], args: ["2000"] },
    ],
  });
  await sleep(600);
  await m.ctl("kill", ["echo-srv"]);
  await untilAnswers(m, "echo-srv");
  const e = await m.waitApp("echo-client", 30_000);
  expect(e.error).toBeUndefined();
  const r = e.result as { sent: number; answered: number; bad: number; peerRestarts: number; lost: number; allocs: number };
  console.log("echo-client:", JSON.stringify(r));
  expect(r.peerRestarts).toBe(1);
  expect(r.bad).toBe(0);
  expect(r.lost).toBe(0);
  expect(r.answered).toBe(r.sent);
  // Far more buffers went through than the pool has: they were returned and reused.
  expect(r.allocs).toBeGreaterThan(1000);
  const rows = await m.ps();
  expect(rows.find((x) => x.name === "echo-srv")!.restarts).toBe(1);
});

test("a server grants memory it made to an app (Proc.grantTo); the kernel refuses a server without the right", async () => {
  m = await Machine.boot({
    apps: [],
    extra: [
      { name: "granter", module: "test/fixtures/granter.ts", kind: "server", cpu: 1, ipc: [], kcalls: [K.GRANT_APP] },
      { name: "grantee", module: "test/fixtures/grantee.ts", kind: "app", cpu: 0, ipc: ["granter"], kcalls: [] },
      { name: "nogrant", module: "test/fixtures/granter.ts", kind: "server", cpu: 1, ipc: [], kcalls: [] },
      { name: "grantee2", module: "test/fixtures/grantee.ts", kind: "app", cpu: 0, ipc: ["nogrant"], kcalls: [], args: ["nogrant"] },
    ],
  });
  const e = await m.waitApp("grantee");
  expect(e.error).toBeUndefined();
  const r = e.result as { marker: number; seen: number; meta: { purpose: string; from: number } };
  expect(r.seen).toBe(r.marker);
  expect(r.meta.purpose).toBe("test");
  const bad = await m.waitApp("grantee2");
  expect(bad.status).toBe(1);
  expect(bad.error).toMatch(/EPERM|granter/);
});
