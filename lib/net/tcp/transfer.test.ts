import { describe, expect, test } from "vitest";
import { Prng, SimLink } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const A = 0x0a000001;
const B = 0x0a000002;

function transfer(size: number, opts: ConstructorParameters<typeof SimLink>[0], cfg = {}) {
  const link = new SimLink(opts);
  link.tracing = false;
  const a = link.host(A, cfg);
  const b = link.host(B, cfg);
  const l = b.listen(80);
  const c = a.connect(link.now, 40000, B, 80);
  const data = new Prng(77).bytes(size);
  const got = new Uint8Array(size);
  let sent = 0;
  let recvd = 0;
  let s: ReturnType<typeof l.accept>;
  const ok = link.run({
    maxMs: 3_600_000,
    app: () => {
      if (c.state === TcpState.ESTABLISHED && sent < size) {
        sent += c.send(data.subarray(sent, Math.min(size, sent + 65536)));
        if (sent === size) c.shutdownWrite();
      }
      s ??= l.accept();
      if (s) {
        const chunk = s.recv();
        got.set(chunk, recvd);
        recvd += chunk.length;
      }
    },
    until: () => s !== undefined && s.eof,
  });
  return { ok, got, data, recvd, link, c, s: s!, a, b };
}

describe("bulk transfer", () => {
  test("1 MB over a clean link", () => {
    const r = transfer(1 << 20, { seed: 3 });
    expect(r.ok).toBe(true);
    expect(r.recvd).toBe(r.data.length);
    expect(Buffer.from(r.got).equals(Buffer.from(r.data))).toBe(true);
  });

  test("5 MB through 5% loss, duplication and reordering arrives byte-identical", () => {
    const r = transfer(5 << 20, { seed: 42, lossRate: 0.05, dupRate: 0.05, reorderRate: 0.05 });
    expect(r.ok).toBe(true);
    expect(r.recvd).toBe(r.data.length);
    expect(Buffer.from(r.got).equals(Buffer.from(r.data))).toBe(true);
  }, 120_000);
});

describe("both directions at once, through loss, across configurations", () => {
  const configs = [
    { name: "defaults", cfg: {} },
    { name: "no SACK", cfg: { sack: false } },
    { name: "no timestamps, small buffers", cfg: { timestamps: false, recvBufferSize: 20_000, sendBufferSize: 30_000 } },
    { name: "no window scaling, Nagle off", cfg: { windowScaling: false, noDelay: true } },
  ];
  for (const { name, cfg } of configs) {
    test.each([1, 2, 3])(`${name}, seed %i: every byte arrives in order and both sides close`, (seed) => {
      const link = new SimLink({ seed, lossRate: 0.08, dupRate: 0.03, reorderRate: 0.05 });
      link.tracing = false;
      const a = link.host(A, cfg);
      const b = link.host(B, cfg);
      const l = b.listen(80);
      const c = a.connect(link.now, 40000, B, 80);
      const size = 200_000;
      const up = new Prng(seed).bytes(size);
      const down = new Prng(seed + 100).bytes(size);
      const gotUp = new Uint8Array(size);
      const gotDown = new Uint8Array(size);
      let sentUp = 0, sentDown = 0, nUp = 0, nDown = 0;
      let s: ReturnType<typeof l.accept>;
      const open = (x: { state: number }) => x.state === TcpState.ESTABLISHED || x.state === TcpState.CLOSE_WAIT;
      const ok = link.run({
        maxMs: 3_600_000,
        app: () => {
          if (open(c) && sentUp < size) {
            sentUp += c.send(up.subarray(sentUp, Math.min(size, sentUp + 5000)));
            if (sentUp === size) c.shutdownWrite();
          }
          s ??= l.accept();
          if (s) {
            const x = s.recv(7000);
            gotUp.set(x, nUp);
            nUp += x.length;
            if (open(s) && sentDown < size) {
              sentDown += s.send(down.subarray(sentDown));
              if (sentDown === size) s.shutdownWrite();
            }
          }
          const y = c.recv();
          gotDown.set(y, nDown);
          nDown += y.length;
        },
        until: () => !!s && s.eof && c.eof && [c.state, s.state].sort().join() === `${TcpState.CLOSED},${TcpState.TIME_WAIT}`,
      });
      expect(ok).toBe(true);
      expect([nUp, nDown]).toEqual([size, size]);
      expect(Buffer.from(gotUp).equals(Buffer.from(up))).toBe(true);
      expect(Buffer.from(gotDown).equals(Buffer.from(down))).toBe(true);
      // done with their data, the TIME-WAIT and CLOSED ends hold no buffer memory
      expect([c.bufferBytes, s!.bufferBytes]).toEqual([0, 0]);
    });
  }
});
