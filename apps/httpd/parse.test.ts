// The HTTP request parser from literal bytes: whole, byte by byte, pipelined, every error
// status, and a fuzz run (FUZZ_SEED=<seed> replays one; HTTP_FUZZ=<n> runs more inputs);
// and the header values the server parses itself (Range, HTTP dates, MIME types).
import { describe, expect, test } from "vitest";
import { DEFAULT_LIMITS, normalizePath, RequestParser, type ParseResult } from "./parse.ts";
import { mulberry32 } from "../../lib/sys/prng.ts";
import { httpDate, mimeType, parseHttpDate, parseRange } from "./response.ts";

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** Every result the parser gives for `input` pushed in the given pieces (next() after each push until "need"). */
function parseAll(pieces: Uint8Array[], p = new RequestParser()): ParseResult[] {
  const out: ParseResult[] = [];
  for (const piece of pieces) {
    p.push(piece);
    for (let k = 0; k < 10_000; k++) {
      const r = p.next();
      if (r.kind === "need") break;
      out.push(r);
      if (r.kind === "error") return out;
    }
  }
  return out;
}

const one = (s: string) => parseAll([bytes(s)]);
const status = (s: string) => {
  const r = one(s);
  const last = r[r.length - 1];
  return last?.kind === "error" ? last.status : last?.kind === "request" ? 200 : 0;
};
const req = (s: string) => {
  const r = one(s);
  expect(r.length, JSON.stringify(r)).toBe(1);
  const x = r[0]!;
  if (x.kind !== "request") throw new Error(`not a request: ${JSON.stringify(x)}`);
  return x.req;
};
const byteByByte = (s: string) => parseAll([...bytes(s)].map((b) => Uint8Array.of(b)));

