// The packet filter: parses an IPv4 packet, matches it against the state table, else the ruleset; counters and pfctl-style listings.
//
// Order per packet (pf's): a packet that belongs to a tracked connection passes without rule
// evaluation; otherwise the last matching rule (or the first matching `quick` one) decides, and
// a pass rule with `keep state` creates an entry. No rule matching: pass.
//
// Choices, documented because pf leaves them to configuration:
// - Structure is checked (IPv4 header, TCP/UDP/ICMP header lengths, TCP options, port 0), not
//   checksums unless `verifyChecksums`: IP, TCP and UDP verify them after us (or the NIC does).
//   Any structural error blocks the packet and counts it `malformed`.
// - There is no reassembly. A first fragment is filtered like a whole packet (its checksum is
//   never verified); a later fragment has no ports, so only rules without ports can match it and
//   it neither finds nor creates state.
// - An ICMP error (unreachable, time exceeded, parameter problem) passes as a state hit if the
//   datagram it quotes belongs to a tracked connection; it never creates state. ICMP echo requests
//   create state keyed by their ident; other ICMP messages are filtered by rules only.
// - TCP: any packet but a RST can create state (a SYN starts in SYN_SENT, anything else in
//   ESTABLISHED, so a pf restarted without its table picks up live connections). A bare SYN that
//   finds a CLOSED entry from the initiator's side drops it and is filtered afresh (port reuse).
// - A full state table (after expiry) blocks the packet that would create an entry (pf's
//   behaviour), unless the table evicts the least recently used entry (StateOptions.onFull).
// - replaceRules keeps every state, as pf does on reload: established connections survive a new
//   ruleset even if it would block them. Per-rule counters restart with the new rules; a state
//   whose creating rule is still in the new ruleset (same text) keeps pointing at it, others at -1.
//   replaceRules(rules, { flushStates: true }) drops the states as well (pfctl -F states).
// - `block return`: TCP gets "rst" (not for a RST), UDP, an ICMP echo request or another protocol
//   gets "icmp"; other ICMP and later fragments get no reply. The server builds the packet.
import { formatIpv4Addr } from "../addr.ts";
import { IcmpPacket, IcmpType, parseQuoted } from "../icmp.ts";
import { IpProtocol, parseIpv4 } from "../ipv4.ts";
import { parseTcp } from "../tcp-wire.ts";
import { parseUdp } from "../udp.ts";
import { TcpFlag } from "../types.ts";
import { formatRule, parseRule, ruleMatches, type Direction, type PacketInfo, type Rule } from "./rules.ts";
import { StateTable, type StateOptions, type StateSnapshot, type Tuple } from "./state.ts";

export interface FilterOptions extends Partial<StateOptions> {
  /** Also verify IPv4, TCP, UDP and ICMP checksums (bad ones count as malformed). Default false. */
  verifyChecksums?: boolean;
}

export interface Verdict {
  verdict: "pass" | "block";
  /** Index of the rule that decided (for a state hit: that created the state, if still in the ruleset). */
  rule?: number;
  /** True if the packet matched a state entry. */
  state?: boolean;
  /** For `block return`: the reply the server should send. */
  returnReply?: "rst" | "icmp";
}

export interface RuleCounters {
  /** Packets the rule was tried on. */
  evaluations: number;
  /** Packets it decided, plus state hits on the states it created. */
  packets: number;
  bytes: number;
}

export interface FilterCounters {
  /** Every packet passed / blocked (blocked includes malformed ones). */
  passed: number;
  blocked: number;
  stateHits: number;
  stateInserts: number;
  /** Packets blocked because a full state table refused their entry. */
  stateRefused: number;
  malformed: number;
}

export interface FilterSnapshot {
  version: 1;
  rules: Rule[];
  ruleCounters: RuleCounters[];
  counters: FilterCounters;
  states: StateSnapshot;
}

const ICMP_ERRORS = new Set<number>([IcmpType.DEST_UNREACHABLE, IcmpType.TIME_EXCEEDED, 12 /* parameter problem */]);
const newRuleCounters = (n: number): RuleCounters[] =>
  Array.from({ length: n }, () => ({ evaluations: 0, packets: 0, bytes: 0 }));

