// Hostile input at newts's network stack, from a wire peer (test/support/peer.ts)
// that plays 10.0.2.2 on a dgram wire: malformed headers and checksums, bad TCP
// options, overlapping and never-completing fragments, out-of-window segments and
// RSTs on live connections, a SYN flood while a real client connects, a peer that
// announces MSS 1, and 20,000 fuzzed frames. After each burst the stack must still
// answer (ping from newts, a TCP exchange with the in-OS nc), no server may have
// been restarted, and the counter that names the drop must have moved.
//
// Counters the servers do not expose yet (asserted as closely as the existing ones
// allow; see the report of the test's author):
//  - udp has no SRV_CTL handler at all: its stats (badChecksum, noPort, ...) are unreachable;
//  - tcp lumps every unparsable segment (checksum, header, options) into badSegments and
//    counts no out-of-window drops, challenge ACKs, or SYN cookies (the listener's stats
//    are not in `srv tcp show`).
// pf checks the structure of every inbound packet (IHL, TCP data offset, TCP options)
// before ip and tcp see it, so those cases are counted as pf's `malformed`.
// The reassembly time-exceeded case waits out ip's 30 s reassembly timeout
// (lib/net/ip/frag.ts), overlapping the other cases of its describe.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { Machine } from "../kernel/boot.ts";
import type { ProcRow } from "../kernel/kernel.ts";
import { IpProtocol } from "../lib/net/ipv4.ts";
import { ArpOp } from "../lib/net/arp.ts";
import { EtherType } from "../lib/net/ethernet.ts";
import { parseQuoted } from "../lib/net/icmp.ts";
import { TcpState } from "../lib/net/tcp/index.ts";
import {
  arpFrame, echoRequestFrame, ethFrame, icmpBytes, ipv4Datagram, ipv4Frame, macFor, NEWTS_IP, NEWTS_MAC, PEER_IP,
  type PeerTcp, type RxFrame, sleep, TcpFlag, tcpFrame, transportChecksum, udpFrame, WirePeer,
} from "./support/peer.ts";
import { unitRandom } from "../lib/sys/prng.ts";
import { untilListening } from "./support/machine.ts";

// ---- helpers -------------------------------------------------------------------

interface IpShow {
  engine: {
    ip: Record<string, number>;
    arp: Record<string, number>;
    frag: Record<string, number>;
  };
  server: Record<string, number>;
}
interface TcpShow {
  sockets: number;
  connections: number;
  rxSegments: number;
  txSegments: number;
  badSegments: number;
  txDropped: number;
  accepted: number;
  resets: number;
}
interface PfShow {
  passed: number;
  blocked: number;
  malformed: number;
  frames: { inPassed: number; inBlocked: number; outPassed: number; outBlocked: number; nonIp: number; noRoute: number };
}

const ipShow = async (m: Machine) => (await m.ctl("srv", ["ip", "show"])) as IpShow;
const tcpShow = async (m: Machine) => (await m.ctl("srv", ["tcp", "show"])) as TcpShow;
const nicShow = async (m: Machine) => (await m.ctl("srv", ["nic", "show"])) as { device: Record<string, number>; driver: Record<string, number> };
async function pfShow(m: Machine): Promise<PfShow> {
  const s = String(await m.ctl("srv", ["pf", "show"]));
  const c = /passed (\d+), blocked (\d+), malformed (\d+)/.exec(s);
  const f = /frames: (\{.*\})/.exec(s);
  if (!c || !f) throw new Error(`pf show: unexpected output ${s}`);
  return { passed: Number(c[1]), blocked: Number(c[2]), malformed: Number(c[3]), frames: JSON.parse(f[1]!) };
}

/** The pattern nc sends: byte i is (i * 7 + (i >>> 10)) & 0xff (apps/nc.ts). */
function pattern(off: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x = off + i;
    b[i] = (x * 7 + (x >>> 10)) & 0xff;
  }
  return b;
}
function fnv(...parts: Uint8Array[]): number {
  let h = 0x811c9dc5;
  for (const b of parts) for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return h;
}
function bytesOf(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17 + (i >>> 8)) & 0xff;
  return b;
}
const text = (s: string) => new TextEncoder().encode(s);

const rng = unitRandom;

const isRstTo = (port: number) => (f: RxFrame) => f.tcp !== undefined && f.tcp.dstPort === port && (f.tcp.flags & TcpFlag.RST) !== 0;
const isEchoReply = (ident: number, seq: number) => (f: RxFrame) => f.icmp?.kind === "echoReply" && f.icmp.ident === ident && f.icmp.seq === seq;
const isPortUnreachableFrom = (sport: number) => (f: RxFrame) => {
  if (f.icmp?.kind !== "destUnreachable" || f.icmp.code !== 3) return false;
  const q = parseQuoted(f.icmp.quoted);
  return q.ok && q.value.protocol === IpProtocol.UDP && ((q.value.data[0]! << 8) | q.value.data[1]!) === sport;
};

let markerSeq = 1;
/**
 * Sends a good echo request and waits for its reply: every frame sent before it has
 * then gone through nic, pf and ip (one pipeline, in order). Throws if no reply.
 */
async function barrier(peer: WirePeer): Promise<void> {
  const seq = markerSeq++;
  const since = peer.mark();
  peer.sendFrame(echoRequestFrame(0xbeef, seq));
  const r = await peer.waitFor(isEchoReply(0xbeef, seq), 10_000, since);
  if (!r) throw new Error(`barrier: no echo reply to seq ${seq}`);
}

const SERVERS = ["rs", "syscall", "nic", "pf", "ip", "udp", "tcp"];

/** Restart counts of the system servers. */
async function restarts(m: Machine): Promise<Record<string, number>> {
  const rows: ProcRow[] = await m.ps();
  return Object.fromEntries(rows.filter((r) => SERVERS.includes(r.name)).map((r) => [r.name, r.restarts]));
}

/**
 * No system server was restarted since `before` (taken when the test began): none
 * crashed on the input, none was found hung. The message carries rs's reasons.
 */
async function noRestarts(m: Machine, before: Record<string, number>): Promise<void> {
  const now = await restarts(m);
  expect(Object.keys(now).sort()).toEqual([...SERVERS].sort());
  const why = () => m.logs.filter((l) => /restart|hung|exited|crash|error/i.test(l)).slice(-12).join("\n");
  for (const name of SERVERS) expect(now[name], `${name} was restarted:\n${why()}`).toBe(before[name]);
}

