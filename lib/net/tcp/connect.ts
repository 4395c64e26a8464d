// connect.ts — opening connections: active open (SYN), SYN-SENT processing (RFC 9293
// §3.10.7.3) including simultaneous open, option negotiation (MSS with a floor, RFC
// 7323 window scale and timestamps, RFC 2018 SACK-permitted), and the passive open
// that turns a listener's completed handshake into an ESTABLISHED connection.

import { type TcpOptions, type TcpRepr, TcpFlag } from "../types.ts";
import { initialCwnd } from "./congestion.ts";
import { seqAdd, seqGt, seqLe } from "./seq.ts";
import { tsNow } from "./snd.ts";
import { type Conn, DEFAULT_PEER_MSS, emit, type Endpoint, enterClosed, type ResolvedConfig, type Tcb, TcpState, TS_OPTION_LEN, wscaleFor } from "./tcb.ts";
import { ackTimed, armRto, keepaliveHeard, rttSample, timeSegment } from "./timer.ts";

/**
 * The payload limit for our segments: the peer's MSS (536 when absent, RFC 9293
 * §3.7.1) clamped to [minMss, cfg.mss], less the timestamp option bytes. A hostile
 * MSS of 0 or 1 yields minMss: we never divide by it nor loop on one-byte segments.
 */
export function effectiveSndMss(cfg: ResolvedConfig, peerMss: number | undefined, tsOk: boolean): number {
  const m = Math.min(cfg.mss, Math.max(cfg.minMss, peerMss ?? DEFAULT_PEER_MSS));
  return Math.max(cfg.minMss, m - (tsOk ? TS_OPTION_LEN : 0));
}

/** Window-scale shift we offer: enough for the receive buffer (RFC 7323 §2.3). */
export function offeredWscale(cfg: ResolvedConfig): number {
  return cfg.windowScaling ? wscaleFor(cfg.recvBufferSize) : 0;
}

/**
 * Apply the peer's SYN options (RFC 7323 §2.2 and §3.2, RFC 2018 §2): each option is
 * on only when both sides sent it. `tsVal` of the SYN becomes TS.Recent.
 */
export function negotiate(cfg: ResolvedConfig, t: Tcb, peer: TcpOptions, now: number): void {
  t.wsOk = cfg.windowScaling && peer.wscale !== undefined;
  t.sndWscale = t.wsOk ? Math.min(Math.max(0, peer.wscale! | 0), 14) : 0;
  t.rcvWscale = t.wsOk ? offeredWscale(cfg) : 0;
  t.sackOk = cfg.sack && peer.sackPermitted === true;
  t.tsOk = cfg.timestamps && peer.timestamp !== undefined;
  if (t.tsOk) {
    t.tsRecent = peer.timestamp!.val >>> 0;
    t.tsRecentAge = now;
  }
  t.sndMss = effectiveSndMss(cfg, peer.mss, t.tsOk);
  t.rcvMssSeen = Math.min(t.rcvMss, t.sndMss);
}

/** Active open: CLOSED → SYN-SENT. The SYN goes out at the next poll. */
export function openActive(c: Conn, now: number, local: Endpoint, remote: Endpoint, iss: number): void {
  const t = c.tcb;
  t.localAddr = local.addr >>> 0;
  t.localPort = local.port & 0xffff;
  t.remoteAddr = remote.addr >>> 0;
  t.remotePort = remote.port & 0xffff;
  t.activeOpen = true;
  t.iss = iss >>> 0;
  t.sndUna = t.sndNxt = t.sndMax = t.iss;
  t.sndBufSeq = seqAdd(t.iss, 1);
  t.recover = t.iss;
  t.state = TcpState.SYN_SENT;
  t.lastNow = now;
}

/** Options of our SYN (active) or SYN-ACK (simultaneous open: echo what was negotiated). */
function synOptions(c: Conn, now: number, synAck: boolean): TcpOptions {
  const t = c.tcb;
  const cfg = c.cfg;
  const o: TcpOptions = { mss: t.rcvMss };
  if (cfg.windowScaling && (!synAck || t.wsOk)) o.wscale = offeredWscale(cfg);
  if (cfg.sack && (!synAck || t.sackOk)) o.sackPermitted = true;
  if (cfg.timestamps && (!synAck || t.tsOk)) o.timestamp = { val: tsNow(c, now), ecr: synAck ? t.tsRecent : 0 };
  return o;
}

/** Output in SYN-SENT and SYN-RECEIVED: the (re)transmission of our SYN or SYN-ACK, or an ACK. */
export function synOutput(c: Conn, now: number): void {
  const t = c.tcb;
  const synAck = t.state === TcpState.SYN_RECEIVED;
  if (t.sndNxt === t.iss) {
    const rexmit = t.sndMax !== t.iss;
    c.out.push({
      srcPort: t.localPort, dstPort: t.remotePort, seq: t.iss, ack: synAck ? t.rcvNxt : 0,
      flags: synAck ? TcpFlag.SYN | TcpFlag.ACK : TcpFlag.SYN,
      // RFC 7323 §2.2: the window in a SYN is never scaled.
      window: Math.min(c.rcv.window, 65535), urgent: 0, options: synOptions(c, now, synAck), payload: new Uint8Array(0),
    });
    if (synAck) {
      t.rcvAdv = seqAdd(t.rcvNxt, Math.min(c.rcv.window, 65535));
      t.lastAckSent = t.rcvNxt;
      t.ackNow = false;
    }
    timeSegment(t, t.iss, now, rexmit);
    t.sndNxt = seqAdd(t.iss, 1);
    t.sndMax = t.sndNxt;
    armRto(c, now);
    return;
  }
  if (synAck && t.ackNow) {
    t.ackNow = false;
    c.out.push({
      srcPort: t.localPort, dstPort: t.remotePort, seq: t.sndNxt, ack: t.rcvNxt, flags: TcpFlag.ACK,
      window: Math.min(c.rcv.window, 65535), urgent: 0,
      options: t.tsOk ? { timestamp: { val: tsNow(c, now), ecr: t.tsRecent } } : {}, payload: new Uint8Array(0),
    });
  }
}

