// Tests of the packet filter: rule order and quick, keep state, timeouts, the limit, counters, reloads, malformed packets, listings.
import { test, expect, describe } from "vitest";
import { PacketFilter, type FilterOptions } from "./filter.ts";
import { parseRules, type Rule } from "./rules.ts";
import { IpProtocol } from "../ipv4.ts";
import { TcpFlag, ipv4, ping, tcp, udp, unreachable } from "./packets.fixture.ts";

const { SYN, ACK, FIN, RST } = TcpFlag;
const ME = "10.0.2.15";
const PEER = "93.184.216.34";
const LAN = "10.0.2.2";

function rules(text: string): Rule[] {
  const r = parseRules(text);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.rules;
}
const pf = (text: string, opts?: FilterOptions): PacketFilter => new PacketFilter(rules(text), opts);

describe("rule order", () => {
  test("no rules, or no match: pass", () => {
    expect(pf("").check(0, "in", tcp(PEER, 1234, ME, 23))).toEqual({ verdict: "pass" });
    expect(pf("block out all").check(0, "in", tcp(PEER, 1234, ME, 23))).toEqual({ verdict: "pass" });
  });

  test("the last matching rule wins", () => {
    const f = pf("block in all\npass in proto tcp to port 22\nblock in proto tcp from 93.184.0.0/16 to port 22");
    expect(f.check(0, "in", tcp(LAN, 1234, ME, 22))).toEqual({ verdict: "pass", rule: 1 });
    expect(f.check(0, "in", tcp(PEER, 1234, ME, 22))).toEqual({ verdict: "block", rule: 2 });
    expect(f.check(0, "in", udp(LAN, 1234, ME, 22))).toEqual({ verdict: "block", rule: 0 });
    expect(f.check(0, "out", udp(ME, 1234, LAN, 22))).toEqual({ verdict: "pass" });
  });

  test("a matching quick rule wins at once and later rules are not evaluated", () => {
    const f = pf("block in quick proto udp to port 53\npass in all\npass in quick all");
    expect(f.check(0, "in", udp(LAN, 5000, ME, 53))).toEqual({ verdict: "block", rule: 0 });
    expect(f.check(0, "in", udp(LAN, 5000, ME, 54))).toEqual({ verdict: "pass", rule: 2 });
    expect(f.ruleStats().map((c) => c.evaluations)).toEqual([2, 1, 1]);
  });

  test("block return asks for a RST for TCP and ICMP unreachable for UDP; never a RST for a RST", () => {
    const f = pf("block return in all\nblock in proto tcp to port 7");
    expect(f.check(0, "in", tcp(PEER, 1, ME, 23))).toEqual({ verdict: "block", rule: 0, returnReply: "rst" });
    expect(f.check(0, "in", udp(PEER, 1, ME, 23))).toEqual({ verdict: "block", rule: 0, returnReply: "icmp" });
    expect(f.check(0, "in", ping(PEER, ME, 5))).toEqual({ verdict: "block", rule: 0, returnReply: "icmp" });
    expect(f.check(0, "in", tcp(PEER, 1, ME, 23, RST))).toEqual({ verdict: "block", rule: 0 });
    expect(f.check(0, "in", tcp(PEER, 1, ME, 7))).toEqual({ verdict: "block", rule: 1 });
  });
});

