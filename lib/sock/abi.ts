// The socket-buffer ABI: the memory an application (libc) and the stack (tcp/udp
// servers) share for the sockets of one process, exactly as both sides lay it out.
// Paper §5.4 (socket buffers: descriptor ring + data area per direction), §5.5.4
// (private readiness notes), §5.5.5 (premapped accepts, lazy closing), §5.6.1 (the
// activity word and bitmap), §5.7 (the consumer verifies everything); docs/design.md §4.
//
// An arena is one CONTROL SAB plus SEGMENT SABs. The stack (in the real system:
// the kernel on the stack's behalf) creates both and grants them to the process;
// the arena grows by whole segments. Everything here is little-endian Int32 cells
// read and written with Atomics, except descriptor bodies and data bytes, which
// are plain writes published by the Atomics.store of a producer index.
//
// CONTROL SAB (one per process and stack server; N = maxSockets, a multiple of 32)
//
//  byte 0     +------------------------------------------------------------+
//             | APP DOORBELL   sleeping | wakes | (eventfd: always 0) |     |  line 0: the app writes when
//             |                waitSock (-1: any socket)                   |  it blocks; the stack wakes it
//  byte 64    +------------------------------------------------------------+
//             | ACTIVITY       active (app: +1 after producing;            |  line 1
//             |                stack: Atomics.exchange(0) to take)         |
//  byte 128   +------------------------------------------------------------+
//             | INFO           magic | version | maxSockets                |  line 2: stack writes once
//  byte 192   +------------------------------------------------------------+
//             | SUMMARY        ceil(N/1024) words: bit w = bitmap word w   |  app: Atomics.or
//             |                may have bits (second level of the walk)    |  stack: Atomics.exchange
//             +------------------------------------------------------------+  (each area starts on a line)
//             | BITMAP         N/32 words: bit s = socket s has TX work    |  app: Atomics.or
//             |                or freed RX room for the stack to look at   |  stack: Atomics.exchange
//             +------------------------------------------------------------+
//             | READINESS      N x { bits, events }        (8 bytes each)  |  stack writes (rarely);
//             |                bits: READABLE WRITABLE ERR HUP             |  app reads to refresh its
//             |                events: bumped on every signalled change   |  private readiness cache
//             +------------------------------------------------------------+
//             | DIRECTORY      N x 64-byte entries, stack writes:          |
//             |   type state gen flags | segment offset | txSlots txData   |
//             |   rxSlots rxData | localAddr localPort peerAddr peerPort    |
//             +------------------------------------------------------------+
//
// SOCKET BUFFER (one per socket slot, 64-byte aligned inside a segment)
//
//  +0     | TX producer   descTail                        | app writes      one line each:
//  +64    | TX consumer   descHead | dataHead             | stack writes    a side stores only
//  +128   | TX notify     consWant (stack) | prodWant (app)| both, rarely    on its own lines
//  +192   | RX producer   descTail                        | stack writes
//  +256   | RX consumer   descHead | dataHead             | app writes
//  +320   | RX notify     consWant (app) | prodWant (stack)| both, rarely
//  +384   | TX descriptors   txSlots x 16 bytes           | app writes
//         | RX descriptors   rxSlots x 16 bytes           | stack writes
//         | TX data          txData bytes (a byte ring)   | app writes
//         | RX data          rxData bytes (a byte ring)   | stack writes
//
// DESCRIPTOR (16 bytes)
//
//  +0  offset  u32  free-running data position of the first byte (DATA, DATAGRAM);
//                   the child's generation (ACCEPT)
//  +4  length  u32  bytes (DATA, DATAGRAM)
//  +8  kind    u16  DATA CLOSE CONNECT SHUTDOWN ACCEPT ERROR DATAGRAM (0 is invalid)
//  +10 port    u16  DATAGRAM: peer port; CONNECT: remote port
//  +12 arg     u32  DATAGRAM/CONNECT: IPv4 address; ACCEPT: child slot;
//                   ERROR: errno (0 = connect succeeded); SHUTDOWN: how
//
// Indices. Every index is a free-running unsigned 32-bit counter (compared with >>> 0
// arithmetic): descTail/descHead count descriptors, data positions count bytes. The
// data area of a direction is a byte ring of power-of-two size: data is allocated
// sequentially at the producer's data position (wrapping at the end, no padding) and
// freed in the same order by advancing dataHead, so there is no fragmentation
// (paper §5.4.2). The producer's data position is private: it travels in the
// descriptors. TX data may stay allocated after its descriptor was consumed (TCP
// keeps it until ACKed: the TX dataHead lags the TX descHead).
//
// Protocol (ringbuf.js, gVisor's sharedmem pipe): each side keeps private copies of
// the indices it produces, reads the other side's index once per operation, copies,
// then publishes with one Atomics.store. The notify words turn polling into events
// without a store per operation: a consumer that found its ring empty sets consWant
// and re-checks; a producer that publishes and finds consWant set clears it and
// signals (the stack: readiness event + app wake-up; the app: bitmap + active).
// Likewise prodWant for a producer that found no room. Store-then-recheck on both
// sides (Atomics are sequentially consistent) means no signal is ever lost.
//
// Trust (docs/design.md §4, paper §5.7). The app can write every byte of its arena. The stack
// never reads back a value it produced (geometry, its own indices, readiness, state:
// all kept privately) and reads each app-written value once, then validates it; an
// impossible value is a Violation: the stack counts it and resets that socket. A
// hostile app can only hurt its own sockets.

