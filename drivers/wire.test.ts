// Tests for the wire's netdev specs (openWire, attachWire): a spec to a stack of backends
// (dgram, faulty, pcap), and spec errors.
import { afterEach, describe, expect, test } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attachWire, openWire } from "./wire.ts";
import { parseNetdev } from "./backends/netdev.ts";
import type { Backend } from "./backends/backend.ts";
import { DgramBackend } from "./backends/dgram.ts";
import { FaultyBackend } from "./backends/faulty.ts";
import { pollIn } from "./backends/libc.ts";
import { seqFrame, seqOf } from "./backends/frames.fixture.ts";
import { parsePcap } from "./pcap.ts";

const open: Backend[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const b of open.splice(0)) b.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("the wire's netdev spec", () => {
  test("dgram with faults and pcap: a wrapped stack that talks to a plain dgram peer", () => {
    const peer = new DgramBackend({ localPort: 0, remotePort: 0 });
    open.push(peer);
    const dir = mkdtempSync(join(tmpdir(), "newts-netdev-"));
    dirs.push(dir);
    const pcap = join(dir, "x.pcap");
    // The machine opens the socket; the driver's side wraps the faults and the recorder around it (and closes it).
    const { spec } = openWire(`dgram,local=0,remote=${peer.port},loss=0.5,seed=3`, { pcap, mac: "52:54:00:00:00:01" });
    const b = attachWire(spec, null)!;
    open.push(b);
    expect(b.name).toMatch(/^pcap\(faulty\(dgram:\d+->127\.0\.0\.1:\d+\)\)$/);
    expect(Array.from(b.mac)).toEqual([0x52, 0x54, 0, 0, 0, 1]);
    const faulty = (b as unknown as { inner: FaultyBackend }).inner;
    peer.setRemote((faulty.inner as DgramBackend).port);
    for (let i = 0; i < 200; i++) expect(b.send(seqFrame(i))).toBe(true);
    const got: number[] = [];
    for (let i = 0; i < 50 && pollIn(peer.fd, 20); i++) peer.recv(64, (f) => got.push(seqOf(f)));
    expect(got.length).toBe(200 - faulty.faults().tx.lost);
    expect(got.length).toBeGreaterThan(60);
    expect(got.length).toBeLessThan(140);
    b.close();
    const p = parsePcap(readFileSync(pcap));
    if (!p.ok) throw new Error(p.error);
    expect(p.records.length).toBe(200); // the recorder sits above the lossy wire: it saw every send
  });

  test("spec errors are clear", () => {
    expect(parseNetdev("dgram,local=1,remote=2")).toEqual({ kind: "dgram", opts: new Map([["local", "1"], ["remote", "2"]]) });
    expect(() => openWire("slirp")).toThrow(/unknown kind "slirp"/);
    expect(() => openWire("dgram,local=1")).toThrow(/needs local=PORT \(0: any\) and remote=PORT/);
    expect(() => openWire("dgram,local=x,remote=2")).toThrow(/needs local=PORT \(0: any\) and remote=PORT/);
    expect(() => openWire("dgram,loud")).toThrow(/"loud" is not key=value/);
    expect(() => openWire("tap,colour=blue")).toThrow(/unknown option "colour"/);
    expect(() => openWire("dgram,local=0,remote=9,loss=2")).toThrow(/loss=2 is not a rate between 0 and 1/);
  });
});