describe("keep state", () => {
  const ruleset = "block in all\npass out all keep state";

  test("replies to outgoing TCP pass while block-in-all is in force; other inbound stays blocked", () => {
    const f = pf(ruleset);
    expect(f.check(0, "out", tcp(ME, 40000, PEER, 80, SYN))).toEqual({ verdict: "pass", rule: 1 });
    expect(f.check(1, "in", tcp(PEER, 80, ME, 40000, SYN | ACK))).toEqual({ verdict: "pass", rule: 1, state: true });
    expect(f.check(2, "out", tcp(ME, 40000, PEER, 80, ACK))).toEqual({ verdict: "pass", rule: 1, state: true });
    expect([...f.states.entries()][0]!.state).toBe("ESTABLISHED");
    expect(f.check(3, "in", tcp(PEER, 80, ME, 40001, ACK)).verdict).toBe("block"); // another port
    expect(f.check(3, "in", tcp(PEER, 81, ME, 40000, ACK)).verdict).toBe("block");
    expect(f.check(3, "in", tcp("1.2.3.4", 80, ME, 40000, ACK)).verdict).toBe("block");
    expect(f.check(3, "in", udp(PEER, 80, ME, 40000)).verdict).toBe("block");
    expect(f.counters).toMatchObject({ passed: 3, blocked: 4, stateHits: 2, stateInserts: 1 });
  });

  test("UDP and ping replies pass; an ICMP error about a tracked datagram passes, an unrelated one does not", () => {
    const f = pf(ruleset);
    const query = udp(ME, 5353, "8.8.8.8", 53);
    expect(f.check(0, "out", query).verdict).toBe("pass");
    expect(f.check(1, "in", udp("8.8.8.8", 53, ME, 5353))).toMatchObject({ verdict: "pass", state: true });
    expect(f.check(2, "out", ping(ME, PEER, 77)).verdict).toBe("pass");
    expect(f.check(3, "in", ping(PEER, ME, 77, true))).toMatchObject({ verdict: "pass", state: true });
    expect(f.check(3, "in", ping(PEER, ME, 78, true)).verdict).toBe("block");
    expect(f.check(4, "in", unreachable("8.8.8.8", ME, query))).toMatchObject({ verdict: "pass", state: true });
    const other = udp(ME, 5354, "8.8.8.8", 53);
    expect(f.check(4, "in", unreachable("8.8.8.8", ME, other)).verdict).toBe("block");
    expect(f.check(5, "in", unreachable(PEER, ME, ping(ME, PEER, 77)))).toMatchObject({ verdict: "pass", state: true });
    expect(f.states.size).toBe(2); // errors create nothing
  });

  test("a state created inbound lets the outbound replies through a block-out-all", () => {
    const f = pf("block out all\npass in proto tcp to port 80 keep state");
    expect(f.check(0, "in", tcp(LAN, 5000, ME, 80, SYN)).verdict).toBe("pass");
    expect(f.check(0, "out", tcp(ME, 80, LAN, 5000, SYN | ACK))).toEqual({ verdict: "pass", rule: 1, state: true });
    expect(f.check(0, "out", tcp(ME, 80, LAN, 5001, SYN | ACK)).verdict).toBe("block");
  });

  test("state timeouts: an idle connection's replies are blocked once its state expires", () => {
    const f = pf(ruleset);
    f.check(0, "out", udp(ME, 5353, "8.8.8.8", 53));
    expect(f.check(59_999, "in", udp("8.8.8.8", 53, ME, 5353)).verdict).toBe("pass"); // refreshes to 119_999
    expect(f.check(119_998, "in", udp("8.8.8.8", 53, ME, 5353)).verdict).toBe("pass");
    expect(f.expire(179_998)).toBe(1);
    expect(f.check(179_998, "in", udp("8.8.8.8", 53, ME, 5353)).verdict).toBe("block");
    f.check(0, "out", tcp(ME, 40000, PEER, 80, SYN)); // SYN_SENT: 30 s
    expect(f.check(30_000, "in", tcp(PEER, 80, ME, 40000, SYN | ACK)).verdict).toBe("block");
  });

  test("a closed connection's state is replaced by a new SYN, which the current rules then judge", () => {
    const f = pf(ruleset);
    f.check(0, "out", tcp(ME, 40000, PEER, 80, SYN));
    f.check(0, "in", tcp(PEER, 80, ME, 40000, RST | ACK));
    expect([...f.states.entries()][0]!.state).toBe("CLOSED");
    expect(f.check(1, "in", tcp(PEER, 80, ME, 40000, ACK)).state).toBe(true); // stragglers still pass
    expect(f.check(2, "out", tcp(ME, 40000, PEER, 80, SYN))).toEqual({ verdict: "pass", rule: 1 });
    expect([...f.states.entries()][0]!.state).toBe("SYN_SENT");
    expect(f.states.counters.removed).toBe(1);
  });

  test("a full state table blocks the packet that would need a new state (refuse), counted", () => {
    const f = pf(ruleset, { limit: 1 });
    expect(f.check(0, "out", tcp(ME, 1, PEER, 80)).verdict).toBe("pass");
    expect(f.check(0, "out", tcp(ME, 2, PEER, 80))).toEqual({ verdict: "block", rule: 1 });
    expect([f.counters.stateRefused, f.states.counters.refused, f.counters.stateInserts]).toEqual([1, 1, 1]);
    const g = pf(ruleset, { limit: 1, onFull: "evictOldest" });
    g.check(0, "out", tcp(ME, 1, PEER, 80));
    expect(g.check(0, "out", tcp(ME, 2, PEER, 80)).verdict).toBe("pass");
    expect(g.check(0, "in", tcp(PEER, 80, ME, 1, SYN | ACK)).verdict).toBe("block");
    expect(g.check(0, "in", tcp(PEER, 80, ME, 2, SYN | ACK)).verdict).toBe("pass");
  });

  test("RSTs, echo replies and later fragments create no state", () => {
    const f = pf("pass all keep state");
    f.check(0, "out", tcp(ME, 1, PEER, 80, RST));
    f.check(0, "out", ping(ME, PEER, 1, true));
    f.check(0, "out", ipv4(ME, PEER, IpProtocol.UDP, new Uint8Array(16), { fragOffset: 1480 }));
    expect(f.states.size).toBe(0);
    f.check(0, "out", ipv4(ME, PEER, 47, new Uint8Array(4))); // GRE: keyed without ports
    expect(f.check(0, "in", ipv4(PEER, ME, 47, new Uint8Array(4)))).toMatchObject({ verdict: "pass", state: true });
  });
});

