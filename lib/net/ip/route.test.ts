// Tests for the routing table (longest-prefix match, metrics, default route) and interface validation.
import { test, expect, describe } from "vitest";
import { RouteTable } from "./route.ts";
import { IfaceTable, ifaceBroadcast, makeIface } from "./iface.ts";
import { IpLayer } from "./ip.ts";
import { ip, rng, randInt, US } from "./ip.fixture.ts";

describe("routes", () => {
  const table = (): RouteTable => {
    const t = new RouteTable();
    t.add({ dest: 0, prefixLen: 0, gateway: ip("10.0.2.2"), iface: "eth0" });
    t.add({ dest: ip("10.0.2.0"), prefixLen: 24, iface: "eth0" });
    t.add({ dest: ip("10.0.0.0"), prefixLen: 8, gateway: ip("10.0.2.254"), iface: "eth0" });
    t.add({ dest: ip("10.1.2.0"), prefixLen: 24, gateway: ip("192.168.1.1"), iface: "eth1" });
    t.add({ dest: ip("10.1.2.3"), prefixLen: 32, gateway: ip("192.168.1.9"), iface: "eth1" });
    return t;
  };

  test("longest prefix wins; on-link next hop is the destination itself", () => {
    const t = table();
    expect(t.lookup(ip("10.0.2.77"))).toMatchObject({ iface: "eth0", nextHop: ip("10.0.2.77") });
    expect(t.lookup(ip("10.9.9.9"))).toMatchObject({ iface: "eth0", nextHop: ip("10.0.2.254") });
    expect(t.lookup(ip("10.1.2.4"))).toMatchObject({ iface: "eth1", nextHop: ip("192.168.1.1") });
    expect(t.lookup(ip("10.1.2.3"))).toMatchObject({ iface: "eth1", nextHop: ip("192.168.1.9") });
    expect(t.lookup(ip("8.8.8.8"))).toMatchObject({ iface: "eth0", nextHop: ip("10.0.2.2") });
  });

  test("LPM agrees with a brute-force search over random tables", () => {
    const r = rng(77);
    for (let iter = 0; iter < 50; iter++) {
      const t = new RouteTable();
      const routes: { dest: number; prefixLen: number; gateway: number }[] = [];
      for (let k = 0; k < 30; k++) {
        const prefixLen = randInt(r, 0, 32);
        const gateway = k + 1; // unique, identifies the route
        const res = t.add({ dest: randInt(r, 0, 0xffffffff), prefixLen, gateway, iface: "eth0" });
        if (res.ok) routes.push(res.value);
      }
      for (let q = 0; q < 200; q++) {
        const dst = r() < 0.5 ? randInt(r, 0, 0xffffffff) : (routes[randInt(r, 0, routes.length - 1)]!.dest | randInt(r, 0, 255)) >>> 0;
        let best: (typeof routes)[number] | null = null;
        for (const x of routes) {
          const m = x.prefixLen === 0 ? 0 : (0xffffffff << (32 - x.prefixLen)) >>> 0;
          if (((dst & m) >>> 0) === x.dest && (!best || x.prefixLen > best.prefixLen)) best = x;
        }
        const got = t.lookup(dst);
        expect(got?.route.gateway ?? null).toBe(best?.gateway ?? null);
      }
    }
  });

  test("no match without a default route; removing the default leaves the others", () => {
    const t = table();
    expect(t.remove(0, 0)).toBe(1);
    expect(t.lookup(ip("8.8.8.8"))).toBeNull();
    expect(t.lookup(ip("10.0.2.1"))).not.toBeNull();
  });

  test("equal prefixes: lower metric wins, then the older route; re-adding replaces", () => {
    const t = new RouteTable();
    t.add({ dest: 0, prefixLen: 0, gateway: ip("10.0.2.2"), iface: "eth0", metric: 10 });
    t.add({ dest: 0, prefixLen: 0, gateway: ip("10.0.2.3"), iface: "eth0", metric: 5 });
    t.add({ dest: 0, prefixLen: 0, gateway: ip("10.0.2.4"), iface: "eth0", metric: 5 });
    expect(t.lookup(1)!.nextHop).toBe(ip("10.0.2.3"));
    t.add({ dest: 0, prefixLen: 0, gateway: ip("10.0.2.3"), iface: "eth0", metric: 20 });
    expect(t.list().length).toBe(3);
    expect(t.lookup(1)!.nextHop).toBe(ip("10.0.2.4"));
  });

  test("dest is normalised to its prefix; bad routes are refused; removeIface; snapshot round trip", () => {
    const t = table();
    const r = t.add({ dest: ip("172.16.5.5"), prefixLen: 12, iface: "eth2" });
    expect(r.ok && r.value.dest).toBe(ip("172.16.0.0"));
    expect(t.add({ dest: 0, prefixLen: 33, iface: "eth0" }).ok).toBe(false);
    expect(t.add({ dest: -1, prefixLen: 8, iface: "eth0" }).ok).toBe(false);
    expect(t.add({ dest: 0, prefixLen: 8, iface: "" }).ok).toBe(false);
    expect(RouteTable.restore(JSON.parse(JSON.stringify(t.snapshot()))).list()).toEqual(t.list());
    expect(t.removeIface("eth1")).toBe(2);
    expect(t.lookup(ip("10.1.2.3"))!.iface).toBe("eth0");
  });

  test("the engine adds connected routes and refuses off-link gateways", () => {
    const l = new IpLayer();
    l.addIface({ name: "eth0", mac: "52:54:00:12:34:56", addr: "10.0.2.15", prefixLen: 24 });
    expect(l.routes.list()).toEqual([{ dest: ip("10.0.2.0"), prefixLen: 24, gateway: 0, iface: "eth0", metric: 0 }]);
    expect(l.setDefaultRoute(ip("192.168.0.1"), "eth0").ok).toBe(false);
    expect(l.addRoute({ dest: 0, prefixLen: 0, gateway: ip("10.0.2.2"), iface: "eth9" }).ok).toBe(false);
    expect(l.setDefaultRoute(ip("10.0.2.2"), "eth0").ok).toBe(true);
    l.removeIface("eth0");
    expect(l.routes.list()).toEqual([]);
  });
});

