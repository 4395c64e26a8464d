// memcached's text protocol (its framing, shared with the meta commands, is framing.ts):
// an incremental parser — bytes in, commands out, never a throw on any input — and the
// executor that runs a parsed command against the cache (store.ts) and writes the reply.
//
// The parser follows memcached 1.6's proto_text.c: a command is a line up to "\n" (a "\r"
// before it is dropped), split on spaces; storage commands then take <bytes>+2 bytes of
// data that must end in "\r\n" ("CLIENT_ERROR bad data chunk" otherwise, and parsing goes
// on right after those bytes). A line of more than 2048 bytes without a newline hangs up
// unless it is a get/gets (a large multiget, allowed up to MAX_GET_LINE); so does an HTTP
// request line. A value too large for -I is answered at once and its bytes swallowed.
// Reply strings are memcached's, word for word.
//
// Deliberate differences, all on malformed input: flags above 2^32-1 and lengths or
// exptimes beyond 32 bits are "CLIENT_ERROR bad command line format" (memcached truncates
// them); keys with control characters (bytes below 0x21, and 0x7f) are refused the same way.
import { bytesToKey, itemTotal, keyBytes, settingsStats, type StoreMode } from "./store.ts";
import {
  type Action, type Ctx, InBuf, line, type LineResult, type Out, strtol32, strtoul32, strtoull, type TextCmd, validKey,
} from "./framing.ts";
import { execMeta, parseMeta } from "./meta.ts";

/** The longest get/gets line (a multiget of many keys) before the connection is dropped. */
export const MAX_GET_LINE = 1 << 20;
/** Lines without a newline beyond this many bytes are not commands (memcached's 2048). */
export const MAX_LINE = 2048;

export interface ParserOptions {
  /** -I, to refuse too large values before reading them (default 1 MB). */
  itemSizeMax?: number;
}

const ERROR: TextCmd = { kind: "reply", text: "ERROR" };
const BAD_FORMAT = "CLIENT_ERROR bad command line format";

/**
 * The incremental text-protocol parser of one connection: push() what was read, then
 * next() until it returns null (it needs more bytes). Never throws; after a `close`
 * command it returns null for good.
 */
export class TextParser {
  private readonly in = new InBuf();
  private state: "line" | "data" | "swallow" | "dead" = "line";
  private need = 0;
  private make: ((value: Uint8Array) => TextCmd) | null = null;
  /** Where the newline search resumes (no rescans of a long partial line). */
  private scanned = 0;
  readonly itemSizeMax: number;

  constructor(opts: ParserOptions = {}) {
    this.itemSizeMax = opts.itemSizeMax ?? 1024 * 1024;
  }

  push(chunk: Uint8Array): void {
    if (this.state !== "dead") this.in.push(chunk);
  }

  /** Bytes buffered and not yet parsed. */
  get buffered(): number {
    return this.in.length;
  }

  next(): TextCmd | null {
    for (;;) {
      switch (this.state) {
        case "dead":
          return null;
        case "swallow": {
          const n = Math.min(this.need, this.in.length);
          this.in.skip(n);
          this.need -= n;
          if (this.need > 0) return null;
          this.state = "line";
          continue;
        }
        case "data": {
          if (this.in.length < this.need) return null;
          const v = this.in.peek(this.need);
          const ok = v[this.need - 2] === 0x0d && v[this.need - 1] === 0x0a;
          const make = this.make!;
          const value = ok ? this.in.take(this.need - 2) : null;
          this.in.skip(ok ? 2 : this.need);
          this.state = "line";
          this.make = null;
          // A bad chunk is reported even under noreply for ms (memcached's mset_res); the
          // classic storage commands keep noreply, which `make(null)` tells.
          return value ? make(value) : badChunk(make);
        }
        case "line": {
          const nl = this.in.indexOf(0x0a, this.scanned);
          if (nl < 0) {
            this.scanned = this.in.length;
            if (this.in.length > MAX_LINE && !(this.largeGet() && this.in.length <= MAX_GET_LINE)) {
              this.state = "dead";
              return { kind: "close", why: "line too long" };
            }
            return null;
          }
          this.scanned = 0;
          let end = nl;
          if (nl > 1 && this.in.at(nl - 1) === 0x0d) end = nl - 1;
          const lineBytes = this.in.peek(end);
          let z = lineBytes.indexOf(0); // C strings stop at NUL
          if (z < 0) z = end;
          const line = bytesToKey(lineBytes, 0, z);
          this.in.skip(nl + 1);
          const r = parseLine(line, this.itemSizeMax);
          if ("data" in r) {
            this.state = "data";
            this.need = r.data + 2;
            this.make = r.make;
            continue;
          }
          if ("swallow" in r) {
            this.state = "swallow";
            this.need = r.swallow;
          }
          if (r.cmd.kind === "close") this.state = "dead";
          return r.cmd;
        }
      }
    }
  }

