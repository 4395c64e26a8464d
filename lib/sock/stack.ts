// The stack's (tcp/udp server's) side of one socket buffer: drain TX with full
// validation, produce RX, publish readiness. Paper §5.4.2 and §5.7, docs/design.md §4: the
// stack keeps private copies of every index and size it produces, reads each
// app-written value once, and answers an impossible one with VIOLATION (counted;
// the caller resets the socket). Nothing here throws on anything the app wrote.
import {
  D_FLAGS,
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
  FLAG_PENDING_CLOSE,
  FLAG_RESET,
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
  READABLE,
  RX_CONS_WANT,
  RX_DATA_HEAD,
  RX_DESC_HEAD,
  RX_DESC_TAIL,
  RX_PROD_WANT,
  SHUT_RDWR,
  SOCK_DGRAM,
  SOCK_STREAM,
  ST_CLOSING,
  ST_RESET,
  TX_CONS_WANT,
  TX_DATA_HEAD,
  TX_DESC_HEAD,
  TX_DESC_TAIL,
  TX_PROD_WANT,
  V_NONE,
  V_RX_DATA_HEAD,
  V_RX_HEAD,
  V_TX_ARG,
  V_TX_DATA,
  V_TX_KIND,
  V_TX_TAIL,
  VIOLATION,
  WRITABLE,
  type ControlLayout,
  type Geometry,
  bufferLayout,
  markActive,
  wakeApp,
} from "./abi.ts";
import { ECONNRESET } from "../sys/errno.ts";

/**
 * One validated TX descriptor, as drainTx hands it to its callback. The object is
 * the socket's scratch: valid only during the call (copy what you keep).
 */
export interface TxDesc {
  kind: number; // KIND_DATA, KIND_DATAGRAM, KIND_CLOSE, KIND_CONNECT, KIND_SHUTDOWN
  /** DATA/DATAGRAM: free-running TX data position of the first byte (for copyTx). */
  offset: number;
  length: number;
  /** DATAGRAM/CONNECT: IPv4 address (u32); SHUTDOWN: how. */
  arg: number;
  port: number;
}

/** drainTx's callback. Pass a function made once (a method bound at init), not a fresh closure per call. */
export type TxHandler = (d: TxDesc, s: SockStack) => void;

// Header cells the stack (re)initialises when it hands a buffer out.
const HEADER_CELLS = [
  TX_DESC_TAIL,
  TX_DESC_HEAD,
  TX_DATA_HEAD,
  TX_CONS_WANT,
  TX_PROD_WANT,
  RX_DESC_TAIL,
  RX_DESC_HEAD,
  RX_DATA_HEAD,
  RX_CONS_WANT,
  RX_PROD_WANT,
];

export class SockStack {
  readonly slot: number;
  /** Where the buffer lives (the arena's private record, never read from shared memory). */
  readonly segment: number;
  readonly offset: number;
  readonly geometry: Readonly<Geometry>;
  // views
  private readonly ctl: Int32Array;
  private readonly lay: ControlLayout;
  private readonly readyIdx: number;
  private readonly dirIdx: number;
  private readonly w: Int32Array;
  private readonly txBytes: Uint8Array;
  private readonly rxBytes: Uint8Array;
  private readonly txSlots: number;
  private readonly txSize: number;
  private readonly rxSlots: number;
  private readonly rxSize: number;
  private readonly txDescBase: number;
  private readonly rxDescBase: number;
  // private copies: TX (consumer)
  private txHead = 0; // descriptors consumed
  private txDrained = 0; // data position after the last drained DATA/DATAGRAM
  private txDataHead = 0; // data position released (freed to the app)
  private txHeadPub = 0; // last values published, to skip redundant stores
  private txDataHeadPub = 0;
  // private copies: RX (producer)
  private rxTail = 0; // descriptors published
  private rxDataTail = 0; // data position after the last byte pushed
  private rxHeadSeen = 0; // app's RX descHead, last validated value
  private rxDataHeadSeen = 0; // app's RX dataHead, last validated value
  // readiness and state, as published
  private bits = 0;
  private events = 0;
  private flags = 0;
  private _type = 0;
  private _gen = 0;
  private _state = 0;
  private dead = true; // reset or released: no more draining or pushing
  private closed = false; // the app's CLOSE was drained
  private deadTail = 0; // the app's TX tail when the stack reset the socket
  /** Keep TX data allocated after draining until releaseTx (TCP: until ACKed). */
  retainTx = false;

