// Socket buffers within one thread: every operation of both sides, wrap-around of
// rings and data areas, full and empty, datagram boundaries, premapped accepts,
// close and reuse, readiness and wake-ups, and the stack's validation of hostile values.
import { describe, expect, test } from "vitest";
import {
  BUFFER_HEAD_BYTES,
  C_ACTIVE,
  C_SLEEPING,
  C_WAIT_SOCK,
  C_WAKES,
  D_FLAGS,
  D_GEN,
  D_SEGMENT,
  D_STATE,
  DESC_BYTES,
  DESC_WORDS,
  E_ARG,
  E_KIND_PORT,
  E_LENGTH,
  E_OFFSET,
  ERR,
  FLAG_PENDING_CLOSE,
  FLAG_RESET,
  HUP,
  KIND_CLOSE,
  KIND_CONNECT,
  KIND_DATA,
  KIND_DATAGRAM,
  KIND_SHUTDOWN,
  LINE,
  RX_CONS_WANT,
  RX_DATA_HEAD,
  RX_DESC_HEAD,
  RX_DESC_TAIL,
  RX_PROD_WANT,
  SHUT_WR,
  SOCK_DGRAM,
  SOCK_STREAM,
  ST_CLOSING,
  ST_CONNECTED,
  ST_FREE,
  ST_OPEN,
  ST_RESET,
  TX_CONS_WANT,
  TX_DATA_HEAD,
  TX_DESC_HEAD,
  TX_DESC_TAIL,
  TX_PROD_WANT,
  V_RX_DATA_HEAD,
  V_RX_HEAD,
  V_TX_ARG,
  V_TX_DATA,
  V_TX_KIND,
  V_TX_TAIL,
  VIOLATION,
  WRITABLE,
  bufferLayout,
  checkGeometry,
  controlLayout,
  type Geometry,
} from "./abi.ts";
import { AppArena, StackArena } from "./arena.ts";
import type { SockStack, TxDesc } from "./stack.ts";
import { EAGAIN, ECONNREFUSED, ECONNRESET, EMSGSIZE, EPIPE } from "../sys/errno.ts";

const SMALL: Geometry = { txSlots: 4, txData: 64, rxSlots: 4, rxData: 64 };

function setup(type = SOCK_STREAM, geometry: Partial<Geometry> = SMALL, opts: { retainTx?: boolean; maxSockets?: number } = {}) {
  let app: AppArena | null = null;
  const pending: [number, SharedArrayBuffer][] = [];
  const stack = new StackArena({
    maxSockets: opts.maxSockets ?? 64,
    segmentBytes: 64 * 1024,
    onGrant: (i, sab) => (app ? app.attachSegment(i, sab) : pending.push([i, sab])),
  });
  app = new AppArena(stack.control);
  for (const [i, sab] of pending) app.attachSegment(i, sab);
  const slot = stack.allocSlot(type, { geometry, retainTx: opts.retainTx });
  expect(slot).toBeGreaterThanOrEqual(0);
  const a = app.open(slot)!;
  expect(a).not.toBeNull();
  return { stack, app, slot, a, s: stack.sock(slot)! };
}

/** Drains TX and returns what came out, as plain records (copying DATA payloads). */
function drain(s: SockStack, budget?: number): { result: number; got: { kind: number; bytes?: number[]; arg: number; port: number }[] } {
  const got: { kind: number; bytes?: number[]; arg: number; port: number }[] = [];
  const result = s.drainTx((d: TxDesc, sk: SockStack) => {
    let bytes: number[] | undefined;
    if (d.kind === KIND_DATA || d.kind === KIND_DATAGRAM) {
      const b = new Uint8Array(d.length);
      expect(sk.copyTx(d.offset, d.length, b)).toBe(true);
      bytes = [...b];
    }
    got.push({ kind: d.kind, bytes, arg: d.arg, port: d.port });
  }, budget);
  return { result, got };
}

const seq = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

