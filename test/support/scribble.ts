// For the hostile-app fixtures: map an arena the way libc does, then scribble random
// values over every word of it (control SAB, socket buffers, bell) while marking
// activity so the stack keeps walking it.
import type { Proc } from "../../lib/sys/proc.ts";
import { AppArena } from "../../lib/sock/arena.ts";
import type { SockApp } from "../../lib/sock/app.ts";
import { C_ACTIVE, markActive } from "../../lib/sock/abi.ts";

/** A SOCKET answer for an arena socket (SOCKET with arena: true), as the syscall server forwards it. */
export interface ArenaReply {
  fd: number;
  slot: number;
  gen: number;
  control: number;
  bell: number;
  segments: number[];
}

export class Scribbler {
  readonly arena: AppArena;
  /** The sockets of the replies, opened. */
  readonly socks: SockApp[];
  /** Grant ids this app was given (everything else must stay out of reach). */
  readonly granted: Set<number>;
  scribbles = 0;
  private readonly ctl: Int32Array;
  private readonly words: Int32Array[];
  private readonly bell: Int32Array;
  private x = 0x9e3779b9;

  constructor(proc: Proc, replies: ArenaReply[]) {
    const r0 = replies[0]!;
    const control = proc.grant(r0.control).sab;
    this.arena = new AppArena(control);
    const segIds = replies[replies.length - 1]!.segments;
    this.words = segIds.map((id, i) => {
      const sab = proc.grant(id).sab;
      this.arena.attachSegment(i, sab);
      return new Int32Array(sab);
    });
    this.bell = new Int32Array(proc.grant(r0.bell).sab);
    this.ctl = new Int32Array(control);
    this.socks = replies.map((r) => this.arena.open(r.slot, r.gen)).filter((s) => s !== null);
    this.granted = new Set([r0.control, r0.bell, ...replies.flatMap((r) => r.segments)]);
  }

  private rnd(): number {
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x;
    return x >>> 0;
  }

  /** One round: 64 random words, mostly in the first sockets' headers and rings; then every socket marked. */
  round(): void {
    for (let k = 0; k < 64; k++) {
      const r = this.rnd();
      const w = this.words[r % this.words.length]!;
      const at = r & 1 ? this.rnd() % Math.min(w.length, 8192) : this.rnd() % w.length;
      w[at] = r & 2 ? this.rnd() | 0 : (this.rnd() % 70000) | 0;
      const c = this.rnd() % this.ctl.length;
      if (k % 4 === 0) this.ctl[c] = this.rnd() | 0;
      this.scribbles += 2;
    }
    for (let slot = 0; slot < 32; slot++) markActive(this.arena.ctl, this.arena.lay, slot);
    Atomics.store(this.ctl, C_ACTIVE, 1);
    this.bell[0] = this.rnd() & 1;
    this.bell[1] = this.rnd() & 0xff; // its own bell: only this app ever reads it
  }
}
