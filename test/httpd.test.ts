// apps/httpd.ts on a booted machine, driven from this worker over real sockets: on newts fast
// sockets through the hostfwd wire (127.0.0.1:HOSTPORT -> newts:80), on newts syscall sockets,
// and on Linux sockets (the server then listens on this machine's 127.0.0.1 itself), with
// each event handler. Files are checked byte for byte; pipelined answers are parsed from the
// raw stream; hostile clients (malformed requests, traversal, 200 slowloris connections)
// get their status and do not stall the others. No timing thresholds: only "it finishes".
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connect, type Socket } from "node:net";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { Machine } from "../kernel/boot.ts";
import { DEFAULT_DOCROOT, SAMPLE_BINS, samplePattern } from "../apps/httpd/site.ts";
import { freePort } from "../lib/sys/hostport.ts";

const APP = "apps/httpd.ts";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Resp {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/** Parses HTTP responses off the front of buf; `heads[i]`: the i-th answers a HEAD (no body). */
function parseResponses(buf: Uint8Array, heads: boolean[], from: number): { resps: Resp[]; used: number } {
  const resps: Resp[] = [];
  let off = 0;
  for (;;) {
    const text = Buffer.from(buf.buffer, buf.byteOffset + off, buf.length - off).toString("latin1");
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) break;
    const lines = text.slice(0, end).split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(lines[0]!)?.[1] ?? -1);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
    }
    const head = heads[from + resps.length] === true || status === 304;
    const len = head ? 0 : Number(headers.get("content-length") ?? 0);
    if (buf.length - off - end - 4 < len) break;
    resps.push({ status, headers, body: buf.slice(off + end + 4, off + end + 4 + len) });
    off += end + 4 + len;
  }
  return { resps, used: off };
}

