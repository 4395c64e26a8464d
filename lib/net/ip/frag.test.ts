// Tests for fragmentation and reassembly: random round trips, overlaps, limits, timeouts, hostile fragments.
import { test, expect, describe } from "vitest";
import { IPV4_HEADER_LEN, Ipv4Packet, type Ipv4Repr, parseIpv4 } from "../ipv4.ts";
import { type ReasmResult, Reassembler, fragment } from "./frag.ts";
import { PEER, US, datagram, randBytes, randInt, rng } from "./ip.fixture.ts";

const repr = (payload: Uint8Array, over: Partial<Ipv4Repr> = {}): Ipv4Repr => ({
  src: PEER.ip, dst: US.ip, protocol: 17, ttl: 64, tos: 0, ident: 4242, dontFrag: false, moreFrags: false, fragOffset: 0, payload, ...over,
});
/** A fragment of datagram `ident` carrying `data` at byte offset `off`. */
const frag = (off: number, data: Uint8Array, mf: boolean, ident = 9): Ipv4Packet =>
  new Ipv4Packet(datagram({ src: PEER.ip, dst: US.ip, ident, fragOffset: off, moreFrags: mf, payload: data }));
const done = (r: ReasmResult): Uint8Array => {
  if (r.kind !== "done") throw new Error(`not done: ${JSON.stringify(r)}`);
  return r.datagram;
};
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
function shuffle<T>(r: () => number, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe("fragment", () => {
  test("fits: one datagram, with headroom", () => {
    const f = fragment(repr(new Uint8Array(100)), 1500, 14);
    if (!f.ok) throw new Error(f.error);
    expect(f.datagrams.length).toBe(1);
    expect(f.datagrams[0]!.length).toBe(14 + 120);
  });

  test("fragments carry multiples of 8, MF on all but the last, and fit the MTU", () => {
    const f = fragment(repr(new Uint8Array(1000)), 300);
    if (!f.ok) throw new Error(f.error);
    const ps = f.datagrams.map((d) => parseIpv4(d)).map((p) => (p.ok ? p.value : null)!);
    expect(ps.map((p) => p.fragOffset)).toEqual([0, 280, 560, 840]);
    expect(ps.map((p) => p.moreFrags)).toEqual([true, true, true, false]);
    expect(ps.map((p) => p.payload.length)).toEqual([280, 280, 280, 160]);
    for (const d of f.datagrams) expect(d.length).toBeLessThanOrEqual(300);
  });

  test("DF set and too big: error with the MTU (RFC 1191); over 65535: tooBig", () => {
    expect(fragment(repr(new Uint8Array(1481), { dontFrag: true }), 1500)).toEqual({ ok: false, error: "dontFrag", mtu: 1500 });
    expect(fragment(repr(new Uint8Array(1480), { dontFrag: true }), 1500).ok).toBe(true);
    expect(fragment(repr(new Uint8Array(65516)), 1500)).toEqual({ ok: false, error: "tooBig", mtu: 1500 });
  });
});

describe("round trip", () => {
  test("random sizes and MTUs, shuffled and duplicated fragments: byte-identical datagrams", () => {
    const r = rng(0xf1a6);
    for (let iter = 0; iter < 300; iter++) {
      const size = randInt(r, 1, iter % 10 === 0 ? 65515 : 5000);
      const mtu = randInt(r, 68, 1500);
      const payload = randBytes(r, size);
      const orig = repr(payload, { ident: iter, protocol: randInt(r, 0, 255), tos: randInt(r, 0, 255) });
      const f = fragment(orig, mtu);
      if (!f.ok) throw new Error(f.error);
      const pieces = [...f.datagrams];
      for (let k = randInt(r, 0, 3); k > 0; k--) pieces.push(pieces[randInt(r, 0, pieces.length - 1)]!);
      shuffle(r, pieces);
      const ra = new Reassembler({ maxFragments: 2000, maxBytes: 1 << 20 });
      // Duplicates can complete the datagram a second time after the first (IP may duplicate); each copy must be exact.
      const outs: Uint8Array[] = [];
      for (const d of pieces) {
        const p = new Ipv4Packet(d);
        if (!p.moreFrags && p.fragOffset === 0) outs.push(d); // it fitted whole
        else {
          const res = ra.add(0, p);
          if (res.kind === "done") outs.push(res.datagram);
        }
      }
      expect(outs.length).toBeGreaterThanOrEqual(1);
      for (const out of outs) {
        const back = parseIpv4(out);
        if (!back.ok) throw new Error(back.error);
        expect(sameBytes(back.value.payload, payload)).toBe(true); // toEqual is slow on 64 KiB arrays
        expect({ ...back.value, payload: null }).toEqual({ ...orig, payload: null });
      }
      // Duplicates arriving after completion start a new reassembly that the timeout frees.
      ra.expire(30_000);
      expect([ra.count, ra.bytes]).toEqual([0, 0]);
    }
  });

  test("the reassembled header comes from fragment zero, with a fresh checksum", () => {
    const ra = new Reassembler();
    ra.add(0, frag(8, new Uint8Array(8).fill(2), false));
    const d = done(ra.add(0, frag(0, new Uint8Array(8).fill(1), true)));
    const p = new Ipv4Packet(d);
    expect([p.totalLen, p.moreFrags, p.fragOffset, p.verifyChecksum()]).toEqual([36, false, 0, true]);
    expect(Array.from(p.payload)).toEqual([...new Array(8).fill(1), ...new Array(8).fill(2)]);
  });
});

describe("overlaps (RFC 5722 spirit)", () => {
  test("overlap with different bytes drops the whole datagram, counts it, and discards later fragments", () => {
    const ra = new Reassembler();
    expect(ra.add(0, frag(0, new Uint8Array(16).fill(1), true)).kind).toBe("pending");
    expect(ra.add(0, frag(8, new Uint8Array(16).fill(2), true))).toEqual({ kind: "dropped", reason: "overlap" });
    expect(ra.stats.overlap).toBe(1);
    expect(ra.bytes).toBe(0);
    // The rest of it, even if it would now complete something, is discarded.
    expect(ra.add(0, frag(16, new Uint8Array(8).fill(1), false))).toEqual({ kind: "dropped", reason: "afterDrop" });
    expect(ra.add(1, frag(0, new Uint8Array(16).fill(1), true)).kind).toBe("dropped");
    // A dropped datagram sends no time exceeded when it expires.
    expect(ra.expire(30_000)).toEqual([]);
    expect(ra.count).toBe(0);
  });

  test("overlap with identical bytes is harmless (retransmission after a different split)", () => {
    const ra = new Reassembler();
    const data = Uint8Array.from({ length: 32 }, (_, i) => i);
    ra.add(0, frag(0, data.subarray(0, 16), true));
    ra.add(0, frag(8, data.subarray(8, 24), true));
    const d = done(ra.add(0, frag(24, data.subarray(24), false)));
    expect(new Ipv4Packet(d).payload).toEqual(data);
    expect(ra.stats.overlap).toBe(0);
  });

  test("exact duplicates are ignored and counted", () => {
    const ra = new Reassembler();
    ra.add(0, frag(0, new Uint8Array(8).fill(5), true));
    expect(ra.add(0, frag(0, new Uint8Array(8).fill(5), true))).toEqual({ kind: "dropped", reason: "duplicate" });
    expect(ra.stats.duplicate).toBe(1);
    expect(ra.bytes).toBe(8);
  });

  test("conflicting ends and data past the end drop the datagram as bad", () => {
    const ra = new Reassembler();
    ra.add(0, frag(0, new Uint8Array(8), true, 1));
    ra.add(0, frag(16, new Uint8Array(8), false, 1));
    expect(ra.add(0, frag(24, new Uint8Array(8), false, 1))).toEqual({ kind: "dropped", reason: "bad" });
    ra.add(0, frag(32, new Uint8Array(8), true, 2));
    expect(ra.add(0, frag(8, new Uint8Array(8), false, 2))).toEqual({ kind: "dropped", reason: "bad" });
    expect(ra.stats.bad).toBe(2);
  });
});

describe("hostile fragments", () => {
  test("a datagram over 65535 bytes (ping of death) is refused", () => {
    const ra = new Reassembler();
    expect(ra.add(0, frag(65528, new Uint8Array(8), false))).toEqual({ kind: "dropped", reason: "tooBig" });
    expect(ra.add(0, frag(65504, new Uint8Array(8), false, 10)).kind).toBe("pending"); // 20 + 65504 + 8 = 65532 fits
    expect(ra.stats.tooBig).toBe(1);
  });

  test("non-final fragments must carry a non-zero multiple of 8 bytes", () => {
    const ra = new Reassembler();
    expect(ra.add(0, frag(0, new Uint8Array(12), true))).toEqual({ kind: "dropped", reason: "bad" });
    expect(ra.add(0, frag(8, new Uint8Array(0), true, 5))).toEqual({ kind: "dropped", reason: "bad" });
    expect(ra.count).toBe(0);
  });
});

describe("limits and timeouts", () => {
  test("never-completed fragments are freed at the timeout; fragment zero makes a quote", () => {
    const ra = new Reassembler({ timeoutMs: 30_000 });
    ra.add(100, frag(0, new Uint8Array(16).fill(7), true, 1));
    ra.add(200, frag(16, new Uint8Array(16), true, 2));
    expect(ra.bytes).toBe(32);
    expect(ra.expire(30_099)).toEqual([]);
    const e1 = ra.expire(30_100);
    expect(e1.length).toBe(1);
    expect(e1[0]!.ident).toBe(1);
    expect(e1[0]!.quote!.length).toBe(IPV4_HEADER_LEN + 16);
    expect(new Ipv4Packet(e1[0]!.quote!).moreFrags).toBe(true);
    const e2 = ra.expire(30_200);
    expect(e2.map((e) => [e.ident, e.quote])).toEqual([[2, null]]);
    expect([ra.count, ra.bytes, ra.stats.timeout]).toEqual([0, 0, 2]);
  });

  test("at most maxReassemblies at once: the oldest is evicted", () => {
    const ra = new Reassembler({ maxReassemblies: 4 });
    for (let id = 0; id < 10; id++) ra.add(id, frag(0, new Uint8Array(8), true, id));
    expect(ra.count).toBe(4);
    expect(ra.stats.evicted).toBe(6);
    // The survivors are the newest: completing id 9 works, id 0 starts over.
    expect(ra.add(20, frag(8, new Uint8Array(8), false, 9)).kind).toBe("done");
    expect(ra.add(20, frag(8, new Uint8Array(8), false, 0)).kind).toBe("pending");
  });

  test("total bytes held stay under maxBytes; a datagram bigger than that alone is dropped", () => {
    const ra = new Reassembler({ maxBytes: 4096 });
    for (let id = 0; id < 20; id++) {
      ra.add(0, frag(0, new Uint8Array(1024), true, id));
      expect(ra.bytes).toBeLessThanOrEqual(4096);
    }
    expect(ra.count).toBe(4);
    const big = new Reassembler({ maxBytes: 2048 });
    big.add(0, frag(0, new Uint8Array(1024), true));
    big.add(0, frag(1024, new Uint8Array(1024), true));
    expect(big.add(0, frag(2048, new Uint8Array(1024), true))).toEqual({ kind: "dropped", reason: "overLimit" });
    expect([big.count, big.bytes, big.stats.overLimit]).toEqual([0, 0, 1]);
  });

  test("fragments per datagram are bounded", () => {
    const ra = new Reassembler({ maxFragments: 4 });
    for (let i = 0; i < 4; i++) expect(ra.add(0, frag(i * 16, new Uint8Array(8), true)).kind).toBe("pending");
    expect(ra.add(0, frag(80, new Uint8Array(8), true))).toEqual({ kind: "dropped", reason: "overLimit" });
    expect(ra.count).toBe(0);
  });
});