  /** Whether the partial line is the start of a get/gets (after at most 100 spaces). */
  private largeGet(): boolean {
    let i = 0;
    while (i < this.in.length && this.in.at(i) === 0x20) i++;
    if (i > 100) return false;
    const head = bytesToKey(this.in.peek(Math.min(this.in.length, i + 5)), i);
    return head.startsWith("get ") || head.startsWith("gets ");
  }
}

function badChunk(make: (value: Uint8Array) => TextCmd): TextCmd {
  const c = make(new Uint8Array(0));
  const meta = c.kind === "meta";
  const noreply = c.kind === "store" ? c.noreply : false;
  return { kind: "reply", text: "CLIENT_ERROR bad data chunk", noreply: meta ? false : noreply };
}

/** Splits a command line on spaces as memcached's tokenize_command does (empty tokens dropped). */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let s = 0;
  for (let i = 0; i <= line.length; i++) {
    if (i === line.length || line.charCodeAt(i) === 0x20) {
      if (i > s) out.push(line.slice(s, i));
      s = i + 1;
    }
  }
  return out;
}

/** One command line (without its line end) to a command, or to the data it needs next. */
export function parseLine(line: string, itemSizeMax: number): LineResult {
  const t = tokenize(line);
  const ntokens = t.length + 1; // memcached counts a terminal empty token
  const cmd = t[0] ?? "";
  if (cmd.length < 2) return { cmd: ERROR };
  if (cmd[0] === "m" && cmd.length === 2) return parseMeta(t, itemSizeMax);
  const noreplyTok = t[t.length - 1] === "noreply";
  switch (cmd) {
    case "get":
    case "gets":
    case "gat":
    case "gats":
    case "bget": {
      if (ntokens < 3) return { cmd: ERROR };
      const touch = cmd === "gat" || cmd === "gats";
      let first = 1;
      let exptime: number | undefined;
      if (touch) {
        const e = strtol32(t[1]!);
        if (e === null) return { cmd: { kind: "reply", text: "CLIENT_ERROR invalid exptime argument" } };
        exptime = e;
        first = 2;
      }
      const keys = t.slice(first);
      for (const k of keys) if (!validKey(k)) return { cmd: { kind: "reply", text: BAD_FORMAT } };
      return { cmd: { kind: "get", keys, cas: cmd === "gets" || cmd === "gats", touch: exptime } };
    }
    case "set":
    case "add":
    case "replace":
    case "append":
    case "prepend":
    case "cas": {
      const isCas = cmd === "cas";
      if (isCas ? ntokens !== 7 && ntokens !== 8 : ntokens !== 6 && ntokens !== 7) return { cmd: ERROR };
      const noreply = noreplyTok;
      const bad: LineResult = { cmd: { kind: "reply", text: BAD_FORMAT, noreply } };
      const key = t[1]!;
      if (!validKey(key)) return bad;
      const flags = strtoul32(t[2]!);
      const exptime = strtol32(t[3]!);
      const vlen = strtol32(t[4]!);
      if (flags === null || exptime === null || vlen === null) return bad;
      let cas = 0n;
      if (isCas) {
        const c = strtoull(t[5]!);
        if (c === null) return bad;
        cas = c;
      }
      if (vlen < 0 || vlen > 0x7fffffff - 2) return bad;
      const mode = cmd as StoreMode;
      if (itemTotal(key.length, vlen) > itemSizeMax) {
        return { swallow: vlen + 2, cmd: { kind: "too_large", mode, key, noreply } };
      }
      return {
        data: vlen,
        make: (value) => ({ kind: "store", mode, key, flags, exptime, cas, value, noreply }),
      };
    }
    case "delete": {
      if (ntokens < 3 || ntokens > 5) return { cmd: ERROR };
      let noreply = false;
      if (ntokens > 3) {
        const holdZero = t[2] === "0";
        noreply = noreplyTok;
        const valid = (ntokens === 4 && (holdZero || noreply)) || (ntokens === 5 && holdZero && noreply);
        if (!valid) return { cmd: { kind: "reply", text: "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", noreply } };
      }
      if (!validKey(t[1]!)) return { cmd: { kind: "reply", text: BAD_FORMAT, noreply } };
      return { cmd: { kind: "delete", key: t[1]!, noreply } };
    }
    case "incr":
    case "decr": {
      if (ntokens !== 4 && ntokens !== 5) return { cmd: ERROR };
      const noreply = noreplyTok;
      if (!validKey(t[1]!)) return { cmd: { kind: "reply", text: BAD_FORMAT, noreply } };
      const delta = strtoull(t[2]!);
      if (delta === null) return { cmd: { kind: "reply", text: "CLIENT_ERROR invalid numeric delta argument", noreply } };
      return { cmd: { kind: "arith", incr: cmd === "incr", key: t[1]!, delta, noreply } };
    }
    case "touch": {
      if (ntokens !== 4 && ntokens !== 5) return { cmd: ERROR };
      const noreply = noreplyTok;
      if (!validKey(t[1]!)) return { cmd: { kind: "reply", text: BAD_FORMAT, noreply } };
      const e = strtol32(t[2]!);
      if (e === null) return { cmd: { kind: "reply", text: "CLIENT_ERROR invalid exptime argument", noreply } };
      return { cmd: { kind: "touch", key: t[1]!, exptime: e, noreply } };
    }
    case "flush_all": {
      if (ntokens < 2 || ntokens > 4) return { cmd: ERROR };
      const noreply = noreplyTok;
      let delay = 0;
      if (ntokens !== (noreply ? 3 : 2)) {
        const e = strtol32(t[1]!);
        if (e === null) return { cmd: { kind: "reply", text: "CLIENT_ERROR invalid exptime argument", noreply } };
        delay = e;
      }
      return { cmd: { kind: "flush_all", delay, noreply } };
    }
    case "stats":
      return { cmd: { kind: "stats", args: t.slice(1) } };
    case "version":
      return { cmd: { kind: "version" } };
    case "quit":
      return { cmd: { kind: "quit" } };
    case "shutdown":
      return { cmd: { kind: "shutdown", args: t.slice(1) } };
    case "verbosity": {
      if (ntokens !== 3 && ntokens !== 4) return { cmd: ERROR };
      const noreply = noreplyTok;
      const level = strtoul32(t[1]!);
      if (level === null) return { cmd: { kind: "reply", text: BAD_FORMAT, noreply } };
      return { cmd: { kind: "verbosity", level, noreply } };
    }
    default:
      // An HTTP request line ("GET / HTTP/1.1"): not a memcached client, hang up.
      if (t.length >= 2 && t[t.length - 1]!.startsWith("HTTP/")) return { cmd: { kind: "close", why: "HTTP request" } };
      return { cmd: ERROR };
  }
}