describe("layout", () => {
  test("offsets come from the tables: one line per index owner, 16-byte descriptors", () => {
    expect(DESC_BYTES).toBe(16);
    expect(DESC_WORDS).toBe(4);
    expect(BUFFER_HEAD_BYTES).toBe(6 * LINE);
    const lineOf = (cell: number) => Math.floor((cell * 4) / LINE);
    // producer tail and consumer head of each direction on lines of their own
    const lines = [TX_DESC_TAIL, TX_DESC_HEAD, TX_CONS_WANT, RX_DESC_TAIL, RX_DESC_HEAD, RX_CONS_WANT].map(lineOf);
    expect(new Set(lines).size).toBe(6);
    expect(lineOf(TX_DATA_HEAD)).toBe(lineOf(TX_DESC_HEAD));
    expect(lineOf(RX_DATA_HEAD)).toBe(lineOf(RX_DESC_HEAD));
    expect(lineOf(TX_PROD_WANT)).toBe(lineOf(TX_CONS_WANT));
    expect(lineOf(RX_PROD_WANT)).toBe(lineOf(RX_CONS_WANT));
    expect([E_OFFSET, E_LENGTH, E_KIND_PORT, E_ARG]).toEqual([0, 1, 2, 3]);
    expect(C_SLEEPING).toBe(0); // the doorbell line is cell-compatible with lib/ipc/doorbell.ts
    expect(C_WAKES).toBe(1);
    expect(C_ACTIVE * 4).toBe(LINE);
  });

  test("control and buffer layouts are line aligned and sized for their contents", () => {
    const lay = controlLayout(1024);
    expect(lay.bitmapWords).toBe(32);
    expect(lay.summaryWords).toBe(1);
    for (const cell of [lay.summary, lay.bitmap, lay.ready, lay.dir]) expect((cell * 4) % LINE).toBe(0);
    expect(lay.bytes).toBe(lay.dir * 4 + 1024 * 64);
    const b = bufferLayout({ txSlots: 64, txData: 65536, rxSlots: 64, rxData: 65536 });
    expect(b.txDesc).toBe(384);
    expect(b.rxDesc).toBe(384 + 64 * 16);
    expect(b.txData % LINE).toBe(0);
    expect(b.bytes).toBe(b.rxData + 65536);
    expect(() => controlLayout(33)).toThrow(/multiple of 32/);
    expect(checkGeometry({ txSlots: 3, txData: 64, rxSlots: 4, rxData: 64 })).toMatch(/txSlots/);
    expect(checkGeometry({ txSlots: 4, txData: 100, rxSlots: 4, rxData: 64 })).toMatch(/txData/);
  });
});

describe("stream TX (app -> stack)", () => {
  test("write, drain, copy: bytes and descriptors arrive in order", () => {
    const { a, s } = setup();
    expect(a.write(seq(10))).toBe(10);
    expect(a.write(seq(5, 10))).toBe(5);
    const { result, got } = drain(s);
    expect(result).toBe(2);
    expect(got.map((g) => g.kind)).toEqual([KIND_DATA, KIND_DATA]);
    expect([...got[0]!.bytes!, ...got[1]!.bytes!]).toEqual([...seq(15)]);
    expect(drain(s).result).toBe(0);
  });

  test("a full ring keeps one slot for CLOSE; a full data area takes a partial write; both wrap", () => {
    const { a, s } = setup();
    // 4 slots: 3 writes fit, the 4th is refused (reserved for close)
    expect(a.write(seq(1))).toBe(1);
    expect(a.write(seq(1))).toBe(1);
    expect(a.write(seq(1))).toBe(1);
    expect(a.write(seq(1))).toBe(-EAGAIN);
    expect(a.writable()).toBe(false);
    expect(drain(s).result).toBe(3);
    expect(a.writable()).toBe(true);
    // data area of 64: a 100-byte write takes 64, the next gets EAGAIN
    expect(a.write(seq(100))).toBe(64);
    expect(a.write(seq(1))).toBe(-EAGAIN);
    let all: number[] = [];
    const r = drain(s);
    all = all.concat(...r.got.map((g) => g.bytes!));
    expect(all).toEqual([...seq(64)]);
    // many rounds of odd sizes wrap both the ring (mod 4) and the area (mod 64)
    let sent = 0;
    let recv: number[] = [];
    for (let round = 0; round < 500; round++) {
      const n = a.write(seq(1 + (round % 37), sent));
      if (n > 0) sent += n;
      if (round % 3 === 0) recv = recv.concat(...drain(s).got.map((g) => g.bytes!));
    }
    recv = recv.concat(...drain(s).got.map((g) => g.bytes!));
    expect(recv.length).toBe(sent);
    expect(recv).toEqual([...seq(sent)]);
  });

  test("retainTx: data stays allocated until releaseTx, freed in order", () => {
    const { a, s } = setup(SOCK_STREAM, SMALL, { retainTx: true });
    expect(a.write(seq(40))).toBe(40);
    expect(drain(s).result).toBe(1);
    expect(s.txRetained).toBe(40);
    // the descriptor was consumed but the bytes were not freed: only 24 fit
    expect(a.write(seq(40, 40))).toBe(24);
    drain(s);
    expect(s.txRetained).toBe(64);
    const out = new Uint8Array(30);
    expect(s.copyTx((s.txReleasedTo + 20) >>> 0, 30, out)).toBe(true);
    expect([...out]).toEqual([...seq(30, 20)]);
    expect(s.copyTx(s.txReleasedTo, 65, new Uint8Array(65))).toBe(false);
    expect(s.releaseTx(65)).toBe(false);
    expect(a.write(seq(1))).toBe(-EAGAIN);
    expect(s.releaseTx(50)).toBe(true);
    expect(a.write(seq(60, 64))).toBe(50);
    expect(s.releaseTx(14)).toBe(true);
    expect(s.txRetained).toBe(0);
  });

  test("drain budget: the rest waits for the next walk (the socket marks itself)", () => {
    const { stack, a, s, slot } = setup(SOCK_STREAM, { ...SMALL, txSlots: 8 });
    for (let i = 0; i < 5; i++) expect(a.write(seq(2, i * 2))).toBe(2);
    stack.takeActive(() => {}); // consume the app's mark
    expect(drain(s, 2).result).toBe(2);
    const seen: number[] = [];
    stack.takeActive((x) => seen.push(x));
    expect(seen).toEqual([slot]);
    expect(drain(s, 2).result).toBe(2);
    expect(drain(s).result).toBe(1);
  });

  test("shutdown(SHUT_WR) is posted and later writes fail with EPIPE; connect carries addr:port", () => {
    const { a, s } = setup();
    expect(a.postConnect(0x0a000202, 8080)).toBe(0);
    expect(a.write(seq(3))).toBe(3);
    expect(a.postShutdown(SHUT_WR)).toBe(0);
    expect(a.write(seq(3))).toBe(-EPIPE);
    const { got } = drain(s);
    expect(got.map((g) => g.kind)).toEqual([KIND_CONNECT, KIND_DATA, KIND_SHUTDOWN]);
    expect(got[0]!.arg).toBe(0x0a000202);
    expect(got[0]!.port).toBe(8080);
    expect(got[2]!.arg).toBe(SHUT_WR);
  });
});

