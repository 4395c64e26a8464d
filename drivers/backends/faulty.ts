// A fault injector: a Backend around any Backend that loses, duplicates, reorders and corrupts frames.
import type { Backend, BackendStats } from "./backend.ts";
import { unitRandom } from "../../lib/sys/prng.ts";

/** A seeded PRNG (lib/sys/prng.ts), so a faulty run can be replayed exactly. */
export class Prng {
  /** Uniform in [0, 1). */
  readonly next: () => number;
  constructor(seed: number) {
    this.next = unitRandom(seed);
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Probabilities in [0, 1], each drawn independently per frame. */
export interface FaultRates {
  loss?: number;
  /** The frame is delivered twice. */
  duplicate?: number;
  /** The frame is held back and delivered after the next one (or after holdMs). */
  reorder?: number;
  /** One random byte of the frame is changed. */
  corrupt?: number;
}

export interface FaultOptions extends FaultRates {
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Which directions suffer; default both. */
  rx?: boolean;
  tx?: boolean;
  /** A held frame goes out anyway after this long. Default 5 ms. */
  holdMs?: number;
}

export interface FaultCounts {
  lost: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
}

/** One direction's rates, counters and the frame it holds back (a private copy). */
interface Direction {
  on: boolean;
  loss: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
  counts: FaultCounts;
  held: Uint8Array | null;
  heldAt: number;
}

function rate(name: string, v: number | undefined): number {
  const r = v ?? 0;
  if (!(r >= 0 && r <= 1)) throw new Error(`faulty: ${name} rate ${v} is not in [0, 1]`);
  return r;
}

export class FaultyBackend implements Backend {
  readonly name: string;
  private readonly rng: Prng;
  private readonly holdMs: number;
  private readonly rx: Direction;
  private readonly tx: Direction;
  /** Received frames that did not fit in the caller's `max` (private copies). */
  private pending: Uint8Array[] = [];
  private readonly counters = { rxFrames: 0, txFrames: 0, rxBytes: 0, txBytes: 0, txDropped: 0 };

  constructor(
    readonly inner: Backend,
    opts: FaultOptions = {},
  ) {
    this.name = `faulty(${inner.name})`;
    this.rng = new Prng(opts.seed ?? 1);
    this.holdMs = opts.holdMs ?? 5;
    const dir = (on: boolean): Direction => ({
      on,
      loss: rate("loss", opts.loss),
      duplicate: rate("duplicate", opts.duplicate),
      reorder: rate("reorder", opts.reorder),
      corrupt: rate("corrupt", opts.corrupt),
      counts: { lost: 0, duplicated: 0, reordered: 0, corrupted: 0 },
      held: null,
      heldAt: 0,
    });
    this.rx = dir(opts.rx ?? true);
    this.tx = dir(opts.tx ?? true);
  }

  get mac(): Uint8Array {
    return this.inner.mac;
  }
  /** The inner fd. Frames held back or pending here do not make it readable: call recv after holdMs anyway. */
  get fd(): number {
    return this.inner.fd;
  }

  /**
   * Passes `f` through direction `d`, calling `out` for each frame that comes out (0 to 3 of them).
   * `owned` says whether out may keep the bytes. Four draws per frame, always, so a seed replays.
   */
  private pass(d: Direction, f: Uint8Array, out: (f: Uint8Array, owned: boolean) => void): void {
    if (!d.on) return out(f, false);
    const lose = this.rng.next() < d.loss;
    const corrupt = this.rng.next() < d.corrupt;
    const reorder = this.rng.next() < d.reorder;
    const dup = this.rng.next() < d.duplicate;
    if (lose) {
      d.counts.lost++;
      return;
    }
    let g = f;
    if (corrupt && f.length > 0) {
      g = f.slice();
      g[this.rng.int(g.length)]! ^= 1 + this.rng.int(255);
      d.counts.corrupted++;
    }
    if (reorder && d.held === null) {
      d.held = g === f ? f.slice() : g;
      d.heldAt = performance.now();
      d.counts.reordered++;
      return;
    }
    out(g, g !== f);
    if (dup) {
      d.counts.duplicated++;
      out(g, false);
    }
    this.release(d, out);
  }

  /** Sends out the held frame, if any. */
  private release(d: Direction, out: (f: Uint8Array, owned: boolean) => void): void {
    const h = d.held;
    if (h === null) return;
    d.held = null;
    out(h, true);
  }

  /** Releases a frame held longer than holdMs. */
  private expire(d: Direction, out: (f: Uint8Array, owned: boolean) => void): void {
    if (d.held !== null && performance.now() - d.heldAt >= this.holdMs) this.release(d, out);
  }

  private readonly wire = (f: Uint8Array): void => {
    this.inner.send(f);
  };

  recv(max: number, onFrame: (frame: Uint8Array) => void): number {
    this.expire(this.tx, this.wire);
    let got = 0;
    const deliver = (f: Uint8Array): void => {
      this.counters.rxFrames++;
      this.counters.rxBytes += f.length;
      got++;
      onFrame(f);
    };
    const out = (f: Uint8Array, owned: boolean): void => {
      if (got < max && this.pending.length === 0) deliver(f);
      else this.pending.push(owned ? f : f.slice());
    };
    while (got < max && this.pending.length > 0) deliver(this.pending.shift()!);
    this.expire(this.rx, out);
    if (got < max) this.inner.recv(max - got, (f) => this.pass(this.rx, f, out));
    return got;
  }

  send(frame: Uint8Array): boolean {
    let ok = true;
    let first = true;
    this.expire(this.tx, this.wire);
    this.pass(this.tx, frame, (f) => {
      // The first frame out is always this one; a duplicate or a released held frame follow.
      const sent = this.inner.send(f);
      if (first) ok = sent;
      first = false;
    });
    if (!ok) {
      this.counters.txDropped++;
      return false;
    }
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
    return true;
  }

  /** Faults injected so far, per direction. */
  faults(): { rx: FaultCounts; tx: FaultCounts } {
    return { rx: { ...this.rx.counts }, tx: { ...this.tx.counts } };
  }

  /** This layer's counts (frames accepted and delivered here); rxErrors come from the inner backend. */
  stats(): BackendStats {
    return { ...this.counters, rxErrors: this.inner.stats().rxErrors };
  }

  close(): void {
    this.pending = [];
    this.rx.held = this.tx.held = null;
    this.inner.close();
  }
}
