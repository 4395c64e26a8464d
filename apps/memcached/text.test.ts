// The text protocol and the meta commands (text.ts, meta.ts), parser and executor together,
// on literal bytes: the replies are memcached 1.6's (checked against a real memcached
// 1.6.18 for every case marked so), whole input and byte by byte, and every kind of
// malformed input the server must survive.
import { describe, expect, test } from "vitest";
import { keyBytes, Store } from "./store.ts";
import { type Ctx, strtol32, strtoul32, strtoull } from "./framing.ts";
import { execText, parseLine, TextParser, tokenize } from "./text.ts";
import { base64Decode, base64Encode } from "./meta.ts";

const T0 = 1_700_000_000;

/** A connection: bytes in, the reply bytes since the last call out (latin1), and whether it hung up. */
function session(opts: { itemSizeMax?: number; maxBytes?: number; evict?: boolean } = {}) {
  const clock = { t: T0 };
  const store = new Store({ ...opts, clock: () => clock.t });
  const ctx: Ctx = {
    store, version: "1.6.0-newts", verbosity: 0, shutdownEnabled: false, settings: { port: 11211, iface: "0.0.0.0", maxConns: 1024 },
    stats: (sub) => (sub === "" ? [["pid", 1], ["curr_items", store.count]] : null),
    resetStats: () => {},
  };
  const parser = new TextParser({ itemSizeMax: opts.itemSizeMax });
  let out: Uint8Array[] = [];
  let closed = false;
  let afterWrite = false;
  let commands = 0;
  const run = () => {
    for (;;) {
      if (closed || afterWrite) return;
      const cmd = parser.next();
      if (!cmd) return;
      commands++;
      const a = execText(cmd, ctx, (b) => out.push(b));
      if (a === "close") closed = true;
      if (a === "close-after-write") afterWrite = true;
    }
  };
  return {
    store, clock, parser, ctx,
    send(input: string | Uint8Array, step = 0): string {
      const b = typeof input === "string" ? keyBytes(input) : input;
      if (step > 0) {
        for (let i = 0; i < b.length; i += step) {
          parser.push(b.subarray(i, i + step));
          run();
        }
      } else {
        parser.push(b);
        run();
      }
      let n = 0;
      for (const c of out) n += c.length;
      const all = new Uint8Array(n);
      let off = 0;
      for (const c of out) {
        all.set(c, off);
        off += c.length;
      }
      out = [];
      return Buffer.from(all.buffer, all.byteOffset, all.length).toString("latin1");
    },
    get closed() {
      return closed;
    },
    get quit() {
      return afterWrite;
    },
    get commands() {
      return commands;
    },
  };
}

const K251 = "k".repeat(251);
const BAD = "CLIENT_ERROR bad command line format\r\n";

