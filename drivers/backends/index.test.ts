// Tests for openBackend: specs to stacks of backends (dgram, faulty, pcap), and spec errors.
import { afterEach, describe, expect, test } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openBackend, parseNetdev, type Backend } from "./index.ts";
import { DgramBackend } from "./dgram.ts";
import { FaultyBackend } from "./faulty.ts";
import { pollIn } from "./libc.ts";
import { seqFrame, seqOf } from "./frames.fixture.ts";
import { parsePcap } from "../pcap.ts";

const open: Backend[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const b of open.splice(0)) b.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("openBackend", () => {
  test("dgram with faults and pcap: a wrapped stack that talks to a plain dgram peer", () => {
    const peer = new DgramBackend({ localPort: 0, remotePort: 0 });
    open.push(peer);
    const dir = mkdtempSync(join(tmpdir(), "newts-netdev-"));
    dirs.push(dir);
    const pcap = join(dir, "x.pcap");
    const b = openBackend({ netdev: `dgram,local=0,remote=${peer.port},loss=0.5,seed=3`, pcap, mac: "52:54:00:00:00:01" });
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
    expect(() => openBackend({ netdev: "slirp" })).toThrow(/unknown kind "slirp"/);
    expect(() => openBackend({ netdev: "dgram,local=1" })).toThrow(/needs local=PORT and remote=PORT/);
    expect(() => openBackend({ netdev: "dgram,local=x,remote=2" })).toThrow(/local=x is not a number/);
    expect(() => openBackend({ netdev: "dgram,loud" })).toThrow(/"loud" is not key=value/);
    expect(() => openBackend({ netdev: "tap,colour=blue" })).toThrow(/unknown option "colour"/);
    expect(() => openBackend({ netdev: "dgram,local=0,remote=9,loss=2" })).toThrow(/loss rate 2/);
  });
});
