// snd.ts — send processing: building segments, the output loop (new data, go-back-N
// and SACK-guided retransmission, Nagle / TCP_NODELAY, sender SWS avoidance, FIN,
// zero-window probes, keepalive probes, pure ACKs) and processing the ACK field of
// incoming segments (RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5).

import { type TcpOptions, type TcpRepr, TcpFlag } from "../types.ts";
import { flightSize, initialCwnd, nextHole, onDupAck, onNewAck, updateScoreboard } from "./congestion.ts";
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqSub } from "./seq.ts";
import { type Conn, dataEnd, emit, TcpState } from "./tcb.ts";
import { ackTimed, armRto, persistInterval, retransmitted, rttSample, timeSegment } from "./timer.ts";

const EMPTY = new Uint8Array(0);

/** Our current TSval (RFC 7323 §5.4: a 1 ms clock). */
export function tsNow(c: Conn, now: number): number {
  return (Math.floor(now) + c.tcb.tsOffset) >>> 0;
}

/**
 * The window field to send, and bookkeeping of RCV.ADV. Never shrinks the right edge
 * already offered (RFC 9293 §3.8.6.2.2); in SYNs the window is never scaled (RFC 7323 §2.2).
 */
function windowField(c: Conn, syn: boolean): number {
  const t = c.tcb;
  const wnd = c.rcv.window;
  if (syn) {
    const f = Math.min(wnd, 65535);
    t.rcvAdv = seqAdd(t.rcvNxt, f);
    return f;
  }
  let f = Math.min(wnd >>> t.rcvWscale, 65535);
  const offered = seqSub(t.rcvAdv, t.rcvNxt);
  if (offered > f << t.rcvWscale) f = Math.min(65535, Math.ceil(offered / 2 ** t.rcvWscale));
  t.rcvAdv = seqMax(t.rcvAdv, seqAdd(t.rcvNxt, f << t.rcvWscale));
  return f;
}

/** SACK blocks to report (RFC 2018 §4): the most recently changed block first, then the others. */
function sackBlocks(c: Conn, max: number): Array<[number, number]> | undefined {
  const { ranges, recent } = c.rcv;
  if (!c.tcb.sackOk || ranges.length === 0 || max <= 0) return undefined;
  const base = c.tcb.rcvNxt;
  const first = ranges.findIndex(([s, e]) => recent >= s && recent < e);
  const order = first >= 0 ? [ranges[first]!, ...ranges.filter((_, i) => i !== first)] : ranges;
  return order.slice(0, max).map(([s, e]) => [seqAdd(base, s), seqAdd(base, e)] as [number, number]);
}

/**
 * A segment from this connection. Every non-SYN-SENT segment carries ACK with
 * RCV.NXT and the window; sending an ACK satisfies any pending ACK obligation.
 */
export function makeSegment(c: Conn, now: number, seq: number, flags: number, payload: Uint8Array = EMPTY): TcpRepr {
  const t = c.tcb;
  const options: TcpOptions = {};
  const syn = (flags & TcpFlag.SYN) !== 0;
  if (t.tsOk) options.timestamp = { val: tsNow(c, now), ecr: t.tsRecent };
  let window = 0;
  let ack = 0;
  if (flags & TcpFlag.ACK) {
    ack = t.rcvNxt;
    window = windowField(c, syn);
    if (!syn) {
      // Option space is 40 bytes: 4 blocks, or 3 beside timestamps (RFC 2018 §3). A data
      // segment carries only the blocks that fit within the MSS budget, so that a
      // full-sized segment never grows past the path MTU (sndMss already excludes TS).
      const fit = Math.floor((t.sndMss - payload.length - 4) / 8);
      const sack = sackBlocks(c, Math.min(t.tsOk ? 3 : 4, fit));
      if (sack) options.sack = sack;
    }
    t.ackNow = false;
    t.delackDeadline = -1;
    t.unackedBytes = 0;
    t.lastAckSent = t.rcvNxt;
  }
  return { srcPort: t.localPort, dstPort: t.remotePort, seq, ack, flags, window, urgent: 0, options, payload };
}

/**
 * A pure ACK right now. Its sequence number is SND.MAX, not SND.NXT: after an RTO
 * pulls SND.NXT back (go-back-N), the peer's RCV.NXT may already be past SND.NXT,
 * and an ACK carrying the old number would be unacceptable to it and answered by
 * an ACK of its own — an ACK war, if both sides are retransmitting (BSD does the same).
 */
export function ackSegment(c: Conn, now: number): TcpRepr {
  return makeSegment(c, now, c.tcb.sndMax, TcpFlag.ACK);
}