/** A raw client: writes, collects the responses, knows when the server closed. */
class Raw {
  readonly sock: Socket;
  private buf = new Uint8Array(0);
  readonly resps: Resp[] = [];
  heads: boolean[] = [];
  ended = false;
  closed = false;
  connected: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(port: number) {
    this.sock = connect({ host: "127.0.0.1", port });
    this.connected = new Promise((r) => this.sock.once("connect", () => r()));
    this.sock.on("data", (d: Buffer) => {
      const nb = new Uint8Array(this.buf.length + d.length);
      nb.set(this.buf);
      nb.set(d, this.buf.length);
      const { resps, used } = parseResponses(nb, this.heads, this.resps.length);
      this.resps.push(...resps);
      this.buf = nb.slice(used);
      this.wake();
    });
    this.sock.on("end", () => {
      this.ended = true;
      this.wake();
    });
    this.sock.on("error", () => {});
    this.sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(s: string | Uint8Array, head = false): void {
    this.heads.push(head);
    this.sock.write(s);
  }

  /** Resolves when n responses are in (or the connection ended: then with fewer). */
  async until(n: number, ms = 30_000): Promise<Resp[]> {
    const t0 = performance.now();
    while (this.resps.length < n && !this.ended && !this.closed) {
      if (performance.now() - t0 > ms) throw new Error(`${this.resps.length} of ${n} responses after ${ms} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return this.resps;
  }

  /** Resolves when the server has ended the connection (its FIN or a reset). */
  async untilEnd(ms = 30_000): Promise<void> {
    const t0 = performance.now();
    while (!this.ended && !this.closed) {
      if (performance.now() - t0 > ms) throw new Error(`not ended after ${ms} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  destroy(): void {
    this.sock.destroy();
  }
}

const GET = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;

async function get(port: number, path: string, headers: Record<string, string> = {}, method = "GET", ms = 30_000): Promise<Resp> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers, method, redirect: "manual", signal: AbortSignal.timeout(ms) });
  return { status: r.status, headers: new Map([...r.headers]), body: new Uint8Array(await r.arrayBuffer()) };
}

const www = (name: string) => new Uint8Array(readFileSync(`${DEFAULT_DOCROOT}/${name}`));

/** Waits for httpd's start-up line for `port`; returns the app's name. */
async function started(m: Machine, name: string, port: number): Promise<string> {
  for (let i = 0; i < 300; i++) {
    if (m.logs.some((l) => l.startsWith(`${name}: listening on `) && l.includes(`:${port},`))) return name;
    const failed = m.exits.find((e) => e.name === name);
    if (failed) throw new Error(`httpd exited: ${JSON.stringify(failed)}\n${m.logs.filter((l) => l.startsWith(name) || l.startsWith("rs")).join("\n")}`);
    await sleep(50);
  }
  throw new Error(`httpd ${name} did not start:\n${m.logs.slice(-20).join("\n")}`);
}


/**
 * A few requests of each kind, the same on every backend and handler: the three files byte for
 * byte, HEAD, a range, ten pipelined requests, a malformed one. Returns how many requests the
 * server saw.
 */
async function basics(port: number): Promise<number> {
  for (const name of ["20b.txt", "11k.bin", "512k.bin"]) {
    const r = await get(port, `/${name}`);
    expect(r.status, name).toBe(200);
    expect(Buffer.compare(r.body, www(name)), name).toBe(0);
  }
  const h = await get(port, "/11k.bin", {}, "HEAD");
  expect(h.status).toBe(200);
  expect(h.headers.get("content-length")).toBe(String(SAMPLE_BINS["11k.bin"]));
  expect(h.body.length).toBe(0);
  const rg = await get(port, "/512k.bin", { Range: "bytes=1000-1999" });
  expect(rg.status).toBe(206);
  expect(Buffer.compare(rg.body, www("512k.bin").subarray(1000, 2000))).toBe(0);
  const c = new Raw(port);
  const paths = ["/20b.txt", "/11k.bin", "/", "/nope", "/20b.txt", "/11k.bin", "/20b.txt", "/512k.bin", "/20b.txt", "/11k.bin"];
  c.heads = paths.map(() => false);
  c.sock.write(paths.map((p) => GET(p)).join(""));
  const rs = await c.until(10);
  expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 404, 200, 200, 200, 200, 200, 200]);
  expect(Buffer.compare(rs[7]!.body, www("512k.bin"))).toBe(0);
  c.destroy();
  const bad = new Raw(port);
  bad.send("NONSENSE\r\n\r\n");
  expect((await bad.until(1))[0]!.status).toBe(400);
  await bad.untilEnd();
  bad.destroy();
  return 3 + 1 + 1 + 10 + 1;
}

/**
 * `count` connections trickle a request head (a header line every 300 ms, never the end);
 * meanwhile a real client gets a file, then two pipelined ones; then the server's header
 * timeout ends every slow connection, each with a 408. Four real requests in all.
 */
async function slowloris(port: number, count: number, realMs = 30_000): Promise<void> {
  const slow: Raw[] = [];
  const real: Raw[] = [];
  try {
    for (let i = 0; i < count; i++) slow.push(new Raw(port));
    await Promise.all(slow.map((c) => c.connected));
    for (const c of slow) c.send("GET / HTTP/1.1\r\nHost: t\r\n");
    let trickling = true;
    const trickle = (async () => {
      for (let k = 0; trickling && k < 200; k++) {
        await sleep(300);
        for (const c of slow) if (!c.ended && !c.closed) c.sock.write(`X-${k}: y\r\n`);
      }
    })();
    const t0 = performance.now();
    const r = await get(port, "/11k.bin", {}, "GET", realMs);
    const ms = performance.now() - t0;
    const openThen = slow.filter((c) => !c.ended && !c.closed).length;
    expect(r.status).toBe(200);
    expect(Buffer.compare(r.body, www("11k.bin"))).toBe(0);
    // The real client is not one of the trickled connections (a header line written into it
    // after its two requests would be a malformed third one: 400).
    const k = new Raw(port);
    real.push(k);
    k.send(GET("/20b.txt"));
    k.send(GET("/512k.bin"));
    const two = await k.until(2, realMs);
    expect(two.map((x) => x.status)).toEqual([200, 200]);
    expect(Buffer.compare(two[1]!.body, www("512k.bin"))).toBe(0);
    k.destroy();
    console.log(`slowloris x${count}: the real client's 11 kB in ${ms.toFixed(0)} ms with ${openThen} of ${count} slow connections open`);
    // the header timeout ends every slow connection, with a 408
    await Promise.all(slow.map((c) => c.untilEnd(60_000)));
    trickling = false;
    await trickle;
    const got408 = slow.filter((c) => c.resps[0]?.status === 408).length;
    expect(got408).toBe(count);
    expect((await get(port, "/20b.txt")).status).toBe(200);
  } finally {
    for (const c of [...slow, ...real]) c.destroy();
  }
}

