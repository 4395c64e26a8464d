// The application's (libc's) side of one socket buffer: produce TX, consume RX, and
// answer readable()/writable() from a private readiness cache (paper §5.4, §5.5.4).
// Return values follow the kernel convention: n >= 0 on success, -errno on failure
// (-EAGAIN: would block). No allocation and no closure on any operation.
import {
  D_GEN,
  D_LOCAL_ADDR,
  D_LOCAL_PORT,
  D_PEER_ADDR,
  D_PEER_PORT,
  D_STATE,
  DESC_WORDS,
  E_ARG,
  E_KIND_PORT,
  E_LENGTH,
  E_OFFSET,
  ERR,
  HUP,
  KIND_ACCEPT,
  KIND_CLOSE,
  KIND_CONNECT,
  KIND_DATA,
  KIND_DATAGRAM,
  KIND_ERROR,
  KIND_SHUTDOWN,
  MAX_DATAGRAM,
  R_BITS,
  R_EVENTS,
  RX_CONS_WANT,
  RX_DATA_HEAD,
  RX_DESC_HEAD,
  RX_DESC_TAIL,
  RX_PROD_WANT,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SOCK_DGRAM,
  ST_RESET,
  TX_CONS_WANT,
  TX_DATA_HEAD,
  TX_DESC_HEAD,
  TX_DESC_TAIL,
  TX_PROD_WANT,
  bufferLayout,
} from "./abi.ts";
import { EAGAIN, EBADF, ECONNRESET, EINVAL, EIO, EMSGSIZE, EPIPE } from "../sys/errno.ts";


/** What a SockApp needs from its arena: the activity page. */
export interface ActivitySink {
  /** Marks the socket for the stack's walk; true if the stack should be woken. */
  markActive(slot: number): boolean;
}

// Private readiness notes (§5.5.4): READY = the same operation would succeed again;
// UNKNOWN = look at the ring; WAITING = the ring was empty/full, the want word is
// armed and `seen` holds the readiness event count from before arming.
const UNKNOWN = 0;
const READY = 1;
const WAITING = 2;

/** Where one socket's buffer lives, as the directory says. */
export interface SockMapping {
  slot: number;
  gen: number;
  type: number;
  seg: SharedArrayBuffer;
  offset: number;
  txSlots: number;
  txData: number;
  rxSlots: number;
  rxData: number;
  ctl: Int32Array;
  readyIdx: number; // cell index of this socket's readiness entry in ctl
  dirIdx: number; // cell index of this socket's directory entry in ctl
}

export class SockApp {
  readonly slot: number;
  readonly gen: number;
  readonly type: number;
  // shared views
  private readonly w: Int32Array; // header cells + both descriptor rings
  private readonly ctl: Int32Array;
  private readonly readyIdx: number;
  private readonly dirIdx: number;
  private readonly txBytes: Uint8Array;
  private readonly rxBytes: Uint8Array;
  private readonly sink: ActivitySink;
  // geometry (from the directory, at open)
  private readonly txSlots: number;
  private readonly txSize: number;
  private readonly rxSlots: number;
  private readonly rxSize: number;
  private readonly txDescBase: number; // cell index of TX descriptor 0 in w
  private readonly rxDescBase: number;
  // private copies of what this side produces, and cached views of the other side
  private txTail: number; // TX descriptors published
  private txDataTail: number; // TX data position (next byte to allocate)
  private txHeadSeen: number; // stack's TX descHead, last read
  private txDataHeadSeen: number; // stack's TX dataHead, last read
  private rxHead: number; // RX descriptors consumed
  private rxDataHead: number; // RX data position freed
  private rxTailSeen: number; // stack's RX descTail, last read
  private rxPartial = 0; // bytes already read from the DATA descriptor at rxHead
  // readiness cache
  private rxNote = UNKNOWN;
  private txNote = UNKNOWN;
  private rxSeen = 0;
  private txSeen = 0;
  private eof = false; // EOF consumed: reads return 0 from now on
  private txShut = false; // SHUT_WR or close posted: writes fail with EPIPE
  private closed = false;

  /** Source of the last datagram read (readDatagram) and its full length. */
  fromAddr = 0;
  fromPort = 0;
  datagramLength = 0;
  /** Generation of the child returned by the last takeAccept. */
  acceptGen = 0;
  /** True once a CONNECT's success (ERROR 0) was consumed. */
  connected = false;