describe("requests", () => {
  test("a GET with headers", () => {
    const r = req("GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\nAccept: text/html\r\n\r\n");
    expect(r.method).toBe("GET");
    expect(r.target).toBe("/index.html?x=1");
    expect(r.path).toBe("/index.html");
    expect(r.query).toBe("x=1");
    expect(r.minor).toBe(1);
    expect(r.keepAlive).toBe(true);
    expect(r.headers.get("host")).toBe("example.com");
    expect(r.headers.get("accept")).toBe("*/*, text/html");
    expect(r.line).toBe("GET /index.html?x=1 HTTP/1.1");
    expect(r.contentLength).toBe(0);
  });

  test("keep-alive by version and Connection", () => {
    expect(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive).toBe(true);
    expect(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive).toBe(false);
    expect(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, Close\r\n\r\n").keepAlive).toBe(false);
    expect(req("GET / HTTP/1.0\r\n\r\n").keepAlive).toBe(false);
    expect(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive).toBe(true);
    expect(req("GET / HTTP/1.0\r\n\r\n").minor).toBe(0);
    expect(req("GET / HTTP/1.9\r\nHost: a\r\n\r\n").minor).toBe(1); // a later 1.x is answered as 1.1
  });

  test("HEAD, bare LF line ends, leading empty lines, OWS around values, absolute-form", () => {
    expect(req("HEAD /a HTTP/1.1\nHost: a\n\n").method).toBe("HEAD");
    expect(req("\r\n\r\nGET /b HTTP/1.0\r\n\r\n").path).toBe("/b");
    expect(req("GET / HTTP/1.1\r\nHost: \t a.b \t\r\n\r\n").headers.get("host")).toBe("a.b");
    const r = req("GET http://example.com:8080/x/y?q HTTP/1.1\r\nHost: example.com\r\n\r\n");
    expect(r.path).toBe("/x/y");
    expect(r.query).toBe("q");
    expect(req("GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n").path).toBe("/");
  });

  test("incremental: byte by byte gives the same request, and nothing before the last byte", () => {
    const s = "GET /a/b.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n";
    const p = new RequestParser();
    const b = bytes(s);
    for (let i = 0; i < b.length - 1; i++) {
      p.push(b.subarray(i, i + 1));
      expect(p.next().kind).toBe("need");
    }
    p.push(b.subarray(b.length - 1));
    const r = p.next();
    expect(r.kind).toBe("request");
    if (r.kind === "request") {
      expect(r.req.path).toBe("/a/b.txt");
      expect(r.req.headers.get("range")).toBe("bytes=1-2");
      expect(r.req.headBytes).toBe(b.length);
    }
    expect(p.next().kind).toBe("need");
    expect(p.pending).toBe(0);
  });

  test("pipelined: ten requests in one push come out in order, then a partial one waits", () => {
    let s = "";
    for (let i = 0; i < 10; i++) s += `GET /${i} HTTP/1.1\r\nHost: h\r\n\r\n`;
    s += "GET /partial HTTP/1.1\r\nHo";
    const p = new RequestParser();
    const r = parseAll([bytes(s)], p);
    expect(r.map((x) => (x.kind === "request" ? x.req.path : "?"))).toEqual([...Array(10).keys()].map((i) => `/${i}`));
    expect(p.pending).toBeGreaterThan(0);
    p.push(bytes("st: h\r\n\r\n"));
    const last = p.next();
    expect(last.kind === "request" && last.req.path).toBe("/partial");
    // the same bytes in every split give the same requests
    const all = bytes(s + "st: h\r\n\r\n");
    for (let cut = 1; cut < all.length; cut += 7) {
      const got = parseAll([all.subarray(0, cut), all.subarray(cut)]);
      expect(got.length).toBe(11);
    }
    expect(byteByByte(s + "st: h\r\n\r\n").length).toBe(11);
  });

  test("a body announced by Content-Length is skipped before the next request, in any split", () => {
    const s = "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    for (const r of [one(s), byteByByte(s)]) {
      expect(r.map((x) => (x.kind === "request" ? `${x.req.path}:${x.req.contentLength}` : x.kind))).toEqual(["/a:5", "/b:0"]);
    }
    // a body that arrives later than its head
    const p = new RequestParser();
    expect(parseAll([bytes("GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")], p).length).toBe(1);
    expect(p.pending).toBe(3);
    expect(parseAll([bytes("xy")], p).length).toBe(0);
    expect(p.pending).toBe(1);
    expect(parseAll([bytes("zGET /c HTTP/1.0\r\n\r\n")], p).map((x) => x.kind === "request" && x.req.path)).toEqual(["/c"]);
  });
});

describe("paths", () => {
  test("percent-decoding and dot segments", () => {
    expect(normalizePath("/a/./b/../c")).toEqual({ path: "/a/c" });
    expect(normalizePath("//a//b/")).toEqual({ path: "/a/b/" });
    expect(normalizePath("/a/b/..")).toEqual({ path: "/a/" });
    expect(normalizePath("/a/.")).toEqual({ path: "/a/" });
    expect(normalizePath("/")).toEqual({ path: "/" });
    expect(normalizePath("/..a/...")).toEqual({ path: "/..a/..." });
    expect(normalizePath("/caf%C3%A9%20x")).toEqual({ path: "/café x" });
    expect(normalizePath("/a%2fb")).toEqual({ path: "/a/b" });
    expect(normalizePath("/x/%2e%2e/y")).toEqual({ path: "/y" });
  });

  test("climbing above the root is refused (403), however it is spelled", () => {
    for (const p of ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/%2E%2E%2Fetc", "/..%2f..%2fetc%2fpasswd", "/a/%2e%2e/%2e%2e/x", "/./../x"]) {
      expect((normalizePath(p) as { status: number }).status, p).toBe(403);
    }
    expect(status("GET /../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n")).toBe(403);
    expect(status("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.0\r\n\r\n")).toBe(403);
    expect(status("GET http://h/../x HTTP/1.1\r\nHost: h\r\n\r\n")).toBe(403);
  });

  test("bad percent-encoding, invalid UTF-8, NUL and control characters: 400", () => {
    for (const p of ["/%", "/%4", "/%zz", "/%ff", "/%c3", "/a%00b", "/%0a", "/%7f", "a/b"]) {
      expect((normalizePath(p) as { status: number }).status, p).toBe(400);
    }
    expect(status("GET /%00 HTTP/1.1\r\nHost: h\r\n\r\n")).toBe(400);
  });
});

