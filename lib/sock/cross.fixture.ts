// Test fixture for lib/sock/cross.test.ts: one side of a socket arena in its own
// worker. Roles: the stack (creates the arena and posts it, as a kernel grant would),
// the app (libc's side), and a hostile app thread that scribbles on its own socket.
// Data are pseudo-random streams both ends regenerate from a seed, so every byte is
// checked where it arrives, and checksummed (FNV-1a) on both sides.
import { parentPort, workerData } from "node:worker_threads";
import { Doorbell, Waker } from "../ipc/doorbell.ts";
import { C_ACTIVE, C_SLEEPING, C_WAIT_SOCK, KIND_DATA, KIND_DATAGRAM, SOCK_DGRAM, SOCK_STREAM, VIOLATION, bufferLayout, type Geometry } from "./abi.ts";
import { AppArena, StackArena } from "./arena.ts";
import type { SockStack, TxDesc } from "./stack.ts";
import { SockApp, type SockMapping } from "./app.ts";

export type Role = "stack-stream" | "app-stream" | "stack-dgram" | "app-dgram" | "stack-hostile" | "app-echo" | "hostile";

export interface FixtureData {
  role: Role;
  seed: number;
  /** stream roles: bytes each way; datagram roles: datagrams each way */
  total: number;
  maxChunk: number;
  stackBell: SharedArrayBuffer; // the stack's own doorbell (not in the arena)
  stop?: SharedArrayBuffer; // hostile test: cell 0 = 1 when the test says stop
  // filled in for the app roles from the stack's "ready" message
  control?: SharedArrayBuffer;
  segments?: SharedArrayBuffer[];
  slot?: number;
  hostile?: { slot: number; segment: number; offset: number; bytes: number };
}

export interface Ready {
  type: "ready";
  control: SharedArrayBuffer;
  segments: SharedArrayBuffer[];
  slot: number;
  hostile?: { slot: number; segment: number; offset: number; bytes: number };
}

export interface Done {
  type: "done";
  sentHash: number;
  recvHash: number;
  sent: number;
  received: number;
  mismatches: number;
  sleeps: number;
  violations?: number;
  resets?: number;
  junkBits?: number;
  scribbles?: number;
}

const d = workerData as FixtureData;

/**
 * Byte k of a stream is a function of the seed and k only (LCG, top byte). The
 * stream also keeps the FNV-1a checksum of what went through it and, on the
 * checking side, how many bytes differed (one pass per byte for both).
 */
const FNV0 = 0x811c9dc5;

class ByteStream {
  private s: number;
  hash = FNV0;
  bad = 0;
  constructor(seed: number) {
    this.s = seed | 0;
  }
  fill(dst: Uint8Array, off: number, n: number): void {
    let s = this.s;
    let h = this.hash;
    for (let i = off; i < off + n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) | 0;
      const b = s >>> 24;
      dst[i] = b;
      h = Math.imul(h ^ b, 0x01000193);
    }
    this.s = s;
    this.hash = h >>> 0;
  }
  /** Advances over n bytes of src at off: checksums them and counts those that differ from the stream. */
  check(src: Uint8Array, off: number, n: number): void {
    let s = this.s;
    let h = this.hash;
    let bad = 0;
    for (let i = off; i < off + n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) | 0;
      const b = src[i]!;
      if (b !== s >>> 24) bad++;
      h = Math.imul(h ^ b, 0x01000193);
    }
    this.s = s;
    this.hash = h >>> 0;
    this.bad += bad;
  }
}

/** xorshift32 for sizes. */
class Rnd {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let s = this.s;
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    this.s = s >>> 0;
    return this.s;
  }
}

const GEOMETRY: Geometry = { txSlots: 64, txData: 64 * 1024, rxSlots: 64, rxData: 64 * 1024 };

function post(m: Ready | Done): void {
  parentPort!.postMessage(m);
}

// Seeds of the four streams: app->stack data/sizes, stack->app data/sizes.
const A_DATA = d.seed ^ 0x1111;
const A_SIZE = d.seed ^ 0x2222;
const S_DATA = d.seed ^ 0x3333;
const S_SIZE = d.seed ^ 0x4444;

// ------------------------------------------------------------------------ streams

