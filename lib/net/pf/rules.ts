// pf rule language: the rule shape (plain data), a parser that never throws, a printer, and one rule's match test.
//
// A small subset of OpenBSD pf.conf(5). One rule per line; '#' starts a comment (outside quotes).
//
//   ruleset   = { line NEWLINE }
//   line      = [ rule ] [ "#" comment ]
//   rule      = action [ dir ] [ "quick" ] [ "proto" proto ] hosts { option }
//   action    = "pass" | "block" [ "return" ]     (return: TCP gets a RST, others ICMP unreachable)
//   dir       = "in" | "out"                      (omitted: both directions)
//   proto     = "tcp" | "udp" | "icmp" | "any" | "all" | NUMBER(0..255)
//   hosts     = "all" | [ "from" ends ] [ "to" ends ]   (omitted: any)
//   ends      = addr [ port ] | port
//   addr      = [ "!" ] ( "any" | A.B.C.D [ "/" LEN ] )  (host bits of a network are cleared)
//   port      = "port" ( [ op ] NUMBER | NUMBER ":" NUMBER )   op = "=" "!=" "<" "<=" ">" ">="
//                                                      (lo:hi is inclusive; ports need proto tcp or udp)
//   option    = "keep" "state" | "label" QUOTED
//
// Examples:
//   block in proto tcp from any to any port 23
//   pass in proto tcp from 10.0.2.0/24 to any port 80 keep state
//   pass out all keep state
//   block in quick proto udp to port 53
//   block return in proto tcp to ! 10.0.0.0/8 port 1000:2000 label "no-high"
//
// Semantics (pf's): rules are tried in order and the last matching rule decides, except that a
// matching `quick` rule decides at once. No match: the packet passes (default policy pass).
// Unlike OpenBSD >= 4.1, pass rules do not imply `keep state`: it must be written.
import { formatIpv4Addr, inSubnet, parseIpv4Addr, prefixMask } from "../addr.ts";

export type Direction = "in" | "out";

/** An address match: `net/prefix` (prefix 0 is any), negated if `not`. */
export interface AddrSpec {
  not: boolean;
  /** u32 with host bits cleared. */
  net: number;
  /** 0..32. */
  prefix: number;
}

export type PortOp = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":";
/** A port match: `op port` or, for ":", the inclusive range port..hi. Ports are 0..65535. */
export interface PortSpec {
  op: PortOp;
  port: number;
  /** Upper bound of a ":" range; equal to `port` otherwise. */
  hi: number;
}

/** A parsed rule: plain data (JSON- and structuredClone-safe). */
export interface Rule {
  action: "pass" | "block";
  /** Block with a reply (RST for TCP, ICMP unreachable otherwise); false for pass rules. */
  returnReply: boolean;
  /** null: both directions. */
  dir: Direction | null;
  quick: boolean;
  /** IP protocol number, or null for any. */
  proto: number | null;
  from: AddrSpec;
  fromPort: PortSpec | null;
  to: AddrSpec;
  toPort: PortSpec | null;
  keepState: boolean;
  label: string | null;
  /** Source line (1-based) the rule came from; 0 if built in code. */
  line: number;
}

export interface RuleError {
  line: number;
  message: string;
}

export type ParsedRules = { ok: true; rules: Rule[] } | { ok: false; errors: RuleError[] };

const PROTOS = new Map<string, number | null>([["tcp", 6], ["udp", 17], ["icmp", 1], ["any", null], ["all", null]]);
const PROTO_NAMES: Record<number, string> = { 6: "tcp", 17: "udp", 1: "icmp" };
const PORT_OPS = new Set<string>(["=", "!=", "<", "<=", ">", ">="]);
const ANY: AddrSpec = { not: false, net: 0, prefix: 0 };
const DEC = /^(0|[1-9][0-9]{0,4})$/;

/** Splits a line into tokens: quoted strings (kept with their quotes), operators, words. Null on an open quote. */
function tokenize(text: string): string[] | null {
  const out: string[] = [];
  const re = /\s*("[^"]*"?|!=|<=|>=|[!<>=]|[^\s!<>="]+)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null && m[1] !== undefined) {
    const t = m[1];
    if (t.startsWith('"') && (t.length < 2 || !t.endsWith('"'))) return null;
    out.push(t);
  }
  return out;
}

