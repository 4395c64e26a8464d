// Tests for the IP engine: frames in, actions out; ARP, ping, delivery, drops, errors, output, snapshot.
import { test, expect, describe } from "vitest";
import { parseArp, ArpOp } from "../arp.ts";
import { EtherType, parseEthernet } from "../ethernet.ts";
import { IcmpPacket, TimeExceededCode, UnreachableCode, parseIcmp } from "../icmp.ts";
import { IpProtocol, Ipv4Packet } from "../ipv4.ts";
import { formatMac } from "../addr.ts";
import { EMSGSIZE } from "../../sys/errno.ts";
import { IpLayer, ENETUNREACH, EADDRNOTAVAIL, type IpAction, type Delivery } from "./ip.ts";
import {
  BCAST, GW, PEER, US, arpReply, arpRequest, datagram, ethFrame, host, icmpBytesOf, ip, ipFrame, ipOf, mac, sends,
} from "./ip.fixture.ts";

const delivers = (a: IpAction[]): Delivery[] => a.flatMap((x) => ("deliver" in x ? [x.deliver] : []));

/** A host that already knows the gateway's and the peer's MACs. */
function warmHost(): IpLayer {
  const l = host();
  l.input(0, arpRequest(GW, US.ip));
  l.input(0, arpRequest(PEER, US.ip));
  return l;
}

describe("ARP through the engine", () => {
  test("answers a who-has for our address and learns the asker (RFC 826)", () => {
    const l = host();
    const out = l.input(0, arpRequest(GW, US.ip));
    const f = sends(out);
    expect(f.length).toBe(1);
    const e = parseEthernet(f[0]!);
    if (!e.ok) throw new Error(e.error);
    expect(formatMac(e.value.dst)).toBe(formatMac(GW.mac));
    expect(e.value.etherType).toBe(EtherType.ARP);
    const a = parseArp(e.value.payload);
    if (!a.ok) throw new Error(a.error);
    expect(a.value).toEqual({ op: ArpOp.REPLY, senderMac: US.mac, senderIp: US.ip, targetMac: GW.mac, targetIp: GW.ip });
    expect(formatMac(l.arp.lookup(0, GW.ip)!.mac)).toBe(formatMac(GW.mac));
  });

  test("ignores who-has for other addresses and learns nothing from them", () => {
    const l = host();
    expect(l.input(0, arpRequest(GW, PEER.ip))).toEqual([]);
    expect(l.arp.lookup(0, GW.ip)).toBeNull();
  });

  test("announce() sends a gratuitous ARP for the interface address", () => {
    const l = host();
    const f = sends(l.announce("eth0"));
    expect(f.length).toBe(1);
    const a = parseArp(f[0]!.subarray(14));
    if (!a.ok) throw new Error(a.error);
    expect(a.value.senderIp).toBe(US.ip);
    expect(a.value.targetIp).toBe(US.ip);
    expect(formatMac(f[0]!.subarray(0, 6))).toBe("ff:ff:ff:ff:ff:ff");
  });
});