describe("stream RX (stack -> app)", () => {
  test("push, read in pieces across descriptors and the wrap; EAGAIN when empty", () => {
    const { a, s } = setup();
    const dst = new Uint8Array(200);
    expect(a.read(dst)).toBe(-EAGAIN);
    let pushed = 0;
    let got: number[] = [];
    for (let round = 0; round < 400; round++) {
      const n = s.pushRx(seq(1 + (round % 29), pushed));
      expect(n).toBeGreaterThanOrEqual(0);
      pushed += n;
      const r = a.read(dst.subarray(0, 1 + (round % 13)));
      if (r > 0) got = got.concat([...dst.subarray(0, r)]);
      else expect(r).toBe(-EAGAIN);
    }
    for (let r; (r = a.read(dst)) > 0; ) got = got.concat([...dst.subarray(0, r)]);
    expect(got.length).toBe(pushed);
    expect(got).toEqual([...seq(pushed)]);
  });

  test("a full RX refuses, arms prodWant, and a read that frees room marks the socket", () => {
    const { stack, a, s, slot } = setup();
    expect(s.pushRx(seq(64))).toBe(64);
    expect(s.pushRx(seq(1))).toBe(0);
    stack.takeActive(() => {});
    expect(a.read(new Uint8Array(10))).toBe(10);
    const seen: number[] = [];
    stack.takeActive((x) => seen.push(x));
    expect(seen).toEqual([slot]);
    // a partial read frees its bytes at once (the app publishes its data head)
    expect(s.rxFree()).toBe(10);
  });

  test("RX bytes full with slots to spare: rxSpace arms prodWant, and a read marks the socket", () => {
    const { stack, a, s, slot } = setup();
    expect(s.pushRx(seq(64))).toBe(64); // one slot used, every byte
    stack.takeActive(() => {});
    expect(s.rxSpace()).toBe(0);
    expect(a.read(new Uint8Array(10))).toBe(10);
    const seen: number[] = [];
    stack.takeActive((x) => seen.push(x));
    expect(seen).toEqual([slot]);
    expect(s.rxSpace()).toBe(10);
  });

  test("EOF after data: data first, then 0 forever; an error is reported once", () => {
    const { a, s } = setup();
    s.pushRx(seq(5));
    expect(s.pushError(ECONNREFUSED)).toBe(1);
    s.pushRx(seq(3));
    expect(s.pushEof()).toBe(1);
    const dst = new Uint8Array(64);
    expect(a.read(dst)).toBe(5);
    expect(a.read(dst)).toBe(-ECONNREFUSED);
    expect(a.read(dst)).toBe(3);
    expect(a.read(dst)).toBe(0);
    expect(a.read(dst)).toBe(0);
    expect(a.readable()).toBe(true);
  });

  test("connect result: ERROR 0 is consumed silently by read, and by takeError", () => {
    const { a, s } = setup();
    s.pushError(0);
    s.pushRx(seq(4));
    expect(a.read(new Uint8Array(10))).toBe(4);
    expect(a.connected).toBe(true);
    s.pushError(ECONNREFUSED);
    expect(a.takeError()).toBe(ECONNREFUSED);
    expect(a.takeError()).toBe(-EAGAIN);
  });
});