/** Removes a '#' comment, ignoring '#' inside quotes. */
function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === "#" && !quoted) return line.slice(0, i);
  }
  return line;
}

/** Thrown inside parseRule only, caught there: the message of a bad line. */
class Bad {
  constructor(readonly message: string) {}
}

/** Parses one rule's tokens (non-empty). Throws Bad, caught by parseRule. */
function ruleFromTokens(toks: string[], line: number): Rule {
  let i = 0;
  const peek = (): string | undefined => toks[i];
  const next = (what: string): string => {
    const t = toks[i++];
    if (t === undefined) throw new Bad(`expected ${what} at end of line`);
    return t;
  };
  const accept = (word: string): boolean => (toks[i] === word ? (i++, true) : false);

  const action = next("pass or block");
  if (action !== "pass" && action !== "block") throw new Bad(`expected pass or block, got "${action}"`);
  const r: Rule = {
    action, returnReply: false, dir: null, quick: false, proto: null,
    from: ANY, fromPort: null, to: ANY, toPort: null, keepState: false, label: null, line,
  };
  if (action === "block" && accept("return")) r.returnReply = true;
  if (peek() === "in" || peek() === "out") r.dir = next("direction") as Direction;
  if (accept("quick")) r.quick = true;
  if (accept("proto")) {
    const p = next("a protocol");
    if (PROTOS.has(p)) r.proto = PROTOS.get(p)!;
    else if (DEC.test(p) && Number(p) <= 255) r.proto = Number(p);
    else throw new Bad(`unknown protocol "${p}" (tcp, udp, icmp, any or 0..255)`);
  }
  if (accept("all")) {
    // from any to any
  } else {
    if (accept("from")) [r.from, r.fromPort] = ends("from");
    if (accept("to")) [r.to, r.toPort] = ends("to");
  }
  while (i < toks.length) {
    const t = next("an option");
    if (t === "keep") {
      const s = next('"state" after keep');
      if (s !== "state") throw new Bad(`expected "state" after keep, got "${s}"`);
      if (r.keepState) throw new Bad("keep state given twice");
      r.keepState = true;
    } else if (t === "label") {
      const l = next("a quoted label");
      if (!l.startsWith('"')) throw new Bad(`label must be quoted, got ${l}`);
      if (r.label !== null) throw new Bad("label given twice");
      r.label = l.slice(1, -1);
    } else {
      throw new Bad(`unexpected "${t}"`);
    }
  }
  if ((r.fromPort || r.toPort) && r.proto !== 6 && r.proto !== 17)
    throw new Bad("port only applies to proto tcp or udp");
  if (r.keepState && r.action === "block") throw new Bad("keep state only applies to pass rules");
  return r;

  function ends(side: string): [AddrSpec, PortSpec | null] {
    let a = ANY;
    if (peek() !== "port") a = addr(side);
    return [a, accept("port") ? port() : null];
  }
  function addr(side: string): AddrSpec {
    const not = accept("!");
    const t = next(`an address after ${side}`);
    if (t === "any") return { not, net: 0, prefix: 0 };
    const [a, len, extra] = t.split("/");
    const ip = parseIpv4Addr(a!);
    if (ip === null || extra !== undefined) throw new Bad(`bad address "${t}" after ${side}`);
    let prefix = 32;
    if (len !== undefined) {
      if (!DEC.test(len) || Number(len) > 32) throw new Bad(`bad prefix length "/${len}" (0..32)`);
      prefix = Number(len);
    }
    return { not, net: (ip & prefixMask(prefix)) >>> 0, prefix };
  }
  function port(): PortSpec {
    let t = next("a port");
    let op: PortOp = "=";
    if (PORT_OPS.has(t)) {
      op = t as PortOp;
      t = next(`a port after ${op}`);
    }
    const [lo, hi, extra] = t.split(":");
    const p = portNumber(lo!);
    if (hi === undefined) return { op, port: p, hi: p };
    if (op !== "=" || extra !== undefined) throw new Bad(`bad port range "${t}"`);
    const h = portNumber(hi);
    if (h < p) throw new Bad(`port range ${p}:${h} is empty`);
    return { op: ":", port: p, hi: h };
  }
  function portNumber(t: string): number {
    if (!DEC.test(t) || Number(t) > 65535) throw new Bad(`bad port "${t}" (0..65535)`);
    return Number(t);
  }
}

