// The socket arenas a transport server (udp, tcp) keeps for its applications' fast
// sockets (docs/design.md §4): one StackArena per app, made on the app's first fast
// socket and granted to it (control SAB, a bell, every segment), the walk over every
// arena's activity, and the server's sleep in poll(2) on its doorbell's eventfd that an
// app's bell can end without a system call (lib/sock/sockbell.ts).
//
// Arenas are private state of a server's generation: a restarted server starts with
// none (the apps' old rings go quiet; they see their sockets reset when they next
// need the stack, see libc/newts.ts).
import type { Proc } from "../sys/proc.ts";
import { MAX_SLEEP_MS } from "../sys/proc.ts";
import { EBADF, ENOBUFS, ErrnoError } from "../sys/errno.ts";
import { eventfdCreate } from "../sys/ffi.ts";
import { PCB, PState } from "../sys/pcb.ts";
import { StackArena } from "./arena.ts";
import type { SockStack } from "./stack.ts";
import type { Geometry } from "./abi.ts";
import { BELL_SLEEPING, createBell } from "./sockbell.ts";

/** One app's socket arena at a server. S: the server's socket record. */
export interface FastApp<S> {
  app: number;
  arena: StackArena;
  bell: Int32Array;
  /** Grant ids the app finds its memory under: control, bell, segments by index (-1: the grant failed). */
  controlGrant: number;
  bellGrant: number;
  segments: number[];
  /** slot -> socket */
  socks: Map<number, S>;
  /** The app asked for the baseline (`--sockets syscall`): its arena is not walked, it kicks. */
  kicked: boolean;
  /** Walk callback, made once. */
  onActive: (slot: number) => void;
}

/** What the SOCKET answer of a fast socket carries (through the syscall server to libc). */
export interface FastSocketReply {
  sock: number;
  slot: number;
  gen: number;
  control: number;
  bell: number;
  segments: number[];
  /** The server's name ("udp", "tcp"): libc keeps one arena per server. */
  server: string;
}

/** The ring sizes a SOCK_RESIZE asks for (libc rounds them to powers of two; the arena checks them). */
function geometryArgs(a: Record<string, unknown>): Partial<Geometry> {
  const g: Partial<Geometry> = {};
  for (const f of ["txData", "rxData", "txSlots", "rxSlots"] as const) {
    const v = a[f];
    if (typeof v === "number" && Number.isInteger(v)) g[f] = v;
  }
  return g;
}

/** Every FastArenas of this process (a single-stack server has one per transport layer). */
const ALL = new Set<FastArenas<unknown>>();

/** Raises or lowers SLEEPING in every bell of this process; with `on`, true if some arena already has work. */
export function bellsSleeping(on: boolean): boolean {
  let busy = false;
  for (const a of ALL) {
    for (const fa of a.apps.values()) {
      Atomics.store(fa.bell, BELL_SLEEPING, on ? 1 : 0);
      if (on && !fa.kicked && fa.arena.busy()) busy = true;
    }
  }
  return busy;
}

export class FastArenas<S> {
  readonly apps = new Map<number, FastApp<S>>();
  /** The eventfd apps ring through their bells (-1 until the first arena). */
  efd = -1;
  private readonly proc: Proc;
  private readonly name: string;
  private readonly onActive: (fa: FastApp<S>, slot: number) => void;

  constructor(proc: Proc, name: string, onActive: (fa: FastApp<S>, slot: number) => void) {
    this.proc = proc;
    this.name = name;
    this.onActive = onActive;
    ALL.add(this as FastArenas<unknown>);
  }

  get size(): number {
    return this.apps.size;
  }