describe("datagrams", () => {
  test("boundaries, addresses and truncation are kept; zero-length datagrams exist", () => {
    const { a, s } = setup(SOCK_DGRAM);
    expect(s.pushDatagram(seq(10), 0x7f000001, 53)).toBe(1);
    expect(s.pushDatagram(new Uint8Array(0), 0x0a000001, 65535)).toBe(1);
    expect(s.pushDatagram(seq(20, 100), 0xc0a80001, 1234)).toBe(1);
    const dst = new Uint8Array(64);
    expect(a.readDatagram(dst)).toBe(10);
    expect([...dst.subarray(0, 10)]).toEqual([...seq(10)]);
    expect([a.fromAddr, a.fromPort]).toEqual([0x7f000001, 53]);
    expect(a.readDatagram(dst)).toBe(0);
    expect([a.fromAddr, a.fromPort, a.datagramLength]).toEqual([0x0a000001, 65535, 0]);
    expect(a.read(dst.subarray(0, 5))).toBe(5); // read(2) on a datagram socket: truncates
    expect(a.datagramLength).toBe(20);
    expect([...dst.subarray(0, 5)]).toEqual([...seq(5, 100)]);
    expect(a.readDatagram(dst)).toBe(-EAGAIN);
  });

  test("a datagram is written whole or not at all, and wraps the data area", () => {
    const { a, s } = setup(SOCK_DGRAM);
    expect(a.writeDatagram(seq(65), 1, 2)).toBe(-EMSGSIZE);
    let n = 0;
    const got: number[][] = [];
    for (let i = 0; i < 200; i++) {
      const len = (i * 7) % 40;
      const r = a.writeDatagram(seq(len, i), 0x01020304 + i, i);
      if (r === -EAGAIN) {
        drain(s).got.forEach((g) => got.push(g.bytes!));
        expect(a.writeDatagram(seq(len, i), 0x01020304 + i, i)).toBe(len);
      } else expect(r).toBe(len);
      n++;
    }
    const rest = drain(s);
    rest.got.forEach((g) => got.push(g.bytes!));
    expect(got.length).toBe(n);
    for (let i = 0; i < 200; i++) expect(got[i]).toEqual([...seq((i * 7) % 40, i)]);
    const last = rest.got[rest.got.length - 1]!;
    expect([last.arg, last.port]).toEqual([0x01020304 + 199, 199]);
  });

  test("the stack drops a datagram that does not fit whole", () => {
    const { a, s } = setup(SOCK_DGRAM);
    expect(s.pushDatagram(seq(40), 1, 1)).toBe(1);
    expect(s.pushDatagram(seq(30), 1, 1)).toBe(0); // 24 bytes left
    expect(s.pushDatagram(seq(65), 1, 1)).toBe(0); // larger than the area
    expect(a.readDatagram(new Uint8Array(64))).toBe(40);
    expect(s.pushDatagram(seq(30), 1, 1)).toBe(1);
  });
});