// ---------------------------------------------------------------------------------
// Layout tables (Deno std `archive/_common.ts` style): each area is a list of fields
// with their sizes; offsets are derived, never typed by hand.

interface Field {
  readonly field: string;
  readonly bytes: number;
}
type Offsets<T extends readonly Field[]> = { readonly [K in T[number]["field"]]: number };

/** Byte offsets of each field of a table, and the table's total size. */
function offsetsOf<T extends readonly Field[]>(table: T): { at: Offsets<T>; size: number } {
  const at: Record<string, number> = {};
  let o = 0;
  for (const f of table) {
    at[f.field] = o;
    o += f.bytes;
  }
  return { at: at as Offsets<T>, size: o };
}

export const LINE = 64;
const align = (n: number, a: number) => Math.ceil(n / a) * a;

/** The fixed head of the control SAB: three lines. */
export const CONTROL_LINES = [
  { field: "doorbell", bytes: LINE },
  { field: "activity", bytes: LINE },
  { field: "info", bytes: LINE },
] as const;
/** Line 0: the app's doorbell, cell-compatible with lib/ipc/doorbell.ts (see wakeApp). */
export const DOORBELL_WORDS = [
  { field: "sleeping", bytes: 4 },
  { field: "wakes", bytes: 4 },
  { field: "eventfd", bytes: 4 },
  { field: "waitSock", bytes: 4 },
] as const;
export const ACTIVITY_WORDS = [{ field: "active", bytes: 4 }] as const;
export const INFO_WORDS = [
  { field: "magic", bytes: 4 },
  { field: "version", bytes: 4 },
  { field: "maxSockets", bytes: 4 },
] as const;
/** One readiness entry per socket. */
export const READY_WORDS = [
  { field: "bits", bytes: 4 },
  { field: "events", bytes: 4 },
] as const;
/** One directory entry per socket: stack-written state words (the app reads them). */
export const DIR_WORDS = [
  { field: "type", bytes: 4 }, // SOCK_STREAM / SOCK_DGRAM, 0 when never used
  { field: "state", bytes: 4 }, // ST_*
  { field: "gen", bytes: 4 }, // bumped at every allocation: detects reuse
  { field: "flags", bytes: 4 }, // FLAG_PENDING_CLOSE, FLAG_RESET
  { field: "segment", bytes: 4 }, // segment holding the socket buffer, -1 when unmapped
  { field: "offset", bytes: 4 }, // byte offset of the socket buffer in that segment
  { field: "txSlots", bytes: 4 },
  { field: "txData", bytes: 4 },
  { field: "rxSlots", bytes: 4 },
  { field: "rxData", bytes: 4 },
  { field: "localAddr", bytes: 4 },
  { field: "localPort", bytes: 4 },
  { field: "peerAddr", bytes: 4 },
  { field: "peerPort", bytes: 4 },
  { field: "reserved0", bytes: 4 },
  { field: "reserved1", bytes: 4 },
] as const;

/** The header lines of a socket buffer. */
export const BUFFER_LINES = [
  { field: "txProducer", bytes: LINE },
  { field: "txConsumer", bytes: LINE },
  { field: "txNotify", bytes: LINE },
  { field: "rxProducer", bytes: LINE },
  { field: "rxConsumer", bytes: LINE },
  { field: "rxNotify", bytes: LINE },
] as const;
export const PRODUCER_WORDS = [{ field: "descTail", bytes: 4 }] as const;
export const CONSUMER_WORDS = [
  { field: "descHead", bytes: 4 },
  { field: "dataHead", bytes: 4 },
] as const;
export const NOTIFY_WORDS = [
  { field: "consWant", bytes: 4 }, // written by the consumer: "signal me when you publish"
  { field: "prodWant", bytes: 4 }, // written by the producer: "signal me when you free room"
] as const;

