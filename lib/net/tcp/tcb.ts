// tcb.ts — the TCP control block: configuration, states, events and every per-connection field.
//
// The Tcb is plain data (numbers, booleans, small arrays of numbers) so that it can be
// copied with structuredClone/JSON and, later, mirrored into a SharedArrayBuffer: a
// restarted TCP server re-attaches to its control blocks and carries on (docs/design.md §6).
// Times are milliseconds on the caller's clock; "no deadline" is -1 (JSON has no
// Infinity). Sequence numbers are u32 compared with seq.ts.
//
// The byte buffers (send queue, receive queue with its reassembly ranges) live beside
// the Tcb in ring.ts: in the server they are the application-shared socket buffers.

import type { TcpRepr } from "../types.ts";
import type { RecvBuffer, SendBuffer } from "./ring.ts";

/** RFC 9293 §3.3.2 connection states. Numeric so a Tcb stays plain data. */
export const TcpState = {
  CLOSED: 0,
  LISTEN: 1,
  SYN_SENT: 2,
  SYN_RECEIVED: 3,
  ESTABLISHED: 4,
  FIN_WAIT_1: 5,
  FIN_WAIT_2: 6,
  CLOSE_WAIT: 7,
  CLOSING: 8,
  LAST_ACK: 9,
  TIME_WAIT: 10,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

const STATE_NAMES = Object.fromEntries(Object.entries(TcpState).map(([k, v]) => [v, k])) as Record<number, string>;
/** "ESTABLISHED", "TIME_WAIT", … for logs and test messages. */
export function stateName(s: TcpState): string {
  return STATE_NAMES[s] ?? `?${s}`;
}

/**
 * What a connection tells its owner. Drained with `TcpConnection.events()`, in the
 * order they happened. "closed" is always the last event of a connection: the Tcb
 * may be freed and removed from the table. "reset" (peer RST, or refused in
 * SYN-SENT) and "timed-out" (retransmissions, keepalive or zero-window probes gave
 * up) are followed by "closed".
 */
export type TcpEvent =
  | "connected" // handshake completed (ESTABLISHED)
  | "readable" // new in-order bytes can be read with recv()
  | "writable" // ACKed bytes freed room in the send buffer
  | "peer-closed" // the peer's FIN arrived in order: after the buffered bytes, EOF
  | "reset" // the connection was reset by the peer
  | "timed-out" // the peer stopped answering
  | "closed"; // the connection reached CLOSED

/** An IPv4 transport endpoint: u32 address and 16-bit port. */
export interface Endpoint {
  addr: number;
  port: number;
}

/** Knobs of a connection. Every field is optional; `resolveConfig` fills defaults. */
export interface TcpConfig {
  /** MSS we advertise and the most payload we put in one segment (default 1460). */
  mss?: number;
  /**
   * Floor of the send MSS (default 64). A hostile peer announcing MSS 1 (or 0) would
   * make us send one-byte segments forever; we send at least this much instead.
   */
  minMss?: number;
  /** Send buffer size in bytes (default 256 KiB). */
  sendBufferSize?: number;
  /** Receive buffer size in bytes (default 256 KiB); the largest window we offer. */
  recvBufferSize?: number;
  /** Offer RFC 7323 window scaling (default: when a buffer exceeds 64 KiB). */
  windowScaling?: boolean;
  /** Offer RFC 2018 SACK (default true). */
  sack?: boolean;
  /** Offer RFC 7323 timestamps (default true). */
  timestamps?: boolean;
  /** TCP_NODELAY: disable Nagle (default false). */
  noDelay?: boolean;
  /** Delayed-ACK timeout (default 40 ms; 0 acks every segment at once). */
  delayedAckMs?: number;
  /** RTO before any RTT sample (default 1000 ms, RFC 6298 §2.1). */
  initialRtoMs?: number;
  /** Floor of the RTO (default 200 ms, as Linux; RFC 6298 says 1 s). */
  minRtoMs?: number;
  /** Ceiling of the RTO (default 60 s, RFC 6298 §2.5). */
  maxRtoMs?: number;
  /** Maximum segment lifetime; TIME-WAIT lasts 2*MSL (default 30 s). */
  mslMs?: number;
  /** How long an orphaned (close()d) connection may sit in FIN-WAIT-2 (default 60 s). */
  finWait2TimeoutMs?: number;
  /** SYN / SYN-ACK retransmissions before giving up (default 6). */
  synRetries?: number;
  /** Data retransmissions (or unanswered zero-window probes) before giving up (default 15). */
  maxRetries?: number;
  /** SO_KEEPALIVE (default false), idle time, probe interval, probe count (7200 s, 75 s, 9). */
  keepalive?: boolean;
  keepIdleMs?: number;
  keepIntervalMs?: number;
  keepCount?: number;
  /** RFC 5961 §7: challenge ACKs allowed per second per connection (default 10). */
  challengeAckLimit?: number;
  /** Added to `now` to form TSval; servers should pick it per connection (RFC 7323 §7.1). */
  tsOffset?: number;
  /** Most out-of-order ranges kept for reassembly (default 32); beyond, segments are dropped. */
  maxOooRanges?: number;
}

export type ResolvedConfig = Required<TcpConfig>;

export const DEFAULT_MSS = 1460;
/** RFC 9293 §3.7.1: the send MSS when the peer sends no MSS option. */
export const DEFAULT_PEER_MSS = 536;
/** Length of the timestamp option as sent (two NOPs + 10 bytes). */
export const TS_OPTION_LEN = 12;

export function resolveConfig(cfg: TcpConfig = {}): ResolvedConfig {
  const sendBufferSize = Math.max(1024, cfg.sendBufferSize ?? 256 * 1024);
  const recvBufferSize = Math.max(1024, Math.min(cfg.recvBufferSize ?? 256 * 1024, 1 << 30));
  const minMss = Math.max(16, cfg.minMss ?? 64);
  return {
    mss: Math.max(minMss, Math.min(cfg.mss ?? DEFAULT_MSS, 65495)),
    minMss,
    sendBufferSize,
    recvBufferSize,
    windowScaling: cfg.windowScaling ?? (recvBufferSize > 65535 || sendBufferSize > 65535),
    sack: cfg.sack ?? true,
    timestamps: cfg.timestamps ?? true,
    noDelay: cfg.noDelay ?? false,
    delayedAckMs: Math.max(0, cfg.delayedAckMs ?? 40),
    initialRtoMs: cfg.initialRtoMs ?? 1000,
    minRtoMs: Math.max(1, cfg.minRtoMs ?? 200),
    maxRtoMs: cfg.maxRtoMs ?? 60_000,
    mslMs: cfg.mslMs ?? 30_000,
    finWait2TimeoutMs: cfg.finWait2TimeoutMs ?? 60_000,
    synRetries: cfg.synRetries ?? 6,
    maxRetries: cfg.maxRetries ?? 15,
    keepalive: cfg.keepalive ?? false,
    keepIdleMs: cfg.keepIdleMs ?? 7_200_000,
    keepIntervalMs: cfg.keepIntervalMs ?? 75_000,
    keepCount: cfg.keepCount ?? 9,
    challengeAckLimit: cfg.challengeAckLimit ?? 10,
    tsOffset: (cfg.tsOffset ?? 0) >>> 0,
    maxOooRanges: Math.max(1, cfg.maxOooRanges ?? 32),
  };
}

/** The smallest shift that fits `bufSize` into the 16-bit window field, at most 14 (RFC 7323 §2.3). */
export function wscaleFor(bufSize: number): number {
  let s = 0;
  while (s < 14 && bufSize >>> s > 65535) s++;
  return s;
}

/** The control block. Every field states its invariant. */
export interface Tcb {
  /** Current RFC 9293 state. */
  state: TcpState;
  /** Our address and port; the remote ones. Fixed once connect/accept sets them. */
  localAddr: number;
  localPort: number;
  remoteAddr: number;
  remotePort: number;
  /** True when we sent the first SYN (active open); false when accepted from a listener. */
  activeOpen: boolean;

  // ---- Send sequence space (RFC 9293 §3.3.1). iss <= sndUna <= sndNxt <= sndMax.
  /** Initial send sequence number; our SYN has this number. */
  iss: number;
  /** Oldest unacknowledged sequence number (SND.UNA). */
  sndUna: number;
  /** Next sequence number to send (SND.NXT). Pulled back to sndUna after an RTO (go-back-N). */
  sndNxt: number;
  /** One past the highest sequence number ever sent (BSD snd_max). ACKs above it are invalid. */
  sndMax: number;
  /** End of the last sub-MSS segment sent (Minshall's Nagle), -1 when none was. */
  smallEnd: number;
  /** Sequence number of the first byte in the send buffer; sndBufSeq + send.length = end of data. */
  sndBufSeq: number;
  /** Peer's offered window in bytes, already scaled (SND.WND). */
  sndWnd: number;
  /** Segment seq / ack of the last window update (SND.WL1, SND.WL2). */
  sndWl1: number;
  sndWl2: number;
  /** Largest window the peer ever offered (RFC 5961 §5.2 MAX.SND.WND). */
  maxSndWnd: number;
  /** Shift applied to window fields we receive (peer's WS option), 0..14; 0 when not negotiated. */
  sndWscale: number;
  /** Largest payload we put in a segment: clamp(peer MSS, minMss, cfg.mss) less option bytes. >= minMss. */
  sndMss: number;
  /** The application asked to close the sending side: a FIN follows the buffered data. */
  finQueued: boolean;

  // ---- Receive sequence space.
  /** Peer's initial sequence number (IRS). */
  irs: number;
  /** Next sequence number expected (RCV.NXT); everything before it is in the receive buffer or read. */
  rcvNxt: number;
  /** Right edge of the window we last advertised (RCV.NXT + RCV.WND as sent). Never moves left. */
  rcvAdv: number;
  /** Shift applied to window fields we send, 0..14; 0 when not negotiated. */
  rcvWscale: number;
  /** MSS we advertised in our SYN. */
  rcvMss: number;
  /** Largest payload seen from the peer (an estimate of its send MSS), for delayed ACK. */
  rcvMssSeen: number;
  /** Sequence number of the peer's FIN once it arrived (maybe out of order), else -1. */
  rcvFinSeq: number;
  /** RCV.NXT as carried in the last ACK we sent (RFC 7323 Last.ACK.sent). */
  lastAckSent: number;

  // ---- Negotiated options.
  /** Both sides sent window-scale options (RFC 7323 §2.2). */
  wsOk: boolean;
  /** Both sides sent SACK-permitted (RFC 2018 §2). */
  sackOk: boolean;
  /** Both sides sent timestamps (RFC 7323 §3.2). */
  tsOk: boolean;
  /** TS.Recent: the TSval to echo. Valid only when tsOk. */
  tsRecent: number;
  /** When tsRecent was last updated (ms); PAWS ignores a TS.Recent idle for 24 days. */
  tsRecentAge: number;
  /** Added to `now` to form our TSval. */
  tsOffset: number;

  // ---- Acknowledgement generation.
  /** An ACK must go out at the next poll (delayed ACK fired, out-of-order data, window update…). */
  ackNow: boolean;
  /** In-order payload bytes received since our last ACK. */
  unackedBytes: number;
  /** Delayed-ACK deadline, or -1. */
  delackDeadline: number;
  /** RFC 5961 §7 rate limit: challenge ACKs sent in the current one-second window. */
  challengeCount: number;
  /** Start of the current challenge-ACK window (ms). */
  challengeWindowStart: number;

  // ---- RTT estimation and retransmission timer (RFC 6298).
  /** Smoothed RTT in ms; 0 before the first sample. */
  srtt: number;
  /** RTT variation in ms. */
  rttvar: number;
  /** Current RTO in ms, minRto <= rto <= maxRto; doubled on each expiry (backoff). */
  rto: number;
  /** Without timestamps: the sequence number being timed, or -1 (Karn: never a retransmitted one). */
  rttSeq: number;
  /** When rttSeq was sent. */
  rttTime: number;
  /** Retransmission-timer deadline, or -1. Running whenever data is outstanding, except while persisting. */
  rtoDeadline: number;
  /** Consecutive RTO expiries (or unanswered probes) without progress; past the limit: timed-out. */
  retries: number;

  // ---- Congestion control (RFC 5681, RFC 6582, RFC 6675-lite).
  /** Congestion window in bytes, >= sndMss. */
  cwnd: number;
  /** Slow-start threshold in bytes. */
  ssthresh: number;
  /** Bytes acked in congestion avoidance since cwnd last grew (RFC 5681 §3.1 byte counting). */
  caAcked: number;
  /** Consecutive duplicate ACKs (RFC 5681 §2 definition). */
  dupAcks: number;
  /** In fast recovery (RFC 6582). */
  inRecovery: boolean;
  /** RFC 6582 "recover": sndMax when recovery (or an RTO) began. */
  recover: number;
  /** Highest sequence retransmitted during this recovery (RFC 6675 HighRxt). */
  highRxt: number;
  /** Retransmissions allowed at the next output, one per ACK received in recovery. */
  rexmitCredit: number;
  /** When we last sent a segment carrying data (ms), for the RFC 5681 §4.1 restart window; -1 never. */
  lastDataSent: number;
  /** Scoreboard: SACKed ranges [left, right) above sndUna, sorted and disjoint, at most 16. */
  sacked: Array<[number, number]>;

  // ---- Zero-window probing (RFC 9293 §3.8.6.1).
  /** Persist-timer deadline, or -1. Armed when the peer's window is closed and nothing else is timing. */
  persistDeadline: number;
  /** Probes sent in this persist episode (backoff exponent). */
  persistBackoff: number;
  /** The next output must send one byte past the closed window. */
  persistProbe: boolean;

  // ---- Keepalive (RFC 9293 §3.8.4).
  keepalive: boolean;
  keepIdleMs: number;
  keepIntervalMs: number;
  keepCount: number;
  /** Unanswered keepalive probes. */
  keepProbes: number;
  /** Next keepalive probe, or -1. */
  keepDeadline: number;
  /** A keepalive probe must go out at the next output. */
  keepProbeDue: boolean;

  // ---- Closing.
  /** TIME-WAIT expiry, or -1. */
  timeWaitDeadline: number;
  /** FIN-WAIT-2 expiry for orphaned connections, or -1. */
  finWait2Deadline: number;
  /** close() was called: no more reads; data arriving now is answered with RST. */
  appClosed: boolean;
  /** TCP_NODELAY. */
  noDelay: boolean;
  /** Latest `now` the machine was given (for API calls that take no time). */
  lastNow: number;

  // ---- Counters (monotonic; for tests, `ps` and benchmarks).
  /** Retransmission-timer expiries. */
  statRtoExpiries: number;
  /** Fast retransmits (entries into fast recovery). */
  statFastRetransmits: number;
  /** Segments sent again (any reason). */
  statRetransmitted: number;
}

export function newTcb(cfg: ResolvedConfig): Tcb {
  return {
    state: TcpState.CLOSED,
    localAddr: 0, localPort: 0, remoteAddr: 0, remotePort: 0, activeOpen: false,
    iss: 0, sndUna: 0, sndNxt: 0, sndMax: 0, smallEnd: -1, sndBufSeq: 0, sndWnd: 0, sndWl1: 0, sndWl2: 0,
    maxSndWnd: 0, sndWscale: 0, sndMss: Math.max(cfg.minMss, Math.min(DEFAULT_PEER_MSS, cfg.mss)), finQueued: false,
    irs: 0, rcvNxt: 0, rcvAdv: 0, rcvWscale: 0, rcvMss: cfg.mss, rcvMssSeen: DEFAULT_PEER_MSS, rcvFinSeq: -1, lastAckSent: 0,
    wsOk: false, sackOk: false, tsOk: false, tsRecent: 0, tsRecentAge: 0, tsOffset: cfg.tsOffset,
    ackNow: false, unackedBytes: 0, delackDeadline: -1, challengeCount: 0, challengeWindowStart: 0,
    srtt: 0, rttvar: 0, rto: cfg.initialRtoMs, rttSeq: -1, rttTime: 0, rtoDeadline: -1, retries: 0,
    cwnd: 0, ssthresh: 0x7fffffff, caAcked: 0, dupAcks: 0, inRecovery: false, recover: 0, highRxt: 0,
    rexmitCredit: 0, lastDataSent: -1, sacked: [],
    persistDeadline: -1, persistBackoff: 0, persistProbe: false,
    keepalive: cfg.keepalive, keepIdleMs: cfg.keepIdleMs, keepIntervalMs: cfg.keepIntervalMs, keepCount: cfg.keepCount,
    keepProbes: 0, keepDeadline: -1, keepProbeDue: false,
    timeWaitDeadline: -1, finWait2Deadline: -1, appClosed: false, noDelay: cfg.noDelay, lastNow: 0,
    statRtoExpiries: 0, statFastRetransmits: 0, statRetransmitted: 0,
  };
}

/**
 * What the job files (connect, rcv, snd, timer, congestion) work on: the Tcb, the
 * byte buffers, and the two output queues. `out` holds segments ready to transmit
 * (control segments queued at once, e.g. RST); `ev` holds events not yet drained.
 */
export interface Conn {
  readonly cfg: ResolvedConfig;
  tcb: Tcb;
  snd: SendBuffer;
  rcv: RecvBuffer;
  out: TcpRepr[];
  ev: TcpEvent[];
}

/** Queue an event, folding repeats of readable/writable that are not yet drained. */
export function emit(c: Conn, e: TcpEvent): void {
  if ((e === "readable" || e === "writable") && c.ev.includes(e)) return;
  c.ev.push(e);
}

/** Sequence number one past the last data byte queued (where the FIN goes). */
export function dataEnd(c: Conn): number {
  return (c.tcb.sndBufSeq + c.snd.length) >>> 0;
}

/** The state is CLOSED (a function, so that type narrowing does not outlive a call that closes). */
export function isClosed(t: Tcb): boolean {
  return t.state === TcpState.CLOSED;
}

/** Stop every timer. */
export function clearTimers(t: Tcb): void {
  t.rtoDeadline = -1;
  t.persistDeadline = -1;
  t.delackDeadline = -1;
  t.keepDeadline = -1;
  t.timeWaitDeadline = -1;
  t.finWait2Deadline = -1;
  t.persistProbe = false;
  t.keepProbeDue = false;
}

/** Enter CLOSED, emitting `why` (if any) and then "closed". Idempotent. */
export function enterClosed(c: Conn, why?: "reset" | "timed-out"): void {
  const t = c.tcb;
  if (t.state === TcpState.CLOSED) return;
  t.state = TcpState.CLOSED;
  clearTimers(t);
  t.ackNow = false;
  c.snd.release();
  c.rcv.release(); // unless bytes wait for the app: it may still read them after a FIN or reset
  if (why) emit(c, why);
  emit(c, "closed");
}

/** Enter TIME-WAIT: only the 2*MSL timer runs (RFC 9293 §3.6). */
export function enterTimeWait(c: Conn, now: number): void {
  const t = c.tcb;
  t.state = TcpState.TIME_WAIT;
  clearTimers(t);
  t.timeWaitDeadline = now + 2 * c.cfg.mslMs;
  c.snd.release(); // all of it was ACKed, the FIN too
  c.rcv.release();
}
