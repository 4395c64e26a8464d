// Tests of the pf rule language: each construct, canonical printing, matching, and line-numbered errors.
import { test, expect, describe } from "vitest";
import { formatRule, parseRule, parseRules, ruleMatches, type PacketInfo, type Rule } from "./rules.ts";
import { ip } from "./packets.fixture.ts";

function one(text: string): Rule {
  const r = parseRules(text);
  if (!r.ok) throw new Error(`unexpected errors: ${JSON.stringify(r.errors)}`);
  expect(r.rules).toHaveLength(1);
  return r.rules[0]!;
}

function errorsOf(text: string): Array<{ line: number; message: string }> {
  const r = parseRules(text);
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify(text)}`);
  return r.errors;
}

const pkt = (over: Partial<PacketInfo> = {}): PacketInfo => ({
  dir: "in", proto: 6, src: ip("10.0.2.2"), dst: ip("10.0.2.15"), srcPort: 40000, dstPort: 80, ...over,
});

describe("grammar", () => {
  test("the brief's examples parse to the expected rules", () => {
    expect(one("block in proto tcp from any to any port 23")).toEqual({
      action: "block", returnReply: false, dir: "in", quick: false, proto: 6,
      from: { not: false, net: 0, prefix: 0 }, fromPort: null,
      to: { not: false, net: 0, prefix: 0 }, toPort: { op: "=", port: 23, hi: 23 },
      keepState: false, label: null, line: 1,
    });
    const r = one("pass in proto tcp from 10.0.2.0/24 to any port 80 keep state");
    expect(r.from).toEqual({ not: false, net: ip("10.0.2.0"), prefix: 24 });
    expect(r.keepState).toBe(true);
    const all = one("pass out all keep state");
    expect([all.dir, all.proto, all.from.prefix, all.to.prefix, all.keepState]).toEqual(["out", null, 0, 0, true]);
    const q = one("block in quick proto udp to port 53");
    expect([q.quick, q.proto, q.to.prefix, q.toPort]).toEqual([true, 17, 0, { op: "=", port: 53, hi: 53 }]);
    expect(one("pass in proto icmp").proto).toBe(1);
  });

  test("block return, no direction, proto any/all/number", () => {
    const r = one("block return proto tcp");
    expect([r.returnReply, r.dir, r.proto]).toEqual([true, null, 6]);
    expect(one("pass proto any").proto).toBeNull();
    expect(one("pass proto all").proto).toBeNull();
    expect(one("pass proto 47").proto).toBe(47);
  });

  test("addresses: host, network with host bits cleared, negation spaced or attached", () => {
    expect(one("pass from 1.2.3.4").from).toEqual({ not: false, net: ip("1.2.3.4"), prefix: 32 });
    expect(one("pass to 10.1.2.3/8").to).toEqual({ not: false, net: ip("10.0.0.0"), prefix: 8 });
    expect(one("pass from ! 10.0.0.0/8").from.not).toBe(true);
    expect(one("pass from !10.0.0.0/8").from).toEqual({ not: true, net: ip("10.0.0.0"), prefix: 8 });
  });

  test("ports: single, operators, inclusive range, on either side", () => {
    expect(one("pass proto tcp to port 1000:2000").toPort).toEqual({ op: ":", port: 1000, hi: 2000 });
    expect(one("pass proto tcp to port != 22").toPort).toEqual({ op: "!=", port: 22, hi: 22 });
    expect(one("pass proto tcp to port !=22").toPort?.op).toBe("!=");
    for (const op of ["<", "<=", ">", ">=", "="]) expect(one(`pass proto udp from port ${op} 1024`).fromPort?.op).toBe(op);
    const both = one("pass proto udp from 1.1.1.1 port 53 to any port 1024:65535");
    expect([both.fromPort?.port, both.toPort?.port, both.toPort?.hi]).toEqual([53, 1024, 65535]);
  });

  test("label, comments, blank lines, CRLF and line numbers", () => {
    const r = parseRules('# header\n\n  pass in all label "web # not a comment" # trailing\r\nblock out all\n');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.rules.map((x) => [x.line, x.action, x.label])).toEqual([[3, "pass", "web # not a comment"], [4, "block", null]]);
    expect(parseRules("")).toEqual({ ok: true, rules: [] });
  });

  test("formatRule prints canonical text that parses back to the same rule", () => {
    const texts = [
      "block in proto tcp from any to any port 23",
      "pass in proto tcp from 10.0.2.0/24 to any port 80 keep state",
      "pass out all keep state",
      "block return in quick proto udp from ! 192.168.0.0/16 port 1:1023 to 10.0.0.1 port >= 53",
      'pass proto 47 all label "gre"',
    ];
    for (const t of texts) {
      const r = one(t);
      const again = parseRule(formatRule(r), r.line);
      expect(again).toEqual(r);
    }
    expect(formatRule(one("pass in proto tcp from any to any"))).toBe("pass in proto tcp all");
    expect(formatRule(one("block in proto tcp to port 23"))).toBe("block in proto tcp from any to any port = 23");
  });
});

describe("errors", () => {
  test("each bad line is reported with its number and the good lines do not hide it", () => {
    const errs = errorsOf(
      [
        "pass in all", // 1 ok
        "allow in all", // 2
        "pass in proto gre", // 3
        "pass from 10.0.0.256", // 4
        "pass from 10.0.0.0/33", // 5
        "pass in proto icmp to port 7", // 6
        "pass proto tcp to port 70000", // 7
        "pass proto tcp to port 2000:1000", // 8
        'pass all label "open', // 9
        "pass all keep", // 10
        "pass all label web", // 11
        "block all keep state", // 12
        "pass in all extra", // 13
        "pass from", // 14
        "pass all keep state keep state", // 15
        "pass proto toString", // 16
        "pass proto tcp to port != 1:2", // 17
      ].join("\n"),
    );
    expect(errs.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    const msg = (line: number): string => errs.find((e) => e.line === line)!.message;
    expect(msg(2)).toContain('"allow"');
    expect(msg(3)).toContain("unknown protocol");
    expect(msg(4)).toContain("bad address");
    expect(msg(5)).toContain("prefix");
    expect(msg(6)).toContain("port only applies");
    expect(msg(7)).toContain("bad port");
    expect(msg(8)).toContain("empty");
    expect(msg(9)).toContain("unterminated");
    expect(msg(10)).toContain("state");
    expect(msg(11)).toContain("quoted");
    expect(msg(13)).toContain('"extra"');
    expect(msg(14)).toContain("end of line");
  });

  test("a port with no protocol is refused, as pf does", () => {
    expect(errorsOf("block in from any to any port 23")[0]).toEqual({ line: 1, message: "port only applies to proto tcp or udp" });
  });
});

describe("matching", () => {
  test("direction, protocol, addresses, negation", () => {
    expect(ruleMatches(one("pass in all"), pkt())).toBe(true);
    expect(ruleMatches(one("pass out all"), pkt())).toBe(false);
    expect(ruleMatches(one("pass all"), pkt({ dir: "out" }))).toBe(true);
    expect(ruleMatches(one("pass proto udp"), pkt())).toBe(false);
    expect(ruleMatches(one("pass from 10.0.2.0/24"), pkt())).toBe(true);
    expect(ruleMatches(one("pass from ! 10.0.2.0/24"), pkt())).toBe(false);
    expect(ruleMatches(one("pass to 10.0.2.16"), pkt())).toBe(false);
  });

  test("ports and ranges; a rule with ports never matches a packet without them", () => {
    expect(ruleMatches(one("pass proto tcp to port 80"), pkt())).toBe(true);
    expect(ruleMatches(one("pass proto tcp to port != 80"), pkt())).toBe(false);
    expect(ruleMatches(one("pass proto tcp to port 1:79"), pkt())).toBe(false);
    expect(ruleMatches(one("pass proto tcp to port 80:80"), pkt())).toBe(true);
    expect(ruleMatches(one("pass proto tcp from port > 39999"), pkt())).toBe(true);
    expect(ruleMatches(one("pass proto tcp from port < 40000"), pkt())).toBe(false);
    expect(ruleMatches(one("pass proto tcp to port != 80"), pkt({ srcPort: null, dstPort: null }))).toBe(false);
  });
});