  constructor(m: SockMapping, sink: ActivitySink) {
    this.slot = m.slot;
    this.gen = m.gen;
    this.type = m.type;
    this.sink = sink;
    this.ctl = m.ctl;
    this.readyIdx = m.readyIdx;
    this.dirIdx = m.dirIdx;
    this.txSlots = m.txSlots;
    this.txSize = m.txData;
    this.rxSlots = m.rxSlots;
    this.rxSize = m.rxData;
    const lay = bufferLayout(m);
    this.w = new Int32Array(m.seg, m.offset, lay.txData >> 2);
    this.txDescBase = lay.txDesc >> 2;
    this.rxDescBase = lay.rxDesc >> 2;
    this.txBytes = new Uint8Array(m.seg, m.offset + lay.txData, m.txData);
    this.rxBytes = new Uint8Array(m.seg, m.offset + lay.rxData, m.rxData);
    // A socket is attached when fresh (or just resized): TX is empty, so the data
    // position to allocate from is where the stack freed up to.
    this.txTail = Atomics.load(this.w, TX_DESC_TAIL) >>> 0;
    this.txDataTail = this.txDataHeadSeen = Atomics.load(this.w, TX_DATA_HEAD) >>> 0;
    this.txHeadSeen = Atomics.load(this.w, TX_DESC_HEAD) >>> 0;
    this.rxHead = Atomics.load(this.w, RX_DESC_HEAD) >>> 0;
    this.rxDataHead = Atomics.load(this.w, RX_DATA_HEAD) >>> 0;
    this.rxTailSeen = this.rxHead;
  }

  /** True if the slot was reallocated since this handle was opened (generation changed). */
  stale(): boolean {
    return Atomics.load(this.ctl, this.dirIdx + D_GEN) !== this.gen;
  }

  /** This socket buffer's sizes: descriptor slots and data bytes each way. */
  geometry(): { txSlots: number; txData: number; rxSlots: number; rxData: number } {
    return { txSlots: this.txSlots, txData: this.txSize, rxSlots: this.rxSlots, rxData: this.rxSize };
  }

  /** The addresses the stack published (getsockname, getpeername): [addr, port]. */
  localAddr(): [number, number] {
    return [Atomics.load(this.ctl, this.dirIdx + D_LOCAL_ADDR) >>> 0, Atomics.load(this.ctl, this.dirIdx + D_LOCAL_PORT) & 0xffff];
  }
  peerAddr(): [number, number] {
    return [Atomics.load(this.ctl, this.dirIdx + D_PEER_ADDR) >>> 0, Atomics.load(this.ctl, this.dirIdx + D_PEER_PORT) & 0xffff];
  }

  /** The kind of the next RX descriptor (KIND_*), 0 when there is none: a pending ERROR is POLLERR. */
  peekKind(): number {
    if (this.rxAvail() <= 0) return 0;
    return this.w[this.rxDescBase + (this.rxHead & (this.rxSlots - 1)) * DESC_WORDS + E_KIND_PORT]! & 0xffff;
  }

  /** The stack's RX descriptor count: moves with every arrival (edge-triggered epoll). */
  rxArrivals(): number {
    return Atomics.load(this.w, RX_DESC_TAIL);
  }

  /** The stack's state word (ST_*); read on slow paths only. */
  state(): number {
    return Atomics.load(this.ctl, this.dirIdx + D_STATE);
  }

  // ------------------------------------------------------------------ TX (produce)

  /**
   * Bytes of TX data area free now, 0 when full or when no descriptor slot is free
   * (one slot is kept for CLOSE, so close never blocks). Re-reads the stack's line
   * only when the cached view cannot satisfy `need`.
   */
  private txRoom(need: number, reserve: number): number {
    let slotsFree = this.txSlots - reserve - ((this.txTail - this.txHeadSeen) >>> 0);
    let bytes = this.txSize - ((this.txDataTail - this.txDataHeadSeen) >>> 0);
    if (slotsFree > 0 && bytes >= need) return bytes;
    this.txHeadSeen = Atomics.load(this.w, TX_DESC_HEAD) >>> 0;
    this.txDataHeadSeen = Atomics.load(this.w, TX_DATA_HEAD) >>> 0;
    slotsFree = this.txSlots - reserve - ((this.txTail - this.txHeadSeen) >>> 0);
    const used = (this.txDataTail - this.txDataHeadSeen) >>> 0;
    bytes = used > this.txSize ? 0 : this.txSize - used; // our own memory scribbled on: no room
    return slotsFree > 0 && slotsFree <= this.txSlots ? bytes : 0;
  }

