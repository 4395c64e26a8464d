// The ip server: IPv4 over Ethernet between pf and the transports, around the
// IpLayer engine of lib/net/ip (ARP, ICMP, fragments, routes). Datagrams for
// tcp and udp go up as descriptors into the buffer they arrived in; segments
// coming down get their IPv4 and Ethernet headers written in place, in the
// headroom the transport left, and go on to pf without a copy. Only what the
// engine builds itself (ARP, ICMP, fragments, reassembled datagrams) is copied
// into ip's own pool. Interfaces, routes and the ARP cache survive a restart in
// the server's store.
import { IPCALL, NET, SRV_CTL, SYS } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { PoolOwner } from "../lib/ipc/pool.ts";
import { EHOSTUNREACH, EINVAL, ErrnoError, ETIMEDOUT } from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import type { ServerDef } from "../lib/sys/server.ts";
import { loadStore, saveStore } from "../lib/sys/store.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import type { Packet, Port } from "../lib/net/port.ts";
import { complete, fail, netCallHandler, num, type NetCall } from "../lib/net/netcall.ts";
import { IpLayer, type IpAction } from "../lib/net/ip/ip.ts";
import { writeEthernetHeader } from "../lib/net/ip/link.ts";
import { emitIpv4, IpProtocol } from "../lib/net/ipv4.ts";
import { EtherType } from "../lib/net/ethernet.ts";
import { formatIpv4Addr, parseIpv4Addr } from "../lib/net/addr.ts";
import { ETH_HLEN, IP_HLEN, TAG_DF, TAG_ICMP_ERR, TAG_UNREACH, upTag } from "../lib/net/stackproto.ts";

const POOL_BUFFERS = 256;
const POOL_BUF = 65_536 + 64; // a reassembled datagram fits one buffer
const IFACE = "eth0";
const DEFAULT_MAC = "52:54:00:12:34:56";

interface Pinger {
  call: NetCall;
  ident: number;
  seq: number;
  deadline: number;
}

interface State {
  links: Links;
  pool: PoolOwner;
  ip: IpLayer;
  ident: number;
  pingIdent: number;
  pings: Pinger[];
  lastTick: number;
  lastSave: number;
  stats: { up: number; down: number; fastPath: number; slowPath: number; noBuffer: number; noRing: number; icmpErrors: number };
}

/** The engine's clock: wall time, so ARP ages stay true across a restart (see IpLayer.restore). */
const clock = () => performance.timeOrigin + performance.now();

function configure(proc: Proc, links: Links): IpLayer {
  const x = links.config as { addr?: string; gateway?: string; mac?: string };
  const [a, p] = String(x.addr ?? "10.0.2.15/24").split("/");
  const addr = parseIpv4Addr(a ?? "");
  const prefixLen = Number(p);
  const ip = new IpLayer();
  if (addr === null || !(prefixLen >= 0 && prefixLen <= 32)) {
    proc.log(`bad address '${x.addr}'; no interface configured`);
    return ip;
  }
  const r = ip.addIface({ name: IFACE, mac: x.mac ?? DEFAULT_MAC, addr, prefixLen });
  if (!r.ok) proc.log(`interface not added: ${r.error}`);
  const gw = x.gateway ? parseIpv4Addr(x.gateway) : null;
  if (gw !== null) {
    const g = ip.setDefaultRoute(gw, IFACE);
    if (!g.ok) proc.log(`default route not added: ${g.error}`);
  }
  return ip;
}

/** The layer over its links with the engine `ip`: its own pool, joined to tcp and udp. */
function layerState(links: Links, pool: PoolOwner, ip: IpLayer): State {
  links.openUp("tcp");
  links.openUp("udp");
  const rnd = new Uint16Array(2);
  crypto.getRandomValues(rnd);
  return {
    links, pool, ip, ident: rnd[0]!, pingIdent: rnd[1]!, pings: [], lastTick: 0, lastSave: 0,
    stats: { up: 0, down: 0, fastPath: 0, slowPath: 0, noBuffer: 0, noRing: 0, icmpErrors: 0 },
  };
}

/** The engine configured from the command line, saved at once so that a restart finds it. */
function configured(proc: Proc, links: Links): IpLayer {
  const ip = configure(proc, links);
  saveStore(links.store, ip.snapshot());
  return ip;
}

/**
 * A first start (a server of its own, or a layer of servers/stack.ts): a new pool lent to
 * the stack, the interface and routes of the command line, channels to tcp and udp.
 */
export function freshLayer(proc: Proc, links: Links): State {
  const pool = links.ownPool(POOL_BUFFERS, POOL_BUF, ["pf", "nic", "tcp", "udp"]);
  return layerState(links, pool, configured(proc, links));
}

/**
 * After a restart: interfaces, routes and the ARP cache from the store (the command line's
 * if the last generation saved nothing); its pool found among those Links restored and
 * the channels to pf, tcp and udp restored with it (openUp opens those the last
 * generation did not get to).
 */
