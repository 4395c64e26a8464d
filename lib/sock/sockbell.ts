// The stack's bell for one process's socket arena (fast sockets): how an
// application wakes a sleeping udp server after it produced into a TX ring, with no
// system call of newts.
//
// The stack server cannot share its own doorbell with an application: a hostile app
// could set that doorbell's SLEEPING to 2 and its EVENTFD to any file descriptor, and
// the next kernel or neighbour that rings the server would write to it. So each arena
// comes with a separate 64-byte BELL SAB that only says two things:
//
//   Int32 [0] SLEEPING  1 while the stack is (about to be) asleep in poll(2) on its
//                       eventfd (written by the stack before it sleeps, cleared after)
//         [1] EVENTFD   the stack's eventfd + 1 (written by the stack once)
//
// The app, after markActive found `active` going 0 -> 1 (AppArena.takeWake), reads
// SLEEPING and, if set, writes the eventfd (a host write(2), not a newts system call).
// Store-then-recheck on both sides: the stack raises SLEEPING, then checks every
// arena's `active`; the app bumps `active`, then reads SLEEPING. A hostile app can
// only change its own bell: the stack never reads it back, and the eventfd the app
// writes is the app's own action (its worker could write any fd anyway).
import { eventfdSignal } from "../sys/ffi.ts";

export const BELL_BYTES = 64;
export const BELL_SLEEPING = 0;
export const BELL_EVENTFD = 1;

export function createBell(eventfd: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(BELL_BYTES);
  Atomics.store(new Int32Array(sab), BELL_EVENTFD, eventfd + 1);
  return sab;
}

/** App side: wakes the stack if its bell says it sleeps. True if it rang. */
export function ringBell(bell: Int32Array): boolean {
  if (Atomics.load(bell, BELL_SLEEPING) === 0) return false;
  const fd = Atomics.load(bell, BELL_EVENTFD) - 1;
  if (fd < 0) return false;
  Atomics.store(bell, BELL_SLEEPING, 0);
  eventfdSignal(fd);
  return true;
}