describe("errors", () => {
  const H = "Host: h\r\n";
  test("400: malformed request lines", () => {
    for (const s of [
      "GET /\r\n\r\n", // HTTP/0.9
      "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n",
      "GET / HTTX/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.10\r\nHost: h\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
    ]) {
      expect(status(s), JSON.stringify(s)).toBe(400);
    }
  });

  test("400: malformed header fields, Host, Content-Length", () => {
    for (const s of [
      `GET / HTTP/1.1\r\n${H}Bad Name: x\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}Name : x\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}NoColon\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}: empty\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}X: a\r\n folded\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`,
      "GET / HTTP/1.1\r\n\r\n", // no Host
      `GET / HTTP/1.1\r\n${H}${H}\r\n`,
      "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
      `GET / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}Content-Length: 1x\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`,
    ]) {
      expect(status(s), JSON.stringify(s)).toBe(400);
    }
    // the same Content-Length twice is one
    expect(req(`GET / HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 00\r\n\r\n`).contentLength).toBe(0);
  });

  test("405 for known methods, 501 for unknown ones and Transfer-Encoding, 505 for HTTP/2", () => {
    for (const m of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"]) {
      expect(status(`${m} / HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc`), m).toBe(405);
    }
    for (const m of ["FOO", "get", "BREW", "X"]) expect(status(`${m} / HTTP/1.1\r\n${H}\r\n`), m).toBe(501);
    expect(status(`GET / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`)).toBe(501);
    expect(status(`GET / HTTP/2.0\r\n${H}\r\n`)).toBe(505);
    expect(status(`GET / HTTP/0.9\r\n${H}\r\n`)).toBe(505);
  });

  test("405 and 501 are known from the request line, before the rest of the head", () => {
    expect(parseAll([bytes("DELETE /x HTTP/1.1\r\n")])[0]).toMatchObject({ kind: "error", status: 405, line: "DELETE /x HTTP/1.1" });
    expect(parseAll([bytes("FOO /x HTTP/1.1\r\nHo")])[0]).toMatchObject({ kind: "error", status: 501 });
  });

  test("414: a target over 8 KiB, whether or not its line has ended", () => {
    const long = "/" + "a".repeat(DEFAULT_LIMITS.maxUri);
    expect(status(`GET ${long} HTTP/1.1\r\n${H}\r\n`)).toBe(414);
    expect(status(`GET /${"a".repeat(DEFAULT_LIMITS.maxUri - 1)} HTTP/1.1\r\n${H}\r\n`)).toBe(200); // exactly 8 KiB
    // no end of line yet: known once the bytes held are too many for a line with a legal target
    const p = new RequestParser();
    const r = parseAll([bytes("GET /"), bytes("a".repeat(DEFAULT_LIMITS.maxUri + 100))], p);
    expect(r[0]).toMatchObject({ kind: "error", status: 414 });
    // and junk that long without a line end: 400
    expect(parseAll([bytes("x".repeat(DEFAULT_LIMITS.maxUri + 100))])[0]).toMatchObject({ kind: "error", status: 400 });
  });

  test("431: a header section over 8 KiB or over 100 fields, whether or not the head has ended", () => {
    const big = `X-Big: ${"b".repeat(DEFAULT_LIMITS.maxHeaderBytes)}\r\n`;
    expect(status(`GET / HTTP/1.1\r\n${H}${big}\r\n`)).toBe(431);
    const p = new RequestParser();
    const r = parseAll([bytes(`GET / HTTP/1.1\r\n${H}`), bytes(big.slice(0, -2))], p);
    expect(r[0]).toMatchObject({ kind: "error", status: 431 });
    let many = "";
    for (let i = 0; i <= DEFAULT_LIMITS.maxHeaders; i++) many += `X-${i}: v\r\n`;
    expect(status(`GET / HTTP/1.1\r\n${H}${many}\r\n`)).toBe(431);
    // just under both limits is fine
    let ok = "";
    for (let i = 0; i < DEFAULT_LIMITS.maxHeaders - 1; i++) ok += `X-${i}: v\r\n`;
    expect(status(`GET / HTTP/1.1\r\n${H}${ok}\r\n`)).toBe(200);
  });

  test("413: a body over the limit", () => {
    expect(status(`GET / HTTP/1.1\r\n${H}Content-Length: ${DEFAULT_LIMITS.maxBody + 1}\r\n\r\n`)).toBe(413);
  });

  test("an error is final: the parser stays failed and drops what comes after", () => {
    const p = new RequestParser();
    const r = parseAll([bytes("BAD LINE\r\n\r\nGET / HTTP/1.0\r\n\r\n")], p);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ kind: "error", status: 400 });
    p.push(bytes("GET / HTTP/1.0\r\n\r\n"));
    expect(p.next()).toBe(p.error);
  });

  test("a trickle of header bytes never makes the parser hold more than its limits", () => {
    const p = new RequestParser();
    p.push(bytes("GET / HTTP/1.1\r\n"));
    let r: ParseResult = p.next();
    for (let i = 0; i < 20_000 && r.kind === "need"; i++) {
      p.push(bytes(i % 10 === 9 ? "\r\n" : "aaaaaa:b"));
      r = p.next();
      expect(p.pending).toBeLessThanOrEqual(p.maxHeld + 16);
    }
    expect(r).toMatchObject({ kind: "error", status: 431 });
  });
});