  /** No room for `need`: arm prodWant, then look again (the stack frees, then reads prodWant). */
  private txArm(need: number, reserve: number): number {
    this.txSeen = Atomics.load(this.ctl, this.readyIdx + R_EVENTS);
    if (Atomics.load(this.w, TX_PROD_WANT) === 0) Atomics.store(this.w, TX_PROD_WANT, 1);
    const room = this.txRoom(need, reserve);
    // an error or hang-up means writes would not block: they fail at once
    this.txNote = room >= need || (Atomics.load(this.ctl, this.readyIdx + R_BITS) & (ERR | HUP)) !== 0 ? READY : WAITING;
    return room;
  }

  /** The error of a write that found no room: EAGAIN, or the reason the stack gave up. */
  private txBlocked(): number {
    return Atomics.load(this.ctl, this.dirIdx + D_STATE) === ST_RESET ? -ECONNRESET : -EAGAIN;
  }

  /** Writes a descriptor at txTail and publishes it with one store; then tells the stack if it asked. */
  private post(kind: number, offset: number, length: number, arg: number, port: number): void {
    const i = this.txDescBase + (this.txTail & (this.txSlots - 1)) * DESC_WORDS;
    const w = this.w;
    w[i + E_OFFSET] = offset | 0;
    w[i + E_LENGTH] = length | 0;
    w[i + E_KIND_PORT] = kind | (port << 16);
    w[i + E_ARG] = arg | 0;
    this.txTail = (this.txTail + 1) >>> 0;
    Atomics.store(w, TX_DESC_TAIL, this.txTail | 0);
    // The stack arms consWant when it drained the ring; only then is a mark needed.
    if (Atomics.load(w, TX_CONS_WANT) !== 0 && Atomics.exchange(w, TX_CONS_WANT, 0) !== 0) {
      this.sink.markActive(this.slot);
    }
  }

  /** Copies n bytes of src into the TX data area at the data tail (wrapping). */
  private copyIn(src: Uint8Array, n: number): void {
    const at = this.txDataTail & (this.txSize - 1);
    const first = this.txSize - at;
    if (n <= first) this.txBytes.set(n === src.length ? src : src.subarray(0, n), at);
    else {
      this.txBytes.set(src.subarray(0, first), at);
      this.txBytes.set(src.subarray(first, n), 0);
    }
  }

  /** Stream write: copies as much of src as fits. n > 0, or -EAGAIN, -EPIPE, -ECONNRESET, -EBADF. */
  write(src: Uint8Array): number {
    if (this.txShut) return this.closed ? -EBADF : -EPIPE;
    const len = src.length;
    if (len === 0) return 0;
    let room = this.txRoom(len, 1);
    if (room === 0 && (room = this.txArm(1, 1)) === 0) return this.txBlocked();
    const n = len < room ? len : room;
    this.copyIn(src, n);
    this.post(KIND_DATA, this.txDataTail, n, 0, 0);
    this.txDataTail = (this.txDataTail + n) >>> 0;
    this.txNote = n < room && ((this.txTail - this.txHeadSeen) >>> 0) < this.txSlots - 1 ? READY : UNKNOWN;
    return n;
  }

  /** One datagram to addr:port, whole or not at all. length, or -EMSGSIZE, -EAGAIN, ... */
  writeDatagram(src: Uint8Array, addr: number, port: number): number {
    if (this.txShut) return this.closed ? -EBADF : -EPIPE;
    const len = src.length;
    if (len > this.txSize || len > MAX_DATAGRAM) return -EMSGSIZE;
    let room = this.txRoom(len, 1);
    if (room < len && (room = this.txArm(len, 1)) < len) return this.txBlocked();
    if (len > 0) this.copyIn(src, len);
    this.post(KIND_DATAGRAM, this.txDataTail, len, addr, port & 0xffff);
    this.txDataTail = (this.txDataTail + len) >>> 0;
    this.txNote = UNKNOWN;
    return len;
  }

