// The IPv4 host engine (RFC 791, RFC 1122 §3): frames in -> deliveries, replies and errors out; no I/O, no clock.
import type { Parsed } from "../types.ts";
import { IPV4_BROADCAST, isBroadcastMac, isMulticastIpv4, isMulticastMac, macEqual, broadcastMac } from "../addr.ts";
import { parseArp } from "../arp.ts";
import { ETHERNET_HEADER_LEN, EtherType } from "../ethernet.ts";
import { IPV4_HEADER_LEN, IpProtocol, Ipv4Packet, type Ipv4Repr, parseIpv4 } from "../ipv4.ts";
import { IcmpPacket, type QuotedDatagram, TimeExceededCode, UnreachableCode, parseIcmp, parseQuoted, quoteDatagram } from "../icmp.ts";
import { EINVAL, EMSGSIZE } from "../../sys/errno.ts";
import { type Iface, type IfaceConfig, type IfaceSnapshot, IfaceTable, isBroadcastFor, onLink } from "./iface.ts";
import { type Route, RouteTable } from "./route.ts";
import { type ArpAction, type ArpEntrySnapshot, ArpCache } from "./arp.ts";
import { Reassembler, fragment } from "./frag.ts";
import { ICMP_ERROR_TOS, EchoTracker, TokenBucket, errorSubject, icmpBytes, icmpTypeKnown, mayReportError } from "./icmp.ts";
import { multicastMac, writeEthernetHeader } from "./link.ts";
import {
  DEFAULT_IP_OPTIONS, EADDRNOTAVAIL, ENETUNREACH, type IpAction, type IpOptions, type IpStats, type OutputRequest, type OutputResult, newIpStats,
} from "./actions.ts";

export * from "./actions.ts";

/** The durable state (docs/design.md §6): interfaces, routes, ARP entries, and the ident counter. Plain and JSON-safe. */
export interface IpSnapshot {
  version: 1;
  ifaces: IfaceSnapshot[];
  routes: Route[];
  arp: ArpEntrySnapshot[];
  nextIdent: number;
}

export class IpLayer {
  readonly opts: IpOptions;
  readonly ifaces: IfaceTable;
  readonly routes: RouteTable;
  readonly arp: ArpCache;
  readonly reasm: Reassembler;
  readonly stats: { ip: IpStats; arp: ArpCache["stats"]; frag: Reassembler["stats"] };
  private readonly protocols: Set<number>;
  private readonly icmpBucket: TokenBucket;
  private readonly echo: EchoTracker;
  /** Next IP identification (RFC 6864: unique per src/dst/proto while fragments may be alive; one counter suffices). */
  private nextIdent: number;

  constructor(opts: Partial<IpOptions> = {}, state?: { ifaces: IfaceTable; routes: RouteTable; arp: ArpCache; nextIdent: number }) {
    this.opts = { ...DEFAULT_IP_OPTIONS, ...opts };
    this.ifaces = state?.ifaces ?? new IfaceTable();
    this.routes = state?.routes ?? new RouteTable();
    this.arp = state?.arp ?? new ArpCache(this.opts.arp);
    this.reasm = new Reassembler(this.opts.reasm);
    this.nextIdent = (state?.nextIdent ?? 1) & 0xffff;
    this.stats = { ip: newIpStats(), arp: this.arp.stats, frag: this.reasm.stats };
    this.protocols = new Set(this.opts.protocols);
    this.icmpBucket = new TokenBucket(this.opts.icmpErrorRate, this.opts.icmpErrorBurst);
    this.echo = new EchoTracker(this.opts.maxEchoPending, this.opts.echoTimeoutMs);
  }

  // ---- configuration ----

  /** Adds an interface and its connected route (the subnet is on-link). */
  addIface(cfg: IfaceConfig): Parsed<Iface> {
    const r = this.ifaces.add(cfg);
    if (!r.ok) return r;
    const i = r.value;
    this.routes.add({ dest: i.addr, prefixLen: i.prefixLen, iface: i.name });
    return r;
  }

  /** Removes an interface with its routes, ARP entries and pending frames. */
  removeIface(name: string): boolean {
    if (!this.ifaces.remove(name)) return false;
    this.routes.removeIface(name);
    this.arp.removeIface(name);
    return true;
  }