export const DESC_FIELDS = [
  { field: "offset", bytes: 4 },
  { field: "length", bytes: 4 },
  { field: "kind", bytes: 2 },
  { field: "port", bytes: 2 },
  { field: "arg", bytes: 4 },
] as const;

const CTL = offsetsOf(CONTROL_LINES);
const DB = offsetsOf(DOORBELL_WORDS).at;
const ACT = offsetsOf(ACTIVITY_WORDS).at;
const INFO = offsetsOf(INFO_WORDS).at;
const RDY = offsetsOf(READY_WORDS);
const DIR = offsetsOf(DIR_WORDS);
const BUF = offsetsOf(BUFFER_LINES);
const PROD = offsetsOf(PRODUCER_WORDS).at;
const CONS = offsetsOf(CONSUMER_WORDS).at;
const NOTE = offsetsOf(NOTIFY_WORDS).at;
const DESC = offsetsOf(DESC_FIELDS);

// --- control SAB: Int32 cell indices of the fixed head ---
export const CONTROL_HEAD_BYTES = CTL.size;
export const C_SLEEPING = (CTL.at.doorbell + DB.sleeping) >> 2;
export const C_WAKES = (CTL.at.doorbell + DB.wakes) >> 2;
export const C_EVENTFD = (CTL.at.doorbell + DB.eventfd) >> 2;
export const C_WAIT_SOCK = (CTL.at.doorbell + DB.waitSock) >> 2;
export const C_ACTIVE = (CTL.at.activity + ACT.active) >> 2;
export const C_MAGIC = (CTL.at.info + INFO.magic) >> 2;
export const C_VERSION = (CTL.at.info + INFO.version) >> 2;
export const C_MAX_SOCKETS = (CTL.at.info + INFO.maxSockets) >> 2;

// --- per-socket readiness and directory entries: cell index within an entry ---
export const READY_BYTES = RDY.size;
export const R_BITS = RDY.at.bits >> 2;
export const R_EVENTS = RDY.at.events >> 2;
export const DIR_BYTES = DIR.size;
export const D_TYPE = DIR.at.type >> 2;
export const D_STATE = DIR.at.state >> 2;
export const D_GEN = DIR.at.gen >> 2;
export const D_FLAGS = DIR.at.flags >> 2;
export const D_SEGMENT = DIR.at.segment >> 2;
export const D_OFFSET = DIR.at.offset >> 2;
export const D_TX_SLOTS = DIR.at.txSlots >> 2;
export const D_TX_DATA = DIR.at.txData >> 2;
export const D_RX_SLOTS = DIR.at.rxSlots >> 2;
export const D_RX_DATA = DIR.at.rxData >> 2;
export const D_LOCAL_ADDR = DIR.at.localAddr >> 2;
export const D_LOCAL_PORT = DIR.at.localPort >> 2;
export const D_PEER_ADDR = DIR.at.peerAddr >> 2;
export const D_PEER_PORT = DIR.at.peerPort >> 2;

// --- socket buffer: Int32 cell indices of the header words ---
export const BUFFER_HEAD_BYTES = BUF.size;
export const TX_DESC_TAIL = (BUF.at.txProducer + PROD.descTail) >> 2;
export const TX_DESC_HEAD = (BUF.at.txConsumer + CONS.descHead) >> 2;
export const TX_DATA_HEAD = (BUF.at.txConsumer + CONS.dataHead) >> 2;
export const TX_CONS_WANT = (BUF.at.txNotify + NOTE.consWant) >> 2;
export const TX_PROD_WANT = (BUF.at.txNotify + NOTE.prodWant) >> 2;
export const RX_DESC_TAIL = (BUF.at.rxProducer + PROD.descTail) >> 2;
export const RX_DESC_HEAD = (BUF.at.rxConsumer + CONS.descHead) >> 2;
export const RX_DATA_HEAD = (BUF.at.rxConsumer + CONS.dataHead) >> 2;
export const RX_CONS_WANT = (BUF.at.rxNotify + NOTE.consWant) >> 2;
export const RX_PROD_WANT = (BUF.at.rxNotify + NOTE.prodWant) >> 2;

