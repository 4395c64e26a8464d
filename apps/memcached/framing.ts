// The text protocol's shared framing, used by the classic commands (text.ts) and the meta
// commands (meta.ts) alike, so neither imports the other's internals (text.ts dispatches to
// meta.ts, never the other way): a connection's input buffer, memcached's number parsing
// and key check, the parsed command shapes (classic and meta), and what an executor gets
// (the cache and the server's context) and gives back (reply bytes, the connection's next
// action). The binary protocol (binary.ts) uses the input buffer and the executor's types.
import { isSpace, KEY_MAX_LENGTH, keyBytes, type Store, type StoreMode } from "./store.ts";

// ---- the input buffer ------------------------------------------------------------------

/** A growable byte queue for a connection's input: push at the end, consume at the front. */
export class InBuf {
  private buf = new Uint8Array(4096);
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.end + chunk.length > this.buf.length) {
      const len = this.length;
      if (len + chunk.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let cap = this.buf.length * 2;
        while (cap < len + chunk.length) cap *= 2;
        const nb = new Uint8Array(cap);
        nb.set(this.buf.subarray(this.start, this.end), 0);
        this.buf = nb;
      }
      this.start = 0;
      this.end = len;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  at(i: number): number {
    return this.buf[this.start + i]!;
  }

  /** Index (from the front) of byte `b` at or after `from`, or -1. */
  indexOf(b: number, from = 0): number {
    const i = this.buf.subarray(0, this.end).indexOf(b, this.start + from);
    return i < 0 ? -1 : i - this.start;
  }

  /** A view of the next n bytes (valid until the next push or skip). */
  peek(n: number): Uint8Array {
    return this.buf.subarray(this.start, this.start + n);
  }

  /** A copy of the next n bytes, consumed. */
  take(n: number): Uint8Array {
    const b = this.buf.slice(this.start, this.start + n);
    this.skip(n);
    return b;
  }

  skip(n: number): void {
    this.start += Math.min(n, this.length);
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.buf.length > 65536) this.buf = new Uint8Array(4096); // let a big value's buffer go
    }
  }
}

// ---- number parsing as memcached's safe_strto* ----------------------------------------

function digitsEnd(s: string, i: number): number {
  while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
  return i;
}

function scanInt(s: string, signed: boolean): bigint | null {
  let i = 0;
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  let neg = false;
  if (s[i] === "+" || s[i] === "-") {
    neg = s[i] === "-";
    i++;
  }
  const d = digitsEnd(s, i);
  if (d === i || d - i > 25) return null;
  if (d < s.length && !isSpace(s.charCodeAt(d))) return null;
  let v = BigInt(s.slice(i, d));
  if (neg) {
    if (!signed && v !== 0n) return null;
    v = -v;
  }
  return v;
}

/** safe_strtol: a signed 32-bit decimal, or null. */
export function strtol32(s: string): number | null {
  const v = scanInt(s, true);
  return v === null || v < -0x80000000n || v > 0x7fffffffn ? null : Number(v);
}

/** safe_strtoul: an unsigned 32-bit decimal, or null. */
export function strtoul32(s: string): number | null {
  const v = scanInt(s, false);
  return v === null || v < 0n || v > 0xffffffffn ? null : Number(v);
}

/** safe_strtoull: an unsigned 64-bit decimal, or null. */
export function strtoull(s: string): bigint | null {
  const v = scanInt(s, false);
  return v === null || v < 0n || v > 0xffffffffffffffffn ? null : v;
}

/** A key for the text protocols: 1..250 bytes, no control characters. */
export function validKey(k: string): boolean {
  if (k.length === 0 || k.length > KEY_MAX_LENGTH) return false;
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}

// ---- commands ----------------------------------------------------------------------------

export interface MetaFlags {
  /** The flag tokens in request order (first char = the flag). */
  tokens: string[];
  base64: boolean;
  quiet: boolean;
  value: boolean;
  noUpdate: boolean;
  vivify: boolean;
  autoviv: number;
  ttl: number | null;
  recache: number | null;
  clientFlags: number;
  cas: bigint | null;
  mode: string;
  delta: bigint;
  initial: bigint;
  stale: boolean;
}

export type MetaCmd =
  | { op: "mn" }
  | { op: "me"; key: string }
  | { op: "mg"; key: string; f: MetaFlags }
  | { op: "md"; key: string; f: MetaFlags }
  | { op: "ma"; key: string; f: MetaFlags; incr: boolean }
  | { op: "ms"; key: string; f: MetaFlags; mode: StoreMode; value: Uint8Array }
  | { op: "ms_too_large"; key: string };

export type TextCmd =
  /** get/gets/gat/gats/bget: `touch` is gat's raw exptime. */
  | { kind: "get"; keys: string[]; cas: boolean; touch?: number }
  | { kind: "store"; mode: StoreMode; key: string; flags: number; exptime: number; cas: bigint; value: Uint8Array; noreply: boolean }
  /** A storage command whose value is over -I: answered, its bytes swallowed. */
  | { kind: "too_large"; mode: StoreMode; key: string; noreply: boolean }
  | { kind: "delete"; key: string; noreply: boolean }
  | { kind: "arith"; incr: boolean; key: string; delta: bigint; noreply: boolean }
  | { kind: "touch"; key: string; exptime: number; noreply: boolean }
  | { kind: "flush_all"; delay: number; noreply: boolean }
  | { kind: "stats"; args: string[] }
  | { kind: "version" }
  | { kind: "quit" }
  | { kind: "shutdown"; args: string[] }
  | { kind: "verbosity"; level: number; noreply: boolean }
  | { kind: "meta"; cmd: MetaCmd }
  /** A reply decided by the parser (ERROR, CLIENT_ERROR ...): not sent if noreply. */
  | { kind: "reply"; text: string; noreply?: boolean }
  /** Hang up now (an HTTP request, a line too long, garbage). */
  | { kind: "close"; why: string };

/** What a command line asks of the parser after it: nothing more, data to read, or bytes to swallow. */
export type LineResult =
  | { cmd: TextCmd }
  | { data: number; make: (value: Uint8Array) => TextCmd }
  | { swallow: number; cmd: TextCmd };

// ---- execution -------------------------------------------------------------------------

/** Where replies go: each call appends bytes to the connection's output queue. */
export type Out = (b: Uint8Array) => void;

/** What the connection does after a command. */
export type Action = "ok" | "close" | "close-after-write" | "shutdown";

/** What the executors need besides the cache. */
export interface Ctx {
  store: Store;
  /** The version reported by `version` and binary Version ("1.6.0-newts"). */
  version: string;
  verbosity: number;
  /** -A: the shutdown command stops the server. */
  shutdownEnabled: boolean;
  /** `stats [sub]` lines: "" the general ones, else a subcommand; null if there is no such one. */
  stats(sub: string): [string, string | number][] | null;
  /** `stats reset`. */
  resetStats(): void;
  /** For `stats settings`. */
  settings: { port: number; iface: string; maxConns: number };
}

/** Appends one reply line (adding "\r\n") unless noreply. */
export function line(out: Out, text: string, noreply = false): void {
  if (!noreply) out(keyBytes(text + "\r\n"));
}