describe("header values the server parses (response.ts)", () => {
  test("Range: single byte ranges against a size", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange("bytes=90-", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=-1000", 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange("bytes=50-1000", 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange("Bytes = 1 - 2", 100)).toEqual({ start: 1, end: 2 });
    for (const u of ["bytes=100-", "bytes=100-200", "bytes=-0"]) expect(parseRange(u, 100), u).toBe("unsatisfiable");
    expect(parseRange("bytes=-5", 0)).toBe("unsatisfiable");
    for (const ig of ["bytes=5-1", "bytes=0-1,3-4", "items=0-1", "bytes=", "bytes=-", "bytes=a-b", "bytes=0x1-2", "bytes=1-2 x"]) expect(parseRange(ig, 100), ig).toBeNull();
  });

  test("HTTP dates: IMF-fixdate out, the three forms in", () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(httpDate(t)).toBe("Sun, 06 Nov 1994 08:49:37 GMT");
    expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT")).toBe(t);
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT")).toBe(t);
    expect(parseHttpDate("Sun Nov  6 08:49:37 1994")).toBe(t);
    for (const bad of ["", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT"]) {
      expect(parseHttpDate(bad), bad).toBeNull();
    }
  });

  test("MIME types by extension", () => {
    expect(mimeType("/a/index.HTML")).toBe("text/html; charset=utf-8");
    expect(mimeType("/x.css")).toBe("text/css; charset=utf-8");
    expect(mimeType("/x.png")).toBe("image/png");
    expect(mimeType("/x.tar.gz")).toBe("application/gzip");
    for (const o of ["/x", "/.bashrc", "/dir.d/file", "/x.unknown"]) expect(mimeType(o), o).toBe("application/octet-stream");
  });
});