function stackStream(): void {
  const arena = new StackArena({ maxSockets: 32, segmentBytes: 1 << 20 });
  const slot = arena.allocSlot(SOCK_STREAM, { geometry: GEOMETRY });
  post({ type: "ready", control: arena.control, segments: arena.segments, slot });
  const s = arena.sock(slot)!;
  const bell = new Doorbell(d.stackBell);
  const check = new ByteStream(A_DATA);
  const gen = new ByteStream(S_DATA);
  const sizes = new Rnd(S_SIZE);
  const scratch = new Uint8Array(GEOMETRY.txData);
  const out = new Uint8Array(d.maxChunk);
  let outOff = 0;
  let outLen = 0;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let sleeps = 0;
  const onTx = (t: TxDesc, sk: SockStack) => {
    if (t.kind !== KIND_DATA) return;
    sk.copyTx(t.offset, t.length, scratch);
    check.check(scratch, 0, t.length);
    received += t.length;
  };
  const visit = () => {
    if (s.drainTx(onTx) === VIOLATION) throw new Error(`violation ${s.violation} from a well-behaved app`);
  };
  let idle = 0;
  for (;;) {
    let progress = arena.takeActive(visit) > 0;
    while (sent < d.total) {
      if (outOff === outLen) {
        outLen = Math.min(1 + (sizes.next() % d.maxChunk), d.total - sent);
        outOff = 0;
        gen.fill(out, 0, outLen);
      }
      const n = s.pushRx(out, outOff, outLen - outOff);
      if (n === VIOLATION) throw new Error("RX violation from a well-behaved app");
      if (n === 0) break;
      outOff += n;
      sent += n;
      progress = true;
    }
    if (s.isClosed && sent === d.total) break;
    if (progress) idle = 0;
    else if (++idle > 200) {
      sleeps++;
      bell.sleep(() => arena.busy(), 20);
    }
  }
  post({ type: "done", sentHash: gen.hash, recvHash: check.hash, sent, received, mismatches: mismatches + check.bad, sleeps });
}

function appStream(): void {
  const app = new AppArena(d.control!, d.segments!);
  const a = app.open(d.slot!)!;
  const waker = new Waker(d.stackBell);
  const gen = new ByteStream(A_DATA);
  const sizes = new Rnd(A_SIZE);
  const check = new ByteStream(S_DATA);
  const rsizes = new Rnd(d.seed ^ 0x5555);
  const chunk = new Uint8Array(d.maxChunk);
  const dst = new Uint8Array(d.maxChunk);
  let off = 0;
  let len = 0;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let sleeps = 0;
  let idle = 0;
  while (sent < d.total || received < d.total) {
    let progress = false;
    if (sent < d.total) {
      if (off === len) {
        len = Math.min(1 + (sizes.next() % d.maxChunk), d.total - sent);
        off = 0;
        gen.fill(chunk, 0, len);
      }
      const n = a.write(chunk.subarray(off, len));
      if (n > 0) {
        off += n;
        sent += n;
        progress = true;
      } else if (n !== -11) throw new Error(`write: ${n}`);
    }
    if (received < d.total) {
      const n = a.read(dst.subarray(0, 1 + (rsizes.next() % d.maxChunk)));
      if (n > 0) {
        check.check(dst, 0, n);
        received += n;
        progress = true;
      } else if (n !== -11) throw new Error(`read: ${n}`);
    }
    if (app.takeWake()) waker.wake();
    if (progress) idle = 0;
    else if (++idle > 200) {
      sleeps++;
      app.sleep(-1, () => a.readable() || (sent < d.total && a.writable()), 20);
    }
  }
  if (!a.postClose()) throw new Error("close refused");
  if (app.takeWake()) waker.wake();
  post({ type: "done", sentHash: gen.hash, recvHash: check.hash, sent, received, mismatches: mismatches + check.bad, sleeps });
}

// ------------------------------------------------------------------------ datagrams

const addrOf = (i: number) => Math.imul(i, 0x9e3779b1) >>> 0;

