// The HTTP/1.x request parser of apps/httpd.ts: pure (bytes in, a request or an error value
// out), incremental across reads, and total: no input makes it throw, and what it holds is
// bounded by its limits, so a hostile client can cost a connection a few KiB and no more.
//
//   const p = new RequestParser();
//   p.push(bytesFromRead);                  // any split: byte by byte works
//   for (let r = p.next(); r.kind === "request"; r = p.next()) answer(r.req);
//   // r.kind === "need": wait for more bytes; "error": answer r.status, then close
//
// What it accepts (RFC 9112, strictly, as lighttpd does):
//   - request-line `METHOD SP request-target SP HTTP/1.x` ended by CRLF (a bare LF is accepted
//     too); empty lines before it are skipped; header fields `name: value` (token name, no
//     whitespace before the colon, no obsolete line folding, no control characters);
//   - origin-form targets (`/path?query`) and absolute-form (`http://host/path`); the path is
//     percent-decoded (as UTF-8) and normalized: `//` collapses, `.` and `..` are resolved, and
//     a `..` that would climb above the root is refused (403), as is a decoded NUL or control
//     character (400);
//   - HTTP/1.1 needs exactly one Host header; Content-Length (one value, digits) is read and
//     that many body bytes are skipped before the next request (pipelining); a request with
//     Transfer-Encoding is refused (501; with Content-Length too: 400);
//   - keep-alive: HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
//
// Errors (each final: the parser stays failed, the connection is to be closed after the answer):
//   400 malformed request line, header, target, percent-encoding, Host, Content-Length
//   403 the path climbs above the document root
//   405 a known method other than GET and HEAD (POST, PUT, DELETE, ...)
//   413 a body over maxBody (a GET body is read and dropped; up to 1 MiB)
//   414 request-target over maxUri (8 KiB), known as soon as the line is that long
//   431 header section over maxHeaderBytes (8 KiB) or over maxHeaders (100) fields
//   501 an unknown method (methods are case-sensitive: `get` is unknown), Transfer-Encoding
//   505 an HTTP major version other than 1
// The error is reported as soon as the bytes held show it: a request line that is too long or
// malformed does not wait for the end of the head.

/** Limits of one parser; every one bounds memory or work per connection. */
export interface ParserLimits {
  /** Longest request-target (bytes, as sent). Longer: 414. */
  maxUri: number;
  /** Longest header section (after the request line, without the final empty line). Longer: 431. */
  maxHeaderBytes: number;
  /** Most header fields. More: 431. */
  maxHeaders: number;
  /** Largest Content-Length accepted (its body is skipped). Larger: 413. */
  maxBody: number;
}

export const DEFAULT_LIMITS: Readonly<ParserLimits> = Object.freeze({
  maxUri: 8192,
  maxHeaderBytes: 8192,
  maxHeaders: 100,
  maxBody: 1 << 20,
});

/** Methods that exist but that a static file server does not allow (405, with Allow: GET, HEAD). */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH",
  "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
]);

/** A complete request head. */
export interface HttpRequest {
  method: "GET" | "HEAD";
  /** The request-target as sent. */
  target: string;
  /** Percent-decoded and normalized; starts with "/"; ends with "/" if the target's path did. */
  path: string;
  /** What followed "?" in the target, raw ("" if none). */
  query: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (and any later 1.x). */
  minor: 0 | 1;
  /** Header fields by lower-case name; repeated fields joined with ", ". */
  headers: Map<string, string>;
  /** The client wants the connection kept open after the response. */
  keepAlive: boolean;
  /** The body's length (skipped by the parser). */
  contentLength: number;
  /** The request line, for the access log (Latin-1; control characters are not possible here). */
  line: string;
  /** Bytes of the head (request line, fields, empty line). */
  headBytes: number;
}

export interface NeedMore {
  kind: "need";
}

export interface Parsed {
  kind: "request";
  req: HttpRequest;
}

export interface ParseError {
  kind: "error";
  status: 400 | 403 | 405 | 413 | 414 | 431 | 501 | 505;
  reason: string;
  /** The request line as far as known (at most 200 characters, control characters shown as "?"), for the log. */
  line: string;
}

export type ParseResult = NeedMore | Parsed | ParseError;

const NEED: NeedMore = Object.freeze({ kind: "need" });
/** The buffer starts this small, and goes back to it between requests once it grew past SHRINK_ABOVE. */
const INITIAL_BUF = 1024;
const SHRINK_ABOVE = 32 * 1024;
const LF = 10;
const CR = 13;
const SP = 32;
const HT = 9;