interface HttpdResult {
  requests: number;
  responses: Record<string, number>;
  connections: { accepted: number; closed: number; rejected: number; open: number };
  timeouts: { header: number; idle: number; write: number };
  handler: string;
  backend: string;
  sockets: { total: number; calls: Record<string, number> };
  cache: { hits: number; misses: number };
}

describe("httpd", () => {
  let m: Machine;
  const ports: Record<number, number> = {}; // newts port -> host port
  const raws: Raw[] = [];
  let tmp = "";

  beforeAll(async () => {
    const guest = [80, 81, 82, 83, 84, 85, 86, 87, 88];
    m = await Machine.boot({ apps: [], hostfwd: guest.map((g) => `tcp:0:${g}`) });
    for (const f of m.wire!.forwards!) ports[f.guestPort] = f.hostPort;
    await started(m, await m.spawn(APP, ["--sockets", "fast", "--port", "80", "--header-timeout", "2"]), 80);
    tmp = mkdtempSync(`${tmpdir()}/httpd-test-`);
  });

  afterAll(async () => {
    for (const r of raws) r.destroy();
    await m?.shutdown();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe("on newts fast sockets with epoll, through hostfwd", () => {
    test("the 20 B, 11 kB and 512 kB files and the index, byte for byte, with their headers", async () => {
      const port = ports[80]!;
      expect(www("20b.txt").length).toBe(20);
      for (const [name, size] of Object.entries(SAMPLE_BINS)) expect(Buffer.compare(www(name), samplePattern(size)), name).toBe(0);
      for (const name of ["20b.txt", "11k.bin", "512k.bin"]) {
        const r = await get(port, `/${name}`);
        expect(r.status).toBe(200);
        expect(r.body.length).toBe(www(name).length);
        expect(Buffer.compare(r.body, www(name)), name).toBe(0);
        expect(r.headers.get("content-length")).toBe(String(r.body.length));
        expect(r.headers.get("content-type")).toBe(name.endsWith(".txt") ? "text/plain; charset=utf-8" : "application/octet-stream");
        expect(r.headers.get("last-modified")).toMatch(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
        expect(Math.abs(Date.parse(r.headers.get("date")!) - Date.now())).toBeLessThan(60_000);
        expect(r.headers.get("connection")).toBe("keep-alive");
      }
      const idx = await get(port, "/");
      expect(idx.status).toBe(200);
      expect(idx.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(Buffer.compare(idx.body, www("index.html"))).toBe(0);
      expect((await get(port, "/index.html")).body.length).toBe(idx.body.length);
      const nf = await get(port, "/no/such/file");
      expect(nf.status).toBe(404);
    });

    test("HEAD: the same headers as GET and no body, so the next answer on the connection is intact", async () => {
      const c = new Raw(ports[80]!);
      raws.push(c);
      c.send(`HEAD /512k.bin HTTP/1.1\r\nHost: t\r\n\r\n`, true);
      c.send(GET("/20b.txt"));
      const [h, g] = await c.until(2);
      expect(h!.status).toBe(200);
      expect(h!.headers.get("content-length")).toBe(String(512 * 1024));
      expect(h!.body.length).toBe(0);
      expect(new TextDecoder().decode(g!.body)).toBe("0123456789abcdefghi\n");
      c.destroy();
    });

    test("byte ranges: a-b, a-, -n give 206 with Content-Range; past the end 416; several ranges 200", async () => {
      const port = ports[80]!;
      const big = www("512k.bin");
      const cases: Array<[string, number, number]> = [["bytes=0-9", 0, 10], ["bytes=500000-", 500000, big.length], ["bytes=-100", big.length - 100, big.length], ["bytes=524280-999999", 524280, big.length]];
      for (const [range, a, b] of cases) {
        const r = await get(port, "/512k.bin", { Range: range });
        expect(r.status, range).toBe(206);
        expect(r.headers.get("content-range")).toBe(`bytes ${a}-${b - 1}/${big.length}`);
        expect(Buffer.compare(r.body, big.subarray(a, b)), range).toBe(0);
      }
      const u = await get(port, "/20b.txt", { Range: "bytes=20-" });
      expect(u.status).toBe(416);
      expect(u.headers.get("content-range")).toBe("bytes */20");
      expect((await get(port, "/20b.txt", { Range: "bytes=0-1,5-6" })).status).toBe(200);
      expect((await get(port, "/20b.txt", { Range: "bytes=5-1" })).status).toBe(200);
    });

    test("If-Modified-Since: 304 when not modified since, 200 when it was", async () => {
      const port = ports[80]!;
      const first = await get(port, "/11k.bin");
      const lm = first.headers.get("last-modified")!;
      const nm = await get(port, "/11k.bin", { "If-Modified-Since": lm });
      expect(nm.status).toBe(304);
      expect(nm.body.length).toBe(0);
      expect(nm.headers.get("last-modified")).toBe(lm);
      const old = await get(port, "/11k.bin", { "If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT" });
      expect(old.status).toBe(200);
      expect(old.body.length).toBe(11 * 1024);
      expect((await get(port, "/11k.bin", { "If-Modified-Since": "garbage" })).status).toBe(200);
    });

    test("keep-alive: several requests one after another on one connection; HTTP/1.0 closes unless asked", async () => {
      const c = new Raw(ports[80]!);
      raws.push(c);
      const names = ["20b.txt", "11k.bin", "512k.bin", "20b.txt", "index.html"];
      for (let i = 0; i < names.length; i++) {
        c.send(GET(`/${names[i]}`));
        const rs = await c.until(i + 1);
        expect(rs[i]!.status).toBe(200);
        expect(Buffer.compare(rs[i]!.body, www(names[i]!))).toBe(0);
        expect(c.ended).toBe(false);
      }
      c.destroy();
      const ten = new Raw(ports[80]!);
      raws.push(ten);
      ten.send("GET /20b.txt HTTP/1.0\r\n\r\n");
      const [r] = await ten.until(1);
      expect(r!.headers.get("connection")).toBe("close");
      await ten.untilEnd();
      const ka = new Raw(ports[80]!);
      raws.push(ka);
      ka.send("GET /20b.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      ka.send("GET /20b.txt HTTP/1.0\r\n\r\n");
      const two = await ka.until(2);
      expect(two.map((x) => x.headers.get("connection"))).toEqual(["keep-alive", "close"]);
      await ka.untilEnd();
    });

    test("pipelining: ten requests in one write, ten answers in order", async () => {
      const c = new Raw(ports[80]!);
      raws.push(c);
      const reqs: Array<[string, boolean]> = [
        ["/20b.txt", false], ["/11k.bin", false], ["/11k.bin", true], ["/", false], ["/missing", false],
        ["/512k.bin", false], ["/20b.txt", true], ["/20b.txt", false], ["/11k.bin", false], ["/20b.txt", false],
      ];
      c.heads = reqs.map(([, h]) => h);
      c.sock.write(reqs.map(([p, h]) => `${h ? "HEAD" : "GET"} ${p} HTTP/1.1\r\nHost: t\r\n\r\n`).join(""));
      const rs = await c.until(10);
      expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200, 404, 200, 200, 200, 200, 200]);
      const file = (p: string) => www(p === "/" ? "index.html" : p.slice(1));
      for (let i = 0; i < 10; i++) {
        const [p, h] = reqs[i]!;
        if (rs[i]!.status !== 200) continue;
        if (h) expect(rs[i]!.body.length).toBe(0);
        else expect(Buffer.compare(rs[i]!.body, file(p)), `${i} ${p}`).toBe(0);
      }
      expect(c.ended).toBe(false);
      c.destroy();
    });

    test("at most 100 requests per connection: the 100th answer says close, then the connection ends", async () => {
      const c = new Raw(ports[80]!);
      raws.push(c);
      c.heads = Array(101).fill(true);
      c.sock.write(Array(101).fill("HEAD /20b.txt HTTP/1.1\r\nHost: t\r\n\r\n").join(""));
      await c.untilEnd();
      const rs = await c.until(101);
      expect(rs).toHaveLength(100);
      expect(rs[98]!.headers.get("connection")).toBe("keep-alive");
      expect(rs[99]!.headers.get("connection")).toBe("close");
    });

    test("malformed and hostile requests: 400, 405, 501, 414, 431, 505, each answered and the connection closed", async () => {
      const port = ports[80]!;
      const cases: Array<[string, number]> = [
        ["GARBAGE\r\n\r\n", 400],
        ["GET / HTTP/1.1\r\n\r\n", 400], // no Host
        ["GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400],
        ["\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400], // TLS
        ["POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 405],
        ["DELETE /20b.txt HTTP/1.1\r\nHost: t\r\n\r\n", 405],
        ["PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx", 405],
        ["BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501],
        [`GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: t\r\n\r\n`, 414],
        [`GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${"b".repeat(9000)}\r\n\r\n`, 431],
        ["GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505],
      ];
      for (const [text, status] of cases) {
        const c = new Raw(port);
        raws.push(c);
        c.send(text);
        const rs = await c.until(1);
        expect(rs[0]?.status, JSON.stringify(text.slice(0, 40))).toBe(status);
        expect(rs[0]!.headers.get("connection")).toBe("close");
        if (status === 405) expect(rs[0]!.headers.get("allow")).toBe("GET, HEAD");
        await c.untilEnd();
        c.destroy();
      }
      // a URI too long is known before its line ends, and a never-ending header too
      const u = new Raw(port);
      raws.push(u);
      u.send(`GET /${"a".repeat(20_000)}`);
      expect((await u.until(1))[0]!.status).toBe(414);
      await u.untilEnd();
      const h = new Raw(port);
      raws.push(h);
      h.send(`GET / HTTP/1.1\r\nHost: t\r\nX: ${"x".repeat(20_000)}`);
      expect((await h.until(1))[0]!.status).toBe(431);
      await h.untilEnd();
      // and the server still serves
      expect((await get(port, "/20b.txt")).status).toBe(200);
    });

    test("path traversal is refused, however it is spelled", async () => {
      const port = ports[80]!;
      for (const target of ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd", "/a/../../etc/passwd", "/%2E%2E/", "http://t/../etc/passwd"]) {
        const c = new Raw(port);
        raws.push(c);
        c.send(`GET ${target} HTTP/1.1\r\nHost: t\r\n\r\n`);
        const [r] = await c.until(1);
        expect([403, 404], target).toContain(r!.status);
        expect(new TextDecoder().decode(r!.body)).not.toContain("root:");
        c.destroy();
      }
      const ok = new Raw(port);
      raws.push(ok);
      ok.send(GET("/x/../20b.txt"));
      ok.send(GET("/.//./20b.txt"));
      ok.send(GET("/%32%30b.txt"));
      const rs = await ok.until(3);
      expect(rs.map((r) => new TextDecoder().decode(r.body))).toEqual(Array(3).fill("0123456789abcdefghi\n"));
      ok.destroy();
    });

    test("8 slowloris connections trickling a header do not starve a real client; the header timeout closes them with 408", async () => {
      // 8, not 200, on newts fast sockets: see the known failure below.
      const name = await started(m, await m.spawn(APP, ["--port", "88", "--header-timeout", "2", "--exit-after", "12"]), 88);
      await slowloris(ports[88]!, 8);
      const r = await exits(name);
      expect(r.timeouts.header).toBe(8);
      expect(r.responses["408"]).toBe(8);
    }, 120_000);


    test("--max-conns: beyond it new connections are closed at once, the others keep working; --idle-timeout closes idle ones", async () => {
      const port = ports[81]!;
      const name = await started(m, await m.spawn(APP, ["--port", "81", "--max-conns", "5", "--idle-timeout", "4", "--exit-after", "7"]), 81);
      const five: Raw[] = [];
      for (let i = 0; i < 5; i++) {
        const c = new Raw(port);
        raws.push(c);
        five.push(c);
        c.send(GET("/20b.txt"));
        expect((await c.until(1))[0]!.status).toBe(200);
      }
      const sixth = new Raw(port);
      raws.push(sixth);
      sixth.send(GET("/20b.txt"));
      await sixth.untilEnd();
      expect(sixth.resps).toHaveLength(0);
      five[0]!.send(GET("/11k.bin"));
      const rs = await five[0]!.until(2);
      expect(Buffer.compare(rs[1]!.body, www("11k.bin"))).toBe(0);
      // the idle timeout ends the five
      await Promise.all(five.map((c) => c.untilEnd(30_000)));
      for (const c of five) expect(c.resps.length).toBeGreaterThan(0);
      // and with room again, a new connection is served
      expect((await get(port, "/20b.txt")).status).toBe(200);
      const r = await exits(name);
      expect(r.connections.rejected).toBeGreaterThanOrEqual(1);
      expect(r.timeouts.idle).toBe(5);
    }, 60_000);
  });

  async function instance(guest: number, args: string[]) {
    const name = await m.spawn(APP, ["--port", String(guest), ...args]);
    return started(m, name, guest);
  }

  async function exits(name: string): Promise<HttpdResult> {
    const e = await m.waitApp(name, 60_000);
    expect(e.error, JSON.stringify(e)).toBeUndefined();
    expect(e.status).toBe(0);
    return e.result as HttpdResult;
  }

  for (const [backend, handler, guest] of [
    ["fast", "select", 82], ["fast", "poll", 83], ["syscall", "epoll", 84], ["syscall", "poll", 85], ["syscall", "select", 86],
  ] as const) {
    test(`newts ${backend} sockets, --event-handler ${handler}: files, HEAD, range, pipelining, an error; --exit-after`, async () => {
      const n = 16;
      const name = await instance(guest, ["--sockets", backend, "--event-handler", handler, "--exit-after", String(n)]);
      const made = await basics(ports[guest]!);
      expect(made).toBe(n);
      const r = await exits(name);
      console.log(`${backend}/${handler}:`, JSON.stringify({ requests: r.requests, responses: r.responses, connections: r.connections, calls: r.sockets.total }));
      expect(r.requests).toBe(n);
      expect(r.responses).toEqual({ "200": 13, "206": 1, "404": 1, "400": 1 });
      expect(r.handler).toBe(handler);
      expect(r.backend).toBe(backend);
      const wait = { select: "select", poll: "poll", epoll: "epoll_wait" }[handler];
      expect(r.sockets.calls[wait]).toBeGreaterThan(0);
    }, 90_000);
  }

  test("a document root of its own: directory index and 301, a symbolic link out of the root refused, files streamed past the cache, the access log", async () => {
    const root = `${tmp}/site`;
    mkdirSync(`${root}/sub`, { recursive: true });
    writeFileSync(`${root}/sub/index.html`, "<p>sub</p>\n");
    mkdirSync(`${root}/empty`);
    const big = samplePattern(300_000);
    writeFileSync(`${root}/big.dat`, big);
    writeFileSync(`${root}/style.css`, "p{}\n");
    writeFileSync(`${tmp}/secret.txt`, "secret\n");
    symlinkSync(`${tmp}/secret.txt`, `${root}/escape.txt`);
    symlinkSync(`${root}/style.css`, `${root}/inside.css`);
    const log = `${tmp}/access.log`;
    const n = 9;
    const name = await instance(87, ["--sockets", "syscall", "--docroot", root, "--cache-max-file", "100000", "--access-log", log, "--exit-after", String(n)]);
    const port = ports[87]!;
    const redirect = await get(port, "/sub?x=1");
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get("location")).toBe("/sub/?x=1");
    const sub = await get(port, "/sub/");
    expect(new TextDecoder().decode(sub.body)).toBe("<p>sub</p>\n");
    expect((await get(port, "/empty/")).status).toBe(403); // no listing
    expect((await get(port, "/escape.txt")).status).toBe(403);
    const css = await get(port, "/inside.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    const b = await get(port, "/big.dat");
    expect(Buffer.compare(b.body, big)).toBe(0);
    const br = await get(port, "/big.dat", { Range: "bytes=-70000" });
    expect(br.status).toBe(206);
    expect(Buffer.compare(br.body, big.subarray(big.length - 70000))).toBe(0);
    expect((await get(port, "/big.dat", {}, "HEAD")).headers.get("content-length")).toBe("300000");
    const bad = new Raw(port);
    raws.push(bad);
    bad.send("GET /\x01 HTTP/1.1\r\n\r\n");
    expect((await bad.until(1))[0]!.status).toBe(400);
    const r = await exits(name);
    expect(r.requests).toBe(n);
    const lines = readFileSync(log, "utf8").trim().split("\n");
    expect(lines).toHaveLength(n);
    for (const l of lines) expect(l).toMatch(/^\d+\.\d+\.\d+\.\d+ - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "[^"]*" \d{3} (\d+|-)$/);
    expect(lines[0]).toContain('"GET /sub?x=1 HTTP/1.1" 301 ');
    expect(lines.some((l) => l.includes('"GET /big.dat HTTP/1.1" 200 300000'))).toBe(true);
    expect(lines[n - 1]).toContain(" 400 ");
  }, 90_000);

  describe("on Linux sockets (listening on this machine's 127.0.0.1)", () => {
    test("200 slowloris connections trickling a header do not starve a real client; the header timeout closes them with 408", async () => {
      const port = freePort();
      const name = await m.spawn(APP, ["--sockets", "linux", "--port", String(port), "--header-timeout", "2", "--exit-after", "204"]);
      await started(m, name, port);
      await slowloris(port, 200);
      const r = await exits(name);
      expect(r.timeouts.header).toBe(200);
      expect(r.responses).toEqual({ "200": 4, "408": 200 });
    }, 120_000);

    for (const handler of ["epoll", "poll", "select"] as const) {
      test(`--event-handler ${handler}: files, HEAD, range, pipelining, an error, errors and keep-alive; --exit-after`, async () => {
        const port = freePort();
        const name = await m.spawn(APP, ["--sockets", "linux", "--port", String(port), "--event-handler", handler, "--exit-after", "20"]);
        await started(m, name, port);
        let made = await basics(port);
        for (const [text, status] of [["BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501], ["POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab", 405]] as const) {
          const c = new Raw(port);
          raws.push(c);
          c.send(text);
          expect((await c.until(1))[0]!.status).toBe(status);
          await c.untilEnd();
          made++;
        }
        const ka = new Raw(port);
        raws.push(ka);
        for (let i = 1; i <= 2; i++) {
          ka.send(GET("/11k.bin"));
          expect(Buffer.compare((await ka.until(i))[i - 1]!.body, www("11k.bin"))).toBe(0);
          made++;
        }
        expect(made).toBe(20);
        const r = await exits(name);
        expect(r.requests).toBe(20);
        expect(r.backend).toBe("linux");
        expect(r.responses).toEqual({ "200": 15, "206": 1, "404": 1, "400": 1, "405": 1, "501": 1 });
      }, 90_000);
    }
  });

  // Beyond ~15 connections tcp premaps children into a new segment of the app's arena,
  // granted asynchronously: accept must attach it (it once skipped such children).
  test("200 slowloris connections on newts fast sockets do not starve a real client", async () => {
    await slowloris(ports[80]!, 200, 10_000);
  }, 120_000);
});