/** Send the data segment [seq, seq+len) (+FIN when `fin`), the bytes coming from the send buffer. */
function sendData(c: Conn, now: number, seq: number, len: number, fin: boolean): void {
  const t = c.tcb;
  const payload = len > 0 ? c.snd.peek(seqSub(seq, t.sndBufSeq), len) : EMPTY;
  let flags = TcpFlag.ACK;
  if (fin) flags |= TcpFlag.FIN;
  // PSH when this segment empties what we have to send (RFC 9293 §3.9.1.2).
  if (len > 0 && seqGe(seqAdd(seq, len), dataEnd(c))) flags |= TcpFlag.PSH;
  const isRetransmit = seqLt(seq, t.sndMax);
  if (isRetransmit) {
    retransmitted(t, seq, len + (fin ? 1 : 0));
    t.statRetransmitted++;
  }
  else timeSegment(t, seq, now, false);
  if (len > 0) t.lastDataSent = now;
  c.out.push(makeSegment(c, now, seq, flags, payload));
}

/** Bytes queued but never sent at or after `from`. */
function unsentFrom(c: Conn, from: number): number {
  return Math.max(0, seqSub(dataEnd(c), from));
}

/**
 * Emit everything the connection may send now into c.out: retransmissions in
 * recovery, data as windows, Nagle and SWS avoidance allow, the FIN, probes, and a
 * pure ACK if one is owed and nothing else carried it.
 */
export function output(c: Conn, now: number): void {
  const t = c.tcb;
  t.lastNow = now;
  switch (t.state) {
    case TcpState.CLOSED:
    case TcpState.LISTEN:
      return;
    case TcpState.SYN_SENT:
    case TcpState.SYN_RECEIVED:
      return; // handled by connect.ts
    case TcpState.TIME_WAIT:
      if (t.ackNow) c.out.push(ackSegment(c, now));
      return;
  }
  const before = c.out.length;
  const end = dataEnd(c);
  const finPending = () => t.finQueued && seqLe(t.sndNxt, end);

  // 1. Recovery: one retransmission per ACK received, on the next hole (congestion.ts).
  if (t.inRecovery) {
    while (t.rexmitCredit > 0) {
      const h = nextHole(t, t.sndMss);
      if (!h) break;
      const dataLen = Math.min(h.len, unsentFrom(c, h.seq));
      const fin = t.finQueued && seqAdd(h.seq, dataLen) === end && h.len > dataLen;
      sendData(c, now, h.seq, dataLen, fin);
      t.highRxt = seqAdd(h.seq, dataLen + (fin ? 1 : 0));
      t.rexmitCredit--;
    }
  }
  t.rexmitCredit = 0;

  // 2. Zero-window probe: one byte past the closed window (RFC 9293 §3.8.6.1).
  if (t.persistProbe) {
    t.persistProbe = false;
    if (t.sndNxt === t.sndUna && unsentFrom(c, t.sndNxt) > 0) {
      sendData(c, now, t.sndNxt, 1, false);
      t.sndNxt = seqAdd(t.sndNxt, 1);
      t.sndMax = seqMax(t.sndMax, t.sndNxt);
    } else if (t.sndUna !== t.sndMax) {
      sendData(c, now, t.sndUna, Math.min(1, unsentFrom(c, t.sndUna)), false);
    }
  }

  // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial window.
  if (t.sndUna === t.sndMax && t.lastDataSent >= 0 && now - t.lastDataSent > t.rto && unsentFrom(c, t.sndNxt) > 0) {
    t.cwnd = Math.min(t.cwnd, initialCwnd(t.sndMss));
  }

  // 3. New data, and go-back-N retransmission after an RTO (SND.NXT < SND.MAX).
  for (;;) {
    const unsent = unsentFrom(c, t.sndNxt);
    const fin = finPending();
    if (unsent === 0 && !fin) break;
    // RFC 3042 limited transmit: the first two duplicate ACKs each let one new segment out.
    const limited = !t.inRecovery && t.dupAcks > 0 ? Math.min(t.dupAcks, 2) * t.sndMss : 0;
    const win = Math.min(t.sndWnd, t.cwnd + limited);
    const usable = win - seqSub(t.sndNxt, t.sndUna);
    const len = Math.min(unsent, t.sndMss, Math.max(usable, 0));
    if (len === 0 && unsent > 0) {
      // Window-limited. If the peer's window is what stops us and no timer will
      // bring an ACK, start probing (persist timer).
      if (t.sndWnd - seqSub(t.sndNxt, t.sndUna) <= 0 && t.rtoDeadline < 0 && t.persistDeadline < 0) {
        t.persistDeadline = now + persistInterval(c);
      }
      break;
    }
    const withFin = fin && len === unsent;
    const isNew = seqGe(t.sndNxt, t.sndMax);
    if (isNew && len < t.sndMss && !withFin && len > 0) {
      const outstanding = t.sndMax !== t.sndUna;
      if (len < unsent) {
        // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a window-limited runt only
        // when nothing is in flight or it is at least half the largest window.
        if (outstanding && len < t.maxSndWnd / 2) break;
      } else if (!t.noDelay && t.smallEnd >= 0 && seqGt(t.smallEnd, t.sndUna)) {
        // Nagle (RFC 896 / RFC 9293 §3.7.4) as Minshall's variant, like Linux: hold a small
        // tail while a small segment of ours is unacked (not merely any data: the tail of a
        // reply that follows full segments goes at once instead of waiting for a delayed ACK).
        break;
      }
    }
    if (isNew && len < t.sndMss && len > 0) t.smallEnd = seqAdd(t.sndNxt, len);
    sendData(c, now, t.sndNxt, len, withFin);
    t.sndNxt = seqAdd(t.sndNxt, len + (withFin ? 1 : 0));
    t.sndMax = seqMax(t.sndMax, t.sndNxt);
    if (withFin) break;
  }

  // 4. Keepalive probe: <SEQ=SND.UNA-1>, no data; the peer answers with an ACK (RFC 9293 §3.8.4).
  if (t.keepProbeDue) {
    t.keepProbeDue = false;
    c.out.push(makeSegment(c, now, seqAdd(t.sndUna, -1), TcpFlag.ACK));
  }

  // 5. A pure ACK if one is owed and no segment above carried it.
  if (t.ackNow && c.out.length === before) c.out.push(ackSegment(c, now));
  else t.ackNow = false;

  armRto(c, now);
}

