// Socket buffers across real workers: an app and a stack moving 50 MB each way
// through one stream socket and 1,000,000 datagrams each way through one datagram
// socket, every byte checked where it lands and checksummed on both sides; and a
// hostile thread scribbling on its own socket (and the arena's shared words) while a
// well-behaved socket in the same arena keeps echoing data.
import { describe, expect, test } from "vitest";
import { Worker } from "node:worker_threads";
import { createDoorbell } from "../ipc/doorbell.ts";
import type { Done, FixtureData, Ready } from "./cross.fixture.ts";

interface Peer {
  worker: Worker;
  ready: Promise<Ready>;
  done: Promise<Done>;
}

function start(data: FixtureData): Peer {
  const worker = new Worker(new URL("./cross.fixture.ts", import.meta.url), { workerData: data });
  let onReady: (r: Ready) => void = () => {};
  let onDone: (r: Done) => void = () => {};
  let failReady: (e: unknown) => void = () => {};
  let failDone: (e: unknown) => void = () => {};
  const ready = new Promise<Ready>((res, rej) => ((onReady = res), (failReady = rej)));
  const done = new Promise<Done>((res, rej) => ((onDone = res), (failDone = rej)));
  const fail = (e: unknown) => (failReady(e), failDone(e));
  worker.on("error", fail);
  worker.on("exit", (c) => fail(new Error(`${data.role} exited with ${c} before it was done`)));
  worker.on("message", (m: Ready | Done) => (m.type === "ready" ? onReady(m) : onDone(m)));
  // a settled promise ignores later rejections; these keep early ones from going unhandled
  ready.catch(() => {});
  done.catch(() => {});
  return { worker, ready, done };
}

async function pair(kind: "stream" | "dgram", total: number, maxChunk: number) {
  const seed = (Math.random() * 0xffffffff) >>> 0 || 7;
  const stackBell = createDoorbell();
  const peers: Peer[] = [];
  try {
    const stack = start({ role: `stack-${kind}`, seed, total, maxChunk, stackBell });
    peers.push(stack);
    const r = await stack.ready;
    const app = start({ role: `app-${kind}`, seed, total, maxChunk, stackBell, control: r.control, segments: r.segments, slot: r.slot });
    peers.push(app);
    const [s, a] = await Promise.all([stack.done, app.done]);
    return { s, a, seed };
  } finally {
    await Promise.all(peers.map((p) => p.worker.terminate()));
  }
}

describe("socket buffers across workers", () => {
  test("stream: 50 MB each way through one socket, random write and read sizes", async () => {
    const MB50 = 50 * 1024 * 1024;
    const { s, a, seed } = await pair("stream", MB50, 20000);
    const why = `seed ${seed}`;
    expect(a.sent, why).toBe(MB50);
    expect(s.received, why).toBe(MB50);
    expect(s.sent, why).toBe(MB50);
    expect(a.received, why).toBe(MB50);
    expect(s.mismatches + a.mismatches, why).toBe(0);
    expect(s.recvHash, why).toBe(a.sentHash);
    expect(a.recvHash, why).toBe(s.sentHash);
    console.log(`stream: app slept ${a.sleeps}x, stack slept ${s.sleeps}x`);
  });

  test("datagrams: 1,000,000 each way, sizes 0..512, boundaries and addresses kept", async () => {
    const N = 1_000_000;
    const { s, a, seed } = await pair("dgram", N, 512);
    const why = `seed ${seed}`;
    expect([a.sent, s.received, s.sent, a.received], why).toEqual([N, N, N, N]);
    expect(s.mismatches + a.mismatches, why).toBe(0);
    expect(s.recvHash, why).toBe(a.sentHash);
    expect(a.recvHash, why).toBe(s.sentHash);
    console.log(`dgram: app slept ${a.sleeps}x, stack slept ${s.sleeps}x`);
  });

  test("hostile: scribbling on its own socket and the shared words only hurts itself", async () => {
    const seed = (Math.random() * 0xffffffff) >>> 0 || 7;
    const stackBell = createDoorbell();
    const stopSab = new SharedArrayBuffer(64);
    const stop = new Int32Array(stopSab);
    const peers: Peer[] = [];
    try {
      const stack = start({ role: "stack-hostile", seed, total: 0, maxChunk: 0, stackBell, stop: stopSab });
      peers.push(stack);
      const r = await stack.ready;
      const common = { seed, total: 0, maxChunk: 8192, stackBell, stop: stopSab, control: r.control, segments: r.segments };
      const good = start({ ...common, role: "app-echo", slot: r.slot });
      const bad = start({ ...common, role: "hostile", slot: r.hostile!.slot, hostile: r.hostile });
      peers.push(good, bad);
      // a few seconds of scribbling (the workers' own errors reject these promises early)
      await Promise.race([new Promise((res) => setTimeout(res, 3000)), stack.done, good.done, bad.done]);
      Atomics.store(stop, 0, 1);
      const [s, g, h] = await Promise.all([stack.done, good.done, bad.done]);
      const why = `seed ${seed}`;
      expect(h.scribbles!, why).toBeGreaterThan(0);
      expect(s.violations!, why).toBeGreaterThan(0);
      expect(s.resets!, why).toBeGreaterThanOrEqual(s.violations!);
      expect(g.sent, why).toBeGreaterThan(0);
      expect(g.received, why).toBe(g.sent);
      expect(g.mismatches, why).toBe(0);
      expect(g.recvHash, why).toBe(g.sentHash);
      console.log(
        `hostile: ${h.scribbles} scribbles, ${s.violations} violations, ${s.resets} resets, ${s.junkBits} junk bits; good socket echoed ${g.sent} bytes`,
      );
    } finally {
      Atomics.store(stop, 0, 1);
      await Promise.all(peers.map((p) => p.worker.terminate()));
    }
  });
});
