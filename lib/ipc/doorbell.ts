// The waiting protocol (docs/design.md §3): poll, spin a bounded while, then announce
// `sleeping` and wait on it with a finite timeout. A producer wakes the consumer
// only when it sees `sleeping` set, so a busy consumer never pays for a futex.
//
// Doorbell SAB layout (Int32 cells, one 64-byte line):
//   [0] SLEEPING  1 while the owner is (about to be) blocked in Atomics.wait;
//                 2 while it is blocked in poll(2) on its eventfd and a device fd
//   [1] WAKES     wake-ups delivered to the owner (bumped by wakers)
//   [2] EVENTFD   the owner's eventfd + 1 (0: none), for SLEEPING = 2
//
// A driver must wait for its device and its rings at once: it sleeps in poll(2)
// on the device fd and an eventfd, and a producer that finds SLEEPING = 2 writes
// the eventfd instead of calling Atomics.notify. fds are process-wide, so any
// worker can ring it.

export const DOORBELL_BYTES = 64;
const SLEEPING = 0;
const WAKES = 1;
const EVENTFD = 2;

import { eventfdDrain, eventfdSignal, pollReadable } from "../sys/ffi.ts";

export function createDoorbell(): SharedArrayBuffer {
  return new SharedArrayBuffer(DOORBELL_BYTES);
}

/** The owner's side: it waits here. */
export class Doorbell {
  readonly cells: Int32Array;
  constructor(sab: SharedArrayBuffer) {
    this.cells = new Int32Array(sab, 0, 4);
  }

  /** Lets wakers reach this doorbell through an eventfd too (see sleepPoll). */
  setEventfd(fd: number): void {
    Atomics.store(this.cells, EVENTFD, fd + 1);
  }

  /**
   * Like sleep, but blocked in poll(2) on the doorbell's eventfd and `deviceFd`:
   * returns when woken, when the device is readable, or after timeoutMs.
   */
  sleepPoll(ready: () => boolean, timeoutMs: number, deviceFd: number): boolean {
    const efd = Atomics.load(this.cells, EVENTFD) - 1;
    Atomics.store(this.cells, SLEEPING, 2);
    if (ready()) {
      Atomics.store(this.cells, SLEEPING, 0);
      return false;
    }
    pollReadable(efd >= 0 ? [efd, deviceFd] : [deviceFd], timeoutMs);
    const woken = Atomics.exchange(this.cells, SLEEPING, 0) === 0;
    if (efd >= 0) eventfdDrain(efd);
    return woken;
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
    this.cells = new Int32Array(sab, 0, 4);
  }
  /** Wakes the owner if (and only if) it is sleeping. Returns true if a wake was issued. */
  wake(): boolean {
    const s = Atomics.load(this.cells, SLEEPING);
    if (s === 0) return false;
    if (Atomics.compareExchange(this.cells, SLEEPING, s, 0) !== s) return false;
    Atomics.add(this.cells, WAKES, 1);
    if (s === 1) Atomics.notify(this.cells, SLEEPING, 1);
    else eventfdSignal(Atomics.load(this.cells, EVENTFD) - 1);
    return true;
  }
}