describe("accept, close and reuse", () => {
  test("premapped children: ACCEPT carries slot and generation; the child is usable at once", () => {
    const { stack, app, a: lis, s: ls } = setup();
    ls.setState(2);
    const kids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = stack.allocSlot(SOCK_STREAM, { geometry: SMALL });
      stack.sock(c)!.setState(ST_CONNECTED);
      stack.sock(c)!.setAddrs(0x0a000001, 80, 0x0a000002, 40000 + i);
      stack.sock(c)!.pushRx(seq(3, i));
      expect(ls.pushAccept(c, stack.sock(c)!.gen)).toBe(1);
      kids.push(c);
    }
    expect(lis.read(new Uint8Array(4))).toBe(-22); // read(2) on a listener: EINVAL
    for (let i = 0; i < 3; i++) {
      const c = lis.takeAccept();
      expect(c).toBe(kids[i]);
      const child = app.open(c, lis.acceptGen)!;
      expect(child).not.toBeNull();
      const b = new Uint8Array(8);
      expect(child.read(b)).toBe(3);
      expect([...b.subarray(0, 3)]).toEqual([...seq(3, i)]);
      expect(child.write(seq(2))).toBe(2);
    }
    expect(lis.takeAccept()).toBe(-EAGAIN);
    expect(ls.rxUnread()).toBe(0);
  });

  test("close: CLOSE drained -> closing, pending-close; release keeps the mapping; reuse bumps the generation", () => {
    const { stack, app, a, s, slot } = setup();
    expect(a.write(seq(5))).toBe(5);
    expect(a.postClose()).toBe(true);
    expect(a.postClose()).toBe(false);
    expect(a.write(seq(1))).toBe(-9);
    const { got } = drain(s);
    expect(got.map((g) => g.kind)).toEqual([KIND_DATA, KIND_CLOSE]);
    expect(s.isClosed).toBe(true);
    const ctl = stack.ctl;
    const d = stack.lay.dir + slot * 16;
    expect(ctl[d + D_STATE]).toBe(ST_CLOSING);
    expect(ctl[d + D_FLAGS]! & FLAG_PENDING_CLOSE).toBe(FLAG_PENDING_CLOSE);
    expect(app.open(slot)).toBeNull(); // the app may not touch it again
    const gen = ctl[d + D_GEN]!;
    // keep one other socket in use so the closed one stays mapped (half in use)
    const other = stack.allocSlot(SOCK_STREAM, { geometry: SMALL });
    expect(stack.release(slot)).toBe(true);
    expect(ctl[d + D_STATE]).toBe(ST_FREE);
    expect(stack.closedMapped).toBe(1);
    const seg = ctl[d + D_SEGMENT];
    const again = stack.allocSlot(SOCK_STREAM, { geometry: SMALL });
    expect(again).toBe(slot);
    expect(ctl[d + D_GEN]).toBe(gen + 1);
    expect(ctl[d + D_SEGMENT]).toBe(seg); // same mapping
    expect(a.stale()).toBe(true);
    expect(app.open(slot, gen)).toBeNull();
    const b = app.open(slot, gen + 1)!;
    expect(b.write(seq(4))).toBe(4); // fresh indices
    expect(drain(stack.sock(slot)!).got[0]!.bytes).toEqual([...seq(4)]);
    expect(other).not.toBe(slot);
  });

  test("lazy unmapping: closed sockets are unmapped once fewer are in use than closed (§5.5.5)", () => {
    const { stack } = setup();
    const slots = [1, 2, 3, 4].map(() => stack.allocSlot(SOCK_STREAM, { geometry: SMALL }));
    // 5 in use; close 2: still mapped (3 in use >= 2 closed)
    stack.release(slots[0]!);
    stack.release(slots[1]!);
    expect(stack.closedMapped).toBe(2);
    stack.release(slots[2]!); // 2 in use < 3 closed: all unmapped
    expect(stack.closedMapped).toBe(0);
    const d = stack.lay.dir + slots[0]! * 16;
    expect(stack.ctl[d + D_SEGMENT]).toBe(-1);
    // their buffers are reused for new sockets without growing the arena
    const segs = stack.segments.length;
    for (let i = 0; i < 3; i++) expect(stack.allocSlot(SOCK_STREAM, { geometry: SMALL })).toBeGreaterThanOrEqual(0);
    expect(stack.segments.length).toBe(segs);
  });

  test("the arena grows by segments; every slot can be allocated; then ENFILE", () => {
    const grants: number[] = [];
    const stack = new StackArena({ maxSockets: 64, segmentBytes: 8192, onGrant: (i) => grants.push(i) });
    for (let i = 0; i < 64; i++) expect(stack.allocSlot(SOCK_DGRAM, { geometry: SMALL })).toBe(i);
    expect(stack.allocSlot(SOCK_DGRAM)).toBe(-23);
    expect(grants.length).toBe(stack.segments.length);
    expect(grants.length).toBeGreaterThan(1);
    expect(stack.allocSlot(3)).toBe(-22);
    expect(stack.allocSlot(SOCK_DGRAM, { geometry: { txSlots: 5 } })).toBe(-22);
  });

  test("resize (setsockopt) while idle gives a new buffer; the app re-opens it", () => {
    const { stack, app, a, slot } = setup();
    expect(a.write(seq(3))).toBe(3);
    expect(stack.resize(slot, { rxData: 256 })).toBe(-16); // TX not empty
    drain(stack.sock(slot)!);
    expect(stack.resize(slot, { rxData: 256, rxSlots: 16 })).toBe(0);
    const b = app.open(slot)!;
    const s = stack.sock(slot)!;
    expect(s.geometry.rxData).toBe(256);
    expect(s.pushRx(seq(200))).toBe(200);
    expect(b.read(new Uint8Array(256))).toBe(200);
  });
});

