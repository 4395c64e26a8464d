// Fuzz: random and mutated frames through every parser, alone and chained as a stack would; none may throw.
// Reproduce a failure with FUZZ_SEED=<seed printed below> (and FUZZ_FRAMES to run more).
import { test, expect } from "vitest";
import { EtherType, EthernetFrame, emitEthernet, ethernetBufferLen, parseEthernet, type EthernetRepr } from "./ethernet.ts";
import { ArpOp, ArpPacket, emitArp, parseArp } from "./arp.ts";
import { IpProtocol, Ipv4Packet, emitIpv4, ipv4BufferLen, parseIpv4, type Ipv4Repr } from "./ipv4.ts";
import { IcmpPacket, emitIcmp, icmpBufferLen, parseIcmp, parseQuoted, type IcmpRepr } from "./icmp.ts";
import { UdpPacket, emitUdp, parseUdp, udpBufferLen, type UdpRepr } from "./udp.ts";
import { TcpPacket, emitTcp, parseTcp, parseTcpOptions, tcpBufferLen } from "./tcp-wire.ts";
import { TcpFlag, type Parsed, type TcpRepr } from "./types.ts";
import { mulberry32 } from "../sys/prng.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x6e657774) >>> 0;
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 120_000);

const prng = mulberry32;

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const GW_MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
const GUEST = 0x0a00020f;
const PEER = 0x5db8d822;

function ethernet(etherType: number, payload: Uint8Array): Uint8Array {
  const r: EthernetRepr = { dst: GW_MAC, src: GUEST_MAC, etherType, payload };
  const b = new Uint8Array(ethernetBufferLen(r));
  emitEthernet(r, b);
  return b;
}
function ipv4(protocol: number, payload: Uint8Array, extra: Partial<Ipv4Repr> = {}): Uint8Array {
  const r: Ipv4Repr = { src: GUEST, dst: PEER, protocol, ttl: 64, tos: 0, ident: 7, dontFrag: true, moreFrags: false, fragOffset: 0, payload, ...extra };
  const b = new Uint8Array(ipv4BufferLen(r));
  emitIpv4(r, b);
  return b;
}
function tcp(r: TcpRepr): Uint8Array {
  const b = new Uint8Array(tcpBufferLen(r));
  emitTcp(r, b, GUEST, PEER);
  return b;
}
function udp(r: UdpRepr): Uint8Array {
  const b = new Uint8Array(udpBufferLen(r));
  emitUdp(r, b, GUEST, PEER);
  return b;
}
function icmp(r: IcmpRepr): Uint8Array {
  const b = new Uint8Array(icmpBufferLen(r));
  emitIcmp(r, b);
  return b;
}
const bytesOf = (n: number, f: (i: number) => number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff);

/** Valid frames of every kind, built with the emitters, that the mutations start from. */
function seedFrames(): Uint8Array[] {
  const arp = new Uint8Array(28);
  emitArp({ op: ArpOp.REQUEST, senderMac: GUEST_MAC, senderIp: GUEST, targetMac: new Uint8Array(6), targetIp: 0x0a000202 }, arp);
  const syn = tcp({
    srcPort: 43210, dstPort: 80, seq: 0x5b9c1e3a, ack: 0, flags: TcpFlag.SYN, window: 64240, urgent: 0,
    options: { mss: 1460, sackPermitted: true, timestamp: { val: 0x1d8a4b, ecr: 0 }, wscale: 7 },
    payload: new Uint8Array(0),
  });
  const data = tcp({
    srcPort: 80, dstPort: 43210, seq: 1, ack: 2, flags: TcpFlag.ACK | TcpFlag.PSH, window: 501, urgent: 0,
    options: { timestamp: { val: 5, ecr: 6 }, sack: [[10, 20], [30, 40], [50, 60]] },
    payload: bytesOf(300, (i) => i * 7),
  });
  const dnsUdp = udp({ srcPort: 54321, dstPort: 53, payload: bytesOf(29, (i) => i + 0x41) });
  const dnsIp = ipv4(IpProtocol.UDP, dnsUdp);
  const ping = icmp({ kind: "echoRequest", ident: 0x0c5a, seq: 1, data: bytesOf(56, (i) => i) });
  const unreach = icmp({ kind: "destUnreachable", code: 3, mtu: 0, quoted: dnsIp });
  const fragNeeded = icmp({ kind: "destUnreachable", code: 4, mtu: 1400, quoted: ipv4(IpProtocol.TCP, data).subarray(0, 28) });
  const timex = icmp({ kind: "timeExceeded", code: 0, quoted: dnsIp.subarray(0, 28) });
  // IPv4 with 8 option bytes (IHL 7): NOP, NOP, Router Alert, then EOL padding.
  const opted = new Uint8Array(20 + 8 + dnsUdp.length);
  opted.set(ipv4(IpProtocol.UDP, dnsUdp).subarray(0, 20));
  opted[0] = 0x47;
  opted[2] = opted.length >> 8;
  opted[3] = opted.length & 0xff;
  opted.set([1, 1, 0x94, 4, 0, 0, 0, 0], 20);
  opted.set(dnsUdp, 28);
  new Ipv4Packet(opted).fillChecksum();
  return [
    ethernet(EtherType.ARP, arp),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.TCP, syn)),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.TCP, data, { src: PEER, dst: GUEST })),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.TCP, tcp({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlag.ACK, window: 5, urgent: 0, options: {}, payload: new Uint8Array(0) }))),
    ethernet(EtherType.IPV4, dnsIp),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.ICMP, ping)),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.ICMP, unreach)),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.ICMP, fragNeeded)),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.ICMP, timex)),
    ethernet(EtherType.IPV4, opted),
    ethernet(EtherType.IPV4, ipv4(IpProtocol.UDP, dnsUdp, { moreFrags: true, fragOffset: 1480, dontFrag: false })),
  ];
}