  /** Nonblocking connect (§5.5.3): the result arrives as an RX ERROR descriptor (takeError). */
  postConnect(addr: number, port: number): number {
    if (this.closed) return -EBADF;
    if (this.txRoom(0, 1) === 0 && this.txArm(0, 1) === 0) return this.txBlocked();
    this.post(KIND_CONNECT, 0, 0, addr, port & 0xffff);
    return 0;
  }

  postShutdown(how: number): number {
    if (this.closed) return -EBADF;
    if (how !== SHUT_RD && how !== SHUT_WR && how !== SHUT_RDWR) return -EINVAL;
    if (this.txRoom(0, 1) === 0 && this.txArm(0, 1) === 0) return this.txBlocked();
    this.post(KIND_SHUTDOWN, 0, 0, how, 0);
    if (how !== SHUT_RD) this.txShut = true;
    return 0;
  }

  /**
   * close(2)'s fast path (§5.5.3): post CLOSE and forget. It uses the descriptor slot
   * writes leave free, so it succeeds unless the stack stopped consuming (false).
   * After it the handle is dead: the stack drains, closes and recycles the slot.
   */
  postClose(abort = false): boolean {
    if (this.closed) return false;
    if (this.txRoom(0, 0) === 0 && this.txArm(0, 0) === 0) return false;
    this.post(KIND_CLOSE, 0, 0, abort ? 1 : 0, 0); // arg 1: reset the connection (SO_LINGER 0)
    this.closed = this.txShut = true;
    return true;
  }

  // ------------------------------------------------------------------ RX (consume)

  /** Publishes what was consumed (data head, then descriptor head), then tells the stack if it asked. */
  private publishRx(): void {
    const w = this.w;
    Atomics.store(w, RX_DATA_HEAD, this.rxDataHead | 0);
    Atomics.store(w, RX_DESC_HEAD, this.rxHead | 0);
    // The stack arms prodWant when it had no room (e.g. TCP advertised a closed window).
    if (Atomics.load(w, RX_PROD_WANT) !== 0 && Atomics.exchange(w, RX_PROD_WANT, 0) !== 0) {
      this.sink.markActive(this.slot);
    }
  }

  /** Copies n bytes at RX data position pos (wrapping) into dst at dstOff. */
  private copyOut(pos: number, dst: Uint8Array, dstOff: number, n: number): void {
    const at = pos & (this.rxSize - 1);
    const first = this.rxSize - at;
    if (n <= first) dst.set(this.rxBytes.subarray(at, at + n), dstOff);
    else {
      dst.set(this.rxBytes.subarray(at, this.rxSize), dstOff);
      dst.set(this.rxBytes.subarray(0, n - first), dstOff + first);
    }
  }

  /** Descriptors available now (re-reads the stack's tail only when the cache says empty), or -EIO. */
  private rxAvail(): number {
    let n = (this.rxTailSeen - this.rxHead) >>> 0;
    if (n === 0) {
      this.rxTailSeen = Atomics.load(this.w, RX_DESC_TAIL) >>> 0;
      n = (this.rxTailSeen - this.rxHead) >>> 0;
    }
    return n > this.rxSlots ? -EIO : n;
  }

  /** Nothing to consume: -EAGAIN (a WAITING note stays valid: nothing changed), or -EIO. */
  private rxEmpty(avail: number): number {
    if (avail !== 0) return avail;
    if (this.rxNote === READY) this.rxNote = UNKNOWN;
    return -EAGAIN;
  }