describe("activity and readiness", () => {
  test("the first post marks the socket and asks for a wake; the walk takes each bit once", () => {
    const { stack, app, a, s, slot } = setup();
    expect(stack.busy()).toBe(false);
    a.write(seq(1));
    expect(app.takeWake()).toBe(true);
    expect(app.takeWake()).toBe(false);
    a.write(seq(1)); // consWant was consumed by the first post: no second mark
    expect(app.takeWake()).toBe(false);
    const seen: number[] = [];
    expect(stack.takeActive((x) => seen.push(x))).toBe(1);
    expect(seen).toEqual([slot]);
    expect(stack.takeActive((x) => seen.push(x))).toBe(0);
    drain(s); // drained to empty: consWant armed again
    a.write(seq(1));
    expect(app.takeWake()).toBe(true);
  });

  test("walk: many sockets across bitmap words; bits of unused slots are dropped", () => {
    const stack = new StackArena({ maxSockets: 2048, segmentBytes: 1 << 20 });
    const app = new AppArena(stack.control, stack.segments);
    const used = [0, 31, 32, 1023, 1024, 2047];
    for (let i = 0; i < 2048; i++) stack.allocSlot(SOCK_DGRAM, { geometry: SMALL });
    for (let i = 0; i < 2048; i++) if (!used.includes(i)) stack.release(i);
    for (const u of used) app.markActive(u);
    app.markActive(5); // released slot: junk
    const seen: number[] = [];
    stack.takeActive((x) => seen.push(x));
    expect(seen).toEqual(used);
    expect(stack.junkBits).toBe(1);
  });

  test("readable(): private note under load; the event word when waiting; no lost signal", () => {
    const { a, s, stack } = setup();
    const ctl = stack.ctl;
    expect(a.readable()).toBe(false); // arms consWant
    expect(Atomics.load(new Int32Array(stack.segments[0]!, s.offset), RX_CONS_WANT)).toBe(1);
    const ev = ctl[stack.lay.ready + s.slot * 2 + 1];
    s.pushRx(seq(10)); // consWant set: signal READABLE, bump the event count
    expect(ctl[stack.lay.ready + s.slot * 2 + 1]).toBe(ev! + 1);
    expect(a.readable()).toBe(true);
    s.pushRx(seq(10)); // no one asked: no event
    expect(ctl[stack.lay.ready + s.slot * 2 + 1]).toBe(ev! + 1);
    expect(a.read(new Uint8Array(5))).toBe(5);
    expect(a.readable()).toBe(true); // noted privately
    expect(a.read(new Uint8Array(64))).toBe(15);
    expect(a.readable()).toBe(false);
    expect(a.readable()).toBe(false);
    s.pushRx(seq(1));
    expect(a.readable()).toBe(true);
  });

  test("writable(): a full TX arms prodWant; the stack's drain signals WRITABLE", () => {
    const { a, s, stack } = setup();
    expect(a.writable()).toBe(true);
    expect(a.write(seq(64))).toBe(64);
    expect(a.writable()).toBe(false);
    const ev = stack.ctl[stack.lay.ready + s.slot * 2 + 1]!;
    drain(s);
    expect(stack.ctl[stack.lay.ready + s.slot * 2 + 1]).toBe(ev + 1);
    expect(s.readiness & WRITABLE).toBe(WRITABLE);
    expect(a.writable()).toBe(true);
    expect(a.txFree()).toBe(64);
  });

  test("sleep: the app's doorbell is rung only for the socket it waits on, only when asked", () => {
    const { app, a, s, stack, slot } = setup();
    const ctl = stack.ctl;
    // simulate a sleeper (a real one blocks in Atomics.wait)
    expect(a.readable()).toBe(false);
    Atomics.store(ctl, C_WAIT_SOCK, slot + 1);
    Atomics.store(ctl, C_SLEEPING, 1);
    s.pushRx(seq(1)); // signalled, but the app waits on another socket
    expect(Atomics.load(ctl, C_SLEEPING)).toBe(1);
    a.read(new Uint8Array(4));
    expect(a.readable()).toBe(false);
    Atomics.store(ctl, C_WAIT_SOCK, slot);
    s.pushRx(seq(1));
    expect(Atomics.load(ctl, C_SLEEPING)).toBe(0);
    expect(app.wakes).toBe(1);
    // sleep returns at once when ready() is true after the flag is raised
    expect(app.sleep(slot, () => a.readable(), 1000)).toBe(false);
    expect(Atomics.load(ctl, C_SLEEPING)).toBe(0);
    // and times out (finite wait) when nothing comes
    a.read(new Uint8Array(4));
    const t = performance.now();
    expect(app.sleep(slot, () => a.readable(), 5)).toBe(false);
    expect(performance.now() - t).toBeGreaterThanOrEqual(1);
  });
});

