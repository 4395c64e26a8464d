// Tests for the ARP cache: resolution, retries, queue limits, ageing and re-resolution, RFC 826 merge, snapshot.
import { test, expect, describe } from "vitest";
import { type ArpRepr, ArpOp, parseArp } from "../arp.ts";
import { formatMac } from "../addr.ts";
import { type ArpAction, ArpCache } from "./arp.ts";
import { type Iface, makeIface } from "./iface.ts";
import { GW, PEER, US, ip, mac } from "./ip.fixture.ts";

const IFACE: Iface = (() => {
  const r = makeIface({ name: "eth0", mac: US.mac, addr: US.ip, prefixLen: 24 });
  if (!r.ok) throw new Error(r.error);
  return r.value;
})();
const ifaceOf = (n: string) => (n === "eth0" ? IFACE : undefined);

/** A frame as ip.ts hands it over: 14-byte header with the destination MAC still zero, then a marker byte. */
const frame = (tag: number): Uint8Array => {
  const f = new Uint8Array(20);
  f[14] = tag;
  return f;
};
const sent = (out: ArpAction[]): Uint8Array[] => out.flatMap((a) => ("send" in a ? [a.send] : []));
const arpOf = (f: Uint8Array): ArpRepr => {
  const r = parseArp(f.subarray(14));
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const reply = (from: { mac: Uint8Array; ip: number }): ArpRepr => ({ op: ArpOp.REPLY, senderMac: from.mac, senderIp: from.ip, targetMac: US.mac, targetIp: US.ip });
const request = (from: { mac: Uint8Array; ip: number }, target: number): ArpRepr => ({ op: ArpOp.REQUEST, senderMac: from.mac, senderIp: from.ip, targetMac: new Uint8Array(6), targetIp: target });

describe("resolution", () => {
  test("first frame queues and broadcasts a request; the reply releases the queue in order", () => {
    const c = new ArpCache();
    const out: ArpAction[] = [];
    c.send(0, IFACE, PEER.ip, frame(1), out);
    c.send(0, IFACE, PEER.ip, frame(2), out);
    expect(sent(out).length).toBe(1); // one request, not one per frame
    const req = arpOf(sent(out)[0]!);
    expect([req.op, req.senderIp, req.targetIp]).toEqual([ArpOp.REQUEST, US.ip, PEER.ip]);
    expect(formatMac(sent(out)[0]!.subarray(0, 6))).toBe("ff:ff:ff:ff:ff:ff");
    expect(c.queued(PEER.ip)).toBe(2);
    const out2: ArpAction[] = [];
    c.input(10, IFACE, reply(PEER), out2);
    const rel = sent(out2);
    expect(rel.map((f) => f[14])).toEqual([1, 2]);
    for (const f of rel) expect(formatMac(f.subarray(0, 6))).toBe(formatMac(PEER.mac));
    expect(c.resolving(PEER.ip)).toBe(false);
    // Resolved: later frames go straight out.
    const out3: ArpAction[] = [];
    c.send(20, IFACE, PEER.ip, frame(3), out3);
    expect(sent(out3).map((f) => f[14])).toEqual([3]);
  });

  test("retry schedule: 3 requests 1 s apart, then the queue is reported unresolved", () => {
    const c = new ArpCache();
    const out: ArpAction[] = [];
    c.send(500, IFACE, PEER.ip, frame(1), out);
    const at = (t: number) => {
      const o: ArpAction[] = [];
      c.tick(t, ifaceOf, o);
      return o;
    };
    expect(at(1499)).toEqual([]);
    expect(sent(at(1500)).length).toBe(1);
    expect(sent(at(2500)).length).toBe(1);
    const last = at(3500);
    expect(last.length).toBe(1);
    const u = last[0]!;
    if (!("unresolved" in u)) throw new Error("expected unresolved");
    expect(u.unresolved.nextHop).toBe(PEER.ip);
    expect(u.unresolved.frames.map((f) => f[14])).toEqual([1]);
    expect(c.stats.requestsSent).toBe(3);
    expect(c.stats.resolveFailed).toBe(1);
    expect(c.resolving(PEER.ip)).toBe(false);
    // A new frame starts over.
    const o: ArpAction[] = [];
    c.send(4000, IFACE, PEER.ip, frame(2), o);
    expect(sent(o).length).toBe(1);
  });

  test("queue is bounded per address: the oldest frames are dropped and counted", () => {
    const c = new ArpCache({ queueLimit: 3 });
    const out: ArpAction[] = [];
    for (let i = 1; i <= 5; i++) c.send(0, IFACE, PEER.ip, frame(i), out);
    expect(c.queued(PEER.ip)).toBe(3);
    expect(c.stats.queueDropped).toBe(2);
    const o: ArpAction[] = [];
    c.input(1, IFACE, reply(PEER), o);
    expect(sent(o).map((f) => f[14])).toEqual([3, 4, 5]);
  });

  test("concurrent resolutions are bounded", () => {
    const c = new ArpCache({ maxPending: 2 });
    const out: ArpAction[] = [];
    for (let i = 0; i < 4; i++) c.send(0, IFACE, ip(`10.0.2.${100 + i}`), frame(i), out);
    expect(sent(out).length).toBe(2);
    expect(c.stats.pendingFull).toBe(2);
  });
});

describe("ageing", () => {
  test("a stale entry is still used but re-resolved with unicast polls; a silent neighbour is forgotten", () => {
    const c = new ArpCache();
    c.input(0, IFACE, request(PEER, US.ip), []);
    expect(c.lookup(59_999, PEER.ip)!.stale).toBe(false);
    expect(c.lookup(60_000, PEER.ip)!.stale).toBe(true);
    const out: ArpAction[] = [];
    c.send(60_000, IFACE, PEER.ip, frame(1), out);
    const f = sent(out);
    expect(f.length).toBe(2); // the poll and the frame itself
    expect(arpOf(f[0]!).targetIp).toBe(PEER.ip);
    expect(formatMac(f[0]!.subarray(0, 6))).toBe(formatMac(PEER.mac)); // unicast poll, RFC 1122 §2.3.2.1
    expect(f[1]![14]).toBe(1);
    const o: ArpAction[] = [];
    c.tick(61_000, ifaceOf, o);
    c.tick(62_000, ifaceOf, o);
    c.tick(63_000, ifaceOf, o);
    expect(sent(o).length).toBe(2);
    expect(o.some((a) => "unresolved" in a)).toBe(false); // nothing was held back
    expect(c.lookup(63_000, PEER.ip)).toBeNull();
    expect(c.stats.refreshFailed).toBe(1);
  });

  test("a stale entry refreshed by a reply is reachable again", () => {
    const c = new ArpCache();
    c.input(0, IFACE, request(PEER, US.ip), []);
    c.send(70_000, IFACE, PEER.ip, frame(1), []);
    c.input(70_100, IFACE, reply(PEER), []);
    expect(c.resolving(PEER.ip)).toBe(false);
    expect(c.lookup(70_200, PEER.ip)!.stale).toBe(false);
  });

  test("unused entries are garbage-collected after maxAgeMs; static entries never", () => {
    const c = new ArpCache({ maxAgeMs: 100_000 });
    c.input(0, IFACE, request(PEER, US.ip), []);
    c.addStatic(GW.ip, GW.mac, "eth0");
    c.tick(99_999, ifaceOf, []);
    expect(c.size).toBe(2);
    c.tick(100_000, ifaceOf, []);
    expect(c.lookup(100_000, PEER.ip)).toBeNull();
    expect(c.lookup(10_000_000, GW.ip)!.stale).toBe(false);
  });

  test("the cache is bounded: the least recently confirmed entry is evicted", () => {
    const c = new ArpCache({ maxEntries: 2 });
    c.input(1, IFACE, request({ mac: mac("02:00:00:00:00:01"), ip: ip("10.0.2.101") }, US.ip), []);
    c.input(2, IFACE, request({ mac: mac("02:00:00:00:00:02"), ip: ip("10.0.2.102") }, US.ip), []);
    c.input(3, IFACE, request({ mac: mac("02:00:00:00:00:03"), ip: ip("10.0.2.103") }, US.ip), []);
    expect(c.size).toBe(2);
    expect(c.lookup(3, ip("10.0.2.101"))).toBeNull();
    expect(c.stats.evicted).toBe(1);
  });
});

describe("RFC 826 reception", () => {
  test("requests for our address are answered to the asker's MAC", () => {
    const c = new ArpCache();
    const out: ArpAction[] = [];
    c.input(0, IFACE, request(GW, US.ip), out);
    const f = sent(out);
    expect(f.length).toBe(1);
    expect(formatMac(f[0]!.subarray(0, 6))).toBe(formatMac(GW.mac));
    expect(arpOf(f[0]!)).toEqual({ op: ArpOp.REPLY, senderMac: US.mac, senderIp: US.ip, targetMac: GW.mac, targetIp: GW.ip });
  });

  test("merge: packets not for us update existing entries but never add new ones", () => {
    const c = new ArpCache();
    c.input(0, IFACE, request(PEER, ip("10.0.2.99")), []);
    expect(c.lookup(0, PEER.ip)).toBeNull();
    c.input(0, IFACE, request(PEER, US.ip), []);
    const moved = { mac: mac("02:11:22:33:44:55"), ip: PEER.ip };
    c.input(5, IFACE, request(moved, ip("10.0.2.99")), []); // e.g. a gratuitous ARP after a NIC swap
    expect(formatMac(c.lookup(5, PEER.ip)!.mac)).toBe("02:11:22:33:44:55");
    expect(c.stats.updated).toBe(1);
  });

  test("gratuitous ARP from a known neighbour updates it; the conflict on our own address is counted", () => {
    const c = new ArpCache();
    c.input(0, IFACE, request(PEER, US.ip), []);
    const g = { mac: mac("02:99:99:99:99:99"), ip: PEER.ip };
    c.input(1, IFACE, request(g, PEER.ip), []);
    expect(formatMac(c.lookup(1, PEER.ip)!.mac)).toBe("02:99:99:99:99:99");
    const out: ArpAction[] = [];
    c.input(2, IFACE, request({ mac: mac("02:66:66:66:66:66"), ip: US.ip }, US.ip), out);
    expect(out).toEqual([]);
    expect(c.stats.conflicts).toBe(1);
  });

  test("probes (sender 0.0.0.0) are answered but teach nothing; multicast senders are ignored", () => {
    const c = new ArpCache();
    const out: ArpAction[] = [];
    c.input(0, IFACE, request({ mac: PEER.mac, ip: 0 }, US.ip), out);
    expect(sent(out).length).toBe(1);
    expect(c.size).toBe(0);
    const o2: ArpAction[] = [];
    c.input(0, IFACE, request({ mac: mac("01:00:5e:00:00:01"), ip: PEER.ip }, US.ip), o2);
    expect(o2).toEqual([]);
    expect(c.stats.badSender).toBe(1);
  });

  test("static entries are not overwritten by ARP traffic", () => {
    const c = new ArpCache();
    c.addStatic(PEER.ip, PEER.mac, "eth0");
    c.input(0, IFACE, request({ mac: mac("02:00:00:00:00:66"), ip: PEER.ip }, US.ip), []);
    expect(formatMac(c.lookup(0, PEER.ip)!.mac)).toBe(formatMac(PEER.mac));
  });
});

describe("snapshot", () => {
  test("entries survive a JSON round trip; pending resolutions do not", () => {
    const c = new ArpCache();
    c.input(123, IFACE, request(PEER, US.ip), []);
    c.addStatic(GW.ip, GW.mac, "eth0");
    c.send(200, IFACE, ip("10.0.2.77"), frame(1), []);
    const snap = JSON.parse(JSON.stringify(c.snapshot()));
    const d = ArpCache.restore(snap);
    expect(d.snapshot()).toEqual(c.snapshot());
    expect(d.lookup(123, PEER.ip)).toEqual(c.lookup(123, PEER.ip));
    expect(d.resolving(ip("10.0.2.77"))).toBe(false);
  });

  test("restored under a clock that began anew, entries from the future are stale, not trusted", () => {
    const c = new ArpCache();
    c.input(5_000_000, IFACE, request(PEER, US.ip), []);
    const d = ArpCache.restore(c.snapshot(), {}, 100);
    expect(d.lookup(100, PEER.ip)!.stale).toBe(true);
    const out: ArpAction[] = [];
    d.send(100, IFACE, PEER.ip, frame(1), out);
    expect(sent(out).length).toBe(2); // the frame goes out, and a poll re-verifies the neighbour
  });
});