export function restartLayer(proc: Proc, links: Links): State {
  const pool = links.ownPool(POOL_BUFFERS, POOL_BUF, ["pf", "nic", "tcp", "udp"]);
  const saved = loadStore(links.store);
  return layerState(links, pool, saved ? IpLayer.restore(saved, {}, clock()) : configured(proc, links));
}

/** Copies a frame the engine built into ip's pool and sends it to pf. */
function sendFrame(s: State, frame: Uint8Array): void {
  const pf = s.links.port("pf");
  const d = pf ? s.pool.alloc(frame.length) : null;
  if (!d || !pf) {
    s.stats.noBuffer++;
    return;
  }
  s.pool.view(d)!.set(frame);
  if (!pf.send({ ...d, tag: 0, a: 0, b: 0 })) {
    s.stats.noRing++;
    s.pool.release(d);
  }
}

/** Carries out the engine's actions. `from`: the packet the input came in (deliveries alias it). */
function act(s: State, proc: Proc, actions: IpAction[], from?: { p: Packet; frame: Uint8Array }): boolean {
  let kept = false;
  for (const a of actions) {
    if ("send" in a) sendFrame(s, a.send);
    else if ("deliver" in a) {
      const d = a.deliver;
      const port = d.proto === IpProtocol.TCP ? s.links.port("tcp") : d.proto === IpProtocol.UDP ? s.links.port("udp") : undefined;
      if (!port) continue;
      const ihl = d.datagram.length - d.payload.length;
      const tag = upTag(d.proto, ihl);
      const inFrame = from && d.datagram.buffer === from.frame.buffer &&
        d.datagram.byteOffset >= from.frame.byteOffset && d.datagram.byteOffset + d.datagram.length <= from.frame.byteOffset + from.frame.length;
      if (inFrame && !kept) {
        // Up in the buffer it arrived in: the descriptor just narrows to the datagram.
        const off = from.p.off + (d.datagram.byteOffset - from.frame.byteOffset);
        if (port.send({ ...from.p, off, len: d.datagram.length, tag, a: d.src, b: d.dst })) {
          kept = true;
          s.stats.up++;
        } else s.stats.noRing++;
        continue;
      }
      // Reassembled (or a second delivery): a copy in ip's pool.
      const nd = s.pool.alloc(d.datagram.length);
      if (!nd) {
        s.stats.noBuffer++;
        continue;
      }
      s.pool.view(nd)!.set(d.datagram);
      if (port.send({ ...nd, tag, a: d.src, b: d.dst })) s.stats.up++;
      else s.pool.release(nd);
    } else if ("echoReply" in a) {
      const r = a.echoReply;
      const i = s.pings.findIndex((x) => x.ident === r.ident && x.seq === r.seq);
      if (i >= 0) {
        const [pg] = s.pings.splice(i, 1);
        complete(proc, pg!.call, { rttMs: r.rtt, ttl: r.ttl, bytes: r.data.length, from: r.src });
      }
    } else if ("icmpError" in a) {
      // To udp, which reports it to a connected socket (ECONNREFUSED, ...); TCP treats
      // ICMP errors as soft errors (RFC 1122 §4.2.3.9): counted only.
      s.stats.icmpErrors++;
      const e = a.icmpError;
      const udp = e.original.protocol === IpProtocol.UDP && e.original.data.length >= 4 ? s.links.port("udp") : undefined;
      const d = udp ? s.pool.alloc(4) : null;
      if (udp && d) {
        s.pool.view(d)!.set(e.original.data.subarray(0, 4));
        const tag = TAG_ICMP_ERR | (e.code & 0xff) | ((e.kind === "destUnreachable" ? 0 : 1) << 8);
        if (!udp.send({ ...d, tag, a: e.original.dst >>> 0, b: e.original.src >>> 0 })) s.pool.release(d);
      }
    }
  }
  return kept;
}

/** A segment from a transport: headers written in place when the next hop is known, else the engine's slow path. */
function down(s: State, proc: Proc, p: Packet, seg: Uint8Array, now: number): void {
  if ((p.tag & TAG_UNREACH) !== 0) {
    act(s, proc, s.ip.unreachable(now, p.tag & 0xff, seg));
    s.links.pools.release(p); // the error quotes a copy; the transport's buffer goes back
    return;
  }
  const proto = p.tag & 0xff;
  const ttl = (p.tag >>> 8) & 0xff || 64;
  const dst = p.a >>> 0;
  const route = s.ip.routes.lookup(dst);
  const iface = route ? s.ip.ifaces.get(route.iface) : undefined;
  const neigh = route ? s.ip.arp.lookup(now, route.nextHop) : null;
  const pf = s.links.port("pf");
  const src = p.b >>> 0 || (iface?.addr ?? 0);
  if (iface && neigh && pf && p.off >= ETH_HLEN + IP_HLEN && seg.length + IP_HLEN <= iface.mtu && !neigh.stale) {
    const buf = s.links.pools.get(p.pool)!.buffer(p)!;
    const start = p.off - IP_HLEN - ETH_HLEN;
    s.ident = (s.ident + 1) & 0xffff;
    emitIpv4(
      { src, dst, protocol: proto, ttl, tos: 0, ident: s.ident, dontFrag: (p.tag & TAG_DF) !== 0, moreFrags: false, fragOffset: 0, payload: seg },
      buf.subarray(p.off - IP_HLEN, p.off + seg.length),
    );
    writeEthernetHeader(buf.subarray(start, start + ETH_HLEN), neigh.mac, iface.mac, EtherType.IPV4);
    if (pf.send({ ...p, off: start, len: seg.length + IP_HLEN + ETH_HLEN, tag: 0, a: 0, b: 0 })) {
      s.stats.fastPath++;
      return;
    }
    s.stats.noRing++;
    s.links.pools.release(p);
    return;
  }
  // ARP to resolve, fragments to cut, or no route: the engine copies.
  s.stats.slowPath++;
  const r = s.ip.output(now, { src: src || undefined, dst, proto, payload: seg, ttl, dontFrag: (p.tag & TAG_DF) !== 0 && seg.length + IP_HLEN <= (iface?.mtu ?? 1500) });
  if (r.ok) act(s, proc, r.actions);
  s.links.pools.release(p);
}