// [input, reply] as a fresh memcached 1.6.18 answers them (CAS uniques are this store's: 1, 2, ...).
const CASES: [string, string][] = [
  ["set a 0 0 2\r\n10\r\ndecr a 1\r\nget a\r\n", "STORED\r\n9\r\nVALUE a 0 2\r\n9 \r\nEND\r\n"],
  ["set a 0 0 1 noreply\r\nxx\r\nget a\r\n", "ERROR\r\nEND\r\n"],
  ["set a -1 0 1\r\nx\r\n", BAD + "ERROR\r\n"],
  ["set a 0 0 -1\r\n", BAD],
  ["set a 0 0 1 noreply\r\nx\r\nget a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n"],
  ["stats foo\r\n", "ERROR\r\n"],
  ["stats noreply\r\n", "ERROR\r\n"],
  ["delete a 0\r\n", "NOT_FOUND\r\n"],
  ["delete a 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"],
  ["delete a x noreply\r\nversion\r\n", "VERSION 1.6.0-newts\r\n"],
  ["delete a b c d e\r\n", "ERROR\r\n"],
  ["delete\r\n", "ERROR\r\n"],
  ["flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n"],
  ["flush_all 0 noreply\r\nversion\r\n", "VERSION 1.6.0-newts\r\n"],
  ["flush_all\r\nflush_all 10\r\n", "OK\r\nOK\r\n"],
  ["verbosity\r\n", "ERROR\r\n"],
  ["verbosity x\r\n", BAD],
  ["verbosity noreply\r\nverbosity 1\r\n", "OK\r\n"],
  ["verbosity foo bar my\r\n", "ERROR\r\n"],
  ["incr a x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"],
  ["incr a 1\r\n", "NOT_FOUND\r\n"],
  ["incr n -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"],
  ["set n 0 0 2\r\nab\r\nincr n 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"],
  ["set n 0 0 2\r\n99\r\nincr n 1\r\nget n\r\nincr n 18446744073709551615\r\ndecr n 5000\r\nget n\r\n",
    "STORED\r\n100\r\nVALUE n 0 3\r\n100\r\nEND\r\n99\r\n0\r\nVALUE n 0 3\r\n0  \r\nEND\r\n"],
  ["set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\nget n\r\n", "STORED\r\n0\r\nVALUE n 0 20\r\n0                   \r\nEND\r\n"],
  ["set n 0 0 20\r\n18446744073709551616\r\nincr n 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"],
  ["set n 0 0 3\r\n 12\r\nincr n 1\r\n", "STORED\r\n13\r\n"],
  ["set n 0 0 0\r\n\r\nincr n 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"],
  ["shutdown\r\n", "ERROR: shutdown not enabled\r\n"],
  ["touch a x\r\n", "CLIENT_ERROR invalid exptime argument\r\n"],
  ["touch a 10\r\nset a 0 0 1\r\nx\r\ntouch a 10\r\n", "NOT_FOUND\r\nSTORED\r\nTOUCHED\r\n"],
  ["gat x a\r\n", "CLIENT_ERROR invalid exptime argument\r\n"],
  ["gat 10\r\n", "END\r\n"],
  ["set a 5 0 1\r\nx\r\ngat 100 a b\r\ngats 100 a\r\n", "STORED\r\nVALUE a 5 1\r\nx\r\nEND\r\nVALUE a 5 1 1\r\nx\r\nEND\r\n"],
  [`get ${K251}\r\n`, BAD],
  [`set ${K251} 0 0 1\r\nx\r\n`, BAD + "ERROR\r\n"],
  [`set ${K251} 0 0 1 noreply\r\nx\r\n`, "ERROR\r\n"],
  [`delete ${K251}\r\n`, BAD],
  [`incr ${K251} 1\r\n`, BAD],
  [`touch ${K251} 1\r\n`, BAD],
  ["\r\n", "ERROR\r\n"],
  ["\n", "ERROR\r\n"],
  ["get\r\n", "ERROR\r\n"],
  ["gets\r\n", "ERROR\r\n"],
  ["x\r\n", "ERROR\r\n"],
  ["set a 0 0\r\n", "ERROR\r\n"],
  ["set a 0 0 1 2 3\r\n", "ERROR\r\n"],
  ["cas a 0 0 1\r\n", "ERROR\r\n"],
  ["cas a 0 0 1 x\r\nz\r\n", BAD + "ERROR\r\n"],
  ["cas a 0 0 1 5\r\nz\r\n", "NOT_FOUND\r\n"],
  ["set a 0 0 1\r\nz\r\ncas a 0 0 1 2\r\ny\r\ngets a\r\ncas a 0 0 1 1\r\nw\r\n", "STORED\r\nEXISTS\r\nVALUE a 0 1 1\r\nz\r\nEND\r\nSTORED\r\n"],
  ["add a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nget a\r\n", "STORED\r\nNOT_STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"],
  ["replace a 0 0 1\r\nx\r\nset a 0 0 1\r\nq\r\nreplace a 0 0 1\r\nr\r\nget a\r\n", "NOT_STORED\r\nSTORED\r\nSTORED\r\nVALUE a 0 1\r\nr\r\nEND\r\n"],
  ["append a 0 0 1\r\nx\r\nset a 7 0 1\r\nq\r\nappend a 0 0 2\r\nrs\r\nprepend a 9 0 2\r\nop\r\nget a\r\n",
    "NOT_STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nVALUE a 7 5\r\nopqrs\r\nEND\r\n"],
  ["set a 0 0 1\r\nab\r\nget a\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"],
  ["set t 0 0 1\r\na\n\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"],
  ["set a 0 -1 1\r\nx\r\nget a\r\n", "STORED\r\nEND\r\n"],
  ["set a 0 0 5\r\nhello\r\nget a a a\r\n", "STORED\r\nVALUE a 0 5\r\nhello\r\nVALUE a 0 5\r\nhello\r\nVALUE a 0 5\r\nhello\r\nEND\r\n"],
  ["set a 0 0 0\r\n\r\n  get   a\r\nget a\n", "STORED\r\nVALUE a 0 0\r\n\r\nEND\r\nVALUE a 0 0\r\n\r\nEND\r\n"],
  ["version foo\r\n", "VERSION 1.6.0-newts\r\n"],
  ["bget a\r\n", "END\r\n"],
  ["set a 4294967295 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 4294967295 1\r\nx\r\nEND\r\n"],
  ["set a +5 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 5 1\r\nx\r\nEND\r\n"],
  ["stats detail\r\nstats detail on\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\nOK\r\n"],
  ["stats reset\r\n", "RESET\r\n"],
  // meta
  ["mn\r\n", "MN\r\n"],
  ["mx\r\n", "ERROR\r\n"],
  ["me\r\n", BAD],
  ["mg\r\n", "ERROR\r\n"],
  ["ms\r\n", "ERROR\r\n"],
  ["mg a\r\n", "EN\r\n"],
  ["ms a 2\r\nhi\r\nmg a\r\nmg a v\r\nmg a v f t s k O123 q\r\n", "HD\r\nHD\r\nVA 2\r\nhi\r\nVA 2 f0 t-1 s2 ka O123\r\nhi\r\n"],
  ["mg miss v q\r\nmg miss v\r\nmg miss k O5\r\nmn\r\n", "EN\r\nEN kmiss O5\r\nMN\r\n"],
  ["mg a v v\r\n", "CLIENT_ERROR duplicate flag\r\n"],
  ["mg a zz\r\n", "CLIENT_ERROR invalid flag\r\n"],
  [`mg ${K251} v\r\n`, BAD],
  ["ms a 2 T0 F5 k O9 c\r\nhi\r\nmg a f v c\r\n", "HD ka O9 c1\r\nVA 2 f5 c1\r\nhi\r\n"],
  ["ms a 2 q\r\nhi\r\nmn\r\n", "MN\r\n"],
  ["ms a 2 MZ\r\nhi\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n"],
  ["ms a x\r\nhi\r\n", BAD + "ERROR\r\n"],
  ["ms a\r\n", BAD],
  ["ms a 2 C1\r\nhi\r\n", "NF\r\n"],
  ["ms a 2\r\nhi\r\nms a 2 C5\r\nho\r\nms a 2 ME\r\nhi\r\n", "HD\r\nEX\r\nNS\r\n"],
  ["ms nokey 2 MR\r\nhi\r\nms nokey 2 MA\r\nhi\r\n", "NS\r\nNS\r\n"],
  ["ms a 2\r\nhi\r\nms a 2 MA\r\nxy\r\nms a 2 MP\r\nab\r\nmg a v\r\n", "HD\r\nHD\r\nHD\r\nVA 6\r\nabhixy\r\n"],
  ["md a\r\nms a 1\r\n1\r\nmd a\r\nmd a\r\n", "NF\r\nHD\r\nHD\r\nNF\r\n"],
  ["md a q\r\nmd a q O1 k\r\nmn\r\n", "NF\r\nNF O1 ka\r\nMN\r\n"],
  ["ms a 1\r\n1\r\nmd a C9\r\nmd a I T30\r\nmg a v t\r\nmg a v\r\n", "HD\r\nEX\r\nHD\r\nVA 1 t30 X W\r\n1\r\nVA 1 Z X\r\n1\r\n"],
  ["ma z\r\nma z N0 J10 v\r\nma z v\r\nma z MD D100 v t\r\nma z M- q\r\nma z MX\r\nma z D-1\r\nma z Dx\r\nma z q\r\nmn\r\n",
    "NF\r\nVA 2\r\n10\r\nVA 2\r\n11\r\nVA 1 t-1\r\n0\r\nCLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nMN\r\n"],
  ["ms s 2\r\nab\r\nma s\r\n", "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"],
  ["ms b64 2 b\r\nhi\r\n", "CLIENT_ERROR error decoding key\r\n"],
  ["ms Zm9v 2 b\r\nhi\r\nmg Zm9v b v k\r\nget foo\r\nmg foo v k\r\n", "HD\r\nVA 2 kZm9v b\r\nhi\r\nVALUE foo 0 2\r\nhi\r\nEND\r\nVA 2 kZm9v b\r\nhi\r\n"],
  ["mg a O123456789012345678901234567890123 v\r\n", "CLIENT_ERROR opaque token too long\r\n"],
  ["mg a 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9\r\n", "CLIENT_ERROR options flags are too long\r\n"],
  ["md a 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9\r\n", "CLIENT_ERROR options flags too long\r\n"],
  ["ms a 2 F-1\r\nhi\r\n", BAD],
  ["ms a 2 T-1\r\nhi\r\nmg a v\r\n", "HD\r\nEN\r\n"],
  ["ms a 2 Tx\r\nhi\r\n", "CLIENT_ERROR bad token in command line format\r\n"],
  ["mg a N30 v t\r\nmg a v t\r\n", "VA 0 t30 W\r\n\r\nVA 0 t30 Z\r\n\r\n"],
  ["ms w 1 T100\r\nx\r\nmg w R200 v t\r\nmg w R200 v t\r\n", "HD\r\nVA 1 t100 W\r\nx\r\nVA 1 t100 Z\r\nx\r\n"],
  ["ms a 2\r\nhi\r\nmd a x\r\nmg a v\r\n", "HD\r\nCLIENT_ERROR invalid or duplicate flag\r\nVA 2\r\nhi\r\n"],
  ["ms a 2 E55\r\nhi\r\n", "CLIENT_ERROR invalid flag\r\n"],
  ["me a b\r\n", BAD],
  ["ms a 2 S2\r\nhi\r\n", "CLIENT_ERROR invalid flag\r\n"],
  ["ms a 0\r\n\r\nmg a v q k\r\n", "HD\r\nVA 0 ka\r\n\r\n"],
  ["ma a N0 J5 O1 k v t\r\n", "VA 1 O1 ka t-1\r\n5\r\n"],
  ["ma a N10 J5 t v\r\nma a t v\r\n", "VA 1 t10\r\n5\r\nVA 1 t10\r\n6\r\n"],
  ["ma a N0 J18446744073709551615 v\r\nma a v\r\n", "VA 20\r\n18446744073709551615\r\nVA 1\r\n0\r\n"],
  ["mg a q\r\nmn\r\n", "MN\r\n"],
  ["ms a 2 F5\r\nhi\r\nms a 2 MA F9\r\nyo\r\nmg a f v\r\n", "HD\r\nHD\r\nVA 4 f5\r\nhiyo\r\n"],
  ["ms a 2 T10\r\nhi\r\nmg a T20 t v\r\nmg a t\r\n", "HD\r\nVA 2 t20\r\nhi\r\nHD t20\r\n"],
  ["ms a 2 T10\r\nhi\r\nmg a t T20\r\nmg a t\r\n", "HD\r\nHD t10\r\nHD t20\r\n"],
];

