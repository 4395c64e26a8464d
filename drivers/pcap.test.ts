// Tests for the pcap writer and wrapper: parse the file back, and let tcpdump read it.
import { afterEach, describe, expect, test } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LINKTYPE_ETHERNET, parsePcap, PcapBackend, PcapWriter, PCAP_SNAPLEN } from "./pcap.ts";
import { loopbackPair } from "./backends/loopback.fixture.ts";
import { arpFrame, seqFrame, seqOf } from "./backends/frames.fixture.ts";
import { ArpOp } from "../lib/net/arp.ts";
import { parseIpv4Addr, parseMac } from "../lib/net/addr.ts";
import { lacking } from "../lib/sys/needs.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmpFile(name: string): string {
  const d = mkdtempSync(join(tmpdir(), "newts-pcap-"));
  dirs.push(d);
  return join(d, name);
}

const WHO_HAS = arpFrame({
  op: ArpOp.REQUEST,
  senderMac: parseMac("52:54:00:12:34:56")!,
  senderIp: parseIpv4Addr("10.0.2.15")!,
  targetMac: new Uint8Array(6),
  targetIp: parseIpv4Addr("10.0.2.2")!,
});

/** Sends 5 frames a -> b through a pcap-wrapped `a`, and 3 back; returns the file and what was sent. */
function record(): { path: string; sent: Uint8Array[]; t0: number; t1: number } {
  const path = tmpFile("a.pcap");
  const [a, b] = loopbackPair();
  const t0 = Date.now() * 1000;
  const pa = new PcapBackend(a, path);
  const sent: Uint8Array[] = [WHO_HAS];
  pa.send(WHO_HAS);
  for (let i = 1; i < 5; i++) sent.push(seqFrame(i, 60 + 100 * i)), pa.send(sent[i]!);
  for (let i = 5; i < 8; i++) sent.push(seqFrame(i, 1514, "52:54:00:12:34:56", "52:54:00:12:34:57")), b.send(sent[i]!);
  const got: number[] = [];
  expect(pa.recv(16, (f) => got.push(seqOf(f)))).toBe(3);
  expect(got).toEqual([5, 6, 7]);
  expect(pa.writer.records).toBe(8);
  pa.close();
  return { path, sent, t0, t1: Date.now() * 1000 + 1000 };
}

describe("pcap", () => {
  test("every frame in and out is recorded, in order, byte for byte", () => {
    const { path, sent, t0, t1 } = record();
    const p = parsePcap(readFileSync(path));
    if (!p.ok) throw new Error(p.error);
    expect(p.linktype).toBe(LINKTYPE_ETHERNET);
    expect(p.snaplen).toBe(PCAP_SNAPLEN);
    expect(p.records.map((r) => Array.from(r.data))).toEqual(sent.map((f) => Array.from(f)));
    expect(p.records.map((r) => r.origLen)).toEqual(sent.map((f) => f.length));
    let last = 0;
    for (const r of p.records) {
      expect(r.tsUs).toBeGreaterThanOrEqual(Math.max(last, t0 - 1000));
      expect(r.tsUs).toBeLessThanOrEqual(t1);
      last = r.tsUs;
    }
  });

  test("the global header is the classic little-endian microsecond format", () => {
    const { path } = record();
    const h = new DataView(readFileSync(path).buffer);
    expect([h.getUint32(0, true), h.getUint16(4, true), h.getUint16(6, true), h.getUint32(16, true), h.getUint32(20, true)]).toEqual([
      0xa1b2c3d4, 2, 4, 65535, 1,
    ]);
  });

  test("frames longer than the snaplen are cut, with orig_len kept; sends the wire refused are not recorded", () => {
    const path = tmpFile("b.pcap");
    const w = new PcapWriter(path);
    w.write(new Uint8Array(70_000).fill(7), 1_700_000_000_123_456);
    w.close();
    const p = parsePcap(readFileSync(path));
    if (!p.ok) throw new Error(p.error);
    expect(p.records[0]!.data.length).toBe(PCAP_SNAPLEN);
    expect(p.records[0]!.origLen).toBe(70_000);
    expect(p.records[0]!.tsUs).toBe(1_700_000_000_123_456);

    const [a] = loopbackPair({ capacity: 1 });
    const pa = new PcapBackend(a, tmpFile("c.pcap"));
    expect(pa.send(seqFrame(1))).toBe(true);
    expect(pa.send(seqFrame(2))).toBe(false);
    expect(pa.writer.records).toBe(1);
    pa.close();
  });

  test("bad files are errors, not exceptions", () => {
    expect(parsePcap(new Uint8Array(3))).toMatchObject({ ok: false });
    expect(parsePcap(new Uint8Array(24))).toMatchObject({ ok: false, error: expect.stringMatching(/magic/) });
    const { path } = record();
    const cut = readFileSync(path).subarray(0, 24 + 16 + 10);
    expect(parsePcap(cut)).toMatchObject({ ok: false, error: expect.stringMatching(/past the end/) });
  });

  const noTcpdump = lacking({ tools: ["tcpdump"] }, "pcap: tcpdump reads the file");
  test.skipIf(noTcpdump !== null)("tcpdump reads the file: 8 packets, the ARP request decoded", () => {
    const { path } = record();
    const r = spawnSync("tcpdump", ["-r", path, "-nn", "-e"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    // One line per packet; tcpdump follows unknown EtherTypes with indented hex dump lines.
    const lines = r.stdout.split("\n").filter((l) => /^\d/.test(l));
    expect(lines.length).toBe(8);
    expect(lines[0]).toMatch(/52:54:00:12:34:56 > ff:ff:ff:ff:ff:ff, ethertype ARP \(0x0806\), length 60: Request who-has 10\.0\.2\.2 tell 10\.0\.2\.15/);
    expect(lines[5]).toMatch(/52:54:00:12:34:57 > 52:54:00:12:34:56, ethertype Unknown \(0x88b5\), length 1514/);
    expect(r.stderr).toMatch(/link-type EN10MB/);
  });
});