describe("the stack never trusts shared memory", () => {
  /** Forges the descriptor at TX index `at` (the app's private copy is bypassed). */
  function forge(stack: StackArena, s: SockStack, at: number, off: number, len: number, kind: number, arg = 0, port = 0, tail = at + 1) {
    const w = new Int32Array(stack.segments[s.segment]!, s.offset);
    const i = (BUFFER_HEAD_BYTES >> 2) + (at & (s.geometry.txSlots - 1)) * DESC_WORDS;
    w[i + E_OFFSET] = off;
    w[i + E_LENGTH] = len;
    w[i + E_KIND_PORT] = kind | (port << 16);
    w[i + E_ARG] = arg;
    Atomics.store(w, TX_DESC_TAIL, tail);
    return w;
  }

  test.each([
    ["a tail 1000 descriptors ahead", 0, 0, 1, KIND_DATA, 0, 1000, V_TX_TAIL],
    ["a tail behind the head", 0, 0, 1, KIND_DATA, 0, -1, V_TX_TAIL],
    ["kind 0", 0, 0, 1, 0, 0, 1, V_TX_KIND],
    ["kind 99", 0, 0, 1, 99, 0, 1, V_TX_KIND],
    ["an RX-only kind (ACCEPT)", 0, 0, 0, 5, 0, 1, V_TX_KIND],
    ["a datagram on a stream socket", 0, 0, 4, KIND_DATAGRAM, 0, 1, V_TX_KIND],
    ["DATA not at the next data position", 8, 8, 1, KIND_DATA, 0, 1, V_TX_DATA],
    ["DATA longer than the area", 0, 0, 65, KIND_DATA, 0, 1, V_TX_DATA],
    ["DATA of length 0", 0, 0, 0, KIND_DATA, 0, 1, V_TX_DATA],
    ["DATA of length 2^32-1", 0, 0, -1, KIND_DATA, 0, 1, V_TX_DATA],
    ["SHUTDOWN how 7", 0, 0, 0, KIND_SHUTDOWN, 7, 1, V_TX_ARG],
  ])("%s is a Violation, not an exception", (_name, _unused, off, len, kind, arg, tail, why) => {
    const { stack, s } = setup();
    forge(stack, s, 0, off, len, kind, arg, 0, tail);
    const r = drain(s);
    expect(r.result).toBe(VIOLATION);
    expect(r.got).toEqual([]);
    expect(s.violation).toBe(why);
    expect(s.violations).toBe(1);
  });

  test("DATA that would overrun data the stack has not freed is a Violation", () => {
    const { stack, s, a } = setup(SOCK_STREAM, SMALL, { retainTx: true });
    expect(a.write(seq(40))).toBe(40);
    drain(s);
    forge(stack, s, 1, 40, 30, KIND_DATA); // 40 retained + 30 > 64
    expect(drain(s).result).toBe(VIOLATION);
    expect(s.violation).toBe(V_TX_DATA);
  });

  test("the valid descriptors before a bad one are delivered", () => {
    const { stack, s, a } = setup();
    expect(a.write(seq(3))).toBe(3);
    forge(stack, s, 1, 99, 3, KIND_DATA);
    const r = drain(s);
    expect(r.result).toBe(VIOLATION);
    expect(r.got.length).toBe(1);
  });

  test("impossible RX heads from the app are Violations for every push", () => {
    const { stack, s } = setup();
    const w = new Int32Array(stack.segments[s.segment]!, s.offset);
    expect(s.pushRx(seq(64))).toBe(64); // full: the next push must look at the heads
    Atomics.store(w, RX_DESC_HEAD, 50);
    expect(s.pushRx(seq(1))).toBe(VIOLATION);
    expect(s.violation).toBe(V_RX_HEAD);
    expect(s.pushEof()).toBe(1); // the last validated view still has a free slot
    Atomics.store(w, RX_DESC_HEAD, 0);
    Atomics.store(w, RX_DATA_HEAD, 1 << 30);
    expect(s.rxFree()).toBe(VIOLATION);
    expect(s.violation).toBe(V_RX_DATA_HEAD);
  });

  test("reset: ERROR + EOF to the app, state RESET, no more work; writes see ECONNRESET", () => {
    const { stack, a, s, slot } = setup();
    forge(stack, s, 0, 0, 1, 77);
    expect(drain(s).result).toBe(VIOLATION);
    // a hostile app forged the descriptor; a buggy app's own handle keeps going:
    expect(stack.reset(slot)).toBe(true);
    const d = stack.lay.dir + slot * 16;
    expect(stack.ctl[d + D_STATE]).toBe(ST_RESET);
    expect(stack.ctl[d + D_FLAGS]! & FLAG_RESET).toBe(FLAG_RESET);
    expect(s.readiness & (ERR | HUP)).toBe(ERR | HUP);
    expect(a.read(new Uint8Array(8))).toBe(-ECONNRESET);
    expect(a.read(new Uint8Array(8))).toBe(0);
    expect(drain(s).result).toBe(0);
    expect(s.pushRx(seq(1))).toBe(0);
    for (let i = 0; i < 4; i++) a.write(seq(60));
    expect(a.write(seq(60))).toBe(-ECONNRESET);
    expect(a.writable()).toBe(true);
  });

  test("random values in every word of the socket buffer: the stack never throws", () => {
    const { stack, app, s, slot } = setup(SOCK_STREAM, { txSlots: 8, txData: 256, rxSlots: 8, rxData: 256 });
    let a = app.open(slot)!;
    let x = 12345;
    const rnd = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 0);
    const bytes = bufferLayout(s.geometry).bytes;
    const w = new Int32Array(stack.segments[s.segment]!, s.offset, bytes >> 2);
    let violations = 0;
    let delivered = 0;
    const sink = new Uint8Array(256);
    for (let round = 0; round < 20000; round++) {
      const sk = stack.sock(slot)!;
      // a genuine app writes and reads between the scribbles
      a.write(seq(1 + (rnd() % 50)));
      a.read(sink);
      const k = rnd() % 4;
      for (let j = 0; j < k; j++) {
        const cell = rnd() % 16 < 12 ? rnd() % (BUFFER_HEAD_BYTES / 4 + 8 * 4) : rnd() % (bytes >> 2);
        w[cell] = rnd() % 2 ? rnd() : (w[cell]! + (rnd() % 5) - 2) | 0;
      }
      const r = sk.drainTx((d) => {
        delivered++;
        if (d.kind === KIND_DATA) expect(sk.copyTx(d.offset, d.length, sink)).toBe(true);
      });
      const p = sk.pushRx(seq(rnd() % 100));
      const q = sk.pushEof();
      if (r === VIOLATION || p === VIOLATION || q === VIOLATION) {
        violations++;
        stack.reset(slot);
      }
      if (sk.isDead || sk.isClosed) {
        stack.release(slot);
        expect(stack.allocSlot(SOCK_STREAM, { geometry: s.geometry })).toBe(slot);
        a = app.open(slot)!;
      }
    }
    expect(violations).toBeGreaterThan(100);
    expect(delivered).toBeGreaterThan(0);
  });
});

describe("app details", () => {
  test("zero-length and state", () => {
    const { a, s } = setup();
    expect(a.write(new Uint8Array(0))).toBe(0);
    expect(a.read(new Uint8Array(0))).toBe(-EAGAIN);
    s.pushRx(seq(1));
    expect(a.read(new Uint8Array(0))).toBe(0);
    expect(a.state()).toBe(ST_OPEN);
    s.setState(ST_CONNECTED);
    expect(a.state()).toBe(ST_CONNECTED);
  });
});