describe("ping", () => {
  test("echo request in -> echo reply out, checksums right, via ARP resolution", () => {
    const l = host();
    const data = Uint8Array.from({ length: 56 }, (_, i) => i);
    const req = ipFrame(PEER, { protocol: IpProtocol.ICMP, ident: 0x3b7e, payload: icmpBytesOf({ kind: "echoRequest", ident: 0x0c5a, seq: 1, data }) });
    // The peer is unknown: the reply waits for ARP, and an ARP request goes out.
    const first = sends(l.input(0, req));
    expect(first.length).toBe(1);
    const who = parseArp(first[0]!.subarray(14));
    if (!who.ok) throw new Error(who.error);
    expect(who.value.op).toBe(ArpOp.REQUEST);
    expect(who.value.targetIp).toBe(PEER.ip);
    expect(l.arp.queued(PEER.ip)).toBe(1);
    // The peer answers: the queued reply is released.
    const rel = sends(l.input(5, arpReply(PEER)));
    expect(rel.length).toBe(1);
    expect(formatMac(rel[0]!.subarray(0, 6))).toBe(formatMac(PEER.mac));
    expect(formatMac(rel[0]!.subarray(6, 12))).toBe(formatMac(US.mac));
    const r = ipOf(rel[0]!); // parseIpv4 verifies the header checksum
    expect([r.src, r.dst, r.protocol]).toEqual([US.ip, PEER.ip, IpProtocol.ICMP]);
    expect(new IcmpPacket(r.payload).verifyChecksum()).toBe(true);
    const m = parseIcmp(r.payload);
    if (!m.ok) throw new Error(m.error);
    expect(m.value).toEqual({ kind: "echoReply", ident: 0x0c5a, seq: 1, data });
    expect(l.stats.ip.echoRepliesSent).toBe(1);
  });

  test("a known neighbour gets the reply at once", () => {
    const l = warmHost();
    const req = ipFrame(PEER, { protocol: IpProtocol.ICMP, payload: icmpBytesOf({ kind: "echoRequest", ident: 7, seq: 9, data: new Uint8Array([1, 2, 3]) }) });
    const f = sends(l.input(0, req));
    expect(f.length).toBe(1);
    const m = parseIcmp(ipOf(f[0]!).payload);
    expect(m.ok && m.value.kind === "echoReply" && m.value.seq === 9).toBe(true);
  });

  test("echo request with a bad ICMP checksum is counted, not answered", () => {
    const l = warmHost();
    const p = icmpBytesOf({ kind: "echoRequest", ident: 7, seq: 9, data: new Uint8Array(4) });
    p[2]! ^= 0xff;
    expect(l.input(0, ipFrame(PEER, { protocol: IpProtocol.ICMP, payload: p }))).toEqual([]);
    expect(l.stats.ip.icmpBadChecksum).toBe(1);
  });

  test("echo request to the broadcast address is ignored (no smurf)", () => {
    const l = warmHost();
    const p = icmpBytesOf({ kind: "echoRequest", ident: 7, seq: 9, data: new Uint8Array(4) });
    expect(l.input(0, ipFrame(PEER, { protocol: IpProtocol.ICMP, payload: p, dst: ip("10.0.2.255") }, BCAST))).toEqual([]);
    expect(l.stats.ip.broadcastNotUdp).toBe(1);
  });

  test("ping client: echoRequest out, matching reply in -> echoReply action with rtt; unmatched dropped", () => {
    const l = warmHost();
    const data = new Uint8Array([9, 8, 7]);
    const r = l.echoRequest(100, PEER.ip, 0x1234, 5, data);
    if (!r.ok) throw new Error(r.error);
    const sent = ipOf(sends(r.actions)[0]!);
    expect(sent.dst).toBe(PEER.ip);
    const m = parseIcmp(sent.payload);
    expect(m.ok && m.value).toEqual({ kind: "echoRequest", ident: 0x1234, seq: 5, data });
    const reply = ipFrame(PEER, { protocol: IpProtocol.ICMP, ttl: 61, payload: icmpBytesOf({ kind: "echoReply", ident: 0x1234, seq: 5, data }) });
    const got = l.input(130, reply);
    expect(got).toEqual([{ echoReply: { src: PEER.ip, dst: US.ip, ident: 0x1234, seq: 5, data, ttl: 61, rtt: 30 } }]);
    // The same reply again matches nothing now.
    expect(l.input(131, reply)).toEqual([]);
    expect(l.stats.ip.echoUnmatched).toBe(1);
  });

  test("pinging our own address loops back without a NIC", () => {
    const l = host();
    const r = l.echoRequest(0, US.ip, 1, 1, new Uint8Array([42]));
    if (!r.ok) throw new Error(r.error);
    expect(r.actions).toEqual([{ echoReply: { src: US.ip, dst: US.ip, ident: 1, seq: 1, data: new Uint8Array([42]), ttl: 64, rtt: 0 } }]);
  });
});