  /** Violations seen on this socket (ever), and the reason of the last one (V_*). */
  violations = 0;
  violation = V_NONE;
  /** drainTx's scratch descriptor. */
  readonly desc: TxDesc = { kind: 0, offset: 0, length: 0, arg: 0, port: 0 };

  constructor(ctl: Int32Array, lay: ControlLayout, slot: number, seg: SharedArrayBuffer, segment: number, offset: number, g: Geometry) {
    this.ctl = ctl;
    this.lay = lay;
    this.slot = slot;
    this.segment = segment;
    this.offset = offset;
    this.geometry = Object.freeze({ ...g });
    this.readyIdx = lay.ready + slot * 2;
    this.dirIdx = lay.dir + slot * 16;
    const b = bufferLayout(g);
    this.w = new Int32Array(seg, offset, b.txData >> 2);
    this.txDescBase = b.txDesc >> 2;
    this.rxDescBase = b.rxDesc >> 2;
    this.txBytes = new Uint8Array(seg, offset + b.txData, g.txData);
    this.rxBytes = new Uint8Array(seg, offset + b.rxData, g.rxData);
    this.txSlots = g.txSlots;
    this.txSize = g.txData;
    this.rxSlots = g.rxSlots;
    this.rxSize = g.rxData;
  }

  get type(): number {
    return this._type;
  }
  get gen(): number {
    return this._gen;
  }
  get state(): number {
    return this._state;
  }
  /** True once reset or released: the socket takes no more work. */
  get isDead(): boolean {
    return this.dead;
  }
  /** True once the app's CLOSE was drained. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * (Re)initialises the buffer for a new owner: every index to zero, private copies
   * likewise, consWant armed on TX so the app's first post marks the socket. The
   * arena publishes the directory entry (type, gen, geometry, state) afterwards.
   */
  init(type: number, gen: number, state: number, retainTx: boolean): void {
    for (const c of HEADER_CELLS) Atomics.store(this.w, c, 0);
    Atomics.store(this.w, TX_CONS_WANT, 1);
    this.txHead = this.txDrained = this.txDataHead = this.txHeadPub = this.txDataHeadPub = 0;
    this.rxTail = this.rxDataTail = this.rxHeadSeen = this.rxDataHeadSeen = 0;
    this._type = type;
    this._gen = gen;
    this._state = state;
    this.retainTx = retainTx;
    this.dead = this.closed = false;
    this.flags = 0;
    this.violation = V_NONE;
    this.bits = -1; // force the publish below
    this.setReadiness(WRITABLE);
  }

  /** Marks the socket dead without telling the app (the arena's release). */
  kill(): void {
    this.dead = true;
  }

  private violate(code: number): number {
    this.violation = code;
    this.violations++;
    return VIOLATION;
  }

  // ------------------------------------------------------------------ directory

  setState(state: number): void {
    this._state = state;
    Atomics.store(this.ctl, this.dirIdx + D_STATE, state);
  }
  private setFlags(flags: number): void {
    this.flags = flags;
    Atomics.store(this.ctl, this.dirIdx + D_FLAGS, flags);
  }
  /** Publishes the addresses getsockname/getpeername answer from. */
  setAddrs(localAddr: number, localPort: number, peerAddr: number, peerPort: number): void {
    const c = this.ctl;
    const d = this.dirIdx;
    Atomics.store(c, d + D_LOCAL_ADDR, localAddr | 0);
    Atomics.store(c, d + D_LOCAL_PORT, localPort);
    Atomics.store(c, d + D_PEER_ADDR, peerAddr | 0);
    Atomics.store(c, d + D_PEER_PORT, peerPort);
  }
  /** The closed-but-mapped mark (§5.5.5), set by the arena on release. */
  markPendingClose(): void {
    this.setFlags(this.flags | FLAG_PENDING_CLOSE);
  }

  // ------------------------------------------------------------------ readiness

