// The newts backend's state and the steps every call shares: counting (libc/counters.ts),
// the two ways a call ends in an errno (-errno for the try* calls, a thrown ErrnoError for
// the rest), system calls, telling the stack (a bell, or a SOCK_KICK in syscall mode), and
// sleeping on an arena's doorbell: `block`, and `retry`, the one loop in which a read,
// write or accept tries its ring and, when it would block and may, sleeps and tries again.
import { SYS } from "../../lib/ipc/calls.ts";
import { ringBell } from "../../lib/sock/sockbell.ts";
import type { Proc } from "../../lib/sys/proc.ts";
import { EAGAIN, EBADF, EINPROGRESS, EINVAL, ErrnoError } from "../../lib/sys/errno.ts";
import { syscall } from "../unistd.ts";
import { processCounters, type SockCounters } from "../counters.ts";
import type { SockAddr } from "../api.ts";
import type { ArenaRec, Epoll, Fd } from "./fd.ts";

/** Longest single sleep on a doorbell (then look again: Bun cannot end an unbounded wait). */
const SLEEP_MS = 50;
/** A sleep over sockets of two stack servers: short slices, since one wait watches one arena. */
const MIXED_SLEEP_MS = 2;

/**
 * The error every nonblocking call that would block throws. Made once: building an
 * Error captures a stack trace, which costs more than the whole user-space call.
 */
const WOULD_BLOCK = new ErrnoError(EAGAIN, "the call would block");

/**
 * An attempt's "not yet" (the ring is empty or full, or a connect is under way). Not an
 * errno, so an errno the stack reports (EAGAIN among them) is never taken for it.
 */
export const AGAIN = -0x1_0000;

/**
 * One operation on a socket's rings, as `retry` drives it. Ops are made once (module
 * constants), so a call allocates nothing on its way through the loop.
 */
export interface RingOp {
  /**
   * One try: n >= 0, or -errno, each counted as the call's answer (`slept`: the call has
   * already slept, and was counted as a system call); or AGAIN, counted by retry.
   */
  attempt(c: SocketCore, k: number, e: Fd, buf: Uint8Array, x: number, y: number, slept: boolean): number;
  /** Whether an attempt may now get further (the sleep's wake condition; arms the want words). */
  ready(e: Fd, buf: Uint8Array): boolean;
  /** Fills the TX ring: in syscall mode the stack frees room only when kicked, so kick before each sleep. */
  producer: boolean;
}

/**
 * The state of one NewtsSockets (its arenas, descriptors, counters) and the steps its calls
 * share. Members are public for the layers above and the ring ops; apps use SocketApi.
 */
export class SocketCore {
  readonly backend: string;
  readonly arenas = new Map<string, ArenaRec>();
  readonly fds = new Map<number, Fd>();
  readonly eps = new Map<number, Epoll>();
  readonly counters: SockCounters;
  /** Sleeps on a doorbell, and bells rung to wake a stack (neither is a system call of newts). */
  sleeps = 0;
  bellRings = 0;
  /** SOCK_KICK system calls made (syscall mode), and whether the current call made one. */
  kicks = 0;
  kicked = false;
  /** Kicks the stack refused (the socket was gone there). */
  kickErrors = 0;
  /** The bytes of the current stream write already in the TX ring (its progress across sleeps; calls do not nest). */
  sent = 0;

  constructor(
    readonly proc: Proc,
    /** "fast": the stack polls the rings; "syscall": every write and read check is a system call. */
    readonly mode: "fast" | "syscall",
  ) {
    this.backend = mode === "fast" ? "newts" : "newts-syscall";
    this.counters = processCounters(this.backend, proc);
  }

  // ---- counting and errors

  /** Every call starts here. */
  enter(k: number): void {
    this.counters.call(k);
    this.kicked = false;
  }

  /** The call is done: in user space, unless it made a system call (a SOCK_KICK) on the way. */
  ok(k: number): void {
    if (!this.kicked) this.counters.user(k);
  }