  /**
   * Stream read: copies up to dst.length bytes. n > 0 bytes; 0 at end of stream;
   * -EAGAIN when empty; -errno for an error the stack queued (e.g. -ECONNRESET).
   */
  read(dst: Uint8Array): number {
    if (this.type === SOCK_DGRAM) return this.readDatagram(dst);
    if (this.eof) return 0;
    if (this.closed) return -EBADF;
    let avail = this.rxAvail();
    if (avail <= 0) return this.rxEmpty(avail);
    const w = this.w;
    const max = dst.length;
    const mask = this.rxSlots - 1;
    let copied = 0;
    let result = -EAGAIN; // only a CONNECT's success was there: nothing to read yet
    for (;;) {
      if (avail === 0) {
        // the cached view is used up: look once more for what arrived since (read returns all there is)
        if (copied === max) break;
        const t = Atomics.load(this.w, RX_DESC_TAIL) >>> 0;
        if (t === this.rxTailSeen) break;
        this.rxTailSeen = t;
        avail = (t - this.rxHead) >>> 0;
        if (avail > this.rxSlots) return -EIO;
      }
      const i = this.rxDescBase + (this.rxHead & mask) * DESC_WORDS;
      const kind = w[i + E_KIND_PORT]! & 0xffff;
      if (kind === KIND_DATA) {
        if (copied === max) {
          result = 0; // dst is full (or empty: a zero-length read with data there)
          break;
        }
        const off = w[i + E_OFFSET]! >>> 0;
        const len = w[i + E_LENGTH]! >>> 0;
        if (len > this.rxSize || this.rxPartial > len) return -EIO; // only our own scribbles get here
        const left = len - this.rxPartial;
        const take = left < max - copied ? left : max - copied;
        this.copyOut((off + this.rxPartial) >>> 0, dst, copied, take);
        copied += take;
        if (take === left) {
          this.rxPartial = 0;
          this.rxDataHead = (off + len) >>> 0;
          this.rxHead = (this.rxHead + 1) >>> 0;
          avail--;
        } else {
          this.rxPartial += take;
          this.rxDataHead = (off + this.rxPartial) >>> 0;
        }
        continue;
      }
      if (kind === KIND_ERROR && w[i + E_ARG] === 0) {
        // a CONNECT succeeded: nothing for read(2) to report
        this.connected = true;
        this.rxHead = (this.rxHead + 1) >>> 0;
        avail--;
        continue;
      }
      if (copied > 0) break; // report the bytes first, the event on the next call
      if (kind === KIND_CLOSE) {
        this.eof = true;
        result = 0;
        this.rxHead = (this.rxHead + 1) >>> 0;
      } else if (kind === KIND_ERROR) {
        result = -(w[i + E_ARG]! >>> 0);
        this.rxHead = (this.rxHead + 1) >>> 0;
      } else result = -EINVAL; // ACCEPT on a listening socket, or a datagram: not read(2)'s business
      break;
    }
    this.publishRx();
    this.rxNote = this.rxHead !== this.rxTailSeen || this.eof ? READY : UNKNOWN;
    return copied > 0 ? copied : result;
  }

  /**
   * One datagram into dst (truncated if dst is shorter: datagramLength has its full
   * length); fromAddr/fromPort say who sent it. n >= 0, -EAGAIN, or -errno.
   */
  readDatagram(dst: Uint8Array): number {
    if (this.eof) return 0;
    if (this.closed) return -EBADF;
    const w = this.w;
    for (;;) {
      const avail = this.rxAvail();
      if (avail <= 0) return this.rxEmpty(avail);
      const i = this.rxDescBase + (this.rxHead & (this.rxSlots - 1)) * DESC_WORDS;
      const kp = w[i + E_KIND_PORT]!;
      const kind = kp & 0xffff;
      let result: number;
      if (kind === KIND_DATAGRAM || kind === KIND_DATA) {
        const off = w[i + E_OFFSET]! >>> 0;
        const len = w[i + E_LENGTH]! >>> 0;
        if (len > this.rxSize) return -EIO;
        const n = len < dst.length ? len : dst.length;
        if (n > 0) this.copyOut(off, dst, 0, n);
        this.fromAddr = w[i + E_ARG]! >>> 0;
        this.fromPort = kp >>> 16;
        this.datagramLength = len;
        this.rxDataHead = (off + len) >>> 0;
        result = n;
      } else if (kind === KIND_ERROR) {
        const e = w[i + E_ARG]! >>> 0;
        if (e === 0) this.connected = true;
        result = -e;
      } else if (kind === KIND_CLOSE) {
        this.eof = true;
        result = 0;
      } else return -EINVAL;
      this.rxHead = (this.rxHead + 1) >>> 0;
      this.publishRx();
      this.rxNote = this.rxHead !== this.rxTailSeen || this.eof ? READY : UNKNOWN;
      if (result === 0 && kind === KIND_ERROR) continue; // connect success: look for data
      return result;
    }
  }

