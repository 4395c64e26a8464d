// A process's socket arena, one object per side: StackArena (the tcp or udp server:
// allocation, segments, the activity walk, reset, lazy reclaim) and AppArena (libc:
// attach segments, open sockets, mark activity, block on its doorbell).
// Paper §5.4.1 (buffers mapped by the system at socket creation), §5.5.5 (premapped
// accepts, closed sockets kept mapped while at least half are in use), §5.6.1
// (activity word + bitmap taken in chunks with an atomic swap); layout in abi.ts.
//
// An arena has exactly one stack-side owner: the bitmap is taken with exchange, so
// two servers walking one arena would steal each other's bits. A process with TCP and
// UDP sockets gets one arena from each server.
import {
  ARENA_MAGIC,
  ARENA_VERSION,
  C_ACTIVE,
  C_MAGIC,
  C_MAX_SOCKETS,
  C_SLEEPING,
  C_VERSION,
  C_WAIT_SOCK,
  C_WAKES,
  D_FLAGS,
  D_GEN,
  D_OFFSET,
  D_RX_DATA,
  D_RX_SLOTS,
  D_SEGMENT,
  D_STATE,
  D_TX_DATA,
  D_TX_SLOTS,
  D_TYPE,
  DEFAULT_GEOMETRY,
  FLAG_PENDING_CLOSE,
  SOCK_DGRAM,
  SOCK_STREAM,
  ST_FREE,
  ST_OPEN,
  type ControlLayout,
  type Geometry,
  bufferLayout,
  checkGeometry,
  controlLayout,
  markActive,
} from "./abi.ts";
import { type ActivitySink, SockApp } from "./app.ts";
import { SockStack } from "./stack.ts";
import { EBADF, EBUSY, EINVAL, ENFILE, ENOMEM } from "../sys/errno.ts";


export interface StackArenaOptions {
  /** Socket slots (a multiple of 32); the control SAB is sized for them. */
  maxSockets?: number;
  /** Bytes of each segment SAB (a bigger socket buffer gets a segment of its own size). */
  segmentBytes?: number;
  maxSegments?: number;
  /** Called when a segment is created: hand it to the application (a kernel grant). */
  onGrant?: (index: number, sab: SharedArrayBuffer) => void;
}

export interface AllocOptions {
  geometry?: Partial<Geometry>;
  /** Keep TX data until releaseTx (TCP). Default: free it as it is drained (UDP). */
  retainTx?: boolean;
}

interface Region {
  seg: number;
  off: number;
  bytes: number;
}

const sameGeometry = (a: Geometry, b: Geometry) =>
  a.txSlots === b.txSlots && a.txData === b.txData && a.rxSlots === b.rxSlots && a.rxData === b.rxData;

/** Creates a control SAB for maxSockets sockets, with its info line filled in. */
export function createControl(maxSockets: number): SharedArrayBuffer {
  const lay = controlLayout(maxSockets);
  const sab = new SharedArrayBuffer(lay.bytes);
  const c = new Int32Array(sab);
  c[C_MAGIC] = ARENA_MAGIC;
  c[C_VERSION] = ARENA_VERSION;
  c[C_MAX_SOCKETS] = maxSockets;
  c[C_WAIT_SOCK] = -1;
  for (let s = 0; s < maxSockets; s++) c[lay.dir + s * 16 + D_SEGMENT] = -1;
  return sab;
}

/** The stack's side of one process's arena. All of its bookkeeping is private. */
export class StackArena {
  readonly control: SharedArrayBuffer;
  readonly ctl: Int32Array;
  readonly lay: ControlLayout;
  readonly segments: SharedArrayBuffer[] = [];
  private readonly segmentBytes: number;
  private readonly maxSegments: number;
  private readonly onGrant?: (index: number, sab: SharedArrayBuffer) => void;
  private readonly segTop: number[] = []; // bump pointer per segment
  private readonly freeRegions: Region[] = []; // regions of reclaimed or resized buffers
  private readonly socks: (SockStack | null)[];
  private readonly live: Uint8Array; // 1: allocated (not released)
  private readonly gens: Int32Array;
  private readonly freeMapped: number[] = []; // released, buffer still mapped (reusable as is)
  private readonly freeUnmapped: number[] = []; // released and reclaimed: needs a new buffer
  private nextNew = 0; // slots [nextNew, maxSockets) were never used
  private inUse = 0;
  /** Bitmap bits found for slots not in use (stale or hostile), ever. */
  junkBits = 0;