describe("counters", () => {
  test("per-rule evaluations, packets and bytes; state hits count towards the creating rule", () => {
    const f = pf("block in all\npass out proto tcp keep state\npass out proto udp");
    const syn = tcp(ME, 40000, PEER, 80, SYN); // 40 bytes
    f.check(0, "out", syn);
    f.check(0, "in", tcp(PEER, 80, ME, 40000, SYN | ACK));
    f.check(0, "out", udp(ME, 1, PEER, 2)); // 32 bytes
    f.check(0, "in", udp(PEER, 2, ME, 1));
    expect(syn.length).toBe(40);
    expect(f.ruleStats()).toEqual([
      { evaluations: 3, packets: 1, bytes: 32 },
      { evaluations: 3, packets: 2, bytes: 80 },
      { evaluations: 3, packets: 1, bytes: 32 },
    ]);
    expect(f.counters).toEqual({ passed: 3, blocked: 1, stateHits: 1, stateInserts: 1, stateRefused: 0, malformed: 0 });
  });
});

describe("replaceRules", () => {
  test("a block on port 80 added at run time blocks, and lifting it restores pass", () => {
    const f = pf("pass in all");
    expect(f.check(0, "in", tcp(LAN, 5000, ME, 80)).verdict).toBe("pass");
    f.replaceRules(rules("pass in all\nblock in proto tcp to port 80"));
    expect(f.check(1, "in", tcp(LAN, 5000, ME, 80))).toEqual({ verdict: "block", rule: 1 });
    expect(f.check(1, "in", tcp(LAN, 5000, ME, 81)).verdict).toBe("pass");
    f.replaceRules(rules("pass in all"));
    expect(f.check(2, "in", tcp(LAN, 5000, ME, 80))).toEqual({ verdict: "pass", rule: 0 });
    expect(f.ruleStats()).toEqual([{ evaluations: 1, packets: 1, bytes: 40 }]); // counters restart
  });

  test("states survive a reload that would block them, and follow their rule if it is still there", () => {
    const f = pf("pass out proto tcp keep state\npass out proto udp keep state");
    f.check(0, "out", tcp(ME, 40000, PEER, 80));
    f.check(0, "out", udp(ME, 5000, PEER, 53));
    f.replaceRules(rules("block all\npass out proto udp keep state"));
    expect(f.check(1, "in", tcp(PEER, 80, ME, 40000, SYN | ACK))).toEqual({ verdict: "pass", state: true });
    expect(f.check(1, "in", udp(PEER, 53, ME, 5000))).toEqual({ verdict: "pass", rule: 1, state: true });
    expect(f.check(1, "out", tcp(ME, 40001, PEER, 80)).verdict).toBe("block");
    f.replaceRules(rules("block all"), { flushStates: true });
    expect(f.check(2, "in", tcp(PEER, 80, ME, 40000, ACK)).verdict).toBe("block");
  });
});

