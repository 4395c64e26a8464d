// Tests for the TAP backend in a namespace: ARP from a real Linux ping, our reply resolves it; no leftovers.
import { afterEach, describe, expect, test } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { NetnsTap, cleanupNetns, ip, netnsExists, netnsUnavailable } from "./netns.ts";
import { TapBackend } from "./tap.ts";
import { arpFrame, arpOf } from "./frames.fixture.ts";
import { ArpOp } from "../../lib/net/arp.ts";
import { formatMac, parseIpv4Addr, parseMac } from "../../lib/net/addr.ts";
import { EBUSY, ErrnoError } from "../../lib/sys/errno.ts";
import { lacking } from "../../lib/sys/needs.ts";

// Names of our own, so a test never touches a `newts` namespace someone is using.
const NS = "newts-test";
const DEV = "newtst0";
const OUR_IP = parseIpv4Addr("10.0.2.15")!;
const PEER_IP = parseIpv4Addr("10.0.2.2")!;

const skip = lacking({ root: true, tun: true, tools: ["ip", "ping"] }, "tap backend");

const taps: TapBackend[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const t of taps.splice(0)) t.close();
  if (!skip) cleanupNetns(NS, DEV);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tunDevices(): string {
  return ip(["-o", "link", "show", "type", "tun"]);
}

describe.skipIf(skip !== null)("tap backend in a namespace", () => {
  test("a ping from the namespace ARPs for 10.0.2.15; our reply resolves it to our MAC", async () => {
    const tap = new NetnsTap({ ns: NS, name: DEV });
    taps.push(tap);
    expect(tap.name).toBe(`tap:${DEV}`);
    expect(tap.fd).toBeGreaterThan(0);
    expect(tap.exec(["ip", "-br", "addr", "show", "dev", DEV]).stdout).toMatch(/10\.0\.2\.2\/24/);
    const peerMac = parseMac(tap.peerMac)!;

    const ping = spawn("ip", ["netns", "exec", NS, "ping", "-c", "1", "-W", "1", "10.0.2.15"], { stdio: "ignore" });
    children.push(ping);
    const exited = new Promise<number | null>((r) => ping.on("exit", (code) => r(code)));

    let request = false;
    let echo = false;
    for (const t0 = performance.now(); performance.now() - t0 < 3000 && !echo; await sleep(5)) {
      tap.recv(16, (f) => {
        const a = arpOf(f);
        if (a && a.op === ArpOp.REQUEST && a.targetIp === OUR_IP && !request) {
          request = true;
          expect(a.senderIp).toBe(PEER_IP);
          expect(formatMac(a.senderMac)).toBe(tap.peerMac);
          const reply = { op: ArpOp.REPLY, senderMac: tap.mac, senderIp: OUR_IP, targetMac: a.senderMac, targetIp: a.senderIp };
          expect(tap.send(arpFrame(reply, peerMac))).toBe(true);
        }
        // The echo request the ARP reply let out: IPv4 to our MAC, protocol ICMP, to 10.0.2.15.
        const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
        if (f.length >= 34 && formatMac(f.subarray(0, 6)) === "52:54:00:12:34:56" && dv.getUint16(12) === 0x0800)
          echo = f[23] === 1 && dv.getUint32(30) === OUR_IP;
      });
    }
    expect(request).toBe(true);
    expect(echo).toBe(true);
    expect(await exited).toBe(1); // no stack behind our MAC yet: the echo goes unanswered

    const neigh = tap.exec(["ip", "neigh", "show", "10.0.2.15"]).stdout;
    expect(neigh).toMatch(new RegExp(`10\\.0\\.2\\.15 dev ${DEV} lladdr 52:54:00:12:34:56 `));
    const s = tap.stats();
    expect(s.txFrames).toBe(1);
    expect(s.txBytes).toBe(60);
    expect(s.rxFrames).toBeGreaterThanOrEqual(2);
    expect(s.rxErrors).toBe(0);

    tap.close();
    expect(netnsExists(NS)).toBe(false);
    expect(tunDevices()).not.toContain(DEV);
  });

  test("leftovers of a crashed run with the same names are cleaned up first", () => {
    ip(["netns", "add", NS]);
    ip(["tuntap", "add", "dev", DEV, "mode", "tap"]); // a persistent stray in our namespace
    const tap = new NetnsTap({ ns: NS, name: DEV, address: "10.9.0.2/30" });
    taps.push(tap);
    expect(tap.exec(["ip", "-br", "addr", "show", "dev", DEV]).stdout).toMatch(/10\.9\.0\.2\/30/);
    tap.close();
    tap.close();
    expect(netnsExists(NS)).toBe(false);
    expect(tunDevices()).not.toContain(DEV);
    cleanupNetns(NS, DEV); // and cleaning a clean machine is a no-op
  });

  test("clear errors: a device in use is EBUSY, a long name is refused, a failed setup leaves nothing", () => {
    const a = new TapBackend({ name: DEV });
    taps.push(a);
    let err: unknown;
    try {
      taps.push(new TapBackend({ name: DEV }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ErrnoError);
    expect((err as ErrnoError).errno).toBe(EBUSY);
    expect(String(err)).toMatch(/TUNSETIFF newtst0 \(the device exists and is in use\): EBUSY/);
    a.close();
    expect(() => new TapBackend({ name: "a-very-long-name0" })).toThrow(/longer than 15 bytes/);
    expect(() => taps.push(new NetnsTap({ ns: NS, name: DEV, address: "not-an-address" }))).toThrow(/ip -n newts-test addr add/);
    expect(netnsExists(NS)).toBe(false);
    expect(tunDevices()).not.toContain(DEV);
    expect(netnsUnavailable()).toBeNull();
  });
});