  constructor(opts: StackArenaOptions = {}) {
    const maxSockets = opts.maxSockets ?? 1024;
    this.control = createControl(maxSockets);
    this.ctl = new Int32Array(this.control);
    this.lay = controlLayout(maxSockets);
    this.segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
    this.maxSegments = opts.maxSegments ?? 256;
    this.onGrant = opts.onGrant;
    this.socks = new Array<SockStack | null>(maxSockets).fill(null);
    this.live = new Uint8Array(maxSockets);
    this.gens = new Int32Array(maxSockets);
  }

  get maxSockets(): number {
    return this.lay.maxSockets;
  }
  /** Sockets allocated and not released. */
  get sockets(): number {
    return this.inUse;
  }
  /** Released sockets whose buffers stay mapped for reuse. */
  get closedMapped(): number {
    return this.freeMapped.length;
  }

  /** The socket in slot `slot` if it is allocated, else null. */
  sock(slot: number): SockStack | null {
    return slot >= 0 && slot < this.lay.maxSockets && this.live[slot] === 1 ? this.socks[slot]! : null;
  }

  // ------------------------------------------------------------------ memory

  private grantSegment(bytes: number): number {
    if (this.segments.length >= this.maxSegments) return -1;
    const sab = new SharedArrayBuffer(bytes);
    const index = this.segments.push(sab) - 1;
    this.segTop.push(0);
    this.onGrant?.(index, sab);
    return index;
  }

  /** First fit from freed regions (splitting), then any segment's unused tail, then a new segment. */
  private allocRegion(bytes: number): Region | null {
    for (let k = 0; k < this.freeRegions.length; k++) {
      const r = this.freeRegions[k]!;
      if (r.bytes < bytes) continue;
      const off = r.off;
      if (r.bytes === bytes) this.freeRegions.splice(k, 1);
      else {
        r.off += bytes;
        r.bytes -= bytes;
      }
      return { seg: r.seg, off, bytes };
    }
    for (let s = 0; s < this.segments.length; s++) {
      if (this.segments[s]!.byteLength - this.segTop[s]! >= bytes) {
        const off = this.segTop[s]!;
        this.segTop[s] = off + bytes;
        return { seg: s, off, bytes };
      }
    }
    const s = this.grantSegment(Math.max(this.segmentBytes, bytes));
    if (s < 0) return null;
    this.segTop[s] = bytes;
    return { seg: s, off: 0, bytes };
  }

  private freeRegion(sock: SockStack): void {
    this.freeRegions.push({ seg: sock.segment, off: sock.offset, bytes: bufferLayout(sock.geometry).bytes });
  }

  /** Publishes a slot's directory entry; state last, so a reader that sees it sees the rest. */
  private publishDir(slot: number, s: SockStack | null, type: number, state: number, flags: number): void {
    const c = this.ctl;
    const d = this.lay.dir + slot * 16;
    Atomics.store(c, d + D_TYPE, type);
    Atomics.store(c, d + D_GEN, this.gens[slot]!);
    Atomics.store(c, d + D_FLAGS, flags);
    Atomics.store(c, d + D_SEGMENT, s ? s.segment : -1);
    Atomics.store(c, d + D_OFFSET, s ? s.offset : 0);
    const g = s ? s.geometry : null;
    Atomics.store(c, d + D_TX_SLOTS, g ? g.txSlots : 0);
    Atomics.store(c, d + D_TX_DATA, g ? g.txData : 0);
    Atomics.store(c, d + D_RX_SLOTS, g ? g.rxSlots : 0);
    Atomics.store(c, d + D_RX_DATA, g ? g.rxData : 0);
    Atomics.store(c, d + D_STATE, state);
  }