function stackDgram(): void {
  const arena = new StackArena({ maxSockets: 32, segmentBytes: 1 << 20 });
  const slot = arena.allocSlot(SOCK_DGRAM, { geometry: { ...GEOMETRY, txSlots: 256, rxSlots: 256 } });
  post({ type: "ready", control: arena.control, segments: arena.segments, slot });
  const s = arena.sock(slot)!;
  const bell = new Doorbell(d.stackBell);
  const check = new ByteStream(A_DATA);
  const csizes = new Rnd(A_SIZE);
  const gen = new ByteStream(S_DATA);
  const sizes = new Rnd(S_SIZE);
  const scratch = new Uint8Array(65536);
  const out = new Uint8Array(d.maxChunk);
  let outLen = -1;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let sleeps = 0;
  const onTx = (t: TxDesc, sk: SockStack) => {
    if (t.kind !== KIND_DATAGRAM) return;
    const want = csizes.next() % (d.maxChunk + 1);
    if (t.length !== want || t.arg !== addrOf(received) || t.port !== (received & 0xffff)) mismatches++;
    sk.copyTx(t.offset, t.length, scratch);
    check.check(scratch, 0, t.length);
    received++;
  };
  const visit = () => {
    if (s.drainTx(onTx) === VIOLATION) throw new Error(`violation ${s.violation} from a well-behaved app`);
  };
  let idle = 0;
  for (;;) {
    let progress = arena.takeActive(visit) > 0;
    while (sent < d.total) {
      if (outLen < 0) {
        outLen = sizes.next() % (d.maxChunk + 1);
        gen.fill(out, 0, outLen);
      }
      const r = s.pushDatagram(out, addrOf(sent), sent & 0xffff, 0, outLen);
      if (r === VIOLATION) throw new Error("RX violation from a well-behaved app");
      if (r === 0) break; // no room: keep it (the test wants no drops) and come back when marked
      outLen = -1;
      sent++;
      progress = true;
    }
    if (s.isClosed && sent === d.total) break;
    if (progress) idle = 0;
    else if (++idle > 200) {
      sleeps++;
      bell.sleep(() => arena.busy(), 20);
    }
  }
  post({ type: "done", sentHash: gen.hash, recvHash: check.hash, sent, received, mismatches: mismatches + check.bad, sleeps });
}

function appDgram(): void {
  const app = new AppArena(d.control!, d.segments!);
  const a = app.open(d.slot!)!;
  const waker = new Waker(d.stackBell);
  const gen = new ByteStream(A_DATA);
  const sizes = new Rnd(A_SIZE);
  const check = new ByteStream(S_DATA);
  const csizes = new Rnd(S_SIZE);
  const chunk = new Uint8Array(d.maxChunk);
  const dst = new Uint8Array(65536);
  let len = -1;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let sleeps = 0;
  let idle = 0;
  while (sent < d.total || received < d.total) {
    let progress = false;
    while (sent < d.total) {
      if (len < 0) {
        len = sizes.next() % (d.maxChunk + 1);
        gen.fill(chunk, 0, len);
      }
      const n = a.writeDatagram(chunk.subarray(0, len), addrOf(sent), sent & 0xffff);
      if (n === -11) break;
      if (n !== len) throw new Error(`writeDatagram: ${n}`);
      len = -1;
      sent++;
      progress = true;
    }
    while (received < d.total) {
      const n = a.readDatagram(dst);
      if (n === -11) break;
      if (n < 0) throw new Error(`readDatagram: ${n}`);
      const want = csizes.next() % (d.maxChunk + 1);
      if (n !== want || a.fromAddr !== addrOf(received) || a.fromPort !== (received & 0xffff)) mismatches++;
      check.check(dst, 0, n);
      received++;
      progress = true;
    }
    if (app.takeWake()) waker.wake();
    if (progress) idle = 0;
    else if (++idle > 200) {
      sleeps++;
      app.sleep(-1, () => a.readable() || (sent < d.total && a.writable()), 20);
    }
  }
  if (!a.postClose()) throw new Error("close refused");
  if (app.takeWake()) waker.wake();
  post({ type: "done", sentHash: gen.hash, recvHash: check.hash, sent, received, mismatches: mismatches + check.bad, sleeps });
}

// ------------------------------------------------------------------------ hostile

const HOSTILE_GEOMETRY: Geometry = { txSlots: 16, txData: 4096, rxSlots: 16, rxData: 4096 };

/**
 * The stack of the hostile test: echoes the good socket's stream back to it, feeds
 * the hostile socket, and answers every Violation by resetting the hostile socket,
 * releasing it and allocating it again (same slot, same mapping: the scribbler keeps
 * at it). A sweep on a slow timer recovers marks the scribbler erased.
 */