  /** The app's arena, made (and granted) on its first fast socket. */
  for(app: number, kicked = false): FastApp<S> {
    const had = this.apps.get(app);
    if (had) return had;
    const proc = this.proc;
    if (this.efd < 0) {
      // The doorbell (and its eventfd) outlive a restart of this endpoint: reuse it.
      const cur = Atomics.load(proc.doorbell.cells, 2) - 1;
      if (cur >= 0) this.efd = cur;
      else {
        this.efd = eventfdCreate();
        if (this.efd < 0) throw new ErrnoError(ENOBUFS, "no eventfd for the arena bell");
        proc.doorbell.setEventfd(this.efd);
      }
    }
    const segments: number[] = [];
    const name = this.name;
    const arena = new StackArena({
      maxSockets: 1024,
      onGrant: (index, sab) => {
        try {
          segments[index] = proc.grantTo(app, sab, { arena: name, role: "segment", index });
        } catch (e) {
          if (!(e instanceof ErrnoError)) throw e;
          segments[index] = -1; // the app cannot open sockets there; it gets an error at socket()
        }
      },
    });
    const bellSab = createBell(this.efd);
    const fa: FastApp<S> = {
      app, arena, bell: new Int32Array(bellSab), segments, socks: new Map(), kicked, onActive: () => {},
      controlGrant: proc.grantTo(app, arena.control, { arena: name, role: "control" }),
      bellGrant: proc.grantTo(app, bellSab, { arena: name, role: "bell" }),
    };
    fa.onActive = (slot) => this.onActive(fa, slot);
    this.apps.set(app, fa);
    return fa;
  }

  /** The SOCKET answer for a socket in slot of fa. */
  reply(fa: FastApp<S>, sock: number, slot: number): FastSocketReply {
    return {
      sock, slot, gen: fa.arena.sock(slot)!.gen, control: fa.controlGrant, bell: fa.bellGrant, segments: fa.segments, server: this.name,
    };
  }

  /** The app's socket in `slot` (SOCK_KICK, SOCK_RESIZE name it), or EBADF. */
  sockAt(app: number, slot: unknown): { fa: FastApp<S>; slot: number; k: S } {
    const fa = this.apps.get(app);
    const k = typeof slot === "number" ? fa?.socks.get(slot) : undefined;
    if (!fa || k === undefined) throw new ErrnoError(EBADF, "no such arena socket");
    return { fa, slot: slot as number, k };
  }

  /**
   * SOCK_RESIZE: gives the app's idle socket rings of the sizes `args` asks for
   * (setsockopt SO_SNDBUF, ...); the new SockStack goes to `use`. The answer names the
   * arena's segments (a bigger buffer may have needed a new one).
   */
  resize(app: number, args: Record<string, unknown>, use: (k: S, sk: SockStack) => void): { segments: number[] } {
    const { fa, slot, k } = this.sockAt(app, args.slot);
    const r = fa.arena.resize(slot, geometryArgs(args));
    if (r < 0) throw new ErrnoError(-r, "resize");
    use(k, fa.arena.sock(slot)!);
    return { segments: fa.segments };
  }

  /**
   * Takes what an app posted before it exited, as the walk would have (a last
   * datagram, its CLOSEs): the exit notice can reach the server before the walk
   * that would have seen those posts. True if any socket had work.
   */
  takeLast(app: number): boolean {
    const fa = this.apps.get(app);
    return !!fa && fa.arena.busy() && fa.arena.takeActive(fa.onActive) > 0;
  }

  drop(app: number): void {
    this.apps.delete(app);
  }

  /** Walks every polled arena's activity; true if any socket had work. */
  poll(): boolean {
    let did = false;
    for (const fa of this.apps.values()) {
      if (!fa.kicked && fa.arena.busy() && fa.arena.takeActive(fa.onActive) > 0) did = true;
    }
    return did;
  }

  /**
   * The server's idle hook while it has arenas: sleep in poll(2) on the doorbell's
   * eventfd (the kernel and neighbours ring it through SLEEPING = 2), with every bell
   * saying so, so an app that produces rings it.
   */
  idle(proc: Proc, ms: number, poll: () => boolean): void {
    if (this.apps.size === 0 || this.efd < 0) return proc.idle(ms);
    if (ms <= 0) return;
    Atomics.store(proc.pcb, PCB.STATE, PState.BLOCKED);
    proc.beat();
    proc.drainGrants();
    proc.stats.sleeps++;
    bellsSleeping(true);
    const ready = () => proc.hasWork() || poll();
    if (proc.doorbell.sleepPoll(ready, Math.min(MAX_SLEEP_MS, ms), this.efd)) {
      proc.stats.wakes++;
      Atomics.store(proc.pcb, PCB.WAKES, proc.stats.wakes);
    }
    bellsSleeping(false);
    Atomics.store(proc.pcb, PCB.STATE, PState.RUNNING);
  }
}