  // ------------------------------------------------------------------ life cycle

  /**
   * Allocates and initialises a socket slot (socket(2), or a child premapped for
   * accept). Reuses a closed slot whose buffer is still mapped with the same sizes
   * when there is one (no new mapping for the app, §5.5.5), else a buffer carved from
   * a segment (granting a new segment if needed). Bumps the slot's generation.
   * Returns the slot, or -EINVAL (bad type or sizes), -ENFILE (no slot), -ENOMEM.
   */
  allocSlot(type: number, opts: AllocOptions = {}): number {
    if (type !== SOCK_STREAM && type !== SOCK_DGRAM) return -EINVAL;
    const g: Geometry = { ...DEFAULT_GEOMETRY, ...opts.geometry };
    if (checkGeometry(g)) return -EINVAL;
    let slot = -1;
    for (let k = this.freeMapped.length - 1; k >= 0; k--) {
      const s = this.freeMapped[k]!;
      if (sameGeometry(this.socks[s]!.geometry, g)) {
        slot = s;
        this.freeMapped[k] = this.freeMapped[this.freeMapped.length - 1]!;
        this.freeMapped.pop();
        break;
      }
    }
    if (slot < 0) {
      if (this.freeUnmapped.length > 0) slot = this.freeUnmapped.pop()!;
      else if (this.nextNew < this.lay.maxSockets) slot = this.nextNew++;
      else if (this.freeMapped.length > 0) {
        slot = this.freeMapped.pop()!; // sizes differ: give its buffer back first
        this.unmap(slot);
      } else return -ENFILE;
      const r = this.allocRegion(bufferLayout(g).bytes);
      if (!r) {
        this.freeUnmapped.push(slot);
        return -ENOMEM;
      }
      this.socks[slot] = new SockStack(this.ctl, this.lay, slot, this.segments[r.seg]!, r.seg, r.off, g);
    }
    const s = this.socks[slot]!;
    this.gens[slot] = (this.gens[slot]! + 1) | 0;
    s.init(type, this.gens[slot]!, ST_OPEN, opts.retainTx ?? false);
    this.publishDir(slot, s, type, ST_OPEN, 0);
    this.live[slot] = 1;
    this.inUse++;
    return slot;
  }

  /**
   * The protocol is done with the socket (its CLOSE was drained and the connection
   * finished, or the process closed it by system call or exited). The slot becomes
   * free but keeps its buffer mapped for reuse; then the reclaim policy runs.
   */
  release(slot: number): boolean {
    const s = this.sock(slot);
    if (!s) return false;
    s.kill();
    s.markPendingClose();
    s.setState(ST_FREE);
    this.live[slot] = 0;
    this.inUse--;
    this.freeMapped.push(slot);
    this.reclaim();
    return true;
  }

  /** Resets a socket (the caller counted a Violation, or the peer reset): see SockStack.reset. */
  reset(slot: number, errno?: number): boolean {
    const s = this.sock(slot);
    if (!s) return false;
    s.reset(errno);
    return true;
  }

  /**
   * §5.5.5's policy: closed sockets stay mapped while at least half of the sockets
   * are in use; once fewer are in use than closed, every closed one is unmapped (its
   * buffer returns to the free regions). Returns how many were unmapped.
   */
  reclaim(): number {
    if (this.freeMapped.length <= this.inUse) return 0;
    const n = this.freeMapped.length;
    for (const slot of this.freeMapped) {
      this.unmap(slot);
      this.freeUnmapped.push(slot);
    }
    this.freeMapped.length = 0;
    return n;
  }

  private unmap(slot: number): void {
    this.freeRegion(this.socks[slot]!);
    this.socks[slot] = null;
    this.publishDir(slot, null, 0, ST_FREE, 0);
  }