/**
 * Process the ACK field of an acceptable segment in a synchronized state. Returns
 * false when the segment must be dropped (RFC 9293 §3.10.7.4, RFC 5961 §5.2).
 */
export function processAck(c: Conn, now: number, seg: TcpRepr): boolean {
  const t = c.tcb;
  const ack = seg.ack >>> 0;
  if (seqGt(ack, t.sndMax)) {
    t.ackNow = true; // acks something not yet sent: ACK and drop
    return false;
  }
  if (seqLt(ack, seqAdd(t.sndUna, -Math.max(t.maxSndWnd, 1)))) {
    challengeAck(c, now); // RFC 5961 §5.2: too old to be believable
    return false;
  }
  const newWnd = t.wsOk ? seg.window << t.sndWscale : seg.window;
  const segLen = seg.payload.length + (seg.flags & (TcpFlag.SYN | TcpFlag.FIN) ? 1 : 0);
  const ts = seg.options.timestamp;

  if (seqGt(ack, t.sndUna)) {
    const acked = seqSub(ack, t.sndUna);
    const dataAcked = Math.min(Math.max(0, seqSub(ack, t.sndBufSeq)), c.snd.length);
    if (dataAcked > 0) {
      c.snd.consume(dataAcked);
      t.sndBufSeq = seqAdd(t.sndBufSeq, dataAcked);
      emit(c, "writable");
    }
    t.sndUna = ack;
    if (seqLt(t.sndNxt, ack)) t.sndNxt = ack;
    // RTT: from the echoed timestamp (RFC 7323 §4.1) or the timed segment (Karn).
    if (t.tsOk && ts && ts.ecr !== 0) rttSample(c, seqSub(tsNow(c, now), ts.ecr >>> 0));
    else ackTimed(c, ack, now);
    t.retries = 0;
    onNewAck(t, acked, ack);
    updateScoreboard(t, seg.options.sack);
    if (t.sndUna === t.sndMax) t.rtoDeadline = -1; // RFC 6298 §5.2
    else if (t.persistDeadline < 0) t.rtoDeadline = now + t.rto; // §5.3
  } else {
    const newSack = updateScoreboard(t, seg.options.sack);
    // Duplicate ACK: RFC 5681 §2 (same ACK, no data, same window, data outstanding),
    // or RFC 6675 §2 (it SACKs new bytes). Not while probing a zero window.
    const classic = segLen === 0 && newWnd === t.sndWnd;
    if (ack === t.sndUna && (classic || newSack) && t.sndWnd > 0 && flightSize(t) > 0) {
      if (onDupAck(t)) t.statFastRetransmits++; // the next output spends the retransmission credit
    }
  }

  // Window update (RFC 9293 §3.10.7.4): only from a newer segment.
  if (seqLt(t.sndWl1, seg.seq) || (t.sndWl1 === seg.seq && seqLe(t.sndWl2, ack))) {
    t.sndWnd = newWnd;
    t.sndWl1 = seg.seq;
    t.sndWl2 = ack;
    if (newWnd > t.maxSndWnd) t.maxSndWnd = newWnd;
  }
  // The peer answered: zero-window probing is over once the window opens; any
  // ACK proves the peer alive while probing.
  if (t.persistDeadline >= 0) {
    t.retries = 0;
    if (t.sndWnd > 0) {
      t.persistDeadline = -1;
      t.persistBackoff = 0;
      t.sndNxt = t.sndUna; // resend an unacknowledged probe byte within the first full segment
    }
  }
  return true;
}

/** RFC 5961 §3.2/§4.2/§5.2 challenge ACK, rate-limited per §7. */
export function challengeAck(c: Conn, now: number): void {
  const t = c.tcb;
  if (now - t.challengeWindowStart >= 1000 || now < t.challengeWindowStart) {
    t.challengeWindowStart = now;
    t.challengeCount = 0;
  }
  if (t.challengeCount >= c.cfg.challengeAckLimit) return;
  t.challengeCount++;
  c.out.push(ackSegment(c, now));
}

/** True once our FIN has been sent and acknowledged. */
export function finAcked(c: Conn): boolean {
  return c.tcb.finQueued && seqGt(c.tcb.sndUna, dataEnd(c));
}