/** Offsets (in a frame) of length-like fields worth lying in: IHL, total length, TCP data offset, UDP length, ARP hlen/plen, quoted IHL, option bytes. */
const LENGTH_FIELDS = [14, 16, 17, 18, 19, 46, 38, 39, 42, 43, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67];
const INTERESTING = [0, 1, 2, 3, 4, 5, 6, 8, 10, 0x0f, 0x10, 0x3f, 0x40, 0x44, 0x45, 0x4f, 0x50, 0xa0, 0xf0, 0xff];

/** Recomputes IPv4 and transport checksums where the lengths allow, so mutations reach deep code. */
function fixChecksums(frame: Uint8Array): void {
  const e = EthernetFrame.check(frame);
  if (!e.ok) return;
  const ipc = Ipv4Packet.check(e.value.payload);
  if (!ipc.ok) return;
  const ip = ipc.value;
  ip.fillChecksum();
  const seg = ip.payload;
  if (ip.protocol === IpProtocol.TCP && TcpPacket.check(seg).ok) new TcpPacket(seg).fillChecksum(ip.src, ip.dst);
  if (ip.protocol === IpProtocol.UDP && UdpPacket.check(seg).ok) {
    const u = new UdpPacket(seg);
    new UdpPacket(seg.subarray(0, u.length)).fillChecksum(ip.src, ip.dst);
  }
  if (ip.protocol === IpProtocol.ICMP && IcmpPacket.check(seg).ok) new IcmpPacket(seg).fillChecksum();
}

function mutate(rand: () => number, base: Uint8Array): Uint8Array {
  let f = base.slice();
  const rounds = 1 + (rand() % 3);
  for (let r = 0; r < rounds; r++) {
    switch (rand() % 6) {
      case 0: // bit flips
        for (let k = 1 + (rand() % 8); k > 0 && f.length; k--) f[rand() % f.length]! ^= 1 << (rand() % 8);
        break;
      case 1: // truncation
        f = f.slice(0, rand() % (f.length + 1));
        break;
      case 2: { // trailing junk or padding
        const g = new Uint8Array(f.length + (rand() % 64));
        g.set(f);
        if (rand() & 1) for (let i = f.length; i < g.length; i++) g[i] = rand();
        f = g;
        break;
      }
      case 3: // length-field edit: a lie, a boundary, or an off-by-one
      case 4: {
        const at = LENGTH_FIELDS[rand() % LENGTH_FIELDS.length]!;
        if (at >= f.length) break;
        const pick = rand() % 3;
        f[at] = pick === 0 ? rand() : pick === 1 ? INTERESTING[rand() % INTERESTING.length]! : f[at]! + (rand() & 1 ? 1 : -1);
        break;
      }
      case 5: // random bytes anywhere
        for (let k = 1 + (rand() % 16); k > 0 && f.length; k--) f[rand() % f.length] = rand();
        break;
    }
  }
  if (rand() % 4 !== 0) fixChecksums(f);
  return f;
}