/**
 * newts pings 10.0.2.2 and gets its answer. Up to three tries, one echo each: the
 * machine is shared and a datagram on the host's loopback may be lost under load.
 */
async function pingWorks(m: Machine): Promise<void> {
  const tries: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    const e = await m.run("ping", ["-c", "1", "-W", "3000", "10.0.2.2"], 30_000);
    tries.push(e.result ?? e.error);
    if (e.status === 0 && (e.result as { received: number }).received === 1) {
      if (i > 0) console.log(`ping answered at try ${i + 1}: ${JSON.stringify(tries)}`);
      return;
    }
  }
  expect.fail(`newts's ping to 10.0.2.2 got no answer in 3 tries: ${JSON.stringify(tries)}`);
}

let nextPort = 7000;
/** A fresh TCP port for an in-OS listener. */
const port = () => nextPort++;

/** Starts `nc -l PORT` (sink) and connects the peer's client to it. */
async function ncSink(m: Machine, peer: WirePeer, opts: Parameters<WirePeer["connect"]>[1] = {}): Promise<{ app: string; c: PeerTcp; port: number }> {
  const p = port();
  const app = await m.spawn("nc", ["-l", String(p)]);
  const c = await peer.connect(p, opts, 20_000);
  return { app, c, port: p };
}

/** Writes `data` and waits until newts acknowledged every byte. */
async function writeAcked(c: PeerTcp, data: Uint8Array): Promise<void> {
  c.write(data);
  expect(await c.until(() => c.allAcked(), 20_000), "data not acknowledged").toBe(true);
}

/**
 * Waits until newts has sent nothing on connection `c` for `ms` (its window updates
 * after the app's reads are over), so that the next ACK it sends answers us.
 */
async function quiet(peer: WirePeer, c: PeerTcp, ms = 250, maxMs = 10_000): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxMs) {
    const k = peer.mark();
    await sleep(ms);
    if (!peer.since(k).some((f) => f.tcp?.srcPort === c.remotePort && f.tcp.dstPort === c.localPort)) return;
  }
}

/**
 * Ends a connection cleanly from the peer's side: our FIN (if not sent yet), newts's
 * FIN acknowledged, then the client is forgotten. Leaves no retransmissions behind
 * that would disturb later tests (some of them need a silent wire).
 */
async function closeClean(peer: WirePeer, c: PeerTcp): Promise<void> {
  c.shutdown();
  await c.until(() => c.state === TcpState.CLOSED || c.state === TcpState.TIME_WAIT, 15_000);
  peer.forget(c);
}

/** A whole TCP exchange with an in-OS nc: bytes in, the sink's count and hash out. */
async function tcpWorks(m: Machine, peer: WirePeer, size = 30_000, listening?: { app: string; port: number }): Promise<void> {
  const { app, c } = listening ? { app: listening.app, c: await peer.connect(listening.port, {}, 20_000) } : await ncSink(m, peer);
  const data = bytesOf(size, size);
  c.write(data);
  c.shutdown();
  const e = await m.waitApp(app, 30_000);
  expect(e.status, JSON.stringify(e)).toBe(0);
  expect(e.result).toMatchObject({ bytes: size, hash: fnv(data) });
  await closeClean(peer, c);
}

async function bootWithPeer(owns?: (a: number) => boolean): Promise<{ m: Machine; peer: WirePeer }> {
  const peer = await WirePeer.open();
  if (owns) peer.owns = owns;
  const debug = process.env.HOSTILE_DEBUG === "1";
  const m = await Machine.boot({ apps: [], net: `dgram,local=0,remote=${peer.port}`, onLog: debug ? (l) => console.log(l) : undefined });
  peer.attach(m.wire!.localPort!);
  return { m, peer };
}

// ---- malformed headers, fragments, and abuse of live connections --------------