  /**
   * accept(2)'s fast path (§5.5.5): the next premapped child's slot index (its
   * generation in acceptGen); consuming the descriptor is the acknowledgement.
   * -EAGAIN when none is pending, -errno if the stack queued an error.
   */
  takeAccept(): number {
    if (this.closed) return -EBADF;
    const avail = this.rxAvail();
    if (avail <= 0) return this.rxEmpty(avail);
    const w = this.w;
    const i = this.rxDescBase + (this.rxHead & (this.rxSlots - 1)) * DESC_WORDS;
    const kind = w[i + E_KIND_PORT]! & 0xffff;
    let result: number;
    if (kind === KIND_ACCEPT) {
      result = w[i + E_ARG]! >>> 0;
      this.acceptGen = w[i + E_OFFSET]!;
    } else if (kind === KIND_ERROR) result = -(w[i + E_ARG]! >>> 0);
    else return -EINVAL;
    this.rxHead = (this.rxHead + 1) >>> 0;
    this.publishRx();
    this.rxNote = this.rxHead !== this.rxTailSeen ? READY : UNKNOWN;
    return result;
  }

  /**
   * SO_ERROR: consumes a leading ERROR descriptor (a connect's result): errno >= 0
   * (0: connected), or -EAGAIN when the next descriptor is not an error.
   */
  takeError(): number {
    const avail = this.rxAvail();
    if (avail <= 0) return avail === 0 ? -EAGAIN : avail;
    const i = this.rxDescBase + (this.rxHead & (this.rxSlots - 1)) * DESC_WORDS;
    if ((this.w[i + E_KIND_PORT]! & 0xffff) !== KIND_ERROR) return -EAGAIN;
    const e = this.w[i + E_ARG]! >>> 0;
    if (e === 0) this.connected = true;
    this.rxHead = (this.rxHead + 1) >>> 0;
    this.publishRx();
    this.rxNote = UNKNOWN;
    return e;
  }

  // ------------------------------------------------------------------ readiness

  /**
   * True if read/readDatagram/takeAccept would not return -EAGAIN. Under load it
   * answers from private memory; when the ring was empty it reads only this socket's
   * readiness event count (a word the stack writes only when asked) until it moves.
   */
  readable(): boolean {
    if (this.rxNote === READY || this.eof) return true;
    if (this.rxNote === WAITING) {
      const e = Atomics.load(this.ctl, this.readyIdx + R_EVENTS);
      if (e === this.rxSeen) return false;
    }
    return this.refreshRx();
  }

  /** Looks at the ring; if empty, arms consWant and looks again (the stack publishes, then reads consWant). */
  private refreshRx(): boolean {
    this.rxSeen = Atomics.load(this.ctl, this.readyIdx + R_EVENTS);
    const w = this.w;
    if ((Atomics.load(w, RX_DESC_TAIL) >>> 0) !== this.rxHead) return this.rxReadyNow();
    if (Atomics.load(w, RX_CONS_WANT) === 0) Atomics.store(w, RX_CONS_WANT, 1);
    if ((Atomics.load(w, RX_DESC_TAIL) >>> 0) !== this.rxHead) return this.rxReadyNow();
    if ((Atomics.load(this.ctl, this.readyIdx + R_BITS) & (ERR | HUP)) !== 0) return this.rxReadyNow();
    this.rxNote = WAITING;
    return false;
  }
  private rxReadyNow(): boolean {
    this.rxNote = READY;
    return true;
  }

  /** True if write would accept at least one byte now (or the socket is in error: the call would not block). */
  writable(): boolean {
    if (this.txShut) return true; // write fails at once (EPIPE): it would not block
    if (this.txNote === READY) return true;
    if (this.txNote === WAITING) {
      const e = Atomics.load(this.ctl, this.readyIdx + R_EVENTS);
      if (e === this.txSeen) return false;
    }
    if (this.txRoom(1, 1) > 0) {
      this.txNote = READY;
      return true;
    }
    this.txArm(1, 1);
    return this.txNote === READY;
  }

  /** Bytes the app may still write before the TX area is full (BQL-style feedback, §5.4.1). */
  txFree(): number {
    return this.txRoom(this.txSize + 1, 1);
  }

  /** Readiness bits as the stack last published them (POLLERR/POLLHUP for poll). */
  readinessBits(): number {
    return Atomics.load(this.ctl, this.readyIdx + R_BITS);
  }
}