function randomFrame(rand: () => number): Uint8Array {
  const f = new Uint8Array(rand() % 1601);
  for (let i = 0; i < f.length; i += 4) {
    const x = rand();
    f[i] = x;
    f[i + 1] = x >>> 8;
    f[i + 2] = x >>> 16;
    f[i + 3] = x >>> 24;
  }
  // A third of them get a plausible Ethernet/IPv4 start so random bytes reach the upper layers.
  if (f.length > 24 && rand() % 3 === 0) {
    f[12] = 0x08;
    f[13] = 0x00;
    f[14] = 0x45;
    f[23] = [1, 6, 17][rand() % 3]!;
  }
  return f;
}

/**
 * Reads every getter of a checked view; each must give an integer (or bytes) without throwing,
 * and the variable-length parts must be exactly as long as the header says (subarray clamps
 * silently, so a missing length check would otherwise go unnoticed).
 */
function touch(view: object, names: string[], invariant: boolean): void {
  for (const n of names) {
    const v = (view as Record<string, unknown>)[n];
    if (!(v instanceof Uint8Array) && typeof v !== "boolean" && !Number.isInteger(v))
      throw new Error(`getter ${n} returned ${String(v)}`);
  }
  if (!invariant) throw new Error(`${view.constructor.name}: a length getter disagrees with the header after check()`);
}

const counts: Record<string, number> = {};
/** Checks an error is well formed and counts successes per parser. */
function note<T>(name: string, r: Parsed<T>): r is { ok: true; value: T } {
  if (r.ok) counts[name] = (counts[name] ?? 0) + 1;
  else if (!r.error.startsWith(`${name.split("/")[0]}: `)) throw new Error(`${name} error without its prefix: ${r.error}`);
  return r.ok;
}

/** Emits a parsed Repr again and parses that: it must parse and say the same. */
function reEmitTcp(r: TcpRepr, src: number, dst: number): void {
  const b = new Uint8Array(tcpBufferLen(r));
  emitTcp(r, b, src, dst);
  const again = parseTcp(b, src, dst);
  if (!again.ok) throw new Error(`tcp re-emit did not parse: ${again.error}`);
  const a = again.value;
  if (a.seq !== r.seq || a.ack !== r.ack || a.flags !== r.flags || a.payload.length !== r.payload.length || a.options.mss !== r.options.mss || a.options.wscale !== r.options.wscale)
    throw new Error("tcp re-emit changed the segment");
}