  /**
   * setsockopt(SO_SNDBUF/SO_RCVBUF/ring slots): gives the socket a buffer of new sizes.
   * Only while nothing is in flight either way (-EBUSY otherwise); the app re-opens
   * the slot when its system call returns. 0, or -EINVAL, -EBADF, -EBUSY, -ENOMEM.
   */
  resize(slot: number, geometry: Partial<Geometry>): number {
    const old = this.sock(slot);
    if (!old || old.isDead || old.isClosed) return -EBADF;
    const g: Geometry = { ...old.geometry, ...geometry };
    if (checkGeometry(g)) return -EINVAL;
    if (!old.isIdle()) return -EBUSY;
    if (sameGeometry(g, old.geometry)) return 0;
    const r = this.allocRegion(bufferLayout(g).bytes);
    if (!r) return -ENOMEM;
    this.freeRegion(old);
    const s = new SockStack(this.ctl, this.lay, slot, this.segments[r.seg]!, r.seg, r.off, g);
    s.init(old.type, old.gen, old.state, old.retainTx);
    s.setReadiness(old.readiness);
    s.violations = old.violations;
    this.socks[slot] = s;
    this.publishDir(slot, s, old.type, old.state, 0);
    return 0;
  }

  // ------------------------------------------------------------------ activity

  /** True if the app produced since the last walk (the stack must not sleep). */
  busy(): boolean {
    return Atomics.load(this.ctl, C_ACTIVE) !== 0;
  }

  /**
   * The activity walk (§5.6.1): if `active` is set, takes it, then takes the summary
   * and bitmap words with Atomics.exchange and calls fn(slot) once for each marked
   * socket in use (bits of unused slots are counted in junkBits and dropped).
   * Returns the number of sockets visited.
   */
  takeActive(fn: (slot: number) => void): number {
    const ctl = this.ctl;
    const lay = this.lay;
    if (Atomics.load(ctl, C_ACTIVE) === 0) return 0;
    Atomics.exchange(ctl, C_ACTIVE, 0);
    let visited = 0;
    for (let s = 0; s < lay.summaryWords; s++) {
      if (Atomics.load(ctl, lay.summary + s) === 0) continue;
      let sum = Atomics.exchange(ctl, lay.summary + s, 0);
      while (sum !== 0) {
        const b = 31 - Math.clz32(sum & -sum);
        sum &= sum - 1;
        const wi = s * 32 + b;
        if (wi >= lay.bitmapWords) {
          this.junkBits++;
          continue;
        }
        let bits = Atomics.exchange(ctl, lay.bitmap + wi, 0);
        while (bits !== 0) {
          const bb = 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          const slot = wi * 32 + bb;
          if (this.live[slot] === 1) {
            visited++;
            fn(slot);
          } else this.junkBits++;
        }
      }
    }
    return visited;
  }

  /**
   * Visits every socket in use, marked or not: the safety net for marks the app lost
   * (§5.6.1: "the stack may miss some of its updates"). Call it on a slow timer.
   */
  sweep(fn: (slot: number) => void): number {
    let n = 0;
    for (let slot = 0; slot < this.nextNew; slot++) {
      if (this.live[slot] === 1) {
        n++;
        fn(slot);
      }
    }
    return n;
  }
}

/** The application's (libc's) side of its arena. */
export class AppArena implements ActivitySink {
  readonly ctl: Int32Array;
  readonly lay: ControlLayout;
  private readonly segments: (SharedArrayBuffer | undefined)[] = [];
  private wake = false;

  /** control: the arena's control SAB as granted; segments may follow (attachSegment). */
  constructor(control: SharedArrayBuffer, segments: readonly SharedArrayBuffer[] = []) {
    this.ctl = new Int32Array(control);
    if (this.ctl[C_MAGIC] !== ARENA_MAGIC || this.ctl[C_VERSION] !== ARENA_VERSION) {
      throw new Error("not a socket arena (bad magic or version)");
    }
    this.lay = controlLayout(this.ctl[C_MAX_SOCKETS]!);
    segments.forEach((sab, i) => this.attachSegment(i, sab));
  }

