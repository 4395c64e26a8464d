// The waiting protocol (design §3): poll, spin a bounded while, then announce
// `sleeping` and wait on it with a finite timeout. A producer wakes the consumer
// only when it sees `sleeping` set, so a busy consumer never pays for a futex.
//
// Doorbell SAB layout (Int32 cells, one 64-byte line):
//   [0] SLEEPING  1 while the owner is (about to be) blocked in Atomics.wait
//   [1] WAKES     futex wake-ups delivered to the owner (bumped by wakers)

export const DOORBELL_BYTES = 64;
const SLEEPING = 0;
const WAKES = 1;

export function createDoorbell(): SharedArrayBuffer {
  return new SharedArrayBuffer(DOORBELL_BYTES);
}

/** The owner's side: it waits here. */
export class Doorbell {
  readonly cells: Int32Array;
  constructor(sab: SharedArrayBuffer) {
    this.cells = new Int32Array(sab, 0, 2);
  }

  /**
   * Blocks until woken or `timeoutMs` passes, unless `ready()` turns true after the
   * sleeping flag is raised (the re-check that closes the lost-wake-up window:
   * a producer publishes, then reads `sleeping`; we raise `sleeping`, then re-read).
   * Returns true if woken by a producer. `ready` must not consume what it finds
   * (or must latch: the caller will ask again after sleep returns).
   */
  sleep(ready: () => boolean, timeoutMs: number): boolean {
    Atomics.store(this.cells, SLEEPING, 1);
    if (ready()) {
      Atomics.store(this.cells, SLEEPING, 0);
      return false;
    }
    const r = Atomics.wait(this.cells, SLEEPING, 1, timeoutMs);
    Atomics.store(this.cells, SLEEPING, 0);
    return r === "ok";
  }

  /** Like sleep, for a thread that must keep its event loop alive (the kernel). */
  async sleepAsync(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    Atomics.store(this.cells, SLEEPING, 1);
    if (ready()) {
      Atomics.store(this.cells, SLEEPING, 0);
      return false;
    }
    const w = Atomics.waitAsync(this.cells, SLEEPING, 1, timeoutMs);
    const r = w.async ? await w.value : w.value;
    Atomics.store(this.cells, SLEEPING, 0);
    return r === "ok";
  }

  get wakes(): number {
    return Atomics.load(this.cells, WAKES);
  }
}

/** A producer's handle on somebody else's doorbell. */
export class Waker {
  readonly cells: Int32Array;
  constructor(sab: SharedArrayBuffer) {
    this.cells = new Int32Array(sab, 0, 2);
  }
  /** Wakes the owner if (and only if) it is sleeping. Returns true if a futex wake was issued. */
  wake(): boolean {
    if (Atomics.load(this.cells, SLEEPING) === 0) return false;
    if (Atomics.compareExchange(this.cells, SLEEPING, 1, 0) !== 1) return false;
    Atomics.add(this.cells, WAKES, 1);
    Atomics.notify(this.cells, SLEEPING, 1);
    return true;
  }
}