describe("delivery", () => {
  test("UDP and TCP to our address are delivered with payload, repr and datagram", () => {
    const l = warmHost();
    const payload = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const proto of [IpProtocol.UDP, IpProtocol.TCP]) {
      const d = delivers(l.input(0, ipFrame(PEER, { protocol: proto, payload })));
      expect(d.length).toBe(1);
      expect(d[0]!.proto).toBe(proto);
      expect(d[0]!.src).toBe(PEER.ip);
      expect(d[0]!.dst).toBe(US.ip);
      expect(d[0]!.payload).toEqual(payload);
      expect(d[0]!.broadcast).toBe(false);
      expect(d[0]!.datagram.length).toBe(20 + payload.length);
      expect(d[0]!.ipRepr.protocol).toBe(proto);
    }
    expect(l.stats.ip.delivered).toBe(2);
  });

  test("Ethernet padding after the datagram is trimmed", () => {
    const l = warmHost();
    const f = ipFrame(PEER, { payload: new Uint8Array([1, 2]) });
    const padded = new Uint8Array(60);
    padded.set(f);
    const d = delivers(l.input(0, padded));
    expect(d[0]!.payload).toEqual(new Uint8Array([1, 2]));
  });

  test("UDP to limited and directed broadcast is delivered; TCP to broadcast is not", () => {
    const l = warmHost();
    const p = new Uint8Array(8);
    for (const dst of [ip("255.255.255.255"), ip("10.0.2.255")]) {
      const d = delivers(l.input(0, ipFrame(PEER, { dst, payload: p }, BCAST)));
      expect(d.length).toBe(1);
      expect(d[0]!.broadcast).toBe(true);
    }
    expect(delivers(l.input(0, ipFrame(PEER, { dst: ip("10.0.2.255"), protocol: IpProtocol.TCP, payload: p }, BCAST)))).toEqual([]);
    expect(l.stats.ip.broadcastNotUdp).toBe(1);
  });

  test("datagrams for other hosts are dropped and counted (no forwarding)", () => {
    const l = warmHost();
    expect(l.input(0, ipFrame(PEER, { dst: ip("8.8.8.8"), payload: new Uint8Array(8) }))).toEqual([]);
    expect(l.stats.ip.notForUs).toBe(1);
  });

  test("frames for another MAC, unknown EtherTypes, unicast IP in a link broadcast: counted drops", () => {
    const l = warmHost();
    l.input(0, ipFrame(PEER, { payload: new Uint8Array(8) }, mac("02:00:00:00:00:01")));
    l.input(0, ethFrame(US.mac, PEER.mac, EtherType.IPV6, new Uint8Array(40)));
    l.input(0, ipFrame(PEER, { payload: new Uint8Array(8) }, BCAST));
    expect([l.stats.ip.linkNotForUs, l.stats.ip.linkUnknownType, l.stats.ip.linkBroadcastUnicast]).toEqual([1, 1, 1]);
  });

  test("martian sources are dropped", () => {
    const l = warmHost();
    for (const src of ["127.0.0.1", "224.0.0.1", "255.255.255.255", "10.0.2.255", "10.0.2.15", "240.0.0.1", "0.0.0.0"])
      l.input(0, ethFrame(US.mac, PEER.mac, EtherType.IPV4, datagram({ src: ip(src), dst: US.ip, payload: new Uint8Array(8) })));
    expect(l.stats.ip.badSource).toBe(7);
    expect(l.stats.ip.delivered).toBe(0);
  });

  test("unknown protocol -> protocol unreachable quoting the datagram", () => {
    const l = warmHost();
    const out = sends(l.input(0, ipFrame(PEER, { protocol: 47, payload: new Uint8Array(12) })));
    expect(l.stats.ip.unknownProtocol).toBe(1);
    expect(out.length).toBe(1);
    const r = ipOf(out[0]!);
    expect(r.dst).toBe(PEER.ip);
    const m = parseIcmp(r.payload);
    if (!m.ok || m.value.kind !== "destUnreachable") throw new Error("not an unreachable");
    expect(m.value.code).toBe(UnreachableCode.PROTOCOL);
    expect(m.value.quoted.length).toBe(32);
  });
});

