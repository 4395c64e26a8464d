// memcached's meta commands (mg, ms, md, ma, me, mn), which share the text protocol's
// line framing (framing.ts, also where their command shapes are): parsing of a tokenized line into a command, and its execution.
// Flags, their order in replies, error strings and quiet mode follow memcached 1.6's
// proto_text.c (process_m*_command, _meta_flag_preparse) and doc/protocol.txt:
//   mg <key> <flags>*          v k t f c s O q b h l u, N(ttl) vivify, R(ttl) recache, T(ttl) touch
//   ms <key> <datalen> <flags>* T F C I q O b k c, M(mode) E add A append P prepend R replace S set
//   md <key> <flags>*          q C I T O b k
//   ma <key> <flags>*          N J D T M(I + D -) q O v t c b k
//   me <key> [b]               debug line, mn: "MN"
// Quiet mode (q) drops mg's EN, and the HD of ms, md and ma; errors always come back.
import {
  type Action, type Ctx, line, type LineResult, type MetaCmd, type MetaFlags, type Out, strtol32, strtoul32, strtoull, validKey,
} from "./framing.ts";
import { itemTotal, KEY_MAX_LENGTH, keyBytes, type StoreMode } from "./store.ts";

/** memcached's MFLAG_MAX_OPT_LENGTH (tokens, counting the terminal one) and opaque limit. */
const MAX_OPT_TOKENS = 20;
const MAX_OPAQUE = 32;

// ---- base64 (keys with the b flag) ----------------------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Strict base64 (padded, length a multiple of 4) of a latin1 string to a latin1 string; null if invalid or empty. */
export function base64Decode(s: string): string | null {
  if (s.length === 0 || s.length % 4 !== 0) return null;
  let out = "";
  for (let i = 0; i < s.length; i += 4) {
    const v = [0, 0, 0, 0];
    let pad = 0;
    for (let k = 0; k < 4; k++) {
      const c = s.charCodeAt(i + k);
      if (c === 0x3d && i + 4 === s.length && k >= 2) {
        pad++;
        continue;
      }
      if (pad > 0) return null; // data after padding
      const x = c < 128 ? B64_INDEX[c]! : -1;
      if (x < 0) return null;
      v[k] = x;
    }
    const n = (v[0]! << 18) | (v[1]! << 12) | (v[2]! << 6) | v[3]!;
    out += String.fromCharCode((n >> 16) & 0xff);
    if (pad < 2) out += String.fromCharCode((n >> 8) & 0xff);
    if (pad < 1) out += String.fromCharCode(n & 0xff);
  }
  return out.length > 0 ? out : null;
}

export function base64Encode(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i += 3) {
    const a = s.charCodeAt(i);
    const b = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
    const c = i + 2 < s.length ? s.charCodeAt(i + 2) : 0;
    const n = (a << 16) | (b << 8) | c;
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!;
    out += i + 1 < s.length ? B64[(n >> 6) & 63]! : "=";
    out += i + 2 < s.length ? B64[n & 63]! : "=";
  }
  return out;
}

// ---- parsing ---------------------------------------------------------------------------

const reply = (text: string): LineResult => ({ cmd: { kind: "reply", text } });

/**
 * _meta_flag_preparse: flags from tokens[start..]; the key (tokens[1]) base64-decoded with
 * b. Returns the flags and the key, or the error string.
 */