  /** Adds a route out of an existing interface; a gateway must be on that interface's subnet (RFC 1122 §3.3.1.1). */
  addRoute(r: { dest: number; prefixLen: number; gateway?: number; iface: string; metric?: number }): Parsed<Route> {
    const i = this.ifaces.get(r.iface);
    if (!i) return { ok: false, error: `route: no interface ${r.iface}` };
    if (r.gateway && !onLink(i, r.gateway)) return { ok: false, error: `route: gateway is not on ${r.iface}'s subnet` };
    return this.routes.add(r);
  }

  /** Sets (replaces) the default route via `gateway`. */
  setDefaultRoute(gateway: number, iface: string): Parsed<Route> {
    this.routes.remove(0, 0);
    return this.addRoute({ dest: 0, prefixLen: 0, gateway, iface });
  }

  /** A gratuitous ARP for an interface's address, to send when it comes up or changes (RFC 5227 §3). */
  announce(name: string): IpAction[] {
    const i = this.ifaces.get(name);
    if (!i) return [];
    return this.fromArp([{ send: this.arp.gratuitous(i), iface: i.name }]);
  }

  // ---- receive ----

  /** Handles one Ethernet frame from the NIC of interface `ifname` (default: the first interface). */
  input(now: number, frame: Uint8Array, ifname?: string): IpAction[] {
    const st = this.stats.ip;
    st.framesIn++;
    const iface = ifname === undefined ? this.ifaces.first() : this.ifaces.get(ifname);
    if (!iface) {
      st.noIface++;
      return [];
    }
    if (frame.length < ETHERNET_HEADER_LEN) {
      st.linkTruncated++;
      return [];
    }
    const dmac = frame.subarray(0, 6);
    const linkBcast = isBroadcastMac(dmac);
    if (!linkBcast && !isMulticastMac(dmac) && !macEqual(dmac, iface.mac)) {
      st.linkNotForUs++;
      return [];
    }
    const type = (frame[12]! << 8) | frame[13]!;
    const body = frame.subarray(ETHERNET_HEADER_LEN);
    const out: IpAction[] = [];
    if (type === EtherType.ARP) {
      const a = parseArp(body);
      if (!a.ok) {
        st.arpBad++;
        return [];
      }
      const arpOut: ArpAction[] = [];
      this.arp.input(now, iface, a.value, arpOut);
      this.fromArp(arpOut, out);
    } else if (type === EtherType.IPV4) {
      this.receive(now, iface, body, linkBcast || isMulticastMac(dmac), false, out);
    } else {
      st.linkUnknownType++;
    }
    return out;
  }

  /** Checks a datagram, reassembles it if fragmented, and dispatches it by protocol. */
  private receive(now: number, iface: Iface, bytes: Uint8Array, linkGroup: boolean, local: boolean, out: IpAction[]): void {
    const st = this.stats.ip;
    st.datagramsIn++;
    const n = bytes.length;
    if (n < IPV4_HEADER_LEN) return void st.truncated++;
    if (bytes[0]! >> 4 !== 4) return void st.badVersion++;
    const hl = (bytes[0]! & 0x0f) * 4;
    if (hl < IPV4_HEADER_LEN) return void st.badHeader++;
    if (hl > n) return void st.truncated++;
    const tl = (bytes[2]! << 8) | bytes[3]!;
    if (tl < hl) return void st.badHeader++;
    if (tl > n) return void st.truncated++;
    let dg = bytes.subarray(0, tl); // drop link padding
    const p = new Ipv4Packet(dg);
    if (!p.verifyChecksum()) return void st.badChecksum++;
    const { src, dst } = p;
    const ours = this.ifaces.byAddr(dst) !== undefined || (local && dst >>> 24 === 127);
    const bcast = !ours && (dst === IPV4_BROADCAST || isBroadcastFor(iface, dst) || this.ifaces.isBroadcast(dst));
    if (!ours && !bcast) return void st.notForUs++;
    if (linkGroup && !bcast) return void st.linkBroadcastUnicast++;
    if (!local && this.martian(src, bcast)) return void st.badSource++;
    if (bcast && p.protocol !== IpProtocol.UDP) return void st.broadcastNotUdp++;
    if (p.moreFrags || p.fragOffset !== 0) {
      const r = this.reasm.add(now, p);
      if (r.kind !== "done") return;
      dg = r.datagram;
    }
    const parsed = parseIpv4(dg, false);
    if (!parsed.ok) return void st.badHeader++; // cannot happen after the checks above
    const repr = parsed.value;
    if (repr.protocol === IpProtocol.ICMP) return this.icmpInput(now, repr, out);
    if (!this.protocols.has(repr.protocol)) {
      st.unknownProtocol++;
      if (!bcast) out.push(...this.unreachable(now, UnreachableCode.PROTOCOL, dg));
      return;
    }
    st.delivered++;
    out.push({ deliver: { proto: repr.protocol, src: repr.src, dst: repr.dst, payload: repr.payload, ipRepr: repr, datagram: dg, iface: iface.name, broadcast: bcast } });
  }