describe("bad headers", () => {
  const good = (): Uint8Array => ipFrame(PEER, { payload: new Uint8Array(8) });
  const refill = (f: Uint8Array): Uint8Array => {
    new Ipv4Packet(f.subarray(14)).fillChecksum();
    return f;
  };

  test("IHL < 5, bad checksum, truncated, bad version, total length < header: counted drops, no throws", () => {
    const l = warmHost();
    const ihl = good();
    ihl[14] = 0x44;
    l.input(0, refill(ihl));
    const sum = good();
    sum[24]! ^= 0x01;
    l.input(0, sum);
    l.input(0, good().subarray(0, 14 + 19));
    l.input(0, good().subarray(0, 14 + 25)); // total length says 28
    const ver = good();
    ver[14] = 0x65;
    l.input(0, ver);
    const tl = good();
    tl[16] = 0;
    tl[17] = 10;
    l.input(0, refill(tl));
    const ihlBig = good();
    ihlBig[14] = 0x4f; // 60-byte header in a 28-byte datagram
    l.input(0, ihlBig);
    l.input(0, good().subarray(0, 10));
    const s = l.stats.ip;
    expect({ badHeader: s.badHeader, badChecksum: s.badChecksum, truncated: s.truncated, badVersion: s.badVersion, linkTruncated: s.linkTruncated, delivered: s.delivered }).toEqual({
      badHeader: 2, badChecksum: 1, truncated: 3, badVersion: 1, linkTruncated: 1, delivered: 0,
    });
  });

  test("a header with options is accepted and its payload found after them", () => {
    const l = warmHost();
    const dg = datagram({ src: PEER.ip, dst: US.ip, payload: new Uint8Array([5, 6, 7, 8]) });
    const withOpt = new Uint8Array(dg.length + 4);
    withOpt.set(dg.subarray(0, 20));
    withOpt.set([1, 1, 1, 0], 20); // NOP NOP NOP EOL
    withOpt.set(dg.subarray(20), 24);
    const p = new Ipv4Packet(withOpt);
    p.headerLen = 24;
    p.totalLen = withOpt.length;
    p.fillChecksum();
    const d = delivers(l.input(0, ethFrame(US.mac, PEER.mac, EtherType.IPV4, withOpt)));
    expect(d[0]!.payload).toEqual(new Uint8Array([5, 6, 7, 8]));
  });
});

describe("output", () => {
  test("off-link destinations go to the gateway's MAC; on-link ones to their own", () => {
    const l = warmHost();
    const a = l.output(0, { dst: ip("8.8.8.8"), proto: IpProtocol.UDP, payload: new Uint8Array(10) });
    const b = l.output(0, { dst: PEER.ip, proto: IpProtocol.UDP, payload: new Uint8Array(10) });
    if (!a.ok || !b.ok) throw new Error("output failed");
    expect(formatMac(sends(a.actions)[0]!.subarray(0, 6))).toBe(formatMac(GW.mac));
    expect(formatMac(sends(b.actions)[0]!.subarray(0, 6))).toBe(formatMac(PEER.mac));
    const r = ipOf(sends(a.actions)[0]!);
    expect([r.src, r.dst, r.ttl, r.protocol]).toEqual([US.ip, ip("8.8.8.8"), 64, IpProtocol.UDP]);
  });

  test("broadcast output needs no ARP", () => {
    const l = host();
    const r = l.output(0, { dst: ip("255.255.255.255"), proto: IpProtocol.UDP, payload: new Uint8Array(10) });
    if (!r.ok) throw new Error(r.error);
    expect(formatMac(sends(r.actions)[0]!.subarray(0, 6))).toBe("ff:ff:ff:ff:ff:ff");
  });

  test("errors: no route, foreign source, TTL 0, DF too big", () => {
    const l = new IpLayer();
    l.addIface({ name: "eth0", mac: US.mac, addr: US.ip, prefixLen: 24 });
    const nr = l.output(0, { dst: ip("8.8.8.8"), proto: 17, payload: new Uint8Array(1) });
    expect(nr.ok === false && nr.errno).toBe(ENETUNREACH);
    const bs = l.output(0, { src: ip("1.2.3.4"), dst: PEER.ip, proto: 17, payload: new Uint8Array(1) });
    expect(bs.ok === false && bs.errno).toBe(EADDRNOTAVAIL);
    const t0 = l.output(0, { dst: PEER.ip, proto: 17, payload: new Uint8Array(1), ttl: 0 });
    expect(t0.ok).toBe(false);
    const df = l.output(0, { dst: PEER.ip, proto: 17, payload: new Uint8Array(1481), dontFrag: true });
    expect(df.ok === false && [df.errno, df.mtu]).toEqual([EMSGSIZE, 1500]);
    const huge = l.output(0, { dst: PEER.ip, proto: 17, payload: new Uint8Array(65516) });
    expect(huge.ok === false && huge.errno).toBe(EMSGSIZE);
  });

  test("a datagram over the MTU goes out as fragments that reassemble at the peer", () => {
    const l = warmHost();
    const payload = Uint8Array.from({ length: 4000 }, (_, i) => i * 7);
    const r = l.output(0, { dst: PEER.ip, proto: 17, payload });
    if (!r.ok) throw new Error(r.error);
    const fr = sends(r.actions);
    expect(fr.length).toBe(3);
    for (const f of fr) expect(f.length - 14).toBeLessThanOrEqual(1500);
    // Feed them to a second host that owns PEER's address.
    const peer = new IpLayer();
    peer.addIface({ name: "eth0", mac: PEER.mac, addr: PEER.ip, prefixLen: 24 });
    const got = [...fr].reverse().flatMap((f) => delivers(peer.input(0, f)));
    expect(got.length).toBe(1);
    expect(got[0]!.payload).toEqual(payload);
    expect(l.stats.ip.outFragmented).toBe(1);
  });
});