  /**
   * The call fails with errno e: counted (as a call answered in user space too, unless
   * `user` is false: it slept or made the system call that failed), and -e returned, as the
   * try* calls answer.
   */
  deny(k: number, e: number, user = true): number {
    if (user) this.ok(k);
    if (e === EAGAIN || e === EINPROGRESS) this.counters.again(k);
    else this.counters.error(k);
    return -e;
  }

  /** The throwing API's end: -errno r (already counted) thrown as an ErrnoError. */
  raise(r: number, what: string, fd: number): never {
    // EAGAIN is the fast path's common answer: one prepared error, no stack trace to capture
    if (r === -EAGAIN) throw WOULD_BLOCK;
    throw new ErrnoError(-r, `${what}(${fd})`);
  }

  /** A system call; its errno is counted and rethrown. */
  sys(k: number, what: string, fd: number, type: number, payload: unknown): unknown {
    this.counters.sys(k);
    try {
      return syscall(type, payload, false);
    } catch (e) {
      if (e instanceof ErrnoError) {
        this.deny(k, e.errno, false);
        throw new ErrnoError(e.errno, `${what}(${fd}): ${e.message}`);
      }
      throw e;
    }
  }

  /** fd's socket, or EBADF thrown. */
  entry(k: number, what: string, fd: number): Fd {
    const e = this.fds.get(fd);
    if (!e) this.raise(this.deny(k, EBADF), what, fd);
    return e;
  }

  /** EINVAL thrown unless sa is an IPv4 address and port. */
  checkAddr(k: number, what: string, fd: number, sa: SockAddr): void {
    const { addr, port } = sa;
    if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff || !Number.isInteger(port) || port < 0 || port > 65535) {
      this.raise(this.deny(k, EINVAL), what, fd);
    }
  }

  // ---- telling the stack, and sleeping

  /**
   * After producing: tell the stack. fast: ring its bell if it sleeps (no system call);
   * syscall: the baseline's system call.
   */
  kick(k: number, e: Fd): void {
    if (this.mode === "syscall") {
      this.kicks++;
      this.kicked = true;
      this.counters.sys(k);
      try {
        syscall(SYS.SOCK_KICK, { server: e.ar.name, slot: e.slot }, false);
      } catch {
        // the socket is gone at the stack: the ring says so (reset), the next call reports it
        this.kickErrors++;
      }
      return;
    }
    if (e.ar.arena.takeWake() && ringBell(e.ar.bell)) this.bellRings++;
  }

  /** Before a read check in syscall mode: ask the stack to refill this socket's RX. */
  check(k: number, e: Fd): void {
    if (this.mode === "syscall") this.kick(k, e);
  }

  /** The call is about to sleep: counted as blocked, and as a system call (the wait enters the host kernel). */
  sleeping(k: number): void {
    this.counters.block(k);
    this.counters.sys(k);
  }

  /** Sleeps on the arena's doorbell until ready() (which must arm the want words) or the deadline. */
  block(ar: ArenaRec | null, slot: number, ready: () => boolean, deadline: number, mixed = false): boolean {
    for (;;) {
      if (ready()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.proc.beat();
      this.sleeps++;
      const ms = Math.min(mixed ? MIXED_SLEEP_MS : SLEEP_MS, left);
      if (ar) ar.arena.sleep(slot, ready, ms);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    }
  }

  /**
   * Tries op on e's rings until it gets an answer: when an attempt would block, EAGAIN
   * (counted) if nonblocking (nb), else a sleep on the doorbell (counted once per call) and
   * another attempt. x and y are the op's own arguments (flags, an address).
   */
  retry(k: number, e: Fd, nb: boolean, op: RingOp, buf: Uint8Array, x: number, y: number): number {
    let slept = false;
    for (;;) {
      const r = op.attempt(this, k, e, buf, x, y, slept);
      if (r !== AGAIN) return r;
      if (nb) return this.deny(k, EAGAIN);
      if (!slept) {
        slept = true;
        this.sleeping(k);
      }
      if (op.producer && this.mode === "syscall") this.kick(k, e); // the stack frees room only when asked
      this.block(e.ar, e.slot, () => op.ready(e, buf), Number.POSITIVE_INFINITY);
    }
  }
}
