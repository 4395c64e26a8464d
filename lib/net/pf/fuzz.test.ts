// Fuzz: random rule texts into parseRules and random/mutated packets into PacketFilter.check; nothing may throw.
// Reproduce a failure with FUZZ_SEED=<seed> (FUZZ_CASES to run more).
import { test, expect } from "vitest";
import { PacketFilter } from "./filter.ts";
import { formatRule, parseRule, parseRules } from "./rules.ts";
import { IpProtocol } from "../ipv4.ts";
import { TcpFlag, ipv4, ping, tcp, udp, unreachable } from "./packets.fixture.ts";
import { mulberry32 } from "../../sys/prng.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x70662121) >>> 0;
const CASES = Number(process.env.FUZZ_CASES ?? 20_000);

const prng = mulberry32;

const WORDS = [
  "pass", "block", "return", "in", "out", "quick", "proto", "tcp", "udp", "icmp", "any", "all", "from", "to", "port",
  "keep", "state", "label", '"x"', '"', "!", "!=", "<", "<=", ">", ">=", "=", "#", "10.0.2.0/24", "1.2.3.4", "0.0.0.0/0",
  "256.1.1.1", "1.2.3.4/33", "80", "1000:2000", "2000:1000", "65536", "-1", "0", "6", "255", "\t", "toString", "__proto__",
];
const VALID = [
  "block in proto tcp from any to any port 23",
  "pass in proto tcp from 10.0.2.0/24 to any port 80 keep state",
  "pass out all keep state",
  "block in quick proto udp to port 53",
  "pass in proto icmp",
  'block return in proto tcp from ! 10.0.0.0/8 port 1:1023 to 10.0.2.15 port != 22 label "z"',
];

test(`parseRules never throws on ${CASES} random rule texts (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  const pick = <T>(a: readonly T[]): T => a[rnd() % a.length]!;
  let accepted = 0;
  for (let n = 0; n < CASES; n++) {
    let text: string;
    const mode = rnd() % 3;
    if (mode === 0) {
      const lines = Array.from({ length: 1 + (rnd() % 4) }, () => Array.from({ length: rnd() % 12 }, () => pick(WORDS)).join(" "));
      text = lines.join("\n");
    } else if (mode === 1) {
      const chars = [...pick(VALID)];
      for (let k = 1 + (rnd() % 4); k > 0; k--) {
        const at = rnd() % (chars.length + 1);
        const op = rnd() % 3;
        const c = String.fromCharCode(rnd() % 3 === 0 ? rnd() % 0x3000 : 32 + (rnd() % 95));
        if (op === 0) chars.splice(at, 1);
        else if (op === 1) chars.splice(at, 0, c);
        else chars[at] = c;
      }
      text = chars.join("");
    } else {
      text = Array.from({ length: rnd() % 60 }, () => String.fromCharCode(rnd() % 128)).join("");
    }
    const r = parseRules(text);
    if (r.ok) {
      accepted += r.rules.length;
      for (const rule of r.rules) expect(parseRule(formatRule(rule), rule.line)).toEqual(rule);
    } else {
      expect(r.errors.length).toBeGreaterThan(0);
      for (const e of r.errors) expect(e.line).toBeGreaterThan(0);
    }
  }
  expect(accepted).toBeGreaterThan(0); // the generator reaches valid rules too
});

test(`PacketFilter.check never throws on ${CASES} random and mutated packets (seed ${SEED})`, () => {
  const rnd = prng(SEED ^ 0x5a5a5a5a);
  const parsed = parseRules(
    "block return in all\npass in proto tcp to port 80 keep state\npass out all keep state\n" +
      "block in quick proto udp to port 53\npass in proto icmp\npass in proto udp from 10.0.2.0/24 port 1000:2000",
  );
  if (!parsed.ok) throw new Error("fixture ruleset");
  const f = new PacketFilter(parsed.rules, { limit: 64, onFull: (SEED & 1) === 0 ? "evictOldest" : "refuse" });
  const strict = new PacketFilter(parsed.rules, { limit: 64, verifyChecksums: true });
  const A = ["10.0.2.15", "10.0.2.2", "93.184.216.34"];
  const pick = <T>(a: readonly T[]): T => a[rnd() % a.length]!;
  const port = (): number => pick([80, 53, 1500, 1 + (rnd() % 65535)]);
  const seeds = (): Uint8Array => {
    switch (rnd() % 6) {
      case 0: return tcp(pick(A), port(), pick(A), port(), rnd() & 0xff, new Uint8Array(rnd() % 20));
      case 1: return udp(pick(A), port(), pick(A), port());
      case 2: return ping(pick(A), pick(A), rnd() & 0xffff, rnd() % 2 === 0);
      case 3: return unreachable(pick(A), pick(A), udp(pick(A), port(), pick(A), port()));
      case 4: return ipv4(pick(A), pick(A), rnd() & 0xff, new Uint8Array(rnd() % 40), { fragOffset: (rnd() % 3) * 8, moreFrags: rnd() % 2 === 0 });
      default: return Uint8Array.from({ length: rnd() % 80 }, () => rnd() & 0xff);
    }
  };
  let now = 0;
  for (let n = 0; n < CASES; n++) {
    let p = seeds();
    for (let k = rnd() % 4; k > 0 && p.length > 0; k--) {
      const op = rnd() % 4;
      if (op === 0) p[rnd() % p.length] = rnd() & 0xff;
      else if (op === 1) p = p.subarray(0, rnd() % p.length);
      else if (op === 2) p[rnd() % Math.min(p.length, 24)] ^= 1 << (rnd() % 8);
      else p[9 % p.length] = pick([IpProtocol.TCP, IpProtocol.UDP, IpProtocol.ICMP]);
    }
    now += rnd() % 5000;
    const dir = rnd() % 2 === 0 ? "in" : "out";
    for (const filter of [f, strict]) {
      const v = filter.check(now, dir, p);
      expect(v.verdict === "pass" || v.verdict === "block").toBe(true);
    }
    if (n % 1000 === 0) f.expire(now);
  }
  for (const filter of [f, strict]) {
    const c = filter.counters;
    expect(c.passed + c.blocked).toBe(CASES);
    expect(c.malformed).toBeGreaterThan(0);
    expect(c.passed).toBeGreaterThan(0);
    expect(filter.states.size).toBeLessThanOrEqual(64);
    expect(typeof filter.describe(now)).toBe("string");
  }
  expect(f.counters.stateHits).toBeGreaterThan(0);
});