describe("ARP failure and errors in", () => {
  test("three ARP tries 1 s apart, then host unreachable for the queued datagram", () => {
    const l = host();
    const r = l.output(0, { dst: PEER.ip, proto: IpProtocol.UDP, payload: new Uint8Array(12) });
    if (!r.ok) throw new Error(r.error);
    expect(sends(r.actions).length).toBe(1);
    expect(sends(l.tick(999)).length).toBe(0);
    expect(sends(l.tick(1000)).length).toBe(1);
    expect(sends(l.tick(2000)).length).toBe(1);
    const last = l.tick(3000);
    expect(sends(last).length).toBe(0);
    const errs = last.flatMap((a) => ("icmpError" in a ? [a.icmpError] : []));
    expect(errs.length).toBe(1);
    expect(errs[0]).toMatchObject({ from: US.ip, kind: "destUnreachable", code: UnreachableCode.HOST, local: true });
    expect(errs[0]!.original.dst).toBe(PEER.ip);
    expect(l.arp.queued(PEER.ip)).toBe(0);
  });

  test("an ICMP error about our datagram is handed up; one about someone else's is bogus", () => {
    const l = warmHost();
    const ours = datagram({ src: US.ip, dst: ip("8.8.8.8"), payload: new Uint8Array([0x30, 0x39, 0, 53, 0, 8, 0, 0]) });
    const err = icmpBytesOf({ kind: "destUnreachable", code: UnreachableCode.FRAG_NEEDED, mtu: 1400, quoted: ours });
    const out = l.input(0, ipFrame(GW, { protocol: IpProtocol.ICMP, payload: err }));
    expect(out.length).toBe(1);
    const e = (out[0] as { icmpError: { mtu: number; code: number; original: { dst: number; protocol: number } } }).icmpError;
    expect([e.mtu, e.code, e.original.dst, e.original.protocol]).toEqual([1400, 4, ip("8.8.8.8"), IpProtocol.UDP]);
    const theirs = datagram({ src: ip("1.1.1.1"), dst: ip("8.8.8.8"), payload: new Uint8Array(8) });
    l.input(0, ipFrame(GW, { protocol: IpProtocol.ICMP, payload: icmpBytesOf({ kind: "timeExceeded", code: 0, quoted: theirs }) }));
    expect(l.stats.ip.icmpErrorsBogus).toBe(1);
  });

  test("unreachable(): port unreachable quoting the datagram; never about errors, broadcasts or later fragments", () => {
    const l = warmHost();
    const d = delivers(l.input(0, ipFrame(PEER, { payload: new Uint8Array([0, 1, 0, 2, 0, 8, 0, 0]) })))[0]!;
    const out = sends(l.unreachable(0, UnreachableCode.PORT, d.datagram));
    expect(out.length).toBe(1);
    const r = ipOf(out[0]!);
    expect([r.src, r.dst, r.tos]).toEqual([US.ip, PEER.ip, 0xc0]);
    const m = parseIcmp(r.payload);
    expect(m.ok && m.value.kind === "destUnreachable" && m.value.code === UnreachableCode.PORT).toBe(true);
    if (m.ok && m.value.kind === "destUnreachable") expect(m.value.quoted).toEqual(d.datagram);
    const bcast = datagram({ src: PEER.ip, dst: ip("10.0.2.255"), payload: new Uint8Array(8) });
    const icmpErr = datagram({ src: PEER.ip, dst: US.ip, protocol: 1, payload: icmpBytesOf({ kind: "timeExceeded", code: 0, quoted: bcast }) });
    const later = datagram({ src: PEER.ip, dst: US.ip, fragOffset: 8, payload: new Uint8Array(8) });
    for (const x of [bcast, icmpErr, later, new Uint8Array(3)]) expect(l.unreachable(0, 3, x)).toEqual([]);
    expect(l.stats.ip.icmpErrorsSuppressed).toBe(4);
  });

  test("ICMP errors are rate limited by a token bucket", () => {
    const l = new IpLayer({ icmpErrorBurst: 2, icmpErrorRate: 1 });
    l.addIface({ name: "eth0", mac: US.mac, addr: US.ip, prefixLen: 24 });
    l.input(0, arpRequest(PEER, US.ip));
    const dg = datagram({ src: PEER.ip, dst: US.ip, payload: new Uint8Array(8) });
    const n = (t: number) => sends(l.unreachable(t, 3, dg)).length;
    expect([n(0), n(0), n(0), n(999), n(1000)]).toEqual([1, 1, 0, 0, 1]);
    expect(l.stats.ip.icmpRateLimited).toBe(2);
  });
});