/** Parses one line: null if blank or only a comment, else the rule or an error message. */
export function parseRule(text: string, line = 0): Rule | RuleError | null {
  const toks = tokenize(stripComment(text));
  if (toks === null) return { line, message: "unterminated quoted string" };
  if (toks.length === 0) return null;
  try {
    return ruleFromTokens(toks, line);
  } catch (e) {
    if (e instanceof Bad) return { line, message: e.message };
    throw e;
  }
}

/** Parses a ruleset. Never throws; every bad line is reported with its 1-based line number. */
export function parseRules(text: string): ParsedRules {
  const rules: Rule[] = [];
  const errors: RuleError[] = [];
  const lines = String(text).split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const r = parseRule(lines[n]!, n + 1);
    if (r === null) continue;
    if ("message" in r) errors.push(r);
    else rules.push(r);
  }
  return errors.length ? { ok: false, errors } : { ok: true, rules };
}

function formatAddr(a: AddrSpec): string {
  const s = a.prefix === 0 ? "any" : a.prefix === 32 ? formatIpv4Addr(a.net) : `${formatIpv4Addr(a.net)}/${a.prefix}`;
  return a.not ? `! ${s}` : s;
}

function formatPort(p: PortSpec): string {
  return p.op === ":" ? `port ${p.port}:${p.hi}` : `port ${p.op} ${p.port}`;
}

/** Prints a rule in canonical form (as pfctl -sr would); parseRule of the result gives the rule back. */
export function formatRule(r: Rule): string {
  const w: string[] = [r.action];
  if (r.returnReply) w.push("return");
  if (r.dir) w.push(r.dir);
  if (r.quick) w.push("quick");
  if (r.proto !== null) w.push("proto", PROTO_NAMES[r.proto] ?? String(r.proto));
  const anyFrom = r.from.prefix === 0 && !r.from.not && !r.fromPort;
  const anyTo = r.to.prefix === 0 && !r.to.not && !r.toPort;
  if (anyFrom && anyTo) w.push("all");
  else {
    w.push("from", formatAddr(r.from));
    if (r.fromPort) w.push(formatPort(r.fromPort));
    w.push("to", formatAddr(r.to));
    if (r.toPort) w.push(formatPort(r.toPort));
  }
  if (r.keepState) w.push("keep state");
  if (r.label !== null) w.push(`label "${r.label}"`);
  return w.join(" ");
}

/** The fields of a packet a rule looks at. Ports are null when unknown (ICMP, other protocols, later fragments). */
export interface PacketInfo {
  dir: Direction;
  proto: number;
  src: number;
  dst: number;
  srcPort: number | null;
  dstPort: number | null;
}

function addrMatches(a: AddrSpec, ip: number): boolean {
  return inSubnet(ip, a.net, a.prefix) !== a.not;
}

function portMatches(p: PortSpec, port: number): boolean {
  switch (p.op) {
    case "=": return port === p.port;
    case "!=": return port !== p.port;
    case "<": return port < p.port;
    case "<=": return port <= p.port;
    case ">": return port > p.port;
    case ">=": return port >= p.port;
    case ":": return port >= p.port && port <= p.hi;
  }
}

/** True if `r` matches the packet. A rule with a port never matches a packet whose ports are unknown. */
export function ruleMatches(r: Rule, p: PacketInfo): boolean {
  if (r.dir !== null && r.dir !== p.dir) return false;
  if (r.proto !== null && r.proto !== p.proto) return false;
  if (!addrMatches(r.from, p.src) || !addrMatches(r.to, p.dst)) return false;
  if (r.fromPort && (p.srcPort === null || !portMatches(r.fromPort, p.srcPort))) return false;
  if (r.toPort && (p.dstPort === null || !portMatches(r.toPort, p.dstPort))) return false;
  return true;
}