function preparse(t: string[], start: number): { f: MetaFlags; key: string } | { err: string } {
  const f: MetaFlags = {
    tokens: t.slice(start), base64: false, quiet: false, value: false, noUpdate: false, vivify: false, autoviv: 0,
    ttl: null, recache: null, clientFlags: 0, cas: null, mode: "", delta: 1n, initial: 0n, stale: false,
  };
  let key = t[1]!;
  let err: string | null = null;
  const seen = new Set<number>();
  for (const tok of f.tokens) {
    const o = tok.charCodeAt(0);
    if (o >= 127 || seen.has(o)) return { err: "CLIENT_ERROR duplicate flag" };
    seen.add(o);
    const arg = tok.slice(1);
    switch (tok[0]) {
      case "b": {
        const k = base64Decode(key);
        if (k === null) err = "CLIENT_ERROR error decoding key";
        else key = k;
        f.base64 = true;
        break;
      }
      case "N": {
        f.vivify = true;
        const v = strtol32(arg);
        if (v === null) err = "CLIENT_ERROR bad token in command line format";
        else f.autoviv = v;
        break;
      }
      case "T": {
        const v = strtol32(arg);
        if (v === null) err = "CLIENT_ERROR bad token in command line format";
        else f.ttl = v;
        break;
      }
      case "R": {
        const v = strtol32(arg);
        if (v === null) err = "CLIENT_ERROR bad token in command line format";
        else f.recache = v;
        break;
      }
      case "O":
      case "P":
      case "L":
      case "k":
      case "s":
      case "t":
      case "c":
      case "f":
      case "l":
      case "h":
        break;
      case "v":
        f.value = true;
        break;
      case "u":
        f.noUpdate = true;
        break;
      case "q":
        f.quiet = true;
        break;
      case "F": {
        const v = strtoul32(arg);
        if (v === null) err ??= "CLIENT_ERROR bad command line format";
        else f.clientFlags = v;
        break;
      }
      case "C": {
        const v = strtoull(arg);
        if (v === null) err = "CLIENT_ERROR bad token in command line format";
        else f.cas = v;
        break;
      }
      case "M":
        if (tok.length !== 2) err = "CLIENT_ERROR incorrect length for M token";
        else f.mode = tok[1]!;
        break;
      case "J": {
        const v = strtoull(arg);
        if (v === null) err = "CLIENT_ERROR invalid numeric initial value";
        else f.initial = v;
        break;
      }
      case "D": {
        const v = strtoull(arg);
        if (v === null) err = "CLIENT_ERROR invalid numeric delta value";
        else f.delta = v;
        break;
      }
      case "I":
        f.stale = true;
        break;
      default:
        return { err: "CLIENT_ERROR invalid flag" };
    }
  }
  if (err) return { err };
  for (const tok of f.tokens) if (tok[0] === "O" && tok.length > MAX_OPAQUE) return { err: "CLIENT_ERROR opaque token too long" };
  // A key given in base64 may hold any bytes; a plain one is a text key.
  if (!f.base64 && !validKey(key)) return { err: "CLIENT_ERROR bad command line format" };
  return { f, key };
}

/** A tokenized meta command line (t[0] is "m?"): the command, an error, or the data ms needs. */
export function parseMeta(t: string[], itemSizeMax: number): LineResult {
  const ntokens = t.length + 1;
  const op = t[0]!;
  switch (op) {
    case "mn":
      return { cmd: { kind: "meta", cmd: { op: "mn" } } };
    case "me": {
      if (ntokens < 3 || t[1]!.length > KEY_MAX_LENGTH) return reply("CLIENT_ERROR bad command line format");
      let key = t[1]!;
      if (ntokens >= 4 && t[2] === "b") {
        const k = base64Decode(key);
        if (k === null) return reply("CLIENT_ERROR bad command line format");
        key = k;
      } else if (!validKey(key)) return reply("CLIENT_ERROR bad command line format");
      return { cmd: { kind: "meta", cmd: { op: "me", key } } };
    }
    case "mg":
    case "md":
    case "ma": {
      if (ntokens < 3) return reply("ERROR");
      if (t[1]!.length > KEY_MAX_LENGTH) return reply("CLIENT_ERROR bad command line format");
      if (ntokens > MAX_OPT_TOKENS) return reply(op === "mg" ? "CLIENT_ERROR options flags are too long" : "CLIENT_ERROR options flags too long");
      const p = preparse(t, 2);
      if ("err" in p) {
        const generic = op !== "mg" && p.err !== "CLIENT_ERROR opaque token too long" && p.err !== "CLIENT_ERROR bad command line format";
        return reply(generic ? "CLIENT_ERROR invalid or duplicate flag" : p.err);
      }
      if (op === "mg") return { cmd: { kind: "meta", cmd: { op: "mg", key: p.key, f: p.f } } };
      if (op === "md") return { cmd: { kind: "meta", cmd: { op: "md", key: p.key, f: p.f } } };
      let incr = true;
      switch (p.f.mode) {
        case "":
        case "I":
        case "+":
          break;
        case "D":
        case "-":
          incr = false;
          break;
        default:
          return reply("CLIENT_ERROR invalid mode for ma M token");
      }
      return { cmd: { kind: "meta", cmd: { op: "ma", key: p.key, f: p.f, incr } } };
    }
    case "ms": {
      if (ntokens < 3) return reply("ERROR");
      if (t[1]!.length > KEY_MAX_LENGTH || ntokens === 3) return reply("CLIENT_ERROR bad command line format");
      if (ntokens > MAX_OPT_TOKENS) return reply("CLIENT_ERROR options flags too long");
      const vlen = strtol32(t[2]!);
      if (vlen === null || vlen < 0 || vlen > 0x7fffffff - 2) return reply("CLIENT_ERROR bad command line format");
      const swallow = (text: string): LineResult => ({ swallow: vlen + 2, cmd: { kind: "reply", text } });
      const p = preparse(t, 3);
      if ("err" in p) return swallow(p.err);
      let mode: StoreMode;
      switch (p.f.mode) {
        case "":
        case "S":
          mode = "set";
          break;
        case "E":
          mode = "add";
          break;
        case "A":
          mode = "append";
          break;
        case "P":
          mode = "prepend";
          break;
        case "R":
          mode = "replace";
          break;
        default:
          return swallow("CLIENT_ERROR invalid mode for ms M token");
      }
      if (p.f.cas !== null && (mode === "set" || mode === "replace")) mode = "cas";
      const key = p.key;
      if (itemTotal(key.length, vlen) > itemSizeMax) return { swallow: vlen + 2, cmd: { kind: "meta", cmd: { op: "ms_too_large", key } } };
      const f = p.f;
      return { data: vlen, make: (value) => ({ kind: "meta", cmd: { op: "ms", key, f, mode, value } }) };
    }
    default:
      return reply("ERROR");
  }
}