/** Everything one frame goes through: each parser directly, then the stack's chain. */
function run(frame: Uint8Array): void {
  const verify = [true, false];
  // every parser straight on the bytes, and at the offsets a stack would hand it
  for (const off of [0, 14, 34]) {
    const b = frame.subarray(off);
    note("ethernet", parseEthernet(b));
    note("arp", parseArp(b));
    for (const v of verify) {
      note("ipv4", parseIpv4(b, v));
      note("icmp", parseIcmp(b, v));
      note("udp", parseUdp(b, GUEST, PEER, v));
      note("tcp", parseTcp(b, GUEST, PEER, v));
    }
    parseQuoted(b);
    parseTcpOptions(b.subarray(0, 40));
  }
  const ec = EthernetFrame.check(frame);
  if (ec.ok) touch(ec.value, ["dst", "src", "etherType", "payload"], ec.value.payload.length === frame.length - 14);
  const e = parseEthernet(frame);
  if (!note("ethernet/stack", e)) return;
  const payload = e.value.payload;
  if (e.value.etherType === EtherType.ARP) {
    const ac = ArpPacket.check(payload);
    if (ac.ok) {
      const p = ac.value;
      touch(p, ["htype", "ptype", "hlen", "plen", "oper", "senderHw", "senderProto", "targetHw", "targetProto"],
        p.senderHw.length === p.hlen && p.targetHw.length === p.hlen && p.senderProto.length === p.plen && p.targetProto.length === p.plen);
    }
    const a = parseArp(payload);
    if (note("arp/stack", a)) {
      const out = new Uint8Array(28);
      emitArp(a.value, out);
      const again = parseArp(out);
      if (!again.ok || again.value.senderIp !== a.value.senderIp || again.value.op !== a.value.op) throw new Error("arp re-emit changed");
    }
    return;
  }
  if (e.value.etherType !== EtherType.IPV4) return;
  const ic = Ipv4Packet.check(payload);
  if (ic.ok) {
    const p = ic.value;
    touch(p, ["version", "headerLen", "tos", "totalLen", "ident", "dontFrag", "moreFrags", "fragOffset", "ttl", "protocol", "checksum", "src", "dst", "options", "payload"],
      p.options.length === p.headerLen - 20 && p.payload.length === p.totalLen - p.headerLen);
    ic.value.verifyChecksum();
  }
  for (const v of verify) {
    const ip = parseIpv4(payload, v);
    if (!note("ipv4/stack", ip)) continue;
    const { src, dst, protocol } = ip.value;
    const seg = ip.value.payload;
    const ipOut = new Uint8Array(ipv4BufferLen(ip.value));
    emitIpv4(ip.value, ipOut);
    if (!parseIpv4(ipOut).ok) throw new Error("ipv4 re-emit did not parse");
    if (protocol === IpProtocol.TCP) {
      const tc = TcpPacket.check(seg);
      if (tc.ok) {
        const p = tc.value;
        touch(p, ["srcPort", "dstPort", "seq", "ack", "headerLen", "flags", "window", "checksum", "urgent", "options", "payload"],
          p.options.length === p.headerLen - 20 && p.headerLen + p.payload.length === seg.length);
      }
      const t = parseTcp(seg, src, dst, v);
      if (note("tcp/stack", t)) reEmitTcp(t.value, src, dst);
    } else if (protocol === IpProtocol.UDP) {
      const uc = UdpPacket.check(seg);
      if (uc.ok) touch(uc.value, ["srcPort", "dstPort", "length", "checksum", "payload"], uc.value.payload.length === uc.value.length - 8);
      const u = parseUdp(seg, src, dst, v);
      if (note("udp/stack", u)) {
        const out = new Uint8Array(udpBufferLen(u.value));
        emitUdp(u.value, out, src, dst);
        if (!parseUdp(out, src, dst).ok) throw new Error("udp re-emit did not parse");
      }
    } else if (protocol === IpProtocol.ICMP) {
      const cc = IcmpPacket.check(seg);
      if (cc.ok) touch(cc.value, ["msgType", "code", "checksum", "ident", "seq", "rest", "mtu", "data"], cc.value.data.length === seg.length - 8);
      const m = parseIcmp(seg, v);
      if (note("icmp/stack", m)) {
        const out = new Uint8Array(icmpBufferLen(m.value));
        emitIcmp(m.value, out);
        if (!parseIcmp(out).ok) throw new Error("icmp re-emit did not parse");
        if (m.value.kind === "destUnreachable" || m.value.kind === "timeExceeded") {
          const q = parseQuoted(m.value.quoted);
          if (!q.ok) throw new Error("icmp accepted a quote parseQuoted rejects");
          // a stack demultiplexes on the quoted transport header; it may be truncated garbage
          if (q.value.protocol === IpProtocol.TCP) note("tcp", parseTcp(q.value.data, q.value.src, q.value.dst, false));
          if (q.value.protocol === IpProtocol.UDP) note("udp", parseUdp(q.value.data, q.value.src, q.value.dst, false));
        }
      }
    }
  }
}

test(`fuzz: ${FRAMES} random and mutated frames through every parser (seed ${SEED})`, () => {
  console.log(`net fuzz seed ${SEED} (FUZZ_SEED=${SEED} to reproduce), ${FRAMES} frames`);
  const rand = prng(SEED);
  const seeds = seedFrames();
  for (const s of seeds) run(s); // the unmutated frames must pass cleanly
  let failure: string | null = null;
  for (let i = 0; i < FRAMES && !failure; i++) {
    const frame = i % 2 === 0 ? randomFrame(rand) : mutate(rand, seeds[rand() % seeds.length]!);
    try {
      run(frame);
    } catch (err) {
      const hex = Array.from(frame, (x) => x.toString(16).padStart(2, "0")).join("");
      failure = `seed ${SEED} frame ${i}: ${(err as Error).stack ?? String(err)}\nframe ${hex}`;
    }
  }
  console.log("successful parses:", JSON.stringify(counts));
  if (failure) throw new Error(failure); // in full: vitest would truncate it inside expect()
  // The fuzz reached every layer's success path, not just the first length check.
  for (const name of ["ethernet/stack", "arp/stack", "ipv4/stack", "tcp/stack", "udp/stack", "icmp/stack"])
    expect(counts[name] ?? 0, name).toBeGreaterThan(500);
});