  /** True for sources no host may use (RFC 1122 §3.2.1.3, RFC 1812 §5.3.7). 0.0.0.0 is allowed only to a broadcast (booting hosts). */
  private martian(src: number, toBroadcast: boolean): boolean {
    if (src === 0) return !toBroadcast;
    return src >>> 24 === 127 || src >>> 28 >= 0xe || this.ifaces.isBroadcast(src) || this.ifaces.byAddr(src) !== undefined;
  }

  private icmpInput(now: number, repr: Ipv4Repr, out: IpAction[]): void {
    const st = this.stats.ip;
    st.icmpIn++;
    const c = IcmpPacket.check(repr.payload);
    if (!c.ok) return void st.icmpMalformed++;
    if (!c.value.verifyChecksum()) return void st.icmpBadChecksum++;
    const m = parseIcmp(repr.payload, false);
    if (!m.ok) return void (icmpTypeKnown(c.value.msgType) ? st.icmpMalformed++ : st.icmpUnknownType++);
    const msg = m.value;
    switch (msg.kind) {
      case "echoRequest": {
        // RFC 1122 §3.2.2.6: reply from the address the request was sent to, with the same data.
        st.echoRequestsIn++;
        const payload = icmpBytes({ kind: "echoReply", ident: msg.ident, seq: msg.seq, data: msg.data });
        const r = this.output(now, { src: repr.dst, dst: repr.src, proto: IpProtocol.ICMP, payload, tos: repr.tos });
        if (r.ok) {
          st.echoRepliesSent++;
          out.push(...r.actions);
        }
        return;
      }
      case "echoReply": {
        st.echoRepliesIn++;
        const sent = this.echo.match(repr.src, msg.ident, msg.seq);
        if (sent === null) return void st.echoUnmatched++;
        out.push({ echoReply: { src: repr.src, dst: repr.dst, ident: msg.ident, seq: msg.seq, data: msg.data.slice(), ttl: repr.ttl, rtt: now - sent } });
        return;
      }
      case "destUnreachable":
      case "timeExceeded": {
        const q = parseQuoted(msg.quoted);
        // about a datagram we sent: from one of our addresses (127/8 too, turned around here)
        if (!q.ok || (this.ifaces.byAddr(q.value.src) === undefined && q.value.src >>> 24 !== 127)) return void st.icmpErrorsBogus++;
        st.icmpErrorsIn++;
        const mtu = msg.kind === "destUnreachable" ? msg.mtu : 0;
        out.push({ icmpError: { from: repr.src, kind: msg.kind, code: msg.code, mtu, original: q.value, local: false } });
        return;
      }
    }
  }

  // ---- send ----

  /** Sends a datagram: the frames to transmit now (fragments if needed), or nothing yet while ARP resolves. */
  output(now: number, req: OutputRequest): OutputResult {
    const st = this.stats.ip;
    st.outRequests++;
    const fail = (errno: number, error: string, mtu?: number): OutputResult => {
      st.outErrors++;
      return mtu === undefined ? { ok: false, errno, error } : { ok: false, errno, error, mtu };
    };
    const dst = req.dst >>> 0;
    const ttl = req.ttl ?? this.opts.defaultTtl;
    // RFC 1122 §3.2.1.7: a host MUST NOT send a datagram with TTL 0.
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) return fail(EINVAL, `ip: ttl ${ttl} not in 1..255`);
    if (!Number.isInteger(req.proto) || req.proto < 0 || req.proto > 255) return fail(EINVAL, `ip: bad protocol ${req.proto}`);
    if (IPV4_HEADER_LEN + req.payload.length > 65535) return fail(EMSGSIZE, `ip: datagram over 65535 bytes`, 65535);
    const srcGiven = req.src ? req.src >>> 0 : 0;
    const srcIface = srcGiven ? this.ifaces.byAddr(srcGiven) : undefined;
    // 127/8 is ours too, on the way to ourselves (a socket bound to 127.0.0.1 talking to another)
    const loopSrc = srcGiven >>> 24 === 127 && dst >>> 24 === 127;
    if (srcGiven && !srcIface && !loopSrc) return fail(EADDRNOTAVAIL, `ip: source is not one of our addresses`);