describe("text protocol: literal replies", () => {
  test.each(CASES.map(([i, o], n) => [n, i, o]))("case %i: %j", (_n, input, expected) => {
    const s = session();
    expect(s.send(input as string)).toBe(expected);
  });

  test("the same transcript byte by byte, and in odd chunks, gives the same replies", () => {
    const whole = CASES.map(([i]) => i).join("");
    const a = session().send(whole);
    const b = session().send(whole, 1);
    const c = session().send(whole, 7);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(a).toContain("VALUE a 7 5\r\nopqrs\r\n");
  });

  test("me: memcached's debug line", () => {
    const s = session();
    s.send("set a 0 0 1\r\nx\r\n");
    s.clock.t += 4;
    expect(s.send("get a\r\nme a\r\nme zz\r\n")).toBe("VALUE a 0 1\r\nx\r\nEND\r\nME a exp=-1 la=0 cas=1 fetch=yes cls=1 size=61\r\nEN\r\n");
    s.send("ms Zm9v 2 b\r\nhi\r\n");
    expect(s.send("me Zm9v b\r\n")).toBe("ME Zm9v exp=-1 la=0 cas=2 fetch=no cls=1 size=64\r\n");
  });

  test("mg h and l report before the access; u does not bump", () => {
    const s = session();
    s.send("set a 0 0 1\r\nx\r\n");
    s.clock.t += 3;
    expect(s.send("mg a h l\r\nmg a h l\r\n")).toBe("HD h0 l3\r\nHD h1 l0\r\n");
    s.clock.t += 2;
    expect(s.send("mg a l u\r\nmg a l\r\n")).toBe("HD l2\r\nHD l2\r\n");
  });

  test("quit closes after the replies before it; noreply on every command that has it", () => {
    const s = session();
    expect(s.send("set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n")).toBe("STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    expect(s.quit).toBe(true);
    const q = session();
    const all = [
      "set a 0 0 1 noreply\r\n1\r\n", "add b 0 0 1 noreply\r\n1\r\n", "replace a 0 0 1 noreply\r\n2\r\n", "append a 0 0 1 noreply\r\n3\r\n",
      "prepend a 0 0 1 noreply\r\n0\r\n", "cas a 0 0 1 999 noreply\r\n9\r\n", "incr a 1 noreply\r\n", "decr a 1 noreply\r\n",
      "touch a 100 noreply\r\n", "delete b noreply\r\n", "verbosity 1 noreply\r\n", "flush_all 100 noreply\r\n",
    ].join("");
    expect(q.send(all)).toBe("");
    // 1, 2, 23, 023, cas refused, 024, 023 padded to "23 " (decr shortens in place)
    expect(q.send("get a\r\n")).toBe("VALUE a 0 3\r\n23 \r\nEND\r\n");
  });
});

describe("text protocol: hostile and malformed input", () => {
  test("an HTTP request line hangs up, without a reply", () => {
    const s = session();
    expect(s.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("");
    expect(s.closed).toBe(true);
    const p = session();
    p.send("POST /api HTTP/1.0\r\n");
    expect(p.closed).toBe(true);
  });

  test("over 2048 bytes without a newline hangs up, unless it is a get", () => {
    const s = session();
    expect(s.send("x".repeat(2048))).toBe("");
    expect(s.closed).toBe(false);
    s.send("x");
    expect(s.closed).toBe(true);
    const g = session();
    expect(g.send("set k5 0 0 1\r\nv\r\n")).toBe("STORED\r\n");
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`).join(" ");
    expect(g.send(`get ${keys}`, 100)).toBe("");
    expect(g.closed).toBe(false);
    expect(g.send("\r\n")).toBe("VALUE k5 0 1\r\nv\r\nEND\r\n");
    const huge = session();
    huge.send("get " + "k ".repeat(600_000));
    expect(huge.closed).toBe(true);
  });

  test("overlong, control-character and empty keys", () => {
    const s = session();
    for (const cmd of [`get ${K251}`, `gets a ${K251}`, `delete ${K251}`, `incr ${K251} 1`, `touch ${K251} 1`, `mg ${K251} v`, `md ${K251}`, `ma ${K251}`]) {
      expect(s.send(cmd + "\r\n"), cmd).toMatch(/^CLIENT_ERROR bad command line format/);
    }
    expect(s.send("get a\tb\r\n")).toBe(BAD);
    expect(s.send("get a\x01\r\n")).toBe(BAD);
    expect(s.send("set a\x7f 0 0 1\r\nx\r\n")).toBe(BAD + "ERROR\r\n");
    expect(s.send("get a\x00b\r\n")).toBe("END\r\n"); // a C string ends at NUL: "get a"
    expect(s.send(`get ${"k".repeat(250)}\r\n`)).toBe("END\r\n");
  });

  test("negative, overflowing and junk lengths and numbers", () => {
    const s = session();
    expect(s.send("set a 0 0 -1\r\n")).toBe(BAD);
    expect(s.send("set a 0 0 99999999999\r\n")).toBe(BAD);
    expect(s.send("set a 0 0 2147483647\r\n")).toBe(BAD);
    expect(s.send("set a 0 0 1x\r\n")).toBe(BAD);
    expect(s.send("set a 4294967296 0 1\r\nx\r\n")).toBe(BAD + "ERROR\r\n");
    expect(s.send("set a 0 2147483648 1\r\nx\r\n")).toBe(BAD + "ERROR\r\n");
    expect(s.send("incr a 18446744073709551616\r\n")).toBe("CLIENT_ERROR invalid numeric delta argument\r\n");
    expect(s.send("ms a -5\r\n")).toBe(BAD);
    expect(s.send("ms a 99999999999\r\n")).toBe(BAD);
    expect(s.send("ma a D18446744073709551616\r\n")).toBe("CLIENT_ERROR invalid or duplicate flag\r\n");
    expect(s.send("version\r\n")).toBe("VERSION 1.6.0-newts\r\n");
    expect(s.closed).toBe(false);
  });

  test("a value over -I is answered at once and swallowed, not buffered; a failed set drops the old value", () => {
    const s = session({ itemSizeMax: 1 << 20 });
    s.send("set big 0 0 1\r\nx\r\n");
    const n = 2_000_000;
    expect(s.send(`set big 0 0 ${n}\r\n`)).toBe("SERVER_ERROR object too large for cache\r\n");
    const chunk = new Uint8Array(65536).fill(0x41);
    for (let sent = 0; sent < n; sent += chunk.length) {
      s.send(chunk.subarray(0, Math.min(chunk.length, n - sent)));
      expect(s.parser.buffered).toBeLessThan(70_000);
    }
    expect(s.send("\r\nget big\r\n")).toBe("END\r\n");
    expect(s.send(`ms big ${n}\r\n`)).toBe("SERVER_ERROR object too large for cache\r\n");
    s.send(new Uint8Array(n + 2));
    expect(s.send("mn\r\n")).toBe("MN\r\n");
    expect(s.store.counters.store_too_large).toBe(2);
  });

  test("a 1 MB-class value round-trips", () => {
    const s = session({ itemSizeMax: 2 << 20 });
    const v = new Uint8Array(1_000_000);
    for (let i = 0; i < v.length; i++) v[i] = (i * 7) & 0xff;
    const head = keyBytes("set big 3 0 1000000\r\n");
    const msg = new Uint8Array(head.length + v.length + 2);
    msg.set(head);
    msg.set(v, head.length);
    msg.set(keyBytes("\r\n"), head.length + v.length);
    expect(s.send(msg, 65536)).toBe("STORED\r\n");
    const r = s.send("get big\r\n");
    expect(r.startsWith("VALUE big 3 1000000\r\n")).toBe(true);
    expect(r.length).toBe("VALUE big 3 1000000\r\n".length + 1_000_000 + 7);
    const back = keyBytes(r.slice(21, 21 + 1_000_000));
    let same = back.length === v.length;
    for (let i = 0; same && i < v.length; i++) same = back[i] === v[i];
    expect(same).toBe(true);
  });

  test("-M: SERVER_ERROR out of memory storing object", () => {
    const s = session({ maxBytes: 4096, itemSizeMax: 2048, evict: false });
    const v = "x".repeat(1000);
    expect(s.send(`set a 0 0 1000\r\n${v}\r\nset b 0 0 1000\r\n${v}\r\nset c 0 0 1000\r\n${v}\r\n`)).toBe("STORED\r\nSTORED\r\nSTORED\r\n");
    expect(s.send(`set d 0 0 1000\r\n${v}\r\n`)).toBe("SERVER_ERROR out of memory storing object\r\n");
    expect(s.send(`ms d 1000\r\n${v}\r\n`)).toBe("SERVER_ERROR out of memory storing object\r\n");
    expect(s.send("get a b c d\r\n").match(/VALUE/g)?.length).toBe(3);
  });

  test("binary junk in the text protocol is answered ERROR line by line, never a throw", () => {
    const s = session();
    const junk = new Uint8Array(5000);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    for (let i = 100; i < junk.length; i += 100) junk[i] = 0x0a;
    junk[junk.length - 1] = 0x0a;
    s.send(junk);
    expect(s.closed).toBe(false);
    expect(s.send("version\r\n")).toBe("VERSION 1.6.0-newts\r\n");
  });
});

describe("text protocol: pieces", () => {
  test("tokenize splits on spaces only", () => {
    expect(tokenize("  get  a\tb  c ")).toEqual(["get", "a\tb", "c"]);
    expect(tokenize("")).toEqual([]);
  });

  test("numbers as memcached's safe_strto*", () => {
    expect(strtol32("-5")).toBe(-5);
    expect(strtol32("12 junk")).toBe(12);
    expect(strtol32("12x")).toBeNull();
    expect(strtol32("")).toBeNull();
    expect(strtol32("2147483648")).toBeNull();
    expect(strtoul32("-1")).toBeNull();
    expect(strtoul32("4294967295")).toBe(4294967295);
    expect(strtoull("18446744073709551615")).toBe(18446744073709551615n);
    expect(strtoull("-0")).toBe(0n);
  });

  test("base64 for meta keys", () => {
    expect(base64Decode("Zm9v")).toBe("foo");
    expect(base64Decode("Zm8=")).toBe("fo");
    expect(base64Decode("Zg==")).toBe("f");
    expect(base64Decode("Zm9")).toBeNull();
    expect(base64Decode("Z=9v")).toBeNull();
    expect(base64Decode("")).toBeNull();
    for (const s of ["", "a", "ab", "abc", "\x00\xff\x10 k"]) if (s) expect(base64Decode(base64Encode(s))).toBe(s);
  });

  test("parseLine asks for data for storage commands", () => {
    const r = parseLine("set a 1 2 3", 1 << 20);
    expect("data" in r && r.data).toBe(3);
    const t = parseLine("set a 1 2 2000000", 1 << 20);
    expect("swallow" in t && t.swallow).toBe(2_000_002);
  });
});