// ---- execution -------------------------------------------------------------------------

/** The k flag's text: the key, or base64 and " b" for a binary key. */
function keyFlag(key: string, binary: boolean): string {
  return binary ? ` k${base64Encode(key)} b` : ` k${key}`;
}

/** O and k, the only flags a miss (or md, or a failed ma) echoes. */
function echoFlags(f: MetaFlags, key: string, binary: boolean): string {
  let s = "";
  for (const tok of f.tokens) {
    if (tok[0] === "O") s += ` ${tok}`;
    else if (tok[0] === "k") s += keyFlag(key, binary);
  }
  return s;
}

const enc = keyBytes;

export function execMeta(cmd: MetaCmd, ctx: Ctx, out: Out): Action {
  const store = ctx.store;
  const c = store.counters;
  if (cmd.op !== "mn") c.cmd_meta++;
  switch (cmd.op) {
    case "mn":
      line(out, "MN");
      return "ok";
    case "me": {
      const it = store.peek(cmd.key);
      if (!it) {
        line(out, "EN");
        return "ok";
      }
      const now = store.now();
      const k = it.keyBinary ? base64Encode(it.key) : it.key;
      line(out, `ME ${k} exp=${it.exptime === 0 ? -1 : now - it.exptime} la=${now - it.time} cas=${it.cas} fetch=${it.fetched ? "yes" : "no"} cls=1 size=${it.size}`);
      return "ok";
    }
    case "mg": {
      const f = cmd.f;
      let it = store.peek(cmd.key);
      let created = false;
      if (!it && f.vivify) {
        it = store.create(cmd.key, new Uint8Array(0), 0, 0, f.base64);
        created = it !== null;
      }
      if (!it) {
        c.cmd_get++;
        c.get_misses++;
        if (!f.quiet) line(out, "EN" + echoFlags(f, cmd.key, f.base64));
        return "ok";
      }
      const now = store.now();
      const la = now - it.time;
      const hit = it.fetched;
      let won = false;
      let ttlSet = false;
      let s = f.value ? `VA ${it.value.length}` : "HD";
      for (const tok of f.tokens) {
        switch (tok[0]) {
          case "T":
            ttlSet = true;
            it.exptime = store.realtime(f.ttl!);
            break;
          case "N":
            if (created) {
              it.exptime = store.realtime(f.autoviv);
              won = true;
            }
            break;
          case "R":
            if (!it.tokenSent && !created && it.exptime !== 0 && it.exptime < store.realtime(f.recache!)) won = true;
            break;
          case "s":
            s += ` s${it.value.length}`;
            break;
          case "t":
            s += ` t${it.exptime === 0 ? -1 : it.exptime - now}`;
            break;
          case "c":
            s += ` c${it.cas}`;
            break;
          case "f":
            s += ` f${it.flags}`;
            break;
          case "l":
            s += ` l${la}`;
            break;
          case "h":
            s += ` h${hit ? 1 : 0}`;
            break;
          case "O":
            s += ` ${tok}`;
            break;
          case "k":
            s += keyFlag(it.key, it.keyBinary);
            break;
        }
      }
      if (it.tokenSent) s += " Z";
      if (it.stale) {
        s += " X";
        if (!it.tokenSent) won = true;
      }
      if (won) {
        s += " W";
        it.tokenSent = true;
      }
      if (ttlSet) {
        c.cmd_touch++;
        c.touch_hits++;
      } else {
        c.cmd_get++;
        c.get_hits++;
      }
      line(out, s);
      if (f.value) {
        if (it.value.length > 0) out(it.value);
        out(enc("\r\n"));
      }
      if (!f.noUpdate) store.bump(it);
      return "ok";
    }
    case "ms_too_large":
      c.store_too_large++;
      store.remove(cmd.key);
      line(out, "SERVER_ERROR object too large for cache");
      return "ok";
    case "ms": {
      const f = cmd.f;
      const exptime = f.ttl ?? 0;
      const r = store.store(cmd.mode, cmd.key, cmd.value, f.clientFlags, exptime, f.cas ?? 0n, { stale: f.stale, keyBinary: f.base64 });
      let code: string;
      switch (r.status) {
        case "STORED":
          if (f.quiet) return "ok";
          code = "HD";
          break;
        case "EXISTS":
          code = "EX";
          break;
        case "NOT_FOUND":
          code = "NF";
          break;
        case "NOT_STORED":
          code = "NS";
          break;
        case "TOO_LARGE":
          line(out, "SERVER_ERROR object too large for cache");
          return "ok";
        case "NO_MEMORY":
          line(out, "SERVER_ERROR out of memory storing object");
          return "ok";
      }
      let s = code;
      for (const tok of f.tokens) {
        if (tok[0] === "O") s += ` ${tok}`;
        else if (tok[0] === "k") s += keyFlag(cmd.key, f.base64);
        else if (tok[0] === "c") s += ` c${r.item ? r.item.cas : 0}`;
      }
      line(out, s);
      return "ok";
    }
    case "md": {
      const f = cmd.f;
      const it = store.peek(cmd.key);
      let code: string;
      if (!it) {
        c.delete_misses++;
        code = "NF";
      } else if (f.cas !== null && BigInt(it.cas) !== f.cas) {
        c.delete_misses++;
        code = "EX";
      } else if (f.stale) {
        if (f.ttl !== null) it.exptime = store.realtime(f.ttl);
        it.stale = true;
        it.tokenSent = false;
        store.recas(it);
        if (f.quiet) return "ok";
        code = "HD";
      } else {
        store.delete(cmd.key);
        if (f.quiet) return "ok";
        code = "HD";
      }
      line(out, code + echoFlags(f, cmd.key, f.base64));
      return "ok";
    }
    case "ma": {
      const f = cmd.f;
      const r = store.incrDecr(cmd.key, cmd.incr, f.delta, f.cas ?? 0n);
      let it = r.item ?? null;
      let num = r.value ?? 0n;
      let created = false;
      let code = "";
      switch (r.status) {
        case "OK":
          if (f.quiet) return "ok";
          break;
        case "NON_NUMERIC":
          line(out, "CLIENT_ERROR cannot increment or decrement non-numeric value");
          return "ok";
        case "NO_MEMORY":
          line(out, "SERVER_ERROR out of memory");
          return "ok";
        case "NOT_FOUND":
          if (f.vivify) {
            it = store.create(cmd.key, enc(f.initial.toString()), 0, 0, f.base64);
            if (!it) {
              line(out, "SERVER_ERROR Out of memory allocating new item");
              return "ok";
            }
            num = f.initial;
            created = true;
          } else code = "NF";
          break;
        case "EXISTS":
          code = "EX";
          break;
      }
      if (!it) {
        line(out, code + echoFlags(f, cmd.key, f.base64));
        return "ok";
      }
      const digits = num.toString();
      const now = store.now();
      let s = f.value ? `VA ${digits.length}` : "HD";
      for (const tok of f.tokens) {
        switch (tok[0]) {
          case "c":
            s += ` c${it.cas}`;
            break;
          case "t":
            s += ` t${it.exptime === 0 ? -1 : it.exptime - now}`;
            break;
          case "T":
            it.exptime = store.realtime(f.ttl!);
            break;
          case "N":
            if (created) it.exptime = store.realtime(f.autoviv);
            break;
          case "O":
            s += ` ${tok}`;
            break;
          case "k":
            s += keyFlag(cmd.key, f.base64);
            break;
        }
      }
      if (f.value) s += `\r\n${digits}`;
      line(out, s);
      return "ok";
    }
  }
}
