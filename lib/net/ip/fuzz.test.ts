// Fuzz test of the IP engine: 50,000 random and mutated frames into input(), with ticks; no throws, limits hold.
import { test, expect } from "vitest";
import { ArpOp } from "../arp.ts";
import { formatMac } from "../addr.ts";
import { EtherType } from "../ethernet.ts";
import { Ipv4Packet, IpProtocol } from "../ipv4.ts";
import { IcmpPacket } from "../icmp.ts";
import { fragment } from "./frag.ts";
import { BCAST, GW, PEER, US, arpFrameOf, datagram, ethFrame, host, icmpBytesOf, randBytes, randInt, rng } from "./ip.fixture.ts";

const FRAMES = 50_000;

/** Fragments of real datagrams, fed a few at a time between other frames so reassemblies complete too. */
const backlog: Uint8Array[] = [];

/** A plausible frame of some kind, to be mutated. */
function seed(r: () => number): Uint8Array {
  const from = r() < 0.5 ? PEER : GW;
  const ident = randInt(r, 0, 7); // few idents, so fragments collide and reassemblies fill up
  switch (randInt(r, 0, 7)) {
    case 0:
      return arpFrameOf({ op: r() < 0.5 ? ArpOp.REQUEST : ArpOp.REPLY, senderMac: from.mac, senderIp: from.ip, targetMac: US.mac, targetIp: r() < 0.8 ? US.ip : from.ip }, r() < 0.5 ? BCAST : US.mac);
    case 1: {
      const p = icmpBytesOf({ kind: r() < 0.7 ? "echoRequest" : "echoReply", ident: randInt(r, 0, 3), seq: randInt(r, 0, 3), data: randBytes(r, randInt(r, 0, 100)) });
      return ethFrame(US.mac, from.mac, EtherType.IPV4, datagram({ src: from.ip, dst: US.ip, protocol: IpProtocol.ICMP, ident, payload: p }));
    }
    case 2: {
      const quoted = datagram({ src: US.ip, dst: from.ip, payload: randBytes(r, randInt(r, 0, 40)) });
      const p = icmpBytesOf(r() < 0.5 ? { kind: "destUnreachable", code: randInt(r, 0, 15), mtu: randInt(r, 0, 1500), quoted } : { kind: "timeExceeded", code: randInt(r, 0, 1), quoted });
      return ethFrame(US.mac, from.mac, EtherType.IPV4, datagram({ src: from.ip, dst: US.ip, protocol: IpProtocol.ICMP, payload: p }));
    }
    case 3: {
      // A fragment: offsets and lengths in 8-byte steps, sometimes not.
      const off = randInt(r, 0, 40) * 8 + (r() < 0.1 ? randInt(r, 0, 7) : 0);
      const len = randInt(r, 0, 12) * 8 + (r() < 0.2 ? randInt(r, 0, 7) : 0);
      return ethFrame(US.mac, from.mac, EtherType.IPV4, datagram({ src: from.ip, dst: US.ip, ident, moreFrags: r() < 0.7, fragOffset: off & ~7, payload: randBytes(r, len) }));
    }
    case 4:
      return ethFrame(r() < 0.8 ? US.mac : BCAST, from.mac, EtherType.IPV4, datagram({ src: from.ip, dst: r() < 0.8 ? US.ip : 0xffffffff, protocol: randInt(r, 0, 255), payload: randBytes(r, randInt(r, 0, 60)) }));
    case 5:
      return randBytes(r, randInt(r, 0, 120));
    case 6: {
      if (backlog.length === 0) {
        const repr = { src: from.ip, dst: US.ip, protocol: IpProtocol.UDP, ttl: 64, tos: 0, ident: randInt(r, 100, 0xffff), dontFrag: false, moreFrags: false, fragOffset: 0, payload: randBytes(r, randInt(r, 100, 4000)) };
        const f = fragment(repr, randInt(r, 68, 1500));
        if (f.ok) for (const d of f.datagrams) backlog.splice(randInt(r, 0, backlog.length), 0, ethFrame(US.mac, from.mac, EtherType.IPV4, d));
      }
      return backlog.pop() ?? new Uint8Array(0);
    }
    default:
      return ethFrame(US.mac, from.mac, r() < 0.5 ? EtherType.IPV4 : EtherType.ARP, randBytes(r, randInt(r, 0, 80)));
  }
}