  /**
   * Publishes readiness bits (READABLE WRITABLE ERR HUP) if they changed: bumps the
   * event count and wakes the app if it sleeps on this socket.
   */
  setReadiness(bits: number): void {
    if (bits === this.bits) return;
    this.bits = bits;
    this.signal(0);
  }
  /** ORs `bit` into the readiness bits and publishes an event (the app asked via a want word). */
  private signal(bit: number): void {
    this.bits |= bit;
    this.events = (this.events + 1) | 0;
    Atomics.store(this.ctl, this.readyIdx + R_BITS, this.bits);
    Atomics.store(this.ctl, this.readyIdx + R_EVENTS, this.events);
    wakeApp(this.ctl, this.slot);
  }
  get readiness(): number {
    return this.bits;
  }

  // ------------------------------------------------------------------ TX (consume)

  /**
   * Drains up to `budget` TX descriptors, validating each, and calls fn for each
   * valid one. Returns the number delivered, or VIOLATION: everything before the bad
   * descriptor was delivered, the bad one was not; the socket should be reset.
   * When the ring is empty it arms consWant (so the app marks the socket on its next
   * post); when the budget runs out it marks the socket itself for the next walk.
   * Without retainTx, each descriptor's data is freed once fn returns.
   */
  drainTx(fn: TxHandler, budget = 0x7fffffff): number {
    if (this.dead || this.closed) return 0;
    const w = this.w;
    const mask = this.txSlots - 1;
    const d = this.desc;
    let count = 0;
    let armed = false;
    for (;;) {
      const tail = Atomics.load(w, TX_DESC_TAIL) >>> 0; // read once per batch
      let n = (tail - this.txHead) >>> 0;
      if (n > this.txSlots) {
        this.publishTx();
        return this.violate(V_TX_TAIL);
      }
      if (n === 0) {
        if (armed) break;
        if (Atomics.load(w, TX_CONS_WANT) !== 1) Atomics.store(w, TX_CONS_WANT, 1);
        armed = true; // and look once more: the app publishes, then reads consWant
        continue;
      }
      armed = false;
      for (; n > 0; n--) {
        if (count >= budget) {
          this.publishTx();
          markActive(this.ctl, this.lay, this.slot); // come back next walk
          return count;
        }
        const i = this.txDescBase + (this.txHead & mask) * DESC_WORDS;
        // every shared value read exactly once
        const off = w[i + E_OFFSET]! >>> 0;
        const len = w[i + E_LENGTH]! >>> 0;
        const kp = w[i + E_KIND_PORT]!;
        const arg = w[i + E_ARG]! >>> 0;
        const kind = kp & 0xffff;
        if (kind === KIND_DATA || kind === KIND_DATAGRAM) {
          if (kind === KIND_DATA ? this._type !== SOCK_STREAM : this._type !== SOCK_DGRAM) return this.txBad(V_TX_KIND);
          // sequential allocation: it must start where the last one ended, and fit
          // between what we have not freed yet and the end of the area
          if (off !== this.txDrained) return this.txBad(V_TX_DATA);
          if (kind === KIND_DATA ? len === 0 || len > this.txSize : len > this.txSize || len > MAX_DATAGRAM) return this.txBad(V_TX_DATA);
          if ((this.txDrained + len - this.txDataHead) >>> 0 > this.txSize) return this.txBad(V_TX_DATA);
          this.txDrained = (off + len) >>> 0;
        } else if (kind === KIND_SHUTDOWN) {
          if (arg > SHUT_RDWR) return this.txBad(V_TX_ARG);
        } else if (kind !== KIND_CLOSE && kind !== KIND_CONNECT) return this.txBad(V_TX_KIND);
        this.txHead = (this.txHead + 1) >>> 0;
        count++;
        d.kind = kind;
        d.offset = off;
        d.length = len;
        d.arg = arg;
        d.port = kp >>> 16;
        fn(d, this);
        if (!this.retainTx) this.txDataHead = this.txDrained;
        if (this.dead) return count; // fn reset the socket
        if (kind === KIND_CLOSE) {
          // §5.5.3: the app has forgotten the socket; nothing after CLOSE is read
          this.closed = true;
          this.setState(ST_CLOSING);
          this.setFlags(this.flags | FLAG_PENDING_CLOSE);
          this.publishTx();
          return count;
        }
      }
    }
    this.publishTx();
    return count;
  }

