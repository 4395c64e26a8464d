// Rings across two real workers: millions of messages of random sizes through
// small rings (so they wrap, fill and empty all the time), checksummed on both sides.
import { describe, expect, test } from "vitest";
import { Worker } from "node:worker_threads";
import { createByteRingBuffer, createSlotRingBuffer } from "../lib/ipc/ring.ts";
import { createDoorbell } from "../lib/ipc/doorbell.ts";
import type { RingPeerData } from "./fixtures/ring-peer.ts";

interface PeerResult {
  total: number;
  hash: number;
  sleeps: number;
  spins: number;
  wakes: number;
}

function runPeer(data: RingPeerData): { done: Promise<PeerResult>; worker: Worker } {
  const worker = new Worker(new URL("./fixtures/ring-peer.ts", import.meta.url), { workerData: data });
  const done = new Promise<PeerResult>((resolve, reject) => {
    worker.on("message", resolve);
    worker.on("error", reject);
    worker.on("exit", (c) => c !== 0 && reject(new Error(`peer exited with ${c}`)));
  });
  return { done, worker };
}

async function pair(kind: RingPeerData["kind"], ring: SharedArrayBuffer, count: number, maxLen: number) {
  const pb = createDoorbell();
  const cb = createDoorbell();
  const seed = (Math.random() * 0xffffffff) >>> 0 || 7;
  const p = runPeer({ kind, role: "producer", ring, mine: pb, theirs: cb, count, seed, maxLen });
  // The slot consumer regenerates the producer's values (same seed) to check each one.
  const cseed = kind === "slots" ? seed : seed ^ 0x5a5a5a5a;
  const c = runPeer({ kind, role: "consumer", ring, mine: cb, theirs: pb, count, seed: cseed, maxLen });
  try {
    const [pr, cr] = await Promise.all([p.done, c.done]);
    return { pr, cr, seed };
  } finally {
    await Promise.all([p.worker.terminate(), c.worker.terminate()]);
  }
}

describe("rings across two workers", () => {
  test("message ring: 2,000,000 messages of 1..100 bytes through a 4 KiB ring", async () => {
    const { pr, cr, seed } = await pair("msgs", createByteRingBuffer(4096), 2_000_000, 100);
    expect(cr.total, `seed ${seed}`).toBe(pr.total);
    expect(cr.hash, `seed ${seed}`).toBe(pr.hash);
    // Both the full and the empty case happened (the producer or consumer had to wait).
    expect(pr.spins + cr.spins).toBeGreaterThan(0);
  });

  test("byte stream ring: 32 MiB in random-size writes and reads through a 1 KiB ring", async () => {
    const { pr, cr, seed } = await pair("bytes", createByteRingBuffer(1024), 32 * 1024 * 1024, 1500);
    expect(cr.total, `seed ${seed}`).toBe(32 * 1024 * 1024);
    expect(cr.hash, `seed ${seed}`).toBe(pr.hash);
  });

  test("slot ring: 3,000,000 slots in batches through 64 slots", async () => {
    const { pr, cr, seed } = await pair("slots", createSlotRingBuffer(64, 8), 3_000_000, 8);
    expect(cr.total, `seed ${seed}`).toBe(3_000_000);
    expect(cr.hash, `seed ${seed}`).toBe(pr.hash);
  });
});