// --- descriptors: 4 cells; kind and port share cell 2 (kind in the low half) ---
export const DESC_BYTES = DESC.size;
export const DESC_WORDS = DESC_BYTES >> 2;
export const E_OFFSET = DESC.at.offset >> 2;
export const E_LENGTH = DESC.at.length >> 2;
export const E_KIND_PORT = DESC.at.kind >> 2; // kind = cell & 0xffff, port = cell >>> 16
export const E_ARG = DESC.at.arg >> 2;
if (DESC.at.port !== DESC.at.kind + 2) throw new Error("descriptor: port must follow kind in one cell");

// Int32 cells alias the u16 kind/port pair only on a little-endian host (every host Bun runs on).
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("lib/sock assumes a little-endian host");

export const ARENA_MAGIC = 0x4e53_4b41; // "NSKA"
export const ARENA_VERSION = 1;

// ---------------------------------------------------------------------------------
// Values

/** Descriptor kinds (0 is never valid: a zeroed ring holds no descriptor). */
export const KIND_DATA = 1;
export const KIND_CLOSE = 2; // TX: the app closed the fd; RX: end of stream (EOF)
export const KIND_CONNECT = 3; // TX: connect to arg:port (nonblocking connect, §5.5.3)
export const KIND_SHUTDOWN = 4; // TX: shutdown(how = arg)
export const KIND_ACCEPT = 5; // RX: a premapped child socket (slot arg, generation offset), §5.5.5
export const KIND_ERROR = 6; // RX: errno arg (0: a connect succeeded)
export const KIND_DATAGRAM = 7; // both: one datagram, peer arg:port

/** Socket types (Linux numbers, as lib/ipc/calls.ts). */
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;

/** Socket states in the directory (the stack's word; the app reads it on slow paths). */
export const ST_FREE = 0; // not in use (mapped for reuse, or unmapped: segment -1)
export const ST_OPEN = 1; // allocated: not connected (a UDP socket, a fresh TCP socket)
export const ST_LISTENING = 2;
export const ST_CONNECTING = 3;
export const ST_CONNECTED = 4;
export const ST_CLOSING = 5; // the app closed it; the stack is finishing (draining, FIN)
export const ST_RESET = 6; // the stack reset it (peer reset, or the app broke the ABI)

/** Directory flags. */
export const FLAG_PENDING_CLOSE = 1; // the app's CLOSE was drained: the app must not touch the
//                                     slot again; it stays mapped for reuse until the stack
//                                     reallocates or reclaims it (lazy unmapping, §5.5.5)
export const FLAG_RESET = 2;

/** Readiness bits (the stack's word; poll's POLLIN/POLLOUT/POLLERR/POLLHUP). */
export const READABLE = 1;
export const WRITABLE = 2;
export const ERR = 4;
export const HUP = 8;
export const RDHUP = 16; // stream: the peer's FIN is in the RX ring (EOF after the data before it)

/** shutdown(2) how. */
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

/** Limits of the adjustable sizes (setsockopt SO_SNDBUF/SO_RCVBUF and ring slots). */
export const DEFAULT_SLOTS = 64; // paper §5.4.2
export const MIN_SLOTS = 4;
export const MAX_SLOTS = 4096;
export const DEFAULT_DATA = 64 * 1024;
export const MIN_DATA = 64;
export const MAX_DATA = 16 * 1024 * 1024;
export const MAX_DATAGRAM = 65535;
export const MAX_SOCKETS = 65536;

/** Stack-side result: the app broke the ABI on this socket (count it, reset the socket). */
export const VIOLATION = -1;

/** Why the last Violation happened (SockStack.violation). */
export const V_NONE = 0;
export const V_TX_TAIL = 1; // TX descTail claims more than txSlots descriptors in flight
export const V_TX_KIND = 2; // unknown kind, or one that does not belong in TX / this socket type
export const V_TX_DATA = 3; // DATA/DATAGRAM offset is not the next data position, or length out of bounds
export const V_TX_ARG = 4; // SHUTDOWN how out of range
export const V_RX_HEAD = 5; // RX descHead outside [pushed - rxSlots, pushed]
export const V_RX_DATA_HEAD = 6; // RX dataHead outside [pushed - rxData, pushed]

/** Ring and data-area sizes of one socket. Slots and data sizes are powers of two. */
export interface Geometry {
  txSlots: number;
  txData: number;
  rxSlots: number;
  rxData: number;
}

export const DEFAULT_GEOMETRY: Readonly<Geometry> = Object.freeze({
  txSlots: DEFAULT_SLOTS,
  txData: DEFAULT_DATA,
  rxSlots: DEFAULT_SLOTS,
  rxData: DEFAULT_DATA,
});