  private txBad(code: number): number {
    this.publishTx();
    return this.violate(code);
  }

  /** Publishes the TX heads that changed, then signals WRITABLE if the app asked for room. */
  private publishTx(): void {
    const w = this.w;
    let freed = false;
    if (this.txDataHead !== this.txDataHeadPub) {
      this.txDataHeadPub = this.txDataHead;
      Atomics.store(w, TX_DATA_HEAD, this.txDataHead | 0);
      freed = true;
    }
    if (this.txHead !== this.txHeadPub) {
      this.txHeadPub = this.txHead;
      Atomics.store(w, TX_DESC_HEAD, this.txHead | 0);
      freed = true;
    }
    if (freed && Atomics.load(w, TX_PROD_WANT) !== 0 && Atomics.exchange(w, TX_PROD_WANT, 0) !== 0) this.signal(WRITABLE);
  }

  /** Bytes drained but not yet released (TCP: the send queue, sent or not). */
  get txRetained(): number {
    return (this.txDrained - this.txDataHead) >>> 0;
  }
  /** Data position of the oldest retained byte (TCP: maps to snd.una). */
  get txReleasedTo(): number {
    return this.txDataHead;
  }

  /**
   * Copies `len` retained TX bytes starting at data position `pos` into dst at
   * dstOff. False (nothing copied) if the range is not retained data.
   */
  copyTx(pos: number, len: number, dst: Uint8Array, dstOff = 0): boolean {
    const start = (pos - this.txDataHead) >>> 0;
    if (start + len > ((this.txDrained - this.txDataHead) >>> 0) || dstOff + len > dst.length) return false;
    const at = pos & (this.txSize - 1);
    const first = this.txSize - at;
    if (len <= first) dst.set(this.txBytes.subarray(at, at + len), dstOff);
    else {
      dst.set(this.txBytes.subarray(at, this.txSize), dstOff);
      dst.set(this.txBytes.subarray(0, len - first), dstOff + first);
    }
    return true;
  }

  /** Frees the oldest `bytes` retained TX bytes, in order (TCP: when ACKed). False if more than retained. */
  releaseTx(bytes: number): boolean {
    if (!(bytes >= 0 && bytes <= this.txRetained)) return false;
    this.txDataHead = (this.txDataHead + bytes) >>> 0;
    this.publishTx();
    return true;
  }

  // ------------------------------------------------------------------ RX (produce)

  /** Reads and validates the app's RX heads (each once). False on a violation. */
  private rxRefresh(): boolean {
    const h = Atomics.load(this.w, RX_DESC_HEAD) >>> 0;
    const dh = Atomics.load(this.w, RX_DATA_HEAD) >>> 0;
    if ((this.rxTail - h) >>> 0 > this.rxSlots) {
      this.violate(V_RX_HEAD);
      return false;
    }
    if ((this.rxDataTail - dh) >>> 0 > this.rxSize) {
      this.violate(V_RX_DATA_HEAD);
      return false;
    }
    this.rxHeadSeen = h;
    this.rxDataHeadSeen = dh;
    return true;
  }
  private rxSlotsFree(): number {
    return this.rxSlots - ((this.rxTail - this.rxHeadSeen) >>> 0);
  }
  private rxBytesFree(): number {
    return this.rxSize - ((this.rxDataTail - this.rxDataHeadSeen) >>> 0);
  }

  /**
   * Room for one descriptor and `need` bytes (min bytes, 1..need for streams)?
   * Returns the free bytes (>= min), 0 when there is not enough (prodWant is then
   * armed: the app marks the socket when it frees room), or VIOLATION.
   */
  private rxRoom(need: number, min: number): number {
    if (this.rxSlotsFree() > 0 && this.rxBytesFree() >= need) return this.rxBytesFree();
    if (!this.rxRefresh()) return VIOLATION;
    if (this.rxSlotsFree() > 0 && this.rxBytesFree() >= min) return this.rxBytesFree();
    if (Atomics.load(this.w, RX_PROD_WANT) !== 1) Atomics.store(this.w, RX_PROD_WANT, 1);
    if (!this.rxRefresh()) return VIOLATION; // the app consumes, then reads prodWant
    return this.rxSlotsFree() > 0 && this.rxBytesFree() >= min ? this.rxBytesFree() : 0;
  }

