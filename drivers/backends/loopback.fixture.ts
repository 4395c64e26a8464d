// An in-memory pair of backends: a frame sent on one is received on the other. For tests without root.
import { type Backend, type BackendStats, MAX_FRAME, MIN_FRAME, macOf, zeroStats } from "./backend.ts";

/** Frames in flight towards one end; a bounded FIFO of private copies. */
class Wire {
  readonly frames: Uint8Array[] = [];
  head = 0;
  constructor(readonly capacity: number) {}
  get length(): number {
    return this.frames.length - this.head;
  }
  push(f: Uint8Array): void {
    this.frames.push(f);
  }
  shift(): Uint8Array | undefined {
    const f = this.frames[this.head++];
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames.splice(0, this.head);
      this.head = 0;
    }
    return f;
  }
}

class LoopbackEnd implements Backend {
  readonly fd = -1;
  private readonly counters: BackendStats = zeroStats();
  private closed = false;

  constructor(
    readonly name: string,
    readonly mac: Uint8Array,
    private readonly inbox: Wire,
    private readonly outbox: Wire,
  ) {}

  recv(max: number, onFrame: (frame: Uint8Array) => void): number {
    let got = 0;
    while (got < max && !this.closed && this.inbox.length > 0) {
      const f = this.inbox.shift()!;
      this.counters.rxFrames++;
      this.counters.rxBytes += f.length;
      got++;
      onFrame(f);
    }
    return got;
  }

  send(frame: Uint8Array): boolean {
    const c = this.counters;
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME || this.outbox.length >= this.outbox.capacity) {
      c.txDropped++;
      return false;
    }
    this.outbox.push(frame.slice());
    c.txFrames++;
    c.txBytes += frame.length;
    return true;
  }

  stats(): BackendStats {
    return { ...this.counters };
  }

  close(): void {
    this.closed = true;
  }
}

export interface LoopbackOptions {
  /** MACs of the two ends; default 52:54:00:12:34:56 and 52:54:00:12:34:57. */
  macA?: string | Uint8Array;
  macB?: string | Uint8Array;
  /** Frames each direction holds before send() returns false. Default 1024. */
  capacity?: number;
}

/** Two connected ends, "loopback:a" and "loopback:b". fd is -1: poll by calling recv. */
export function loopbackPair(opts: LoopbackOptions = {}): [Backend, Backend] {
  const cap = opts.capacity ?? 1024;
  const toA = new Wire(cap);
  const toB = new Wire(cap);
  return [
    new LoopbackEnd("loopback:a", macOf(opts.macA), toA, toB),
    new LoopbackEnd("loopback:b", macOf(opts.macB ?? "52:54:00:12:34:57"), toB, toA),
  ];
}