/** tchar of RFC 9110: token characters. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

const isToken = (s: string) => s.length > 0 && [...s].every((c) => c.charCodeAt(0) < 256 && TCHAR[c.charCodeAt(0)] === 1);

/** Bytes [a, b) of buf as a Latin-1 string. */
function latin1(buf: Uint8Array, a: number, b: number): string {
  let s = "";
  for (let i = a; i < b; i += 4096) s += String.fromCharCode.apply(null, buf.subarray(i, Math.min(b, i + 4096)) as unknown as number[]);
  return s;
}

/** For logs: at most 200 characters, control characters and non-ASCII as "?". */
function printable(s: string): string {
  const t = s.length > 200 ? s.slice(0, 200) : s;
  return t.replace(/[^\x20-\x7e]/g, "?");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * The path of a request-target (before "?"): percent-decoded as UTF-8, `.`/`..`/empty segments
 * resolved. `{ status: 400 }` for bad percent-encoding, invalid UTF-8, a decoded NUL or control
 * character, or a path not starting with "/"; `{ status: 403 }` when `..` climbs above "/".
 */
export function normalizePath(raw: string): { path: string } | { status: 400 | 403; reason: string } {
  if (!raw.startsWith("/")) return { status: 400, reason: "path does not start with /" };
  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const h = i + 2 < raw.length ? hexVal(raw.charCodeAt(i + 1)) : -1;
      const l = h >= 0 ? hexVal(raw.charCodeAt(i + 2)) : -1;
      if (l < 0) return { status: 400, reason: "bad percent-encoding" };
      bytes[n++] = (h << 4) | l;
      i += 2;
    } else if (c > 0xff) {
      return { status: 400, reason: "non-Latin-1 character in path" };
    } else bytes[n++] = c;
  }
  let decoded: string;
  try {
    decoded = utf8.decode(bytes.subarray(0, n));
  } catch {
    return { status: 400, reason: "path is not UTF-8" };
  }
  if (/[\x00-\x1f\x7f]/.test(decoded)) return { status: 400, reason: "control character in path" };
  const parts = decoded.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const s = parts[i]!;
    if (s === "" || s === ".") continue;
    if (s === "..") {
      if (out.length === 0) return { status: 403, reason: "path climbs above the root" };
      out.pop();
      continue;
    }
    out.push(s);
  }
  const last = parts[parts.length - 1]!;
  const trailing = parts.length > 1 && (last === "" || last === "." || last === "..") && out.length > 0;
  return { path: "/" + out.join("/") + (trailing ? "/" : "") };
}

interface RequestLine {
  method: "GET" | "HEAD";
  target: string;
  minor: 0 | 1;
  line: string;
}

/** An incremental parser for the requests of one connection. */
export class RequestParser {
  readonly limits: ParserLimits;
  private buf: Uint8Array;
  /** First byte not consumed, and the end of the bytes held. */
  private start = 0;
  private end = 0;
  /** Offsets from start: bytes already looked at, the first line's LF (-1: not seen), the last LF seen. */
  private scanned = 0;
  private lineLf = -1;
  private lastLf = -1;
  /** The request line, parsed as soon as it is complete. */
  private rl: RequestLine | null = null;
  /** Body bytes still to drop. */
  private skip = 0;
  private failed: ParseError | null = null;
  /** Requests parsed. */
  requests = 0;
  /** Internal errors turned into 400s (a bug if ever nonzero; the fuzz test checks it). */
  internalErrors = 0;

  constructor(limits: Partial<ParserLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.buf = new Uint8Array(INITIAL_BUF);
  }

  /** Bytes held: the next request's (or body bytes still to drop). 0 between requests. */
  get pending(): number {
    return this.end - this.start + this.skip;
  }

  /** The error the parser failed with (it stays failed), or null. */
  get error(): ParseError | null {
    return this.failed;
  }

  /** The most bytes a parser holds for one request head. */
  get maxHeld(): number {
    return this.limits.maxUri + 64 + this.limits.maxHeaderBytes + 4;
  }