    // Choose the interface and next hop.
    let iface: Iface | undefined;
    let nextHop = dst;
    const local = this.ifaces.byAddr(dst) !== undefined || dst >>> 24 === 127;
    if (local) iface = this.ifaces.byAddr(dst) ?? srcIface ?? this.ifaces.first();
    else if (dst === IPV4_BROADCAST || isMulticastIpv4(dst)) iface = srcIface ?? this.ifaceFor(dst);
    else {
      const r = this.routes.lookup(dst);
      iface = r ? this.ifaces.get(r.iface) : undefined;
      if (r) nextHop = r.nextHop;
    }
    if (!iface) return fail(ENETUNREACH, `ip: no route to host`);
    const src = srcGiven || (local && dst >>> 24 === 127 ? dst : iface.addr);
    const repr: Ipv4Repr = {
      src, dst, protocol: req.proto, ttl, tos: (req.tos ?? 0) & 0xff, ident: this.takeIdent(),
      dontFrag: req.dontFrag === true, moreFrags: false, fragOffset: 0, payload: req.payload,
    };
    const out: IpAction[] = [];
    if (local) {
      // Turned around here, whatever its size: there is no link MTU on the way to ourselves.
      st.loopback++;
      const f = fragment(repr, 65535);
      if (f.ok) this.receive(now, iface, f.datagrams[0]!, false, true, out);
      return { ok: true, actions: out };
    }
    const f = fragment(repr, iface.mtu, ETHERNET_HEADER_LEN);
    if (!f.ok) return fail(EMSGSIZE, `ip: datagram does not fit MTU ${iface.mtu}${f.error === "dontFrag" ? " and DF is set" : ""}`, iface.mtu);
    if (f.datagrams.length > 1) {
      st.outFragmented++;
      st.outFragments += f.datagrams.length;
    }
    const bcast = dst === IPV4_BROADCAST || isBroadcastFor(iface, dst);
    const arpOut: ArpAction[] = [];
    for (const frame of f.datagrams) {
      writeEthernetHeader(frame, bcast ? broadcastMac() : isMulticastIpv4(dst) ? multicastMac(dst) : new Uint8Array(6), iface.mac, EtherType.IPV4);
      if (bcast || isMulticastIpv4(dst)) arpOut.push({ send: frame, iface: iface.name });
      else this.arp.send(now, iface, nextHop, frame, arpOut);
    }
    this.fromArp(arpOut, out);
    return { ok: true, actions: out };
  }

  /** Sends an echo request (the in-OS ping client); its reply comes back from input() as an echoReply action. */
  echoRequest(now: number, dst: number, ident: number, seq: number, data: Uint8Array): OutputResult {
    const payload = icmpBytes({ kind: "echoRequest", ident: ident & 0xffff, seq: seq & 0xffff, data });
    // Recorded first: a ping to ourselves is answered inside output().
    this.echo.record(now, dst >>> 0, ident, seq);
    const r = this.output(now, { dst, proto: IpProtocol.ICMP, payload });
    if (!r.ok) this.echo.match(dst >>> 0, ident, seq);
    return r;
  }

  /**
   * An ICMP destination-unreachable about `original` (a datagram we received, header first), for
   * transports: PORT from UDP, PROTOCOL from here. Empty if RFC 1122 §3.2.2 forbids it or the rate limit hits.
   */
  unreachable(now: number, code: number, original: Uint8Array, mtu = 0): IpAction[] {
    return this.icmpError(now, "destUnreachable", code, original, mtu);
  }

  private icmpError(now: number, kind: "destUnreachable" | "timeExceeded", code: number, original: Uint8Array, mtu: number): IpAction[] {
    const st = this.stats.ip;
    const isBcast = (a: number) => this.ifaces.isBroadcast(a);
    const h = errorSubject(original);
    if (!h || !mayReportError(original, isBcast)) {
      st.icmpErrorsSuppressed++;
      return [];
    }
    if (!this.icmpBucket.take(now)) {
      st.icmpRateLimited++;
      return [];
    }
    const quoted = quoteDatagram(original);
    const payload = icmpBytes(kind === "destUnreachable" ? { kind, code, mtu, quoted } : { kind, code, quoted });
    const src = this.ifaces.byAddr(h.dst) ? h.dst : undefined;
    const r = this.output(now, { src, dst: h.src, proto: IpProtocol.ICMP, payload, tos: ICMP_ERROR_TOS });
    if (!r.ok) return [];
    st.icmpErrorsSent++;
    return r.actions;
  }

  // ---- time ----

  /** ARP retries and give-ups, reassembly timeouts (with time-exceeded, RFC 792 code 1), echo expiry. */
  tick(now: number): IpAction[] {
    const out: IpAction[] = [];
    const arpOut: ArpAction[] = [];
    this.arp.tick(now, (n) => this.ifaces.get(n), arpOut);
    this.fromArp(arpOut, out);
    for (const e of this.reasm.expire(now)) {
      if (e.quote) out.push(...this.icmpError(now, "timeExceeded", TimeExceededCode.REASSEMBLY, e.quote, 0));
    }
    this.stats.ip.echoTimedOut += this.echo.expire(now);
    return out;
  }

  // ---- durable state ----

  snapshot(): IpSnapshot {
    return { version: 1, ifaces: this.ifaces.snapshot(), routes: this.routes.snapshot(), arp: this.arp.snapshot(), nextIdent: this.nextIdent };
  }

  /**
   * Rebuilds an engine from snapshot() output (e.g. read back from a SAB after a restart). Bad parts
   * are skipped. `now` (the new clock) makes ARP entries from a later clock epoch stale (see ArpCache.restore).
   */
  static restore(snap: unknown, opts: Partial<IpOptions> = {}, now?: number): IpLayer {
    const s = (snap && typeof snap === "object" ? snap : {}) as Partial<IpSnapshot>;
    const merged = { ...DEFAULT_IP_OPTIONS, ...opts };
    return new IpLayer(opts, {
      ifaces: IfaceTable.restore(s.ifaces),
      routes: RouteTable.restore(s.routes),
      arp: ArpCache.restore(s.arp, merged.arp, now),
      nextIdent: typeof s.nextIdent === "number" ? s.nextIdent : 1,
    });
  }

  // ---- helpers ----

  private takeIdent(): number {
    const id = this.nextIdent;
    this.nextIdent = (this.nextIdent + 1) & 0xffff;
    return id;
  }

  /** The interface for a broadcast or multicast destination without a source: the route's, else the first. */
  private ifaceFor(dst: number): Iface | undefined {
    const r = this.routes.lookup(dst);
    return (r && this.ifaces.get(r.iface)) || this.ifaces.first();
  }

  /** Turns the ARP cache's requests into actions: sends, and host-unreachable for frames that never resolved. */
  private fromArp(arpOut: ArpAction[], out: IpAction[] = []): IpAction[] {
    for (const a of arpOut) {
      if ("send" in a) {
        this.stats.ip.framesOut++;
        out.push(a);
        continue;
      }
      const from = this.ifaces.get(a.unresolved.iface)?.addr ?? 0;
      for (const f of a.unresolved.frames) {
        const dg = f.subarray(ETHERNET_HEADER_LEN);
        const h = errorSubject(dg);
        if (!h || h.fragOffset !== 0) continue; // one report per datagram, from its first fragment
        this.stats.ip.hostUnreachable++;
        const original: QuotedDatagram = { src: h.src, dst: h.dst, protocol: h.protocol, data: dg.subarray(h.headerLen) };
        out.push({ icmpError: { from, kind: "destUnreachable", code: UnreachableCode.HOST, mtu: 0, original, local: true } });
      }
    }
    return out;
  }
}