describe("reassembly through the engine", () => {
  test("a timed-out reassembly with fragment zero sends time exceeded (code 1) to the source", () => {
    const l = warmHost();
    const first = ipFrame(PEER, { ident: 77, moreFrags: true, payload: new Uint8Array(16).fill(3) });
    expect(l.input(1000, first)).toEqual([]);
    expect(l.reasm.count).toBe(1);
    expect(l.tick(30_999)).toEqual([]);
    const out = sends(l.tick(31_000));
    expect(l.reasm.count).toBe(0);
    expect(out.length).toBe(1);
    const r = ipOf(out[0]!);
    expect(r.dst).toBe(PEER.ip);
    const m = parseIcmp(r.payload);
    if (!m.ok || m.value.kind !== "timeExceeded") throw new Error("not a time exceeded");
    expect(m.value.code).toBe(TimeExceededCode.REASSEMBLY);
    expect(m.value.quoted.length).toBe(36);
    expect(new Ipv4Packet(m.value.quoted).ident).toBe(77);
  });

  test("without fragment zero the timeout is silent", () => {
    const l = warmHost();
    l.input(0, ipFrame(PEER, { ident: 78, fragOffset: 16, payload: new Uint8Array(16) }));
    expect(l.tick(30_000)).toEqual([]);
    expect(l.stats.frag.timeout).toBe(1);
  });
});

describe("snapshot", () => {
  test("interfaces, routes, ARP entries survive a JSON round trip and keep working", () => {
    const l = warmHost();
    l.addRoute({ dest: ip("192.168.0.0"), prefixLen: 16, gateway: PEER.ip, iface: "eth0", metric: 5 });
    l.arp.addStatic(ip("10.0.2.9"), mac("02:00:00:00:00:09"), "eth0");
    const snap = l.snapshot();
    const back = IpLayer.restore(JSON.parse(JSON.stringify(snap)));
    expect(back.snapshot()).toEqual(snap);
    expect(back.ifaces.list()).toEqual(l.ifaces.list());
    expect(back.routes.list()).toEqual(l.routes.list());
    // The restored layer sends to the gateway without asking ARP again.
    const r = back.output(1, { dst: ip("8.8.4.4"), proto: 17, payload: new Uint8Array(4) });
    if (!r.ok) throw new Error(r.error);
    expect(formatMac(sends(r.actions)[0]!.subarray(0, 6))).toBe(formatMac(GW.mac));
    // And the ident counter carries on rather than restarting.
    const r2 = l.output(1, { dst: ip("8.8.4.4"), proto: 17, payload: new Uint8Array(4) });
    if (!r2.ok) throw new Error(r2.error);
    expect(ipOf(sends(r.actions)[0]!).ident).toBe(ipOf(sends(r2.actions)[0]!).ident);
  });

  test("garbage snapshots restore to an empty, working layer", () => {
    for (const g of [null, 7, "x", { ifaces: [{ name: "" }], routes: [{ prefixLen: 99 }], arp: [{ ip: "no" }] }]) {
      const l = IpLayer.restore(g);
      expect(l.ifaces.list()).toEqual([]);
      expect(l.routes.list()).toEqual([]);
      expect(l.arp.size).toBe(0);
    }
  });
});