/** Bit flips, byte stores, truncation, extension; sometimes the checksums are fixed so deeper code runs. */
function mutate(r: () => number, f: Uint8Array): Uint8Array {
  let b = f.slice();
  const n = randInt(r, 0, 4);
  for (let i = 0; i < n && b.length > 0; i++) {
    const at = r() < 0.7 ? randInt(r, 14, Math.min(b.length - 1, 14 + 40)) : randInt(r, 0, b.length - 1);
    if (at < 0 || at >= b.length) continue;
    if (r() < 0.5) b[at]! ^= 1 << randInt(r, 0, 7);
    else b[at] = randInt(r, 0, 255);
  }
  if (r() < 0.1) b = b.subarray(0, randInt(r, 0, b.length));
  if (r() < 0.05) {
    const e = new Uint8Array(b.length + randInt(r, 1, 40));
    e.set(b);
    b = e;
  }
  if (r() < 0.5 && b.length >= 14 + 20 && b[12] === 0x08 && b[13] === 0x00) {
    const dg = b.subarray(14);
    const hl = (dg[0]! & 0x0f) * 4;
    if (hl >= 20 && hl <= dg.length) {
      const p = new Ipv4Packet(dg);
      if (dg[9] === IpProtocol.ICMP && p.totalLen <= dg.length && p.totalLen >= hl + 8 && r() < 0.7)
        new IcmpPacket(dg.subarray(hl, p.totalLen)).fillChecksum();
      p.fillChecksum();
    }
  }
  return b;
}

test(`fuzz: ${FRAMES} random and mutated frames never throw, and the limits hold`, () => {
  const r = rng(0x5eed1234);
  const l = host({ reasm: { maxReassemblies: 16, maxBytes: 64 * 1024 }, arp: { maxEntries: 32, maxPending: 8 } });
  let now = 0;
  let sent = 0;
  const usMac = formatMac(US.mac);
  for (let i = 0; i < FRAMES; i++) {
    now += randInt(r, 0, 50);
    const f = r() < 0.9 ? mutate(r, seed(r)) : seed(r);
    const actions = l.input(now, f, r() < 0.99 ? undefined : "nope");
    if (i % 97 === 0) actions.push(...l.tick(now));
    if (i % 1013 === 0) {
      const o = l.output(now, { dst: randInt(r, 0, 0xffffffff), proto: IpProtocol.UDP, payload: randBytes(r, randInt(r, 0, 3000)), dontFrag: r() < 0.3 });
      if (o.ok) actions.push(...o.actions);
    }
    for (const a of actions) {
      if (!("send" in a)) continue;
      sent++;
      expect(a.send.length).toBeGreaterThanOrEqual(14);
      expect(formatMac(a.send.subarray(6, 12))).toBe(usMac);
      expect(a.send.length - 14).toBeLessThanOrEqual(1500);
    }
    expect(l.reasm.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(l.reasm.count).toBeLessThanOrEqual(16);
    expect(l.arp.size).toBeLessThanOrEqual(32);
  }
  l.tick(now + 3_600_000);
  l.tick(now + 3_700_000);
  expect(l.reasm.count).toBe(0);
  expect(l.reasm.bytes).toBe(0);
  const s = l.stats.ip;
  if (process.env.FUZZ_STATS) console.log(JSON.stringify(l.stats));
  expect(s.framesIn).toBe(FRAMES);
  // Every kind of path was reached.
  expect(sent).toBeGreaterThan(0);
  for (const k of ["badChecksum", "truncated", "badHeader", "delivered", "echoRequestsIn", "icmpErrorsIn", "linkTruncated", "arpBad"] as const)
    expect(s[k], k).toBeGreaterThan(0);
  for (const k of ["reassembled", "overlap", "bad", "evicted", "timeout"] as const) expect(l.stats.frag[k], k).toBeGreaterThan(0);
});
