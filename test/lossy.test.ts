// Two newts machines joined by a lossy link (frames as UDP datagrams on loopback,
// with drops, duplicates, reordering and corruption) move 50 MB byte-identical:
// TCP's retransmission, SACK and checksums at work between two of our own stacks.
import { afterAll, expect, test } from "vitest";
import { Machine } from "../kernel/boot.ts";

const machines: Machine[] = [];
afterAll(async () => {
  for (const m of machines) await m.shutdown();
});

async function pair(faults: string): Promise<[Machine, Machine]> {
  for (let attempt = 0; ; attempt++) {
    const pa = 20000 + Math.floor(Math.random() * 20000);
    const pb = pa + 1;
    try {
      const a = await Machine.boot({ apps: [], net: `dgram,local=${pa},remote=${pb},${faults},seed=7`, addr: "10.0.2.15/24" });
      machines.push(a);
      const b = await Machine.boot({ apps: [], net: `dgram,local=${pb},remote=${pa}`, addr: "10.0.2.16/24", mac: "52:54:00:12:34:57" });
      machines.push(b);
      return [a, b];
    } catch (e) {
      if (attempt > 5 || !/EADDRINUSE|in use/.test(String(e))) throw e;
    }
  }
}

test("50 MB over a link with 5% drop, duplication and reordering arrive byte-identical", async () => {
  const [a, b] = await pair("loss=0.05,dup=0.02,reorder=0.02,corrupt=0.005");
  const sink = await b.spawn("nc", ["-l", "9000", "--sink"]);
  await new Promise((r) => setTimeout(r, 300));
  const size = 50 * 1000 * 1000;
  const src = await a.spawn("nc", ["10.0.2.16", "9000", "--size", String(size)]);
  const sent = await a.waitApp(src, 240_000);
  const got = await b.waitApp(sink, 60_000);
  expect(sent.status).toBe(0);
  expect(got.status).toBe(0);
  const s = sent.result as { bytes: number; hash: number };
  const r = got.result as { bytes: number; hash: number };
  expect(r.bytes).toBe(size);
  expect(r.hash).toBe(s.hash);
  // The link really was lossy, both ways: the fault injector on a's wire counted its work.
  const nic = (await a.ctl("srv", ["nic", "show"])) as { faults: Record<"rx" | "tx", Record<string, number>> };
  for (const dir of ["rx", "tx"] as const) {
    expect(nic.faults[dir]!.lost, dir).toBeGreaterThan(100);
    expect(nic.faults[dir]!.duplicated, dir).toBeGreaterThan(10);
    expect(nic.faults[dir]!.reordered, dir).toBeGreaterThan(10);
  }
}, 300_000);