  /** Writes a descriptor at rxTail, publishes it with one store, signals READABLE if the app asked. */
  private push(kind: number, offset: number, length: number, arg: number, port: number): void {
    const w = this.w;
    const i = this.rxDescBase + (this.rxTail & (this.rxSlots - 1)) * DESC_WORDS;
    w[i + E_OFFSET] = offset | 0;
    w[i + E_LENGTH] = length | 0;
    w[i + E_KIND_PORT] = kind | (port << 16);
    w[i + E_ARG] = arg | 0;
    this.rxTail = (this.rxTail + 1) >>> 0;
    Atomics.store(w, RX_DESC_TAIL, this.rxTail | 0);
    if (Atomics.load(w, RX_CONS_WANT) !== 0 && Atomics.exchange(w, RX_CONS_WANT, 0) !== 0) this.signal(READABLE);
  }

  private copyIn(src: Uint8Array, srcOff: number, n: number): void {
    const at = this.rxDataTail & (this.rxSize - 1);
    const first = this.rxSize - at;
    if (n <= first) this.rxBytes.set(src.subarray(srcOff, srcOff + n), at);
    else {
      this.rxBytes.set(src.subarray(srcOff, srcOff + first), at);
      this.rxBytes.set(src.subarray(srcOff + first, srcOff + n), 0);
    }
  }

  /**
   * Stream data for the app: pushes as much of src[srcOff, srcOff+len) as fits as one
   * DATA descriptor. Returns the bytes pushed (0: no room now, prodWant armed), or
   * VIOLATION.
   */
  pushRx(src: Uint8Array, srcOff = 0, len = src.length - srcOff): number {
    if (this.dead || len <= 0) return 0;
    const room = this.rxRoom(len, 1);
    if (room <= 0) return room;
    const n = len < room ? len : room;
    this.copyIn(src, srcOff, n);
    const at = this.rxDataTail;
    this.rxDataTail = (at + n) >>> 0;
    this.push(KIND_DATA, at, n, 0, 0);
    return n;
  }

  /** One datagram from addr:port, whole: 1 pushed, 0 no room (drop it), VIOLATION. */
  pushDatagram(src: Uint8Array, addr: number, port: number, srcOff = 0, len = src.length - srcOff): number {
    if (this.dead || len > this.rxSize || len > MAX_DATAGRAM || len < 0) return 0;
    const room = this.rxRoom(len, len);
    if (room < 0) return room;
    if (room < len || this.rxSlotsFree() <= 0) return 0;
    if (len > 0) this.copyIn(src, srcOff, len);
    const at = this.rxDataTail;
    this.rxDataTail = (at + len) >>> 0;
    this.push(KIND_DATAGRAM, at, len, addr, port & 0xffff);
    return 1;
  }

  /** A descriptor without data: 1 pushed, 0 no slot now (prodWant armed: retry when marked), VIOLATION. */
  private pushCtl(kind: number, offset: number, arg: number): number {
    if (this.dead) return 0;
    const room = this.rxRoom(0, 0);
    if (room < 0) return room;
    if (this.rxSlotsFree() <= 0) return 0;
    this.push(kind, offset, 0, arg, 0);
    return 1;
  }

  /** Announces a premapped child socket on this listening socket (§5.5.5). */
  pushAccept(child: number, childGen: number): number {
    return this.pushCtl(KIND_ACCEPT, childGen, child);
  }
  /** Queues an errno for the app (0: a CONNECT succeeded). */
  pushError(errno: number): number {
    return this.pushCtl(KIND_ERROR, 0, errno);
  }
  /** End of stream: reads return 0 after the data before it. */
  pushEof(): number {
    return this.pushCtl(KIND_CLOSE, 0, 0);
  }