function onCall(s: State, proc: Proc, c: NetCall, now: number): void {
  if (c.op !== SYS.PING) throw new ErrnoError(EINVAL, `ip: call ${c.op} not supported`);
  const dst = num(c.args, "dst", 0) >>> 0;
  const seq = num(c.args, "seq", 0) & 0xffff;
  const size = Math.max(0, Math.min(65_000, num(c.args, "size", 56)));
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i + 0x10) & 0xff;
  const r = s.ip.echoRequest(now, dst, s.pingIdent, seq, data);
  if (!r.ok) throw new ErrnoError(r.errno, r.error);
  s.pings.push({ call: c, ident: s.pingIdent, seq, deadline: performance.now() + num(c.args, "timeoutMs", 1000) });
  act(s, proc, r.actions);
}

export const server: ServerDef<State> = {
  initFresh: (p) => freshLayer(p, new Links(p)),
  initRestart: (p) => restartLayer(p, new Links(p)),
  handlers: {
    ...linkHandlers<State>(),
    [IPCALL.ROUTE]: (s, m: Message) => {
      const dst = Number((m.payload as { dst?: unknown } | undefined)?.dst) >>> 0;
      // 127/8 is reached from 127.0.0.1, as on Linux: both ends of a loopback connection are 127/8.
      if (dst >>> 24 === 127) return { src: 0x7f000001, mtu: 65535, iface: "lo" };
      const r = s.ip.routes.lookup(dst);
      const iface = r ? s.ip.ifaces.get(r.iface) : undefined;
      if (!r || !iface) throw new ErrnoError(EHOSTUNREACH, `no route to ${formatIpv4Addr(dst)}`);
      return { src: iface.addr, mtu: iface.mtu, iface: iface.name };
    },
    [IPCALL.ADDRS]: (s) => s.ip.ifaces.list().map((i) => ({ name: i.name, addr: i.addr, prefix: i.prefixLen, mtu: i.mtu })),
    [NET.CALL]: netCallHandler<State>((s, proc, c) => onCall(s, proc, c, clock()), (s) => s.links.flush()),
    [SRV_CTL]: (s) => ({
      ifaces: s.ip.ifaces.list().map((i) => `${i.name} ${formatIpv4Addr(i.addr)}/${i.prefixLen} mtu ${i.mtu}`),
      routes: s.ip.routes.list().map((r) => `${formatIpv4Addr(r.dest)}/${r.prefixLen} via ${r.gateway ? formatIpv4Addr(r.gateway) : "link"} dev ${r.iface}`),
      server: s.stats, engine: s.ip.stats,
    }),
  },
  poll(s, proc) {
    const now = clock();
    let n = 0;
    const pf = s.links.port("pf");
    if (pf) {
      n += pf.recv(64, (p, frame) => {
        const kept = act(s, proc, s.ip.input(now, frame, IFACE), { p, frame });
        if (!kept) s.links.pools.release(p);
      });
    }
    for (const name of ["tcp", "udp"]) {
      const t: Port | undefined = s.links.port(name);
      if (t) n += t.recv(64, (p, seg) => down(s, proc, p, seg, now));
    }
    const pnow = performance.now();
    if (pnow - s.lastTick > 100) {
      s.lastTick = pnow;
      act(s, proc, s.ip.tick(now));
      n++; // what the timers produced (ARP retries, reassembly time-exceeded) goes out now, not with the next frame
      for (let i = s.pings.length - 1; i >= 0; i--) {
        if (s.pings[i]!.deadline <= pnow) fail(proc, s.pings.splice(i, 1)[0]!.call, ETIMEDOUT, "no echo reply");
      }
      if (pnow - s.lastSave > 1000) {
        s.lastSave = pnow;
        saveStore(s.links.store, s.ip.snapshot());
      }
    }
    if (n > 0) s.links.flush();
    return n > 0;
  },
  nextDeadline: () => 100,
};
