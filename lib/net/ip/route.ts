// The IPv4 routing table: longest-prefix match (RFC 1812 §5.2.4.3), then lowest metric, then oldest.
import type { Parsed } from "../types.ts";
import { prefixMask } from "../addr.ts";

/** One route. All fields plain numbers and strings, so the table snapshots as is. */
export interface Route {
  /** Network address, host bits cleared. */
  dest: number;
  /** 0..32; 0 with dest 0 is the default route. */
  prefixLen: number;
  /** Next-hop router, or 0 for on-link (the destination itself is the next hop). */
  gateway: number;
  /** Interface name the route sends out of. */
  iface: string;
  /** Lower wins among routes of equal prefix length. */
  metric: number;
}

/** Where lookup says to send a datagram. */
export interface RouteResult {
  iface: string;
  /** The address to resolve with ARP: the gateway, or the destination when on-link. */
  nextHop: number;
  route: Route;
}

/** Routes kept sorted by prefix length (longest first), then metric, then insertion: lookup is a first-match scan. */
export class RouteTable {
  private routes: Route[] = [];

  /** Adds a route, normalising dest to its prefix; a route with the same dest/prefix/gateway/iface is replaced. */
  add(r: { dest: number; prefixLen: number; gateway?: number; iface: string; metric?: number }): Parsed<Route> {
    if (!Number.isInteger(r.prefixLen) || r.prefixLen < 0 || r.prefixLen > 32)
      return { ok: false, error: `route: prefix length ${r.prefixLen} not in 0..32` };
    if (!Number.isInteger(r.dest) || r.dest < 0 || r.dest > 0xffffffff) return { ok: false, error: `route: bad destination` };
    const gateway = r.gateway ?? 0;
    if (!Number.isInteger(gateway) || gateway < 0 || gateway > 0xffffffff) return { ok: false, error: `route: bad gateway` };
    if (typeof r.iface !== "string" || r.iface === "") return { ok: false, error: `route: no interface` };
    const metric = r.metric ?? 0;
    if (!Number.isInteger(metric) || metric < 0) return { ok: false, error: `route: bad metric` };
    const route: Route = { dest: (r.dest & prefixMask(r.prefixLen)) >>> 0, prefixLen: r.prefixLen, gateway, iface: r.iface, metric };
    this.routes = this.routes.filter((x) => !sameRoute(x, route));
    // Insert after every route that sorts before or equal (stable: older routes win ties).
    let i = 0;
    while (i < this.routes.length && !before(route, this.routes[i]!)) i++;
    this.routes.splice(i, 0, route);
    return { ok: true, value: { ...route } };
  }

  /** Removes routes matching dest/prefixLen (and gateway/iface if given). Returns how many went. */
  remove(dest: number, prefixLen: number, gateway?: number, iface?: string): number {
    const d = (dest & prefixMask(prefixLen)) >>> 0;
    const n = this.routes.length;
    this.routes = this.routes.filter(
      (x) =>
        !(x.dest === d && x.prefixLen === prefixLen && (gateway === undefined || x.gateway === gateway) && (iface === undefined || x.iface === iface)),
    );
    return n - this.routes.length;
  }

  /** Removes every route out of an interface (it went away). */
  removeIface(iface: string): number {
    const n = this.routes.length;
    this.routes = this.routes.filter((x) => x.iface !== iface);
    return n - this.routes.length;
  }

  /** Copies of all routes, in lookup order. */
  list(): Route[] {
    return this.routes.map((r) => ({ ...r }));
  }

  /** The best route to `dst`, or null if none matches. */
  lookup(dst: number): RouteResult | null {
    for (const r of this.routes) {
      if (((dst & prefixMask(r.prefixLen)) >>> 0) === r.dest)
        return { iface: r.iface, nextHop: r.gateway !== 0 ? r.gateway : dst >>> 0, route: { ...r } };
    }
    return null;
  }

  snapshot(): Route[] {
    return this.list();
  }

  /** Rebuilds a table; malformed entries are skipped. */
  static restore(snap: unknown): RouteTable {
    const t = new RouteTable();
    if (!Array.isArray(snap)) return t;
    for (const s of snap) if (s && typeof s === "object") t.add(s as Route);
    return t;
  }
}

function sameRoute(a: Route, b: Route): boolean {
  return a.dest === b.dest && a.prefixLen === b.prefixLen && a.gateway === b.gateway && a.iface === b.iface;
}

/** True if `a` must come strictly before `b` in lookup order. */
function before(a: Route, b: Route): boolean {
  if (a.prefixLen !== b.prefixLen) return a.prefixLen > b.prefixLen;
  return a.metric < b.metric;
}