describe("hostile headers, fragments and segments", () => {
  let m: Machine;
  let peer: WirePeer;
  /** The first fragment of a datagram whose rest never comes (checked by the last test). */
  const LOST_IDENT = 0x7777;
  let lostSentAt = 0;
  let lostMark = 0;

  beforeAll(async () => {
    ({ m, peer } = await bootWithPeer());
    await pingWorks(m); // newts knows 10.0.2.2's MAC from here on
    // An echo request of 8 + 96 bytes, of which only the first 48 bytes ever arrive.
    const whole = icmpBytes({ kind: "echoRequest", ident: 0x4242, seq: 1, data: bytesOf(96, 1) });
    lostMark = peer.mark();
    lostSentAt = performance.now();
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, whole.subarray(0, 48), { ident: LOST_IDENT, moreFrags: true, fragOffset: 0 }));
    await barrier(peer);
  }, 60_000);

  afterAll(async () => {
    await m?.shutdown();
    peer?.close();
  });

  let r0: Record<string, number> = {};
  beforeEach(async () => {
    r0 = await restarts(m);
  });

  test("bad IPv4 header checksums are dropped by ip, silently, and counted", async () => {
    const before = await ipShow(m);
    const since = peer.mark();
    peer.sendFrame(echoRequestFrame(0x1001, 1, undefined, { badIpChecksum: true }));
    peer.sendFrame(tcpFrame({ srcPort: 41001, dstPort: 9, flags: TcpFlag.SYN }, { badIpChecksum: true }));
    peer.sendFrame(udpFrame({ srcPort: 41002, dstPort: 9, payload: text("bad ip sum") }, { badIpChecksum: true }));
    await barrier(peer);
    const after = await ipShow(m);
    expect(after.engine.ip.badChecksum - before.engine.ip.badChecksum).toBe(3);
    const answers = peer.since(since).filter((f) => isEchoReply(0x1001, 1)(f) || isRstTo(41001)(f) || isPortUnreachableFrom(41002)(f));
    expect(answers).toEqual([]);
    await pingWorks(m);
    await noRestarts(m, r0);
  });

  test("a bad TCP checksum gets no RST, a good segment does; tcp counts it", async () => {
    const before = await tcpShow(m);
    const since = peer.mark();
    peer.sendFrame(tcpFrame({ srcPort: 41011, dstPort: 9, flags: TcpFlag.SYN }, { badChecksum: true }));
    peer.sendFrame(tcpFrame({ srcPort: 41012, dstPort: 9, flags: TcpFlag.SYN }));
    expect(await peer.waitFor(isRstTo(41012), 10_000, since), "RST for the good SYN").toBeDefined();
    await barrier(peer);
    expect(peer.since(since).filter(isRstTo(41011))).toEqual([]);
    const after = await tcpShow(m);
    expect(after.badSegments - before.badSegments).toBe(1);
    await tcpWorks(m, peer);
    await noRestarts(m, r0);
  });

  test("a bad UDP checksum is not delivered and draws no port unreachable", async () => {
    // A closed port: the good datagram draws ICMP port unreachable, the bad one nothing.
    const before = await ipShow(m);
    const since = peer.mark();
    peer.sendFrame(udpFrame({ srcPort: 41021, dstPort: 9, payload: text("bad") }, { badChecksum: true }));
    peer.sendFrame(udpFrame({ srcPort: 41022, dstPort: 9, payload: text("good") }));
    expect(await peer.waitFor(isPortUnreachableFrom(41022), 10_000, since), "port unreachable for the good datagram").toBeDefined();
    await barrier(peer);
    expect(peer.since(since).filter(isPortUnreachableFrom(41021))).toEqual([]);
    const after = await ipShow(m);
    // Both reached udp (ip delivered them); only the good one came back as an error.
    // udp's own badChecksum counter is not exposed (servers/udp.ts has no SRV_CTL).
    expect(after.engine.ip.delivered - before.engine.ip.delivered).toBe(2);
    expect(after.engine.ip.icmpErrorsSent - before.engine.ip.icmpErrorsSent).toBe(1);

    // An open port (nc -u -l echoes the first datagram it gets): the bad one must not be it.
    const p = port();
    const app = await m.spawn("nc", ["-u", "-l", String(p)]);
    let echoed: RxFrame | undefined;
    for (let i = 0; i < 200 && !echoed; i++) {
      const sport = 42000 + i;
      const s = peer.mark();
      peer.sendFrame(udpFrame({ srcPort: sport, dstPort: p, payload: text("BAD!") }, { badChecksum: true }));
      peer.sendFrame(udpFrame({ srcPort: sport, dstPort: p, payload: text("GOOD") }));
      const r = await peer.waitFor((f) => (f.udp?.srcPort === p && f.udp.dstPort === sport) || isPortUnreachableFrom(sport)(f), 5000, s);
      if (r?.udp) echoed = r;
      else await sleep(50); // not bound yet
    }
    expect(echoed, "nc -u -l never echoed").toBeDefined();
    expect(new TextDecoder().decode(echoed!.udp!.payload)).toBe("GOOD");
    const e = await m.waitApp(app, 10_000);
    expect(e.status).toBe(0);
    expect((e.result as { bytes: number }).bytes).toBe(4);
    await pingWorks(m);
    await noRestarts(m, r0);
  });

  test("IPv4 header length < 5 is dropped as malformed before ip (options, IHL > 5, still work)", async () => {
    const beforePf = await pfShow(m);
    const beforeIp = await ipShow(m);
    const since = peer.mark();
    for (let ihl = 0; ihl < 5; ihl++) {
      const dg = ipv4Datagram(IpProtocol.ICMP, icmpBytes({ kind: "echoRequest", ident: 0x1005, seq: ihl, data: new Uint8Array(16) }));
      dg[0] = 0x40 | ihl;
      peer.sendFrame(ethFrame(EtherType.IPV4, dg));
    }
    // A header that is longer than 20 bytes is fine: NOP options (IHL 6 and 15) are answered.
    for (const ihl of [6, 15]) {
      peer.sendFrame(echoRequestFrame(0x1006, ihl, new Uint8Array(16), { ipOptions: new Uint8Array(4 * (ihl - 5)).fill(1) }));
      expect(await peer.waitFor(isEchoReply(0x1006, ihl), 10_000, since), `echo with IHL ${ihl}`).toBeDefined();
    }
    await barrier(peer);
    const afterPf = await pfShow(m);
    const afterIp = await ipShow(m);
    expect(afterPf.malformed - beforePf.malformed).toBe(5);
    expect(afterPf.frames.inBlocked - beforePf.frames.inBlocked).toBe(5);
    // ip never saw them: its own header checks did not move.
    expect(afterIp.engine.ip.badHeader).toBe(beforeIp.engine.ip.badHeader);
    expect(afterIp.engine.ip.truncated).toBe(beforeIp.engine.ip.truncated);
    expect(peer.since(since).filter((f) => f.icmp?.kind === "echoReply" && f.icmp.ident === 0x1005)).toEqual([]);
    await pingWorks(m);
    await noRestarts(m, r0);
  });

  test("a TCP data offset beyond the segment (or below 5) is dropped as malformed", async () => {
    const beforePf = await pfShow(m);
    const beforeTcp = await tcpShow(m);
    const since = peer.mark();
    // 20-byte segments claiming 60, 24 and 16 bytes of header (checksums right).
    peer.sendFrame(tcpFrame({ srcPort: 41031, dstPort: 9, flags: TcpFlag.SYN }, { dataOffset: 15 }));
    peer.sendFrame(tcpFrame({ srcPort: 41032, dstPort: 9, flags: TcpFlag.SYN }, { dataOffset: 6 }));
    peer.sendFrame(tcpFrame({ srcPort: 41033, dstPort: 9, flags: TcpFlag.SYN }, { dataOffset: 4 }));
    // With 8 bytes of payload, offset 7 (28 bytes) is still past the end.
    peer.sendFrame(tcpFrame({ srcPort: 41034, dstPort: 9, flags: TcpFlag.SYN, payload: new Uint8Array(7) }, { dataOffset: 7 }));
    peer.sendFrame(tcpFrame({ srcPort: 41035, dstPort: 9, flags: TcpFlag.SYN }));
    expect(await peer.waitFor(isRstTo(41035), 10_000, since), "RST for the good SYN").toBeDefined();
    await barrier(peer);
    const afterPf = await pfShow(m);
    const afterTcp = await tcpShow(m);
    expect(afterPf.malformed - beforePf.malformed).toBe(4);
    expect(afterTcp.badSegments).toBe(beforeTcp.badSegments); // they never reached tcp
    for (const sp of [41031, 41032, 41033, 41034]) expect(peer.since(since).filter(isRstTo(sp))).toEqual([]);
    await tcpWorks(m, peer);
    await noRestarts(m, r0);
  });

  test("TCP options of length 0 and 1 are dropped, on a SYN and on a live connection", async () => {
    const beforePf = await pfShow(m);
    const since = peer.mark();
    const bad = [
      new Uint8Array([2, 0, 5, 0xb4]), // MSS, length 0
      new Uint8Array([2, 1, 5, 0xb4]), // MSS, length 1
      new Uint8Array([1, 1, 0x55, 0]), // unknown kind, length 0
      new Uint8Array([1, 1, 1, 0x55, 1, 0, 0, 0]), // unknown kind, length 1
    ];
    bad.forEach((o, i) => peer.sendFrame(tcpFrame({ srcPort: 41041 + i, dstPort: 9, flags: TcpFlag.SYN }, { rawOptions: o })));
    peer.sendFrame(tcpFrame({ srcPort: 41049, dstPort: 9, flags: TcpFlag.SYN }));
    expect(await peer.waitFor(isRstTo(41049), 10_000, since)).toBeDefined();
    await barrier(peer);
    for (let i = 0; i < bad.length; i++) expect(peer.since(since).filter(isRstTo(41041 + i))).toEqual([]);
    expect((await pfShow(m)).malformed - beforePf.malformed).toBe(bad.length);

    // On an established connection: in-window data with a bad option must not reach the app.
    const { app, c } = await ncSink(m, peer);
    const part1 = bytesOf(5000, 1);
    await writeAcked(c, part1);
    const mid = (await pfShow(m)).malformed;
    for (const o of bad) {
      peer.sendFrame(tcpFrame(
        { srcPort: c.localPort, dstPort: c.remotePort, seq: c.sndNxt, ack: c.rcvNxt, flags: TcpFlag.ACK | TcpFlag.PSH, window: 65535, payload: text("EVIL") },
        { rawOptions: o },
      ));
    }
    await barrier(peer);
    expect((await pfShow(m)).malformed - mid).toBe(bad.length);
    const part2 = bytesOf(5000, 2);
    c.write(part2);
    c.shutdown();
    const e = await m.waitApp(app, 30_000);
    expect(e.status, JSON.stringify(e)).toBe(0);
    expect(e.result).toMatchObject({ bytes: 10_000, hash: fnv(part1, part2) });
    await closeClean(peer, c);
    await noRestarts(m, r0);
  });

  test("overlapping fragments with conflicting bytes drop the datagram; clean fragments reassemble", async () => {
    const before = await ipShow(m);
    const since = peer.mark();
    // Echo request, 8 + 48 bytes: [0, 32) and [24, 56), the overlap [24, 32) disagreeing.
    const a = icmpBytes({ kind: "echoRequest", ident: 0x1007, seq: 1, data: bytesOf(48, 7) });
    const b = a.slice();
    for (let i = 24; i < 32; i++) b[i]! ^= 0xff;
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, a.subarray(0, 32), { ident: 0x3001, moreFrags: true, fragOffset: 0 }));
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, b.subarray(24, 56), { ident: 0x3001, moreFrags: false, fragOffset: 24 }));
    // A late fragment of the dropped datagram is discarded too (RFC 5722).
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, a.subarray(32, 56), { ident: 0x3001, moreFrags: false, fragOffset: 32 }));
    // The same bytes again, fragmented cleanly (with one identical duplicate): answered.
    const c = icmpBytes({ kind: "echoRequest", ident: 0x1007, seq: 2, data: bytesOf(48, 7) });
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, c.subarray(0, 32), { ident: 0x3002, moreFrags: true, fragOffset: 0 }));
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, c.subarray(0, 32), { ident: 0x3002, moreFrags: true, fragOffset: 0 }));
    peer.sendFrame(ipv4Frame(IpProtocol.ICMP, c.subarray(32, 56), { ident: 0x3002, moreFrags: false, fragOffset: 32 }));
    const reply = await peer.waitFor(isEchoReply(0x1007, 2), 10_000, since);
    expect(reply, "echo reply to the clean fragments").toBeDefined();
    expect(reply!.icmp!.kind === "echoReply" && Array.from(reply!.icmp!.data)).toEqual(Array.from(bytesOf(48, 7)));
    await barrier(peer);
    expect(peer.since(since).filter(isEchoReply(0x1007, 1))).toEqual([]);
    const after = await ipShow(m);
    const d = (k: string) => after.engine.frag[k]! - before.engine.frag[k]!;
    expect(d("overlap")).toBe(1);
    expect(d("afterDrop")).toBe(1);
    expect(d("duplicate")).toBe(1);
    expect(d("reassembled")).toBe(1);
    await pingWorks(m);
    await noRestarts(m, r0);
  });

  test("out-of-window segments on an established connection: ACKed and dropped, data still flows", async () => {
    const beforeTcp = await tcpShow(m);
    const { app, c } = await ncSink(m, peer);
    const part1 = bytesOf(20_000, 3);
    await writeAcked(c, part1);
    await quiet(peer, c);
    const since = peer.mark();
    const seg = (seq: number, ack: number, payload: Uint8Array, flags = TcpFlag.ACK | TcpFlag.PSH) =>
      tcpFrame({ srcPort: c.localPort, dstPort: c.remotePort, seq, ack, flags, window: 65535, payload });
    const nxt = c.sndNxt;
    peer.sendFrame(seg((nxt + 0x40000000) >>> 0, c.rcvNxt, text("FAR AHEAD"))); // beyond the window
    peer.sendFrame(seg((nxt - 0x100000) >>> 0, c.rcvNxt, text("LONG AGO"))); // far behind RCV.NXT
    peer.sendFrame(seg((nxt + 0x80000000) >>> 0, c.rcvNxt, text("HALF WAY ROUND")));
    peer.sendFrame(seg(nxt, (c.rcvNxt + 0x10000000) >>> 0, new Uint8Array(0), TcpFlag.ACK)); // acks data never sent
    peer.sendFrame(seg((nxt + 0x40000000) >>> 0, c.rcvNxt, new Uint8Array(0), TcpFlag.ACK | TcpFlag.FIN)); // a FIN out of window
    // newts answers unacceptable segments with an ACK of what it really has.
    const ack = await peer.waitFor((f) => f.tcp?.srcPort === c.remotePort && f.tcp.dstPort === c.localPort && f.tcp.ack === nxt && f.tcp.payload.length === 0, 10_000, since);
    expect(ack, "ACK for the out-of-window segments").toBeDefined();
    await barrier(peer);
    expect(c.isOpen).toBe(true);
    const part2 = bytesOf(20_000, 4);
    c.write(part2);
    c.shutdown();
    const e = await m.waitApp(app, 30_000);
    expect(e.status, JSON.stringify(e)).toBe(0);
    expect(e.result).toMatchObject({ bytes: 40_000, hash: fnv(part1, part2) });
    const afterTcp = await tcpShow(m);
    // Well-formed, so not "bad"; no counter for out-of-window drops exists yet: the
    // closest is that tcp took all five in (rxSegments) and reset nothing.
    expect(afterTcp.badSegments).toBe(beforeTcp.badSegments);
    expect(afterTcp.rxSegments - beforeTcp.rxSegments).toBeGreaterThanOrEqual(5);
    expect(afterTcp.resets).toBe(beforeTcp.resets);
    await closeClean(peer, c);
    await noRestarts(m, r0);
  });

  test("an in-window RST not at RCV.NXT (or a SYN) draws a challenge ACK and the connection lives", async () => {
    const beforeTcp = await tcpShow(m);
    const { app, c } = await ncSink(m, peer);
    const part1 = bytesOf(10_000, 5);
    await writeAcked(c, part1);
    await quiet(peer, c);
    const nxt = c.sndNxt;
    for (const off of [1, 1000, 30_000]) {
      const since = peer.mark();
      peer.sendFrame(tcpFrame({ srcPort: c.localPort, dstPort: c.remotePort, seq: (nxt + off) >>> 0, ack: 0, flags: TcpFlag.RST, window: 0 }));
      const ch = await peer.waitFor(
        (f) => f.tcp?.srcPort === c.remotePort && f.tcp.dstPort === c.localPort && (f.tcp.flags & TcpFlag.ACK) !== 0 && (f.tcp.flags & TcpFlag.RST) === 0 && f.tcp.ack === nxt,
        10_000, since,
      );
      expect(ch, `challenge ACK for a RST at RCV.NXT+${off}`).toBeDefined();
    }
    // A SYN on the established connection (RFC 5961 §4): challenge ACK too, nothing reset.
    {
      const since = peer.mark();
      peer.sendFrame(tcpFrame({ srcPort: c.localPort, dstPort: c.remotePort, seq: (nxt + 500) >>> 0, flags: TcpFlag.SYN, window: 65535, options: { mss: 1460 } }));
      const ch = await peer.waitFor(
        (f) => f.tcp?.srcPort === c.remotePort && f.tcp.dstPort === c.localPort && (f.tcp.flags & (TcpFlag.ACK | TcpFlag.RST | TcpFlag.SYN)) === TcpFlag.ACK && f.tcp.ack === nxt,
        10_000, since,
      );
      expect(ch, "challenge ACK for a SYN on an established connection").toBeDefined();
    }
    // A RST outside the window is ignored without a word.
    await quiet(peer, c);
    const oow = peer.mark();
    peer.sendFrame(tcpFrame({ srcPort: c.localPort, dstPort: c.remotePort, seq: (nxt + 0x40000000) >>> 0, flags: TcpFlag.RST, window: 0 }));
    await barrier(peer);
    await sleep(100);
    expect(peer.since(oow).filter((f) => f.tcp?.srcPort === c.remotePort && f.tcp.dstPort === c.localPort)).toEqual([]);
    expect(c.isOpen).toBe(true);
    const part2 = bytesOf(10_000, 6);
    c.write(part2);
    c.shutdown();
    const e = await m.waitApp(app, 30_000);
    expect(e.status, JSON.stringify(e)).toBe(0);
    expect(e.result).toMatchObject({ bytes: 20_000, hash: fnv(part1, part2) });
    const afterTcp = await tcpShow(m);
    expect(afterTcp.resets).toBe(beforeTcp.resets); // no challenge-ACK counter exists yet
    expect(afterTcp.badSegments).toBe(beforeTcp.badSegments);
    await closeClean(peer, c);
    await noRestarts(m, r0);
  });

  test("a RST exactly at RCV.NXT resets the connection: the in-OS nc sees ECONNRESET", async () => {
    const beforeTcp = await tcpShow(m);
    const { app, c } = await ncSink(m, peer);
    await writeAcked(c, bytesOf(3000, 8));
    peer.forget(c); // the peer's side is gone without a word, as after a crash
    peer.sendFrame(tcpFrame({ srcPort: c.localPort, dstPort: c.remotePort, seq: c.sndNxt, flags: TcpFlag.RST, window: 0 }));
    const e = await m.waitApp(app, 30_000);
    expect(e.status).not.toBe(0);
    expect(String(e.error)).toMatch(/ECONNRESET|reset/i);
    const afterTcp = await tcpShow(m);
    expect(afterTcp.resets - beforeTcp.resets).toBe(1);
    await pingWorks(m);
    await tcpWorks(m, peer);
    await noRestarts(m, r0);
  });

  test("a peer announcing MSS 1: the transfer completes in segments of the floor size", async () => {
    const p = port();
    const size = 60_000;
    const beforeTcp = await tcpShow(m);
    const app = await m.spawn("nc", ["-l", String(p), "--size", String(size)]);
    const since = peer.mark();
    const c = await peer.connect(p, {
      mangle: (s) => ((s.flags & TcpFlag.SYN) !== 0 ? { ...s, options: { ...s.options, mss: 1 } } : s),
    }, 20_000);
    expect(await c.until(() => c.eof, 40_000), `stalled at ${c.received} of ${size} bytes`).toBe(true);
    const got = c.data();
    expect(got.length).toBe(size);
    expect(fnv(got)).toBe(fnv(pattern(0, size)));
    const e = await m.waitApp(app, 30_000);
    expect(e.status, JSON.stringify(e)).toBe(0);
    // newts never sends 1-byte segments: it floors the send MSS (TcpConfig.minMss, 64).
    const sizes = peer.since(since).filter((f) => f.tcp?.srcPort === p && f.tcp.payload.length > 0).map((f) => f.tcp!.payload.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
    expect(Math.min(...sizes)).toBeGreaterThan(1);
    expect((await tcpShow(m)).txSegments - beforeTcp.txSegments).toBeGreaterThanOrEqual(Math.ceil(size / 64));
    await closeClean(peer, c);
    await pingWorks(m);
    await noRestarts(m, r0);
  }, 60_000);

  test("an ARP request that goes unanswered is asked again (the next one is answered)", async () => {
    // Not hostile, only unlucky: the peer ignores the first request for 10.0.2.77.
    const target = (PEER_IP & 0xffffff00) | 77;
    const owns = peer.owns;
    let asked = 0;
    peer.owns = (a) => owns(a) || (a === target && ++asked > 1);
    try {
      const since = peer.mark();
      const before = await ipShow(m);
      const e = await m.run("ping", ["-c", "1", "-W", "5000", "10.0.2.77"], 30_000);
      const after = await ipShow(m);
      const onWire = peer.since(since).filter((f) => f.arp?.op === ArpOp.REQUEST && f.arp.targetIp === target).length;
      expect(
        e.status,
        `ping 10.0.2.77: ${JSON.stringify(e.result)}; ARP requests for it: ip counted ${after.engine.arp.requestsSent - before.engine.arp.requestsSent}, the wire carried ${onWire}`,
      ).toBe(0);
    } finally {
      peer.owns = owns;
    }
    await noRestarts(m, r0);
  });

  test("fragments that never complete: not delivered, ICMP time exceeded (reassembly) after the timeout", async () => {
    // The first fragment went out in beforeAll; ip's reassembly timeout is 30 s
    // (lib/net/ip/frag.ts DEFAULT_REASM_OPTIONS.timeoutMs).
    const left = Math.max(0, 30_000 - (performance.now() - lostSentAt));
    const te = await peer.waitFor((f) => {
      if (f.icmp?.kind !== "timeExceeded" || f.icmp.code !== 1) return false;
      const q = f.icmp.quoted;
      return q.length >= 20 && ((q[4]! << 8) | q[5]!) === LOST_IDENT;
    }, left + 10_000, lostMark);
    if (!te) {
      const s = await ipShow(m);
      const sent = peer.since(lostMark).filter((f) => f.icmp?.kind === "timeExceeded").length;
      // Diagnosis: does one more inbound frame push it out (a frame queued but never published)?
      const k = peer.mark();
      await barrier(peer);
      const late = await peer.waitFor((f) => f.icmp?.kind === "timeExceeded", 2000, k);
      expect.fail(
        (late ? "ICMP time exceeded left only when another frame came in (queued by ip's tick, published by the next input's flush); " : "") +
        `no ICMP time exceeded (reassembly) reached the wire ${Math.round((performance.now() - lostSentAt) / 1000)} s after the first fragment; ` +
          `ip says frag.timeout=${s.engine.frag.timeout}, icmpErrorsSent=${s.engine.ip.icmpErrorsSent}, icmpRateLimited=${s.engine.ip.icmpRateLimited}; ` +
          `time-exceeded frames seen: ${sent}; ip restarts: ${(await restarts(m)).ip}`,
      );
    }
    expect(te!.ip!.dst).toBe(PEER_IP);
    // The quote is the first fragment's header and leading data.
    const q = parseQuoted((te!.icmp as { quoted: Uint8Array }).quoted);
    expect(q.ok && q.value.protocol === IpProtocol.ICMP && q.value.src === PEER_IP && q.value.dst === NEWTS_IP).toBe(true);
    expect(peer.since(lostMark).filter((f) => f.icmp?.kind === "echoReply" && f.icmp.ident === 0x4242)).toEqual([]);
    const s = await ipShow(m);
    expect(s.engine.frag.timeout).toBe(1); // the overlapped datagram (poisoned) expires without a count
    await pingWorks(m);
    await noRestarts(m, r0);
  }, 60_000);
});