describe("fuzz", () => {
  const SEED = Number(process.env.FUZZ_SEED ?? 0x68747470) >>> 0;
  const N = Number(process.env.HTTP_FUZZ ?? 100_000);
  const SEEDS = [
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "HEAD /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET /a/../b/%2e%2e/c?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-10\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    "GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyGET /y HTTP/1.1\r\nHost: h\r\n\r\n",
    "POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    "GET http://h:80/p HTTP/1.1\nHost: h\n\n",
    "\r\n\r\nGET /%c3%a9 HTTP/1.1\r\nHost: [::1]:80\r\nX: a\tb\r\n\r\n",
  ];
  const VALID = new Set([400, 403, 405, 413, 414, 431, 501, 505]);

  function mutate(rnd: () => number, s: Uint8Array): Uint8Array {
    const a = [...s];
    const ops = 1 + (rnd() % 4);
    const specials = [13, 10, 32, 58, 37, 0, 9, 0x7f, 0xff, 47, 46];
    for (let k = 0; k < ops; k++) {
      const at = a.length ? rnd() % (a.length + 1) : 0;
      switch (rnd() % 7) {
        case 0: // flip a byte
          if (a.length) a[at % a.length] = rnd() & 0xff;
          break;
        case 1: // insert a special byte
          a.splice(at, 0, specials[rnd() % specials.length]!);
          break;
        case 2: // delete a run
          a.splice(at, 1 + (rnd() % 8));
          break;
        case 3: {
          // duplicate a slice
          const from = rnd() % (a.length + 1);
          a.splice(at, 0, ...a.slice(from, from + (rnd() % 32)));
          break;
        }
        case 4: // truncate
          a.length = at;
          break;
        case 5: // random bytes
          for (let j = rnd() % 16; j > 0; j--) a.splice(at, 0, rnd() & 0xff);
          break;
        default: // another seed appended (pipelining)
          a.push(...bytes(SEEDS[rnd() % SEEDS.length]!));
      }
    }
    return Uint8Array.from(a);
  }

  test(`${N} random and mutated inputs, whole and in random pieces: never a throw, the same answers either way`, () => {
    const rnd = mulberry32(SEED);
    console.log(`http fuzz seed ${SEED.toString()} (FUZZ_SEED to replay)`);
    let requests = 0;
    const statuses = new Map<number, number>();
    for (let i = 0; i < N; i++) {
      let input: Uint8Array;
      if (i % 10 === 0) {
        input = new Uint8Array(rnd() % 300);
        for (let j = 0; j < input.length; j++) input[j] = rnd() & 0xff;
      } else input = mutate(rnd, bytes(SEEDS[rnd() % SEEDS.length]!));
      const whole = new RequestParser();
      const a = parseAll([input], whole);
      const pieces: Uint8Array[] = [];
      for (let off = 0; off < input.length; ) {
        const n = 1 + (rnd() % 24);
        pieces.push(input.subarray(off, off + n));
        off += n;
      }
      const split = new RequestParser();
      const b = parseAll(pieces, split);
      expect(whole.internalErrors + split.internalErrors).toBe(0);
      const sig = (r: ParseResult[]) => r.map((x) => (x.kind === "request" ? `${x.req.method} ${x.req.path} ${x.req.contentLength}` : `E${x.kind === "error" ? x.status : "?"}`));
      const sa = sig(a);
      const sb = sig(b);
      if (sa.join("|") !== sb.join("|")) throw new Error(`input ${i} ${JSON.stringify(new TextDecoder("latin1").decode(input))}: ${JSON.stringify(sa)} vs ${JSON.stringify(sb)}`);
      for (const x of a) {
        if (x.kind === "request") {
          requests++;
          expect(x.req.path.startsWith("/")).toBe(true);
          expect(x.req.path.split("/").includes("..")).toBe(false);
        } else if (x.kind === "error") {
          expect(VALID.has(x.status)).toBe(true);
          statuses.set(x.status, (statuses.get(x.status) ?? 0) + 1);
        }
      }
    }
    console.log(`http fuzz: ${N} inputs, ${requests} requests, errors ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(requests).toBeGreaterThan(N / 10);
  }, 120_000);
});