function stackHostile(): void {
  const arena = new StackArena({ maxSockets: 64, segmentBytes: 1 << 20 });
  const good = arena.allocSlot(SOCK_STREAM, { geometry: GEOMETRY });
  let bad = arena.allocSlot(SOCK_STREAM, { geometry: HOSTILE_GEOMETRY });
  const hs = arena.sock(bad)!;
  post({
    type: "ready",
    control: arena.control,
    segments: arena.segments,
    slot: good,
    hostile: { slot: bad, segment: hs.segment, offset: hs.offset, bytes: bufferLayout(HOSTILE_GEOMETRY).bytes },
  });
  const stop = new Int32Array(d.stop!);
  const gs = arena.sock(good)!;
  // echo queue (private)
  const q = new Uint8Array(1 << 20);
  let qHead = 0;
  let qTail = 0;
  let echoed = 0;
  let violations = 0;
  let resets = 0;
  const feed = new Uint8Array(300);
  const sink = new Uint8Array(HOSTILE_GEOMETRY.txData);
  const onGood = (t: TxDesc, sk: SockStack) => {
    if (t.kind !== KIND_DATA) return;
    if (qTail + t.length > q.length) {
      // compact (the app cannot outrun the queue by more than its TX area: it waits for the echo)
      q.copyWithin(0, qHead, qTail);
      qTail -= qHead;
      qHead = 0;
    }
    if (!sk.copyTx(t.offset, t.length, q, qTail)) throw new Error("echo queue overflow");
    qTail += t.length;
  };
  const onBad = (t: TxDesc, sk: SockStack) => {
    if (t.kind === KIND_DATA || t.kind === KIND_DATAGRAM) {
      if (!sk.copyTx(t.offset, t.length, sink)) throw new Error("copyTx refused a validated descriptor");
    }
  };
  // backpressure: take the good socket's TX only while the echo queue can hold a whole TX area
  const drainGood = () => {
    if (q.length - (qTail - qHead) < GEOMETRY.txData) return;
    if (gs.drainTx(onGood) === VIOLATION) throw new Error("the good socket had a violation");
  };
  const renew = () => {
    arena.reset(bad);
    arena.release(bad);
    bad = arena.allocSlot(SOCK_STREAM, { geometry: HOSTILE_GEOMETRY });
    if (bad < 0) throw new Error(`realloc: ${bad}`);
    resets++;
  };
  const visit = (slot: number) => {
    if (slot === good) {
      drainGood();
      return;
    }
    if (slot !== bad) return;
    const sk = arena.sock(bad)!;
    const r = sk.drainTx(onBad);
    if (r === VIOLATION) {
      violations++;
      renew();
    } else if (sk.isClosed) renew();
  };
  let lastSweep = performance.now();
  let round = 0;
  for (;;) {
    arena.takeActive(visit);
    const now = performance.now();
    if (now - lastSweep > 2) {
      arena.sweep(visit);
      lastSweep = now;
    }
    // echo back
    if (qTail > qHead) {
      const n = gs.pushRx(q, qHead, Math.min(qTail - qHead, 16384));
      if (n === VIOLATION) throw new Error("the good socket had an RX violation");
      qHead += n;
      echoed += n;
      if (n > 0) drainGood(); // room again: what the app wrote meanwhile may not be marked
    }
    // feed the hostile socket: data, datagrams (wrong type: not pushed), EOF, errors, accepts
    const sk = arena.sock(bad)!;
    const k = round++ % 4;
    const r = k === 0 ? sk.pushRx(feed, 0, 1 + (round % 299)) : k === 1 ? sk.pushError(104) : k === 2 ? sk.pushAccept(good, 1) : sk.rxFree();
    if (r === VIOLATION) {
      violations++;
      renew();
    }
    if (Atomics.load(stop, 0) === 1 && gs.isClosed && qTail === qHead) break;
  }
  post({
    type: "done",
    sentHash: 0,
    recvHash: 0,
    sent: echoed,
    received: echoed,
    mismatches: 0,
    sleeps: 0,
    violations,
    resets,
    junkBits: arena.junkBits,
  });
}

