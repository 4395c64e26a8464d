// Tests for the dgram backend: two backends in this process on 127.0.0.1 moving 10,000 frames.
import { afterEach, describe, expect, test } from "vitest";
import { DgramBackend } from "./dgram.ts";
import { pollIn } from "./libc.ts";
import { seqFrame, seqOf } from "./frames.fixture.ts";
import { EADDRINUSE, ErrnoError } from "../../lib/sys/errno.ts";
import type { Backend } from "./backend.ts";

const open: Backend[] = [];
afterEach(() => {
  for (const b of open.splice(0)) b.close();
});

/** Two backends on ephemeral loopback ports, pointed at each other. */
function pair(): [DgramBackend, DgramBackend] {
  const a = new DgramBackend({ localPort: 0, remotePort: 0, socketBuffer: 1 << 20 });
  open.push(a);
  const b = new DgramBackend({ localPort: 0, remotePort: a.port, mac: "52:54:00:12:34:57", socketBuffer: 1 << 20 });
  open.push(b);
  a.setRemote(b.port);
  return [a, b];
}

describe("dgram backend", () => {
  test("10,000 frames of 60 to 1514 bytes, in order and intact, with matching counters", () => {
    const [a, b] = pair();
    expect(a.port).toBeGreaterThan(0);
    expect(a.name).toBe(`dgram:${a.port}->127.0.0.1:${b.port}`);
    const N = 10_000;
    const got: number[] = [];
    const lens = (i: number) => 60 + ((i * 97) % 1455);
    let bytes = 0;
    const take = (f: Uint8Array) => {
      const s = seqOf(f);
      got.push(s >= 0 && f.length === lens(s) ? s : -1);
    };
    for (let i = 0; i < N; i++) {
      expect(a.send(seqFrame(i, lens(i)))).toBe(true);
      bytes += lens(i);
      if (i % 64 === 63) while (b.recv(32, take) > 0);
    }
    for (let spins = 0; got.length < N && spins < 100; spins++) {
      pollIn(b.fd, 10);
      while (b.recv(32, take) > 0);
    }
    expect(got.length).toBe(N);
    expect(got.every((s, i) => s === i)).toBe(true);
    expect(a.stats()).toEqual({ rxFrames: 0, txFrames: N, rxBytes: 0, txBytes: bytes, txDropped: 0, rxErrors: 0 });
    expect(b.stats()).toEqual({ rxFrames: N, txFrames: 0, rxBytes: bytes, txBytes: 0, txDropped: 0, rxErrors: 0 });
  });

  test("both directions; the fd polls readable; recv never blocks when empty", () => {
    const [a, b] = pair();
    expect(pollIn(a.fd, 0)).toBe(false);
    const t0 = performance.now();
    expect(a.recv(8, () => {})).toBe(0);
    expect(performance.now() - t0).toBeLessThan(50);
    b.send(seqFrame(1));
    expect(pollIn(a.fd, 1000)).toBe(true);
    const seqs: number[] = [];
    expect(a.recv(8, (f) => seqs.push(seqOf(f)))).toBe(1);
    expect(seqs).toEqual([1]);
  });

  test("datagrams from a stranger, runts and oversize sends are counted, not delivered", () => {
    const [a, b] = pair();
    const stranger = new DgramBackend({ localPort: 0, remotePort: b.port });
    open.push(stranger);
    stranger.send(seqFrame(666));
    a.send(seqFrame(1));
    expect(a.send(new Uint8Array(10))).toBe(false);
    expect(a.send(new Uint8Array(65508))).toBe(false);
    expect(a.stats().txDropped).toBe(2);
    pollIn(b.fd, 1000);
    const seqs: number[] = [];
    for (let i = 0; i < 20 && seqs.length === 0; i++) {
      b.recv(8, (f) => seqs.push(seqOf(f)));
      if (seqs.length === 0) pollIn(b.fd, 20);
    }
    expect(seqs).toEqual([1]);
    expect(b.stats().rxErrors).toBe(1);
  });

  test("a port in use is a clear EADDRINUSE; bad addresses are configuration errors", () => {
    const [a] = pair();
    let err: unknown;
    try {
      open.push(new DgramBackend({ localPort: a.port, remotePort: 1 }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ErrnoError);
    expect((err as ErrnoError).errno).toBe(EADDRINUSE);
    expect(String(err)).toMatch(/bind 127\.0\.0\.1:\d+: EADDRINUSE/);
    expect(() => new DgramBackend({ localPort: 0, remotePort: 1, remoteHost: "localhost" })).toThrow(/bad IPv4/);
    expect(() => new DgramBackend({ localPort: 70000, remotePort: 1 })).toThrow(/bad port/);
  });

  test("close is idempotent and a closed backend neither sends nor receives", () => {
    const [a, b] = pair();
    a.close();
    a.close();
    expect(a.fd).toBe(-1);
    expect(a.send(seqFrame(1))).toBe(false);
    expect(a.recv(4, () => {})).toBe(0);
    b.close();
  });
});