describe("malformed packets", () => {
  test("are blocked even by a pass-all ruleset and counted", () => {
    const f = pf("pass all");
    const good = tcp(ME, 1, PEER, 80);
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      good.subarray(0, 19), // short IP header
      Uint8Array.from(good, (b, i) => (i === 0 ? 0x65 : b)), // version 6
      good.subarray(0, 30), // total length beyond the buffer
      ipv4(ME, PEER, IpProtocol.TCP, new Uint8Array(10)), // TCP header cut short
      tcp(ME, 0, PEER, 80), // port 0
      ipv4(ME, PEER, IpProtocol.UDP, Uint8Array.of(0, 1, 0, 2, 0, 99, 0, 0)), // UDP length beyond the datagram
      ipv4(ME, PEER, IpProtocol.ICMP, Uint8Array.of(8, 0, 0)), // ICMP shorter than its header
      ipv4(ME, PEER, IpProtocol.ICMP, Uint8Array.of(3, 3, 0, 0, 0, 0, 0, 0, 0x45, 0)), // error quoting too little
    ];
    for (const c of cases) expect(f.check(0, "in", c)).toEqual({ verdict: "block" });
    expect(f.counters).toMatchObject({ malformed: cases.length, blocked: cases.length, passed: 0 });
    expect(f.check(0, "in", good).verdict).toBe("pass");
  });

  test("checksums are only checked when asked", () => {
    const bad = tcp(ME, 1, PEER, 80);
    bad[bad.length - 1]! ^= 0xff; // the TCP checksum
    expect(pf("pass all").check(0, "in", bad).verdict).toBe("pass");
    const strict = pf("pass all", { verifyChecksums: true });
    expect(strict.check(0, "in", bad)).toEqual({ verdict: "block" });
    expect(strict.check(0, "in", tcp(ME, 1, PEER, 80)).verdict).toBe("pass");
    expect(strict.counters.malformed).toBe(1);
  });

  test("a later fragment has no ports: only port-less rules match it", () => {
    const f = pf("block in all\npass in proto udp to port 53\npass in proto udp from 10.0.2.0/24");
    const frag = (src: string): Uint8Array => ipv4(src, ME, IpProtocol.UDP, new Uint8Array(24), { fragOffset: 1480 });
    expect(f.check(0, "in", frag(PEER))).toEqual({ verdict: "block", rule: 0 });
    expect(f.check(0, "in", frag(LAN))).toEqual({ verdict: "pass", rule: 2 });
    const first = udp(PEER, 9, ME, 53, new Uint8Array(40));
    first[6] = 0x20; // MF, header checksum no longer right but not verified
    expect(f.check(0, "in", first)).toEqual({ verdict: "pass", rule: 1 });
  });
});

describe("listings and restart", () => {
  test("listRules prints rules with counters like pfctl -vsr; listStates like pfctl -vss", () => {
    const f = pf('block in all\npass out proto tcp keep state label "web"');
    f.check(0, "out", tcp(ME, 40000, PEER, 80));
    f.check(1500, "in", tcp(PEER, 80, ME, 40000, SYN | ACK));
    expect(f.listRules().split("\n")).toEqual([
      "@0 block in all",
      "  [ Evaluations: 1         Packets: 0         Bytes: 0         States: 0 ]",
      '@1 pass out proto tcp all keep state label "web"',
      "  [ Evaluations: 1         Packets: 2         Bytes: 80        States: 1 ]",
    ]);
    expect(f.listStates(3000).split("\n")).toEqual([
      `out tcp ${ME}:40000 -> ${PEER}:80       ESTABLISHED`,
      "   age 3s, expires in 86398s, 1:1 pkts, 40:40 bytes, rule 1",
    ]);
    const d = f.describe(3000);
    expect(d).toContain("passed 2, blocked 0, malformed 0");
    expect(d).toContain("states 1/10000: hits 1, inserts 1");
    expect(d).toContain("@1 pass out");
  });

  test("a filter restored from a JSON snapshot keeps rules, counters and states", () => {
    const f = pf("block in all\npass out all keep state");
    f.check(0, "out", tcp(ME, 40000, PEER, 80));
    f.check(0, "in", tcp(PEER, 80, ME, 9));
    const snap = JSON.parse(JSON.stringify(f.snapshot()));
    const r = PacketFilter.restore(snap);
    if (!r.ok) throw new Error(r.error);
    expect(r.filter.snapshot()).toEqual(f.snapshot());
    expect(r.filter.check(1, "in", tcp(PEER, 80, ME, 40000, SYN | ACK))).toEqual({ verdict: "pass", rule: 1, state: true });
    expect(r.filter.check(1, "in", tcp(PEER, 80, ME, 9)).verdict).toBe("block");
    expect(PacketFilter.restore({ ...snap, rules: [{ ...snap.rules[0], action: "allow" }] }).ok).toBe(false);
    expect(PacketFilter.restore({ ...snap, version: 2 }).ok).toBe(false);
  });
});