// ---- execution -------------------------------------------------------------------------

const enc = (s: string) => keyBytes(s);
const CRLF = enc("\r\n");
const R = {
  END: enc("END\r\n"),
  STORED: enc("STORED\r\n"),
  NOT_STORED: enc("NOT_STORED\r\n"),
  EXISTS: enc("EXISTS\r\n"),
  NOT_FOUND: enc("NOT_FOUND\r\n"),
  DELETED: enc("DELETED\r\n"),
  TOUCHED: enc("TOUCHED\r\n"),
  OK: enc("OK\r\n"),
  ERROR: enc("ERROR\r\n"),
};

/** Sends stats lines and END. */
function sendStats(out: Out, lines: [string, string | number][]): void {
  let s = "";
  for (const [k, v] of lines) s += `STAT ${k} ${v}\r\n`;
  out(enc(s + "END\r\n"));
}

/** Runs one text-protocol command against the cache; replies go to `out`. */
export function execText(cmd: TextCmd, ctx: Ctx, out: Out): Action {
  const store = ctx.store;
  switch (cmd.kind) {
    case "get": {
      const touch = cmd.touch === undefined ? undefined : store.realtime(cmd.touch);
      for (const key of cmd.keys) {
        const it = store.fetch(key, { touch });
        if (!it) continue;
        out(enc(`VALUE ${key} ${it.flags} ${it.value.length}${cmd.cas ? ` ${it.cas}` : ""}\r\n`));
        if (it.value.length > 0) out(it.value);
        out(CRLF);
      }
      out(R.END);
      return "ok";
    }
    case "store": {
      const r = store.store(cmd.mode, cmd.key, cmd.value, cmd.flags, cmd.exptime, cmd.cas);
      if (cmd.noreply) return "ok";
      switch (r.status) {
        case "STORED":
          out(R.STORED);
          break;
        case "EXISTS":
          out(R.EXISTS);
          break;
        case "NOT_FOUND":
          out(R.NOT_FOUND);
          break;
        case "NOT_STORED":
          out(R.NOT_STORED);
          break;
        case "TOO_LARGE":
          line(out, "SERVER_ERROR object too large for cache");
          break;
        case "NO_MEMORY":
          line(out, "SERVER_ERROR out of memory storing object");
          break;
      }
      return "ok";
    }
    case "too_large":
      store.counters.store_too_large++;
      if (cmd.mode === "set") store.remove(cmd.key); // no stale data after a failed set
      line(out, "SERVER_ERROR object too large for cache", cmd.noreply);
      return "ok";
    case "delete": {
      const r = store.delete(cmd.key);
      if (!cmd.noreply) out(r === "DELETED" ? R.DELETED : R.NOT_FOUND);
      return "ok";
    }
    case "arith": {
      const r = store.incrDecr(cmd.key, cmd.incr, cmd.delta);
      switch (r.status) {
        case "OK":
          line(out, r.value!.toString(), cmd.noreply);
          break;
        case "NOT_FOUND":
          if (!cmd.noreply) out(R.NOT_FOUND);
          break;
        case "NON_NUMERIC":
        case "EXISTS":
          line(out, "CLIENT_ERROR cannot increment or decrement non-numeric value", cmd.noreply);
          break;
        case "NO_MEMORY":
          line(out, "SERVER_ERROR out of memory", cmd.noreply);
          break;
      }
      return "ok";
    }
    case "touch": {
      const it = store.touch(cmd.key, store.realtime(cmd.exptime));
      if (!cmd.noreply) out(it ? R.TOUCHED : R.NOT_FOUND);
      return "ok";
    }
    case "flush_all":
      store.flush(cmd.delay);
      if (!cmd.noreply) out(R.OK);
      return "ok";
    case "stats": {
      const sub = cmd.args[0] ?? "";
      if (sub === "reset") {
        ctx.resetStats();
        line(out, "RESET");
        return "ok";
      }
      if (sub === "detail") {
        const a = cmd.args[1];
        if (a === "on" || a === "off") line(out, "OK");
        else if (a === "dump") out(R.END);
        else line(out, "CLIENT_ERROR usage: stats detail on|off|dump");
        return "ok";
      }
      if (sub === "settings") {
        sendStats(out, settingsStats(store, { ...ctx.settings, verbosity: ctx.verbosity, shutdown: ctx.shutdownEnabled }));
        return "ok";
      }
      const lines = ctx.stats(sub);
      if (lines === null) out(R.ERROR);
      else sendStats(out, lines);
      return "ok";
    }
    case "version":
      line(out, `VERSION ${ctx.version}`);
      return "ok";
    case "quit":
      return "close-after-write";
    case "shutdown":
      if (!ctx.shutdownEnabled) {
        line(out, "ERROR: shutdown not enabled");
        return "ok";
      }
      if (cmd.args.length === 0 || (cmd.args.length === 1 && cmd.args[0] === "graceful")) return "shutdown";
      line(out, "CLIENT_ERROR invalid shutdown mode");
      return "ok";
    case "verbosity":
      ctx.verbosity = Math.min(cmd.level, 2);
      if (!cmd.noreply) out(R.OK);
      return "ok";
    case "meta":
      return execMeta(cmd.cmd, ctx, out);
    case "reply":
      line(out, cmd.text, cmd.noreply);
      return "ok";
    case "close":
      return "close";
  }
}