/** RFC 9293 §3.10.7.3: a segment arrives in SYN-SENT. */
export function synSentArrives(c: Conn, now: number, seg: TcpRepr): void {
  const t = c.tcb;
  const flags = seg.flags;
  const ack = seg.ack >>> 0;
  if (flags & TcpFlag.ACK && (seqLe(ack, t.iss) || seqGt(ack, t.sndMax))) {
    // An ACK for something we never sent: <SEQ=SEG.ACK><CTL=RST>, unless it is a RST.
    if (!(flags & TcpFlag.RST)) {
      c.out.push({ srcPort: t.localPort, dstPort: t.remotePort, seq: ack, ack: 0, flags: TcpFlag.RST, window: 0, urgent: 0, options: {}, payload: new Uint8Array(0) });
    }
    return;
  }
  if (flags & TcpFlag.RST) {
    // Acceptable only with an ACK of our SYN (RFC 5961 §3.2 leaves SYN-SENT to RFC 9293): refused.
    if (flags & TcpFlag.ACK) enterClosed(c, "reset");
    return;
  }
  if (!(flags & TcpFlag.SYN)) return;

  t.irs = seg.seq >>> 0;
  t.rcvNxt = seqAdd(t.irs, 1);
  t.lastAckSent = t.rcvNxt;
  t.rcvAdv = seqAdd(t.rcvNxt, Math.min(c.rcv.window, 65535));
  negotiate(c.cfg, t, seg.options, now);
  t.sndWnd = seg.window; // unscaled in a SYN
  t.maxSndWnd = t.sndWnd;
  t.sndWl1 = t.irs;

  if (flags & TcpFlag.ACK) {
    // Our SYN is acknowledged: ESTABLISHED. Data or FIN in a SYN-ACK is not taken
    // (it is not acknowledged, so the peer sends it again).
    t.sndUna = ack;
    t.sndWl2 = ack;
    const ts = seg.options.timestamp;
    if (t.tsOk && ts && ts.ecr !== 0) rttSample(c, ((tsNow(c, now) - ts.ecr) | 0));
    else ackTimed(c, ack, now);
    // RFC 5681 §3.1: one segment of initial window if the SYN had to be retransmitted.
    t.cwnd = t.retries > 0 ? t.sndMss : initialCwnd(t.sndMss);
    t.retries = 0;
    t.rtoDeadline = -1;
    t.state = t.finQueued ? TcpState.FIN_WAIT_1 : TcpState.ESTABLISHED;
    t.ackNow = true;
    emit(c, "connected");
    keepaliveHeard(c, now);
  } else {
    // Simultaneous open (RFC 9293 §3.5 figure 7): answer with SYN-ACK, same ISS.
    t.state = TcpState.SYN_RECEIVED;
    t.cwnd = initialCwnd(t.sndMss);
    t.sndNxt = t.iss;
    t.rtoDeadline = -1;
  }
}

/** What a listener knows when a handshake completes. */
export interface PassiveOpen {
  local: Endpoint;
  remote: Endpoint;
  /** Our ISS (the SYN-ACK's sequence number) and the peer's ISN. */
  iss: number;
  irs: number;
  /** The options of the peer's SYN, as recovered (from the SYN queue, or from a SYN cookie). */
  peer: TcpOptions;
  /** The window we offered in the SYN-ACK (unscaled). */
  offeredWindow: number;
  /** When the SYN-ACK was first sent (for an RTT sample), or -1 when unknown. */
  synAckSentAt: number;
  /** The handshake-completing ACK. */
  ack: TcpRepr;
}

/** Passive open completed: set up `c` straight in ESTABLISHED. */
export function openPassive(c: Conn, now: number, p: PassiveOpen): void {
  const t = c.tcb;
  t.localAddr = p.local.addr >>> 0;
  t.localPort = p.local.port & 0xffff;
  t.remoteAddr = p.remote.addr >>> 0;
  t.remotePort = p.remote.port & 0xffff;
  t.activeOpen = false;
  t.iss = p.iss >>> 0;
  t.irs = p.irs >>> 0;
  t.sndUna = t.sndNxt = t.sndMax = t.sndBufSeq = seqAdd(t.iss, 1);
  t.recover = t.iss;
  t.rcvNxt = seqAdd(t.irs, 1);
  t.lastAckSent = t.rcvNxt;
  t.rcvAdv = seqAdd(t.rcvNxt, p.offeredWindow);
  negotiate(c.cfg, t, p.peer, now);
  const ts = p.ack.options.timestamp;
  if (t.tsOk && ts) {
    t.tsRecent = ts.val >>> 0;
    if (ts.ecr !== 0) rttSample(c, (tsNow(c, now) - ts.ecr) | 0);
  } else if (p.synAckSentAt >= 0) {
    rttSample(c, now - p.synAckSentAt);
  }
  t.sndWnd = t.wsOk ? p.ack.window << t.sndWscale : p.ack.window;
  t.maxSndWnd = t.sndWnd;
  t.sndWl1 = p.ack.seq >>> 0;
  t.sndWl2 = p.ack.ack >>> 0;
  t.cwnd = initialCwnd(t.sndMss);
  t.state = TcpState.ESTABLISHED;
  t.lastNow = now;
  emit(c, "connected");
  keepaliveHeard(c, now);
}