/** The well-behaved socket of the hostile test: a stream out, its echo back, checked. */
function appEcho(): void {
  const app = new AppArena(d.control!, d.segments!);
  const a = app.open(d.slot!)!;
  const stop = new Int32Array(d.stop!);
  const waker = new Waker(d.stackBell);
  const gen = new ByteStream(A_DATA);
  const check = new ByteStream(A_DATA);
  const sizes = new Rnd(A_SIZE);
  const chunk = new Uint8Array(d.maxChunk);
  const dst = new Uint8Array(d.maxChunk);
  let off = 0;
  let len = 0;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let sleeps = 0;
  let idle = 0;
  let writing = true;
  while (writing || received < sent) {
    if (writing && Atomics.load(stop, 0) === 1 && off === len) writing = false;
    let progress = false;
    if (writing) {
      if (off === len) {
        len = 1 + (sizes.next() % d.maxChunk);
        off = 0;
        gen.fill(chunk, 0, len);
      }
      const n = a.write(chunk.subarray(off, len));
      if (n > 0) {
        off += n;
        sent += n;
        progress = true;
      } else if (n !== -11) throw new Error(`write: ${n}`);
    }
    const n = a.read(dst);
    if (n > 0) {
      check.check(dst, 0, n);
      received += n;
      progress = true;
    } else if (n !== -11) throw new Error(`read: ${n}`);
    if (app.takeWake()) waker.wake();
    if (progress) idle = 0;
    else if (++idle > 200) {
      sleeps++;
      // short: the scribbler may have eaten the mark (the stack's sweep finds it)
      app.sleep(-1, () => a.readable() || (writing && a.writable()), 5);
    }
  }
  if (!a.postClose()) throw new Error("close refused");
  if (app.takeWake()) waker.wake();
  post({ type: "done", sentHash: gen.hash, recvHash: check.hash, sent, received, mismatches: mismatches + check.bad, sleeps });
}

/**
 * The hostile thread: random values, and values near the current ones, into every
 * cell of its socket's buffer and directory/readiness entries, the activity word,
 * the bitmap and summary, and the doorbell line, until told to stop.
 */
function hostile(): void {
  const h = d.hostile!;
  const ctl = new Int32Array(d.control!);
  const app = new AppArena(d.control!, d.segments!);
  const lay = app.lay;
  const buf = new Int32Array(d.segments![h.segment]!, h.offset, h.bytes >> 2);
  const headCells = bufferLayout(HOSTILE_GEOMETRY).txData >> 2; // header + both rings
  const shared: number[] = [C_ACTIVE, C_SLEEPING, C_WAIT_SOCK];
  for (let i = 0; i < lay.summaryWords; i++) shared.push(lay.summary + i);
  for (let i = 0; i < lay.bitmapWords; i++) shared.push(lay.bitmap + i);
  shared.push(lay.ready + h.slot * 2, lay.ready + h.slot * 2 + 1);
  for (let i = 0; i < 16; i++) shared.push(lay.dir + h.slot * 16 + i);
  const stop = new Int32Array(d.stop!);
  const r = new Rnd(d.seed ^ 0x7777);
  const value = (old: number) => {
    const m = r.next() % 4;
    return m === 0 ? r.next() | 0 : m === 1 ? (old + (r.next() % 9) - 4) | 0 : m === 2 ? r.next() % 70000 : 0;
  };
  const mapping: SockMapping = {
    slot: h.slot,
    gen: 0,
    type: SOCK_STREAM,
    seg: d.segments![h.segment]!,
    offset: h.offset,
    ...HOSTILE_GEOMETRY,
    ctl,
    readyIdx: lay.ready + h.slot * 2,
    dirIdx: lay.dir + h.slot * 16,
  };
  let plausible: SockApp | null = null;
  let scribbles = 0;
  while (Atomics.load(stop, 0) === 0) {
    for (let k = 0; k < 64; k++) {
      const p = r.next() % 10;
      if (p < 6) {
        const c = r.next() % headCells; // indices, wants, descriptors
        buf[c] = value(buf[c]!);
      } else if (p < 8) {
        const c = r.next() % buf.length; // anywhere, data included
        buf[c] = value(buf[c]!);
      } else {
        const c = shared[r.next() % shared.length]!;
        Atomics.store(ctl, c, value(Atomics.load(ctl, c)));
      }
      scribbles++;
    }
    // and sometimes a plausible-looking app: correct-looking descriptors at the tail.
    // Its handle is made from the mapping the stack announced, not from the directory
    // this thread scribbles on: that could point anywhere in the process, the good
    // socket included (one process can always wreck its own sockets).
    if (r.next() % 8 === 0) {
      if (!plausible || r.next() % 16 === 0) plausible = new SockApp(mapping, app); // re-sync now and then
      plausible.write(new Uint8Array(1 + (r.next() % 100)));
      plausible.read(new Uint8Array(64));
      plausible.takeAccept();
    }
  }
  post({ type: "done", sentHash: 0, recvHash: 0, sent: 0, received: 0, mismatches: 0, sleeps: 0, scribbles });
}

const roles: Record<Role, () => void> = {
  "stack-stream": stackStream,
  "app-stream": appStream,
  "stack-dgram": stackDgram,
  "app-dgram": appDgram,
  "stack-hostile": stackHostile,
  "app-echo": appEcho,
  hostile,
};
roles[d.role]();