const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** null if g is acceptable, else why not. */
export function checkGeometry(g: Geometry): string | null {
  for (const k of ["txSlots", "rxSlots"] as const) {
    if (!isPow2(g[k]) || g[k] < MIN_SLOTS || g[k] > MAX_SLOTS) return `${k} ${g[k]} is not a power of two in [${MIN_SLOTS}, ${MAX_SLOTS}]`;
  }
  for (const k of ["txData", "rxData"] as const) {
    if (!isPow2(g[k]) || g[k] < MIN_DATA || g[k] > MAX_DATA) return `${k} ${g[k]} is not a power of two in [${MIN_DATA}, ${MAX_DATA}]`;
  }
  return null;
}

/** Byte offsets of the four areas of a socket buffer, and its size (a multiple of 64). */
export function bufferLayout(g: Geometry): { txDesc: number; rxDesc: number; txData: number; rxData: number; bytes: number } {
  const txDesc = BUFFER_HEAD_BYTES;
  const rxDesc = txDesc + g.txSlots * DESC_BYTES;
  const txData = align(rxDesc + g.rxSlots * DESC_BYTES, LINE);
  const rxData = align(txData + g.txData, LINE);
  return { txDesc, rxDesc, txData, rxData, bytes: align(rxData + g.rxData, LINE) };
}

/** Where each area of the control SAB starts, for maxSockets sockets. */
export interface ControlLayout {
  maxSockets: number;
  bitmapWords: number;
  summaryWords: number;
  /** Int32 cell indices */
  summary: number;
  bitmap: number;
  ready: number;
  dir: number;
  bytes: number;
}

export function controlLayout(maxSockets: number): ControlLayout {
  if (!Number.isInteger(maxSockets) || maxSockets < 32 || maxSockets > MAX_SOCKETS || maxSockets % 32 !== 0) {
    throw new RangeError(`maxSockets ${maxSockets} is not a multiple of 32 in [32, ${MAX_SOCKETS}]`);
  }
  const bitmapWords = maxSockets / 32;
  const summaryWords = Math.ceil(bitmapWords / 32);
  const summary = CONTROL_HEAD_BYTES;
  const bitmap = align(summary + summaryWords * 4, LINE);
  const ready = align(bitmap + bitmapWords * 4, LINE);
  const dir = align(ready + maxSockets * READY_BYTES, LINE);
  const bytes = dir + maxSockets * DIR_BYTES;
  return { maxSockets, bitmapWords, summaryWords, summary: summary >> 2, bitmap: bitmap >> 2, ready: ready >> 2, dir: dir >> 2, bytes };
}

// ---------------------------------------------------------------------------------
// The two small protocols both sides share.

/**
 * App side of the activity page (§5.6.1): marks socket `slot` for the stack's walk
 * (bitmap bit, then its summary bit) and bumps `active` unless it is already
 * non-zero. Returns true when `active` went from 0 to 1: the stack may be asleep,
 * so the caller should ring the stack's doorbell (which itself checks `sleeping`).
 * Correctness: the stack re-checks `active` after raising its sleeping flag; an
 * `active` already non-zero means the stack has yet to take it, and will.
 */
export function markActive(ctl: Int32Array, lay: ControlLayout, slot: number): boolean {
  const w = slot >>> 5;
  Atomics.or(ctl, lay.bitmap + w, 1 << (slot & 31));
  Atomics.or(ctl, lay.summary + (w >>> 5), 1 << (w & 31));
  if (Atomics.load(ctl, C_ACTIVE) !== 0) return false;
  return Atomics.add(ctl, C_ACTIVE, 1) === 0;
}

/**
 * Stack side of the app's doorbell: wakes the app if it sleeps waiting for `slot`
 * (or for any socket). Only Atomics.notify: unlike lib/ipc/doorbell.ts's Waker, it
 * never signals the eventfd named in the (app-written) doorbell line, so a hostile
 * app cannot make the stack write to an arbitrary file descriptor.
 */
export function wakeApp(ctl: Int32Array, slot: number): boolean {
  if (Atomics.load(ctl, C_SLEEPING) !== 1) return false;
  const want = Atomics.load(ctl, C_WAIT_SOCK);
  if (want !== -1 && want !== slot) return false;
  if (Atomics.compareExchange(ctl, C_SLEEPING, 1, 0) !== 1) return false;
  Atomics.add(ctl, C_WAKES, 1);
  Atomics.notify(ctl, C_SLEEPING, 1);
  return true;
}