  /** A segment granted by the stack (through the kernel). */
  attachSegment(index: number, sab: SharedArrayBuffer): void {
    this.segments[index] = sab;
  }

  /**
   * A handle on the socket in `slot` (after socket(2) returned it, or takeAccept).
   * null if the slot is not in use, its generation is not `gen` (when given), or its
   * segment has not been attached yet (drain the grant port and retry).
   */
  open(slot: number, gen?: number): SockApp | null {
    if (!(slot >= 0 && slot < this.lay.maxSockets)) return null;
    const c = this.ctl;
    const d = this.lay.dir + slot * 16;
    const state = Atomics.load(c, d + D_STATE);
    if (state === ST_FREE) return null;
    const g = Atomics.load(c, d + D_GEN);
    if (gen !== undefined && g !== gen) return null;
    if ((Atomics.load(c, d + D_FLAGS) & FLAG_PENDING_CLOSE) !== 0) return null;
    const seg = this.segments[Atomics.load(c, d + D_SEGMENT)];
    if (!seg) return null;
    const m = {
      slot,
      gen: g,
      type: Atomics.load(c, d + D_TYPE),
      seg,
      offset: Atomics.load(c, d + D_OFFSET),
      txSlots: Atomics.load(c, d + D_TX_SLOTS),
      txData: Atomics.load(c, d + D_TX_DATA),
      rxSlots: Atomics.load(c, d + D_RX_SLOTS),
      rxData: Atomics.load(c, d + D_RX_DATA),
      ctl: c,
      readyIdx: this.lay.ready + slot * 2,
      dirIdx: d,
    };
    if (checkGeometry(m) || m.offset < 0 || m.offset + bufferLayout(m).bytes > seg.byteLength) return null;
    return new SockApp(m, this);
  }

  /** The segment index the directory gives for `slot` (-1: unmapped or out of range); whether it is attached. */
  segmentOf(slot: number): { index: number; attached: boolean } {
    if (!(slot >= 0 && slot < this.lay.maxSockets)) return { index: -1, attached: false };
    const index = Atomics.load(this.ctl, this.lay.dir + slot * 16 + D_SEGMENT);
    return { index, attached: index >= 0 && this.segments[index] !== undefined };
  }

  /** Marks `slot` for the stack's walk; true (and remembered for takeWake) if the stack should be woken. */
  markActive(slot: number): boolean {
    const w = markActive(this.ctl, this.lay, slot);
    if (w) this.wake = true;
    return w;
  }

  /**
   * True once after any operation found the stack possibly asleep (`active` went
   * 0 -> 1): the caller then rings the stack's doorbell (a Waker, which itself checks
   * the stack's sleeping flag). Leaving this to the caller keeps SockApp free of it.
   */
  takeWake(): boolean {
    const w = this.wake;
    this.wake = false;
    return w;
  }

  /**
   * Blocks (Atomics.wait with a finite timeout) until the stack signals an event on
   * `slot` (-1: on any socket), unless ready() turns true after the sleeping flag is
   * raised (ready must arm the want words: SockApp.readable()/writable() do). Returns
   * true if woken by the stack. One sleeper per arena (libc is single-threaded).
   */
  sleep(slot: number, ready: () => boolean, timeoutMs: number): boolean {
    const c = this.ctl;
    Atomics.store(c, C_WAIT_SOCK, slot);
    Atomics.store(c, C_SLEEPING, 1);
    if (ready()) {
      Atomics.store(c, C_SLEEPING, 0);
      return false;
    }
    const r = Atomics.wait(c, C_SLEEPING, 1, timeoutMs);
    Atomics.store(c, C_SLEEPING, 0);
    return r === "ok";
  }

  /** Wake-ups the stack delivered. */
  get wakes(): number {
    return Atomics.load(this.ctl, C_WAKES);
  }
}