describe("interfaces", () => {
  test("validation: names, MACs, addresses, prefixes, MTU", () => {
    const ok = { name: "eth0", mac: "52:54:00:12:34:56", addr: "10.0.2.15", prefixLen: 24 };
    const made = makeIface(ok);
    expect(made.ok && made.value).toEqual({ name: "eth0", mac: US.mac, addr: US.ip, prefixLen: 24, mtu: 1500 });
    for (const bad of [
      { ...ok, name: "" },
      { ...ok, mac: "01:00:5e:00:00:01" },
      { ...ok, mac: "zz" },
      { ...ok, addr: "0.0.0.0" },
      { ...ok, addr: "224.0.0.1" },
      { ...ok, addr: "10.0.2" },
      { ...ok, prefixLen: 33 },
      { ...ok, mtu: 67 },
      { ...ok, mtu: 70000 },
    ])
      expect(makeIface(bad).ok).toBe(false);
  });

  test("unique names and addresses; broadcast addresses; snapshot", () => {
    const t = new IfaceTable();
    expect(t.add({ name: "eth0", mac: "52:54:00:12:34:56", addr: "10.0.2.15", prefixLen: 24 }).ok).toBe(true);
    expect(t.add({ name: "eth0", mac: "52:54:00:12:34:57", addr: "10.0.3.15", prefixLen: 24 }).ok).toBe(false);
    expect(t.add({ name: "eth1", mac: "52:54:00:12:34:57", addr: "10.0.2.15", prefixLen: 24 }).ok).toBe(false);
    expect(t.add({ name: "eth1", mac: "52:54:00:12:34:57", addr: "192.168.7.1", prefixLen: 31, mtu: 9000 }).ok).toBe(true);
    expect(ifaceBroadcast(t.get("eth0")!)).toBe(ip("10.0.2.255"));
    expect(ifaceBroadcast(t.get("eth1")!)).toBeNull(); // RFC 3021
    expect(t.isBroadcast(ip("10.0.2.255"))).toBe(true);
    expect(t.isBroadcast(ip("255.255.255.255"))).toBe(true);
    expect(t.isBroadcast(ip("192.168.7.1"))).toBe(false);
    expect(IfaceTable.restore(JSON.parse(JSON.stringify(t.snapshot()))).list()).toEqual(t.list());
  });
});