  /** RX bytes free now (TCP's receive window), or VIOLATION. */
  rxFree(): number {
    if (!this.rxRefresh()) return VIOLATION;
    return this.rxSlotsFree() > 0 ? this.rxBytesFree() : 0;
  }
  /**
   * RX bytes the stack may push now as one DATA descriptor (a free slot and at least
   * one byte), or 0 with prodWant armed, whichever of slots or bytes ran out, so the
   * app marks the socket when it frees room; or VIOLATION. A stream's pump asks this
   * before it takes bytes from its connection.
   */
  rxSpace(): number {
    const free = this.rxFree();
    return free !== 0 ? free : this.rxRoom(1, 1);
  }
  /** RX data bytes the app has not consumed yet (EOF and errors are not data), or VIOLATION. */
  rxUnreadBytes(): number {
    if (!this.rxRefresh()) return VIOLATION;
    return (this.rxDataTail - this.rxDataHeadSeen) >>> 0;
  }
  /** RX descriptors the app has not consumed yet (e.g. un-accepted children), or VIOLATION. */
  rxUnread(): number {
    if (!this.rxRefresh()) return VIOLATION;
    return (this.rxTail - this.rxHeadSeen) >>> 0;
  }

  /**
   * RX descriptor slots free now, or VIOLATION. With fewer than `want`, prodWant is
   * armed (the app marks the socket when it consumes) and the ring looked at again.
   */
  rxSlotsNow(want = 1): number {
    if (!this.rxRefresh()) return VIOLATION;
    if (this.rxSlotsFree() >= want) return this.rxSlotsFree();
    if (Atomics.load(this.w, RX_PROD_WANT) !== 1) Atomics.store(this.w, RX_PROD_WANT, 1);
    if (!this.rxRefresh()) return VIOLATION;
    return this.rxSlotsFree();
  }

  /**
   * For a socket the stack gave up on (reset) or stopped draining: has the app posted
   * a descriptor since? The only thing an app does with such a socket is close it, so
   * the stack takes any post as its CLOSE. Reads the app's tail once.
   */
  txPosted(): boolean {
    const tail = Atomics.load(this.w, TX_DESC_TAIL) >>> 0;
    if (!this.dead) return tail !== this.txHead;
    // Reset: look for the CLOSE among what was posted since (an app that had not noticed
    // the reset may have posted data first). Each descriptor read once; a hostile app can
    // only fake the close of its own socket.
    const n = (tail - this.deadTail) >>> 0;
    if (n === 0 || n > this.txSlots) return n !== 0;
    const mask = this.txSlots - 1;
    for (let i = 0; i < n; i++) {
      const at = this.txDescBase + ((this.deadTail + i) & mask) * DESC_WORDS;
      if ((this.w[at + E_KIND_PORT]! & 0xffff) === KIND_CLOSE) return true;
    }
    this.deadTail = tail; // data: skip it next time
    return false;
  }

  // ------------------------------------------------------------------ reset

  /**
   * The stack gives up on this socket (the app broke the ABI, or the peer reset):
   * best effort ERROR(errno) + EOF into RX, state RESET, readiness ERR|HUP, and no
   * more draining or pushing. The slot stays allocated until the arena releases it.
   */
  reset(errno = ECONNRESET): void {
    if (this.dead) return;
    const v = this.violations;
    const why = this.violation;
    this.pushError(errno);
    this.pushEof();
    this.violations = v; // the ring may be what broke: do not count it twice
    this.violation = why;
    this.dead = true;
    // From now on any post is the app's CLOSE (txPosted): arm consWant so it marks the socket.
    Atomics.store(this.w, TX_CONS_WANT, 1);
    this.deadTail = Atomics.load(this.w, TX_DESC_TAIL) >>> 0;
    this.setState(ST_RESET);
    this.setFlags(this.flags | FLAG_RESET);
    this.setReadiness(this.bits | ERR | HUP | READABLE | WRITABLE);
  }

  /** For the arena's resize: true if both directions are empty (nothing in flight). */
  isIdle(): boolean {
    const tail = Atomics.load(this.w, TX_DESC_TAIL) >>> 0;
    if (tail !== this.txHead || this.txRetained !== 0) return false;
    return this.rxRefresh() && this.rxHeadSeen === this.rxTail;
  }
}