  /** Adds bytes read from the connection. After an error they are dropped. */
  push(data: Uint8Array): void {
    if (this.failed || data.length === 0) return;
    let d = data;
    if (this.skip > 0 && this.start === this.end) {
      const k = Math.min(this.skip, d.length);
      this.skip -= k;
      d = d.subarray(k);
      if (d.length === 0) return;
    }
    if (this.end + d.length > this.buf.length) {
      const held = this.end - this.start;
      if (held + d.length <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = this.buf.length * 2;
        while (size < held + d.length) size *= 2;
        const nb = new Uint8Array(size);
        nb.set(this.buf.subarray(this.start, this.end));
        this.buf = nb;
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(d, this.end);
    this.end += d.length;
  }

  /** The next request if its head is complete, an error, or "need" (more bytes). */
  next(): ParseResult {
    if (this.failed) return this.failed;
    try {
      return this.step();
    } catch (e) {
      this.internalErrors++;
      return this.fail(400, `internal parser error: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private fail(status: ParseError["status"], reason: string, line?: string): ParseError {
    const shown = line ?? (this.rl ? this.rl.line : latin1(this.buf, this.start, Math.min(this.end, this.start + (this.lineLf >= 0 ? this.lineLf : 200), this.start + 200)));
    this.failed = { kind: "error", status, reason, line: printable(shown.replace(/\r$/, "")) };
    return this.failed;
  }

  private step(): ParseResult {
    const b = this.buf;
    // Body bytes of the previous request still held.
    if (this.skip > 0) {
      const k = Math.min(this.skip, this.end - this.start);
      this.start += k;
      this.skip -= k;
      if (this.skip > 0) return NEED;
    }
    // Empty lines before a request line are skipped (RFC 9112 §2.2).
    if (this.lineLf < 0 && this.scanned === 0) {
      while (this.start < this.end && (b[this.start] === CR || b[this.start] === LF)) this.start++;
    }
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.buf.length > SHRINK_ABOVE) this.buf = new Uint8Array(INITIAL_BUF); // a burst of pipelined requests is over
      return NEED;
    }
    const L = this.limits;
    const base = this.start;
    let i = base + this.scanned;
    for (;;) {
      const at = b.subarray(i, this.end).indexOf(LF);
      if (at < 0) break;
      const lf = i + at;
      const off = lf - base;
      if (this.lineLf < 0) {
        this.lineLf = off;
        this.lastLf = off;
        const e = this.requestLine(base, lf);
        if (e) return e;
      } else {
        const lineLen = off - this.lastLf - 1; // bytes between the previous LF and this one
        if (lineLen === 0 || (lineLen === 1 && b[lf - 1] === CR)) return this.head(base, lf + 1);
        this.lastLf = off;
        if (off - this.lineLf - 1 > L.maxHeaderBytes) return this.fail(431, "header section too large");
      }
      i = lf + 1;
    }
    const from = base + this.scanned;
    this.scanned = this.end - base;
    if (this.lineLf < 0) {
      if (this.scanned > L.maxUri + 64) {
        // The line is not over: say why as well as the bytes held can tell.
        const sp = b.indexOf(SP, base);
        const method = sp > base && sp < this.end && sp - base <= 64 ? latin1(b, base, sp) : "";
        return this.fail(isToken(method) ? 414 : 400, isToken(method) ? "request-target too long" : "malformed request line");
      }
      // A request line that is already wrong needs no more bytes: e.g. a control character.
      for (let k = Math.max(base, from - 1); k < this.end; k++) {
        const c = b[k]!;
        if ((c < 0x20 && c !== CR) || c === 0x7f) return this.fail(400, "control character in request line");
        if (c === CR && k + 1 < this.end) return this.fail(400, "bare CR in request line");
      }
      return NEED;
    }
    if (this.scanned - this.lineLf - 1 > L.maxHeaderBytes + 2) return this.fail(431, "header section too large");
    return NEED;
  }

  /** Parses the request line [a, lf); an error, or null (it is kept in this.rl). */
  private requestLine(a: number, lf: number): ParseError | null {
    const b = this.buf;
    let e = lf;
    if (e > a && b[e - 1] === CR) e--;
    const line = latin1(b, a, e);
    for (let k = a; k < e; k++) {
      const c = b[k]!;
      if (c < 0x20 || c === 0x7f) return this.fail(400, c === CR ? "bare CR in request line" : "control character in request line", line);
    }
    const sp1 = line.indexOf(" ");
    const sp2 = sp1 < 0 ? -1 : line.indexOf(" ", sp1 + 1);
    const method = sp1 < 0 ? line : line.slice(0, sp1);
    if (!isToken(method)) return this.fail(400, "malformed method", line);
    if (sp1 >= 0 && (sp2 < 0 ? line.length : sp2) - sp1 - 1 > this.limits.maxUri) return this.fail(414, "request-target too long", line);
    if (sp1 < 0 || sp2 < 0 || line.indexOf(" ", sp2 + 1) >= 0) return this.fail(400, "malformed request line", line);
    const target = line.slice(sp1 + 1, sp2);
    const version = line.slice(sp2 + 1);
    if (target.length === 0) return this.fail(400, "empty request-target", line);
    const v = /^HTTP\/(\d)\.(\d)$/.exec(version);
    if (!v) return this.fail(400, "malformed HTTP version", line);
    if (v[1] !== "1") return this.fail(505, `HTTP/${v[1]}.${v[2]} is not supported`, line);
    if (method !== "GET" && method !== "HEAD") {
      return KNOWN_METHODS.has(method) ? this.fail(405, `method ${method} not allowed`, line) : this.fail(501, "method not implemented", line);
    }
    for (let k = 0; k < target.length; k++) {
      const c = target.charCodeAt(k);
      if (c <= 0x20 || c >= 0x7f) return this.fail(400, "bad character in request-target", line);
    }
    this.rl = { method, target, minor: v[2] === "0" ? 0 : 1, line };
    return null;
  }

  /** The head is [a, end): parse the fields, check them, consume the head. */
  private head(a: number, end: number): ParseResult {
    const b = this.buf;
    const rl = this.rl!;
    const L = this.limits;
    const headers = new Map<string, string>();
    let count = 0;
    let pos = a + this.lineLf + 1;
    let clSeen: string | null = null;
    let hostSeen = false;
    for (;;) {
      const lf = b.indexOf(LF, pos);
      let e = lf;
      if (e > pos && b[e - 1] === CR) e--;
      if (e === pos) break; // the empty line
      if (++count > L.maxHeaders) return this.fail(431, "too many header fields");
      const c0 = b[pos]!;
      if (c0 === SP || c0 === HT) return this.fail(400, "obsolete line folding");
      let colon = -1;
      for (let k = pos; k < e; k++) {
        const c = b[k]!;
        if (colon < 0) {
          if (c === 58) colon = k;
          else if (TCHAR[c] !== 1) return this.fail(400, "malformed header field name");
        } else if ((c < 0x20 && c !== HT) || c === 0x7f) return this.fail(400, "control character in header field");
      }
      if (colon <= pos) return this.fail(400, colon < 0 ? "header field without a colon" : "empty header field name");
      const name = latin1(b, pos, colon).toLowerCase();
      let vs = colon + 1;
      let ve = e;
      while (vs < ve && (b[vs] === SP || b[vs] === HT)) vs++;
      while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HT)) ve--;
      const value = latin1(b, vs, ve);
      pos = lf + 1;
      if (name === "content-length") {
        if (!/^\d{1,15}$/.test(value)) return this.fail(400, "malformed Content-Length");
        if (clSeen !== null && Number(clSeen) !== Number(value)) return this.fail(400, "conflicting Content-Length");
        clSeen = value;
        continue; // kept once, below
      }
      if (name === "host") {
        if (hostSeen) return this.fail(400, "more than one Host");
        hostSeen = true;
        if (!/^[A-Za-z0-9.\-_:[\]]*$/.test(value)) return this.fail(400, "malformed Host");
      }
      const had = headers.get(name);
      headers.set(name, had === undefined ? value : `${had}, ${value}`);
    }
    if (clSeen !== null) headers.set("content-length", String(Number(clSeen)));
    return this.finish(a, end, headers, rl, clSeen, hostSeen);
  }

  private finish(
    a: number, end: number, headers: Map<string, string>, rl: RequestLine, cl: string | null, host: boolean,
  ): ParseResult {
    const L = this.limits;
    if (headers.has("transfer-encoding")) {
      return cl !== null ? this.fail(400, "Transfer-Encoding with Content-Length") : this.fail(501, "Transfer-Encoding not implemented");
    }
    if (rl.minor === 1 && !host) return this.fail(400, "HTTP/1.1 request without Host");
    const contentLength = cl === null ? 0 : Number(cl);
    if (contentLength > L.maxBody) return this.fail(413, "body too large");
    // The target: origin-form or absolute-form.
    let t = rl.target;
    if (!t.startsWith("/")) {
      const m = /^https?:\/\/[^/?#]*/i.exec(t);
      if (!m) return this.fail(400, "unsupported request-target form");
      t = t.slice(m[0].length);
      if (!t.startsWith("/")) t = "/" + t;
    }
    const hash = t.indexOf("#");
    if (hash >= 0) t = t.slice(0, hash);
    const q = t.indexOf("?");
    const rawPath = q < 0 ? t : t.slice(0, q);
    const query = q < 0 ? "" : t.slice(q + 1);
    const np = normalizePath(rawPath);
    if ("status" in np) return this.fail(np.status, np.reason);
    let keepAlive = rl.minor === 1;
    const conn = headers.get("connection");
    if (conn !== undefined) {
      for (const tok of conn.split(",")) {
        const k = tok.trim().toLowerCase();
        if (k === "close") {
          keepAlive = false;
          break;
        }
        if (k === "keep-alive") keepAlive = true;
      }
    }
    const req: HttpRequest = {
      method: rl.method, target: rl.target, path: np.path, query, minor: rl.minor, headers, keepAlive, contentLength, line: rl.line, headBytes: end - a,
    };
    this.start = end;
    this.scanned = 0;
    this.lineLf = this.lastLf = -1;
    this.rl = null;
    this.requests++;
    const k = Math.min(contentLength, this.end - this.start);
    this.start += k;
    this.skip = contentLength - k;
    if (this.start === this.end) this.start = this.end = 0;
    return { kind: "request", req };
  }
}