// ---- floods --------------------------------------------------------------------

describe("floods", () => {
  let m: Machine;
  let peer: WirePeer;

  beforeAll(async () => {
    // The peer answers ARP for the whole subnet, so SYN-ACKs to spoofed sources reach it.
    ({ m, peer } = await bootWithPeer((a) => a >>> 8 === PEER_IP >>> 8 && a !== NEWTS_IP && (a & 0xff) !== 0 && (a & 0xff) !== 255));
    await pingWorks(m);
  }, 60_000);

  afterAll(async () => {
    await m?.shutdown();
    peer?.close();
  });

  let r0: Record<string, number> = {};
  beforeEach(async () => {
    r0 = await restarts(m);
  });

  test("10,000 SYNs from random sources while a real client connects and exchanges data", async () => {
    const r = rng(0x5eed);
    const p = port();
    const app = await m.spawn("nc", ["-l", String(p)]);
    await untilListening(m, p);
    const beforeTcp = await tcpShow(m);
    const beforeNic = await nicShow(m);
    const beforeIp = await ipShow(m);
    const beforePf = await pfShow(m);
    const since = peer.mark();
    const flood = (n: number) => {
      const out: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        let host = 3 + Math.floor(r() * 252);
        if (host === 15) host = 16;
        const src = (PEER_IP & 0xffffff00) | host;
        const ts = r() < 0.5 ? { timestamp: { val: Math.floor(r() * 2 ** 32), ecr: 0 }, sackPermitted: true, wscale: 7 } : {};
        out.push(tcpFrame(
          { srcPort: 1024 + Math.floor(r() * 64000), dstPort: p, seq: Math.floor(r() * 2 ** 32), flags: TcpFlag.SYN, options: { mss: 1460, ...ts } },
          { src, srcMac: macFor(src) },
        ));
      }
      return out;
    };
    const first = await peer.sendBurst(flood(5000));
    // The real client connects in the middle of the flood.
    const client = peer.connect(p, {}, 30_000);
    const second = await peer.sendBurst(flood(5000));
    const c = await client;
    const data = bytesOf(100_000, 9);
    c.write(data);
    c.shutdown();
    const e = await m.waitApp(app, 30_000);
    expect(e.status, JSON.stringify(e)).toBe(0);
    expect(e.result).toMatchObject({ bytes: data.length, hash: fnv(data) });
    await barrier(peer);
    const afterTcp = await tcpShow(m);
    const afterNic = await nicShow(m);
    const afterIp = await ipShow(m);
    const afterPf = await pfShow(m);
    const synAcks = peer.since(since).filter((f) => f.tcp && f.ip!.dst !== PEER_IP && (f.tcp.flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK));
    const distinct = new Set(synAcks.map((f) => `${f.ip!.dst}:${f.tcp!.dstPort}`)).size;
    console.log(
      `syn flood: ${first + second} SYNs sent, nic rx +${afterNic.device.rxFrames! - beforeNic.device.rxFrames!}, ` +
        `tcp rx +${afterTcp.rxSegments - beforeTcp.rxSegments}, tx +${afterTcp.txSegments - beforeTcp.txSegments}, ` +
        `${synAcks.length} SYN-ACKs to ${distinct} spoofed 4-tuples; accepted +${afterTcp.accepted - beforeTcp.accepted}; drops: ` +
        `nic ${JSON.stringify(Object.fromEntries(Object.entries(afterNic.driver).map(([k, v]) => [k, v - beforeNic.driver[k]!])))}, ` +
        `pf in +${afterPf.frames.inPassed - beforePf.frames.inPassed} noRoute +${afterPf.frames.noRoute - beforePf.frames.noRoute}, ` +
        `ip delivered +${afterIp.engine.ip.delivered! - beforeIp.engine.ip.delivered!} server ${JSON.stringify(Object.fromEntries(Object.entries(afterIp.server).map(([k, v]) => [k, v - beforeIp.server[k]!])))}, ` +
        `arp pendingFull +${afterIp.engine.arp.pendingFull! - beforeIp.engine.arp.pendingFull!} queueDropped +${afterIp.engine.arp.queueDropped! - beforeIp.engine.arp.queueDropped!}, tcp txDropped +${afterTcp.txDropped - beforeTcp.txDropped}`,
    );
    // nc's backlog (16) bounds the SYN queue: far more distinct SYN-ACKs means SYN cookies answered the rest.
    expect(distinct).toBeGreaterThan(16);
    // The only connection ever accepted is the real one (no spoofed handshake completed).
    expect(afterTcp.accepted - beforeTcp.accepted).toBe(1);
    expect(afterTcp.badSegments).toBe(beforeTcp.badSegments);
    await closeClean(peer, c);
    await pingWorks(m);
    await noRestarts(m, r0);
  }, 60_000);

  test("20,000 random and mutated frames, then ping and TCP still work", async () => {
    const seed = 0xf022;
    const r = rng(seed);
    const int = (n: number) => Math.floor(r() * n);
    const pick = <T>(xs: T[]): T => xs[int(xs.length)]!;
    const randBytes = (n: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    };
    const srcs = [PEER_IP, (PEER_IP & 0xffffff00) | (3 + int(200)), int(2 ** 32) >>> 0, NEWTS_IP, 0xffffffff, 0x7f000001, 0];
    const dsts = [NEWTS_IP, NEWTS_IP, NEWTS_IP, 0x0a0002ff, 0xffffffff, int(2 ** 32) >>> 0, 0xe0000001];
    const ports = [9, 7, 53, 80, 7000, 1, 65535];
    /** A well-formed frame of some kind to start from. */
    const template = (): Uint8Array => {
      const o = { src: pick(srcs), dst: pick(dsts), ident: int(65536) };
      switch (int(9)) {
        case 0:
          return echoRequestFrame(int(65536), int(65536), randBytes(int(64)), o);
        case 1: {
          const options = r() < 0.5 ? { mss: int(65536), wscale: int(20), sackPermitted: r() < 0.5, timestamp: { val: int(2 ** 32), ecr: int(2 ** 32) } } : {};
          const payload = randBytes(int(40));
          const flags = r() < 0.5 ? pick([TcpFlag.ACK, TcpFlag.ACK | TcpFlag.PSH, TcpFlag.RST, TcpFlag.SYN, TcpFlag.FIN | TcpFlag.ACK, TcpFlag.RST | TcpFlag.ACK]) : int(256);
          const t = r();
          if (t < 0.3) {
            // At the live connection, with sequence numbers near the real ones.
            const seq = (live.sndNxt + int(140_000) - 70_000) >>> 0;
            const ack = (live.rcvNxt + int(4000) - 2000) >>> 0;
            return tcpFrame({ srcPort: live.localPort, dstPort: live.remotePort, seq, ack, flags, window: int(65536), payload, options });
          }
          if (t < 0.5) {
            // At the listener, from 10.0.2.2 (its SYN-ACKs come back to the peer).
            return tcpFrame({ srcPort: 1 + int(65535), dstPort: listener.port, seq: int(2 ** 32), ack: int(2 ** 32), flags, window: int(65536), payload, options });
          }
          return tcpFrame({ srcPort: 1 + int(65535), dstPort: pick(ports), seq: int(2 ** 32), ack: int(2 ** 32), flags, window: int(65536), payload, options }, o);
        }
        case 2:
          return udpFrame({ srcPort: 1 + int(65535), dstPort: pick(ports), payload: randBytes(int(64)) }, o);
        case 3: {
          const sip = r() < 0.5 ? PEER_IP : int(2 ** 32) >>> 0;
          const smac = r() < 0.8 ? macFor(sip) : randBytes(6);
          return arpFrame({ op: pick([ArpOp.REQUEST, ArpOp.REPLY, int(65536)]), senderMac: smac, senderIp: sip, targetMac: randBytes(6), targetIp: pick([NEWTS_IP, PEER_IP, int(2 ** 32) >>> 0]) }, smac, r() < 0.5 ? NEWTS_MAC : new Uint8Array(6).fill(0xff));
        }
        case 4: // a fragment of something
          return ipv4Frame(pick([IpProtocol.ICMP, IpProtocol.TCP, IpProtocol.UDP, int(256)]), randBytes(8 * (1 + int(20))), { ...o, moreFrags: r() < 0.7, fragOffset: 8 * int(8192) });
        case 5: // ICMP errors quoting anything
        {
          const quoted = ipv4Datagram(pick([6, 17, 1]), randBytes(8 + int(30)), { src: NEWTS_IP, dst: pick(srcs) }).subarray(0, 20 + int(40));
          const code = int(16);
          const msg = r() < 0.5 ? icmpBytes({ kind: "destUnreachable", code, mtu: int(65536), quoted }) : icmpBytes({ kind: "timeExceeded", code, quoted });
          return ipv4Frame(IpProtocol.ICMP, msg, o);
        }
        case 6: // other IP protocols, and oddities in the header
          return ipv4Frame(int(256), randBytes(int(100)), { ...o, ttl: int(256), tos: int(256), dontFrag: r() < 0.5 });
        case 7: // pure garbage behind a plausible Ethernet header
          return ethFrame(pick([EtherType.IPV4, EtherType.ARP, 0x86dd, int(65536)]), randBytes(int(120)), randBytes(6), r() < 0.7 ? NEWTS_MAC : randBytes(6));
        default: // big ones, up to and beyond a full frame
          return r() < 0.9 ? udpFrame({ srcPort: 1 + int(65535), dstPort: pick(ports), payload: randBytes(int(1472)) }, o) : ethFrame(EtherType.IPV4, randBytes(1500 + int(1600)));
      }
    };
    /** Fixes the IPv4 header checksum and, sometimes, the transport checksum after a mutation, so it gets past them. */
    const fixSums = (f: Uint8Array) => {
      if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return;
      const hl = (f[14]! & 0x0f) * 4;
      if (hl < 20 || 14 + hl > f.length) return;
      if (r() < 0.5) {
        const tl = (f[16]! << 8) | f[17]!;
        const proto = f[23]!;
        const seg = f.subarray(14 + hl, Math.min(f.length, 14 + Math.max(hl, tl)));
        const off = proto === 6 ? 16 : proto === 17 ? 6 : -1;
        if (off >= 0 && seg.length >= off + 2) {
          seg[off] = 0;
          seg[off + 1] = 0;
          const dv = new DataView(f.buffer, f.byteOffset);
          const c = transportChecksum(seg, dv.getUint32(26), dv.getUint32(30), proto);
          seg[off] = c >> 8;
          seg[off + 1] = c & 0xff;
        }
      }
      f[24] = 0;
      f[25] = 0;
      let s = 0;
      for (let i = 0; i < hl; i += 2) s += (f[14 + i]! << 8) | f[15 + i]!;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      const c = ~s & 0xffff;
      f[24] = c >> 8;
      f[25] = c & 0xff;
    };
    let live!: PeerTcp;
    let listener!: { app: string; port: number };
    function* frames(n: number): Generator<Uint8Array> {
      for (let i = 0; i < n; i++) {
        let f = template();
        const how = int(6);
        if (how === 1 || how === 2) {
          for (let k = 1 + int(8); k > 0; k--) f[int(f.length)]! ^= 1 << int(8); // bit flips
        } else if (how === 3) {
          f = f.subarray(0, 14 + int(Math.max(1, f.length - 14))); // truncated
        } else if (how === 4) {
          const g = new Uint8Array(f.length + 1 + int(64));
          g.set(f);
          g.set(randBytes(g.length - f.length), f.length); // trailing garbage
          f = g;
        } else if (how === 5 && f.length > 34) {
          f[14 + int(20)] = int(256); // one IPv4 header byte, checksum fixed below
        }
        if (how !== 0 && r() < 0.6) fixSums(f);
        yield f.length >= 14 ? f : ethFrame(EtherType.IPV4, new Uint8Array(0));
      }
    }
    // A live connection and a waiting listener take part of the fuzz.
    const sink = await ncSink(m, peer);
    const liveApp = sink.app;
    live = sink.c;
    await writeAcked(live, bytesOf(5000, 11));
    const lport = port();
    listener = { app: await m.spawn("nc", ["-l", String(lport)]), port: lport };
    const before = { ip: await ipShow(m), pf: await pfShow(m), tcp: await tcpShow(m), nic: await nicShow(m) };
    const sent = await peer.sendBurst(frames(20_000));
    await sleep(200);
    await barrier(peer);
    const after = { ip: await ipShow(m), pf: await pfShow(m), tcp: await tcpShow(m), nic: await nicShow(m) };
    const dIp = (k: string) => after.ip.engine.ip[k]! - before.ip.engine.ip[k]!;
    const dFrag = (k: string) => after.ip.engine.frag[k]! - before.ip.engine.frag[k]!;
    console.log(
      `fuzz (seed ${seed}): ${sent} frames sent; nic rx +${after.nic.device.rxFrames! - before.nic.device.rxFrames!}, rxErrors +${after.nic.device.rxErrors! - before.nic.device.rxErrors!}, ` +
        `tooBig +${after.nic.driver.rxTooBig! - before.nic.driver.rxTooBig!}; pf malformed +${after.pf.malformed - before.pf.malformed}, nonIp +${after.pf.frames.nonIp - before.pf.frames.nonIp}; ` +
        `ip badChecksum +${dIp("badChecksum")} badHeader +${dIp("badHeader")} truncated +${dIp("truncated")} badSource +${dIp("badSource")} notForUs +${dIp("notForUs")} ` +
        `linkNotForUs +${dIp("linkNotForUs")} delivered +${dIp("delivered")} icmpErrorsSent +${dIp("icmpErrorsSent")} icmpRateLimited +${dIp("icmpRateLimited")} ` +
        `frag in +${dFrag("in")} overlap +${dFrag("overlap")} bad +${dFrag("bad")} tooBig +${dFrag("tooBig")} evicted +${dFrag("evicted")}; ` +
        `arp ${JSON.stringify(after.ip.engine.arp)}; tcp rx +${after.tcp.rxSegments - before.tcp.rxSegments} bad +${after.tcp.badSegments - before.tcp.badSegments}`,
    );
    // The fuzz reached every layer and every layer said what it dropped.
    expect(after.pf.malformed).toBeGreaterThan(before.pf.malformed);
    expect(dIp("badChecksum")).toBeGreaterThan(0);
    expect(dIp("delivered")).toBeGreaterThan(0);
    expect(dFrag("in")).toBeGreaterThan(0);
    expect(after.tcp.rxSegments).toBeGreaterThan(before.tcp.rxSegments);
    // The live connection may have been reset by a fuzzed RST at RCV.NXT, or may live on:
    // either way it ends cleanly (a RST from us now) and nc reports one or the other.
    const fate = live.wasReset ? "was reset by the fuzz" : live.isOpen ? "was still open after the fuzz" : `was in state ${live.state} after the fuzz`;
    live.abort();
    const le = await m.waitApp(liveApp, 30_000);
    console.log(`fuzz: the live connection ${fate}; nc ended ${le.status === 0 ? "normally" : `with ${le.error}`}`);
    expect(le.status === 0 || /ECONNRESET|EPIPE/.test(String(le.error)), JSON.stringify(le)).toBe(true);
    // A poisoned ARP entry for 10.0.2.2 is repaired by the peer's answers; ping must work.
    await pingWorks(m);
    // The listener that sat through the fuzz still accepts a real client and takes its data.
    await tcpWorks(m, peer, 50_000, listener);
    await noRestarts(m, r0);
  }, 60_000);
});