/** What check() learns from a packet before deciding. */
interface Classified extends PacketInfo {
  /** IP header + payload length. */
  bytes: number;
  /** TCP flag byte, 0 otherwise. */
  flags: number;
  /** Tuple for the state table, or null if the packet can neither create nor find state. */
  tuple: Tuple | null;
  /** For an ICMP error: the tuple of the quoted datagram and the direction it travelled. */
  quoted: { dir: Direction; tuple: Tuple } | null;
  /** May create state (a pass rule with keep state). */
  stateful: boolean;
  reply: "rst" | "icmp" | undefined;
}

export class PacketFilter {
  readonly states: StateTable;
  readonly verifyChecksums: boolean;
  counters: FilterCounters = { passed: 0, blocked: 0, stateHits: 0, stateInserts: 0, stateRefused: 0, malformed: 0 };
  private rules: Rule[];
  private ruleCounters: RuleCounters[];

  constructor(rules: readonly Rule[], options: FilterOptions = {}) {
    this.rules = rules.map((r) => ({ ...r }));
    this.ruleCounters = newRuleCounters(rules.length);
    this.states = new StateTable(options);
    this.verifyChecksums = options.verifyChecksums ?? false;
  }

  /** Decides one IPv4 packet going `dir` at time `now` (ms). Never throws. */
  check(now: number, dir: Direction, ipPacket: Uint8Array): Verdict {
    const p = this.classify(dir, ipPacket);
    if (p === null) {
      this.counters.malformed++;
      this.counters.blocked++;
      return { verdict: "block" };
    }
    const hit = p.tuple ? this.states.lookup(now, dir, p.tuple) : p.quoted ? this.states.lookup(now, p.quoted.dir, p.quoted.tuple) : null;
    if (hit) {
      const bareSyn = (p.flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN;
      if (hit.entry.state === "CLOSED" && bareSyn && hit.forward) this.states.remove(hit.entry);
      else {
        if (!p.quoted) this.states.track(now, hit, p.flags, p.bytes);
        this.counters.stateHits++;
        this.counters.passed++;
        const r = hit.entry.rule;
        if (r >= 0 && r < this.rules.length) {
          this.ruleCounters[r]!.packets++;
          this.ruleCounters[r]!.bytes += p.bytes;
          return { verdict: "pass", rule: r, state: true };
        }
        return { verdict: "pass", state: true };
      }
    }
    let m = -1;
    for (let i = 0; i < this.rules.length; i++) {
      this.ruleCounters[i]!.evaluations++;
      if (ruleMatches(this.rules[i]!, p)) {
        m = i;
        if (this.rules[i]!.quick) break;
      }
    }
    if (m < 0) {
      this.counters.passed++;
      return { verdict: "pass" };
    }
    const rule = this.rules[m]!;
    this.ruleCounters[m]!.packets++;
    this.ruleCounters[m]!.bytes += p.bytes;
    if (rule.action === "block") {
      this.counters.blocked++;
      return rule.returnReply && p.reply ? { verdict: "block", rule: m, returnReply: p.reply } : { verdict: "block", rule: m };
    }
    if (rule.keepState && p.stateful && p.tuple) {
      if (!this.states.insert(now, dir, p.tuple, p.flags, m, p.bytes)) {
        this.counters.stateRefused++;
        this.counters.blocked++;
        return { verdict: "block", rule: m };
      }
      this.counters.stateInserts++;
    }
    this.counters.passed++;
    return { verdict: "pass", rule: m };
  }

  /** Parses what the rules and the state table need; null if the packet is malformed. */
  private classify(dir: Direction, ip: Uint8Array): Classified | null {
    const v = this.verifyChecksums;
    const pr = parseIpv4(ip, v);
    if (!pr.ok) return null;
    const { src, dst, protocol: proto, payload } = pr.value;
    const p: Classified = {
      dir, proto, src, dst, srcPort: null, dstPort: null, bytes: (ip[0]! & 0x0f) * 4 + payload.length,
      flags: 0, tuple: null, quoted: null, stateful: false, reply: undefined,
    };
    if (pr.value.fragOffset > 0) return p; // a later fragment: no transport header
    const whole = !pr.value.moreFrags; // a first fragment's checksum covers bytes not here
    const withPorts = (sp: number, dp: number): Tuple => {
      p.srcPort = sp;
      p.dstPort = dp;
      return { proto, src, srcPort: sp, dst, dstPort: dp };
    };
    switch (proto) {
      case IpProtocol.TCP: {
        const t = parseTcp(payload, src, dst, v && whole);
        if (!t.ok) return null;
        p.flags = t.value.flags;
        p.tuple = withPorts(t.value.srcPort, t.value.dstPort);
        p.stateful = (p.flags & TcpFlag.RST) === 0;
        p.reply = p.stateful ? "rst" : undefined;
        return p;
      }
      case IpProtocol.UDP: {
        const u = parseUdp(payload, src, dst, v && whole);
        if (!u.ok) return null;
        p.tuple = withPorts(u.value.srcPort, u.value.dstPort);
        p.stateful = true;
        p.reply = "icmp";
        return p;
      }
      case IpProtocol.ICMP:
        return this.classifyIcmp(p, payload, v && whole) ? p : null;
      default:
        p.tuple = { proto, src, srcPort: 0, dst, dstPort: 0 };
        p.stateful = true;
        p.reply = "icmp";
        return p;
    }
  }

  /** Fills in an ICMP packet's state tuple (echo) or quoted datagram (errors); false if malformed. */
  private classifyIcmp(p: Classified, msg: Uint8Array, verify: boolean): boolean {
    const c = IcmpPacket.check(msg);
    if (!c.ok || (verify && !c.value.verifyChecksum())) return false;
    const icmp = c.value;
    const type = icmp.msgType;
    if (type === IcmpType.ECHO_REQUEST || type === IcmpType.ECHO_REPLY) {
      p.tuple = { proto: p.proto, src: p.src, srcPort: icmp.ident, dst: p.dst, dstPort: icmp.ident };
      p.stateful = type === IcmpType.ECHO_REQUEST;
      p.reply = type === IcmpType.ECHO_REQUEST ? "icmp" : undefined;
    } else if (ICMP_ERRORS.has(type)) {
      const q = parseQuoted(icmp.data);
      if (!q.ok) return false;
      const { src, dst, protocol, data } = q.value;
      const u16 = (o: number): number => (data[o]! << 8) | data[o + 1]!;
      let sp = 0, dp = 0;
      if (protocol === IpProtocol.TCP || protocol === IpProtocol.UDP) [sp, dp] = [u16(0), u16(2)];
      else if (protocol === IpProtocol.ICMP) {
        const qt = data[0]!;
        if (qt !== IcmpType.ECHO_REQUEST && qt !== IcmpType.ECHO_REPLY) return true; // rules only
        sp = dp = u16(4);
      }
      // The quoted datagram went the other way: it is what this host (or its peer) sent.
      p.quoted = { dir: p.dir === "in" ? "out" : "in", tuple: { proto: protocol, src, srcPort: sp, dst, dstPort: dp } };
    }
    return true;
  }

  /** The current ruleset (copies). */
  listRuleset(): Rule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Per-rule counters, by rule index (copies). */
  ruleStats(): RuleCounters[] {
    return this.ruleCounters.map((c) => ({ ...c }));
  }

  /**
   * Installs a new ruleset at run time. States are kept (pf's behaviour); states whose rule has
   * the same text in the new ruleset follow it, the others point at -1. Counters restart.
   */
  replaceRules(rules: readonly Rule[], opts: { flushStates?: boolean } = {}): void {
    const byText = new Map<string, number>();
    rules.forEach((r, i) => {
      const t = formatRule(r);
      if (!byText.has(t)) byText.set(t, i);
    });
    const remap = this.rules.map((r) => byText.get(formatRule(r)) ?? -1);
    this.rules = rules.map((r) => ({ ...r }));
    this.ruleCounters = newRuleCounters(rules.length);
    if (opts.flushStates) this.states.flush();
    else for (const e of this.states.entries()) e.rule = e.rule >= 0 ? (remap[e.rule] ?? -1) : -1;
  }

  /** Drops expired states; returns how many. Call it now and then (pf's purge interval). */
  expire(now: number): number {
    return this.states.expire(now);
  }

  /** The ruleset with counters, like `pfctl -vsr`. */
  listRules(): string {
    const perRule = new Array<number>(this.rules.length).fill(0);
    for (const e of this.states.entries()) if (e.rule >= 0 && e.rule < perRule.length) perRule[e.rule]!++;
    return this.rules
      .map((r, i) => {
        const c = this.ruleCounters[i]!;
        const col = (name: string, n: number): string => `${name}: ${String(n).padEnd(10)}`;
        return `@${i} ${formatRule(r)}\n  [ ${col("Evaluations", c.evaluations)}${col("Packets", c.packets)}${col("Bytes", c.bytes)}States: ${perRule[i]} ]`;
      })
      .join("\n");
  }

  /** The state table, like `pfctl -vss`: direction, protocol, endpoints, state, then age, expiry and traffic. */
  listStates(now: number): string {
    const lines: string[] = [];
    const names: Record<number, string> = { [IpProtocol.TCP]: "tcp", [IpProtocol.UDP]: "udp", [IpProtocol.ICMP]: "icmp" };
    for (const e of this.states.entries()) {
      const ported = e.proto === IpProtocol.TCP || e.proto === IpProtocol.UDP || e.proto === IpProtocol.ICMP;
      const end = (a: number, port: number): string => (ported ? `${formatIpv4Addr(a)}:${port}` : formatIpv4Addr(a));
      const pair = e.dir === "out" ? `${end(e.src, e.srcPort)} -> ${end(e.dst, e.dstPort)}` : `${end(e.dst, e.dstPort)} <- ${end(e.src, e.srcPort)}`;
      lines.push(`${e.dir.padEnd(3)} ${names[e.proto] ?? String(e.proto)} ${pair}       ${e.state}`);
      const secs = (ms: number): string => `${Math.max(0, Math.floor(ms / 1000))}s`;
      lines.push(
        `   age ${secs(now - e.created)}, expires in ${secs(e.expires - now)}, ${e.fwdPackets}:${e.revPackets} pkts, ` +
          `${e.fwdBytes}:${e.revBytes} bytes${e.rule >= 0 ? `, rule ${e.rule}` : ""}`,
      );
    }
    return lines.join("\n");
  }

  /** Global counters, like `pfctl -si`. */
  info(): string {
    const c = this.counters, s = this.states.counters;
    return [
      `passed ${c.passed}, blocked ${c.blocked}, malformed ${c.malformed}`,
      `states ${this.states.size}/${this.states.options.limit}: hits ${c.stateHits}, inserts ${c.stateInserts}, ` +
        `refused ${s.refused}, evicted ${s.evicted}, expired ${s.expired}, removed ${s.removed}`,
    ].join("\n");
  }

  /** Everything `ctl pf` shows: counters, rules, states. */
  describe(now: number): string {
    return `${this.info()}\n${this.listRules()}\n${this.listStates(now)}`.trimEnd();
  }

  /** Rules, counters and states as plain data, for a restarted pf (see restore). */
  snapshot(): FilterSnapshot {
    return {
      version: 1,
      rules: this.listRuleset(),
      ruleCounters: this.ruleStats(),
      counters: { ...this.counters },
      states: this.states.snapshot(),
    };
  }

  /**
   * Rebuilds a filter from a snapshot. Each rule is checked by printing and re-parsing it; a bad
   * rule fails the whole restore (a partial ruleset could open holes). Bad states are dropped.
   */
  static restore(snap: FilterSnapshot, options: FilterOptions = {}): { ok: true; filter: PacketFilter } | { ok: false; error: string } {
    if (snap?.version !== 1 || !Array.isArray(snap.rules)) return { ok: false, error: "pf: not a version 1 snapshot" };
    const rules: Rule[] = [];
    for (let i = 0; i < snap.rules.length; i++) {
      let r: ReturnType<typeof parseRule>;
      try {
        const line = snap.rules[i]!.line;
        r = parseRule(formatRule(snap.rules[i]!), Number.isSafeInteger(line) && line >= 0 ? line : 0);
      } catch {
        r = null;
      }
      if (r === null || "message" in r) return { ok: false, error: `pf: snapshot rule ${i} is not a valid rule` };
      rules.push(r);
    }
    const f = new PacketFilter(rules, options);
    f.states.restore(snap.states);
    for (const e of f.states.entries()) if (e.rule >= rules.length) e.rule = -1;
    const count = (v: unknown): number => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);
    f.ruleCounters = f.ruleCounters.map((_, i) => {
      const c = snap.ruleCounters?.[i];
      return { evaluations: count(c?.evaluations), packets: count(c?.packets), bytes: count(c?.bytes) };
    });
    for (const k of Object.keys(f.counters) as Array<keyof FilterCounters>) f.counters[k] = count(snap.counters?.[k]);
    return { ok: true, filter: f };
  }
}
