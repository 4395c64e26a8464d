// rcv.ts — receive processing: RFC 9293 §3.10.7.4 "SEGMENT ARRIVES" for the
// synchronized states (and SYN-RECEIVED): PAWS, the acceptability test, RST and SYN
// rules with RFC 5961 challenge ACKs, the ACK field (snd.ts), segment text into the
// reassembly buffer (SACK generation follows from its ranges), delayed ACK, and FIN.
// Also rstFor(), the reply to a segment for which no connection exists.

import { type TcpRepr, TcpFlag } from "../types.ts";
import { synSentArrives } from "./connect.ts";
import { seqAdd, seqLe, seqLt, seqSub } from "./seq.ts";
import { challengeAck, finAcked, processAck } from "./snd.ts";
import { type Conn, emit, enterClosed, enterTimeWait, TcpState } from "./tcb.ts";
import { keepaliveHeard, rstSegmentFor } from "./timer.ts";

const EMPTY = new Uint8Array(0);
/** RFC 7323 §5.5: a TS.Recent idle this long (24 days) is no longer used for PAWS. */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;

/**
 * The RST answering `seg` when no connection exists (RFC 9293 §3.10.7.1, CLOSED):
 * nothing for a RST; <SEQ=SEG.ACK><CTL=RST> if it had ACK; otherwise
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Ports are swapped; the caller swaps addresses.
 */
export function rstFor(seg: TcpRepr): TcpRepr | undefined {
  if (seg.flags & TcpFlag.RST) return undefined;
  const base = { srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, urgent: 0, options: {}, payload: EMPTY };
  if (seg.flags & TcpFlag.ACK) return { ...base, seq: seg.ack >>> 0, ack: 0, flags: TcpFlag.RST };
  const len = seg.payload.length + (seg.flags & TcpFlag.SYN ? 1 : 0) + (seg.flags & TcpFlag.FIN ? 1 : 0);
  return { ...base, seq: 0, ack: seqAdd(seg.seq >>> 0, len), flags: TcpFlag.RST | TcpFlag.ACK };
}

/** Process one incoming segment. Never throws; hostile values are dropped or answered per the RFCs. */
export function segmentArrives(c: Conn, now: number, seg: TcpRepr): void {
  const t = c.tcb;
  t.lastNow = now;
  switch (t.state) {
    case TcpState.CLOSED: {
      const r = rstFor(seg);
      if (r) c.out.push(r);
      return;
    }
    case TcpState.LISTEN:
      return; // listeners are TcpListener objects, not connections
    case TcpState.SYN_SENT:
      synSentArrives(c, now, seg);
      return;
  }

  let flags = seg.flags;
  let seq = seg.seq >>> 0;
  let data = seg.payload;
  const ts = seg.options.timestamp;

  if (t.state === TcpState.SYN_RECEIVED && flags & TcpFlag.SYN && !(flags & TcpFlag.RST) && seq === t.irs) {
    if (flags & TcpFlag.ACK && seg.ack >>> 0 === seqAdd(t.iss, 1)) {
      // Simultaneous open: the peer's SYN-ACK acknowledges our SYN. Its SYN is already
      // counted; treat the rest as the handshake-completing ACK, and acknowledge it.
      flags &= ~TcpFlag.SYN;
      seq = seqAdd(seq, 1);
      t.ackNow = true;
    } else {
      t.sndNxt = t.iss; // a retransmitted SYN: send the SYN-ACK again
      return;
    }
  }

  // PAWS (RFC 7323 §5.3 R1): a TSval older than TS.Recent marks an old duplicate.
  if (t.tsOk && ts && !(flags & TcpFlag.RST) && seqLt(ts.val >>> 0, t.tsRecent) && now - t.tsRecentAge < PAWS_IDLE_MS) {
    t.ackNow = true;
    return;
  }

  // First check: is the segment acceptable (RFC 9293 §3.10.7.4 table)?
  const segLen = data.length + (flags & TcpFlag.SYN ? 1 : 0) + (flags & TcpFlag.FIN ? 1 : 0);
  const wnd = c.rcv.window;
  const off = seqSub(seq, t.rcvNxt);
  const inWnd = (o: number) => o >= 0 && o < wnd;
  let ok = segLen === 0 ? (wnd === 0 ? off === 0 : inWnd(off)) : wnd > 0 && (inWnd(off) || inWnd(off + segLen - 1));
  if (!ok && wnd === 0 && off === 0 && !(flags & (TcpFlag.SYN | TcpFlag.RST))) {
    // A zero window accepts nothing, but the ACK of a segment at RCV.NXT (e.g. a
    // window probe) must still be processed (RFC 9293 §3.10.7.4): strip the text.
    ok = true;
    data = EMPTY;
    flags &= ~TcpFlag.FIN;
    t.ackNow = true;
  }
  if (!ok) {
    if (!(flags & TcpFlag.RST)) {
      t.ackNow = true; // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
      if (t.state === TcpState.TIME_WAIT && flags & TcpFlag.FIN) t.timeWaitDeadline = now + 2 * c.cfg.mslMs;
    }
    return;
  }

  // RFC 7323 §4.3: remember the peer's TSval to echo.
  if (t.tsOk && ts && seqLe(seq, t.lastAckSent) && !seqLt(ts.val >>> 0, t.tsRecent)) {
    t.tsRecent = ts.val >>> 0;
    t.tsRecentAge = now;
  }

  // Second check: RST (RFC 5961 §3.2): exact match resets, anything else in window is challenged.
  if (flags & TcpFlag.RST) {
    if (seq === t.rcvNxt) resetArrives(c);
    else challengeAck(c, now);
    return;
  }

  // Fourth check: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, drop.
  if (flags & TcpFlag.SYN) {
    challengeAck(c, now);
    return;
  }

  // Fifth check: the ACK field.
  if (!(flags & TcpFlag.ACK)) return;
  const ack = seg.ack >>> 0;
  if (t.state === TcpState.SYN_RECEIVED) {
    if (seqLt(t.sndUna, ack) && seqLe(ack, t.sndMax)) {
      t.state = t.finQueued ? TcpState.FIN_WAIT_1 : TcpState.ESTABLISHED;
      t.sndWnd = t.wsOk ? seg.window << t.sndWscale : seg.window;
      t.maxSndWnd = Math.max(t.maxSndWnd, t.sndWnd);
      t.sndWl1 = seq;
      t.sndWl2 = ack;
      emit(c, "connected");
    } else {
      c.out.push({ ...rstSegmentFor(t), seq: ack }); // <SEQ=SEG.ACK><CTL=RST>
      return;
    }
  }
  if (!processAck(c, now, { ...seg, seq })) return;
  keepaliveHeard(c, now);

  if (finAcked(c)) {
    switch (t.state) {
      case TcpState.FIN_WAIT_1:
        t.state = TcpState.FIN_WAIT_2;
        if (t.appClosed) t.finWait2Deadline = now + c.cfg.finWait2TimeoutMs;
        break;
      case TcpState.CLOSING:
        enterTimeWait(c, now);
        return;
      case TcpState.LAST_ACK:
        enterClosed(c);
        return;
    }
  }

  // Seventh and eighth: text and FIN. After the peer's FIN (CLOSE-WAIT and later) text is ignored.
  const fin = (flags & TcpFlag.FIN) !== 0;
  if (data.length === 0 && !fin) return;
  if (t.state === TcpState.ESTABLISHED || t.state === TcpState.FIN_WAIT_1 || t.state === TcpState.FIN_WAIT_2) {
    receiveText(c, now, seq, data, fin);
  }
}

/** A RST with SEG.SEQ = RCV.NXT (RFC 9293 §3.10.7.4 second check, RFC 5961 §3.2). */
function resetArrives(c: Conn): void {
  switch (c.tcb.state) {
    case TcpState.CLOSING:
    case TcpState.LAST_ACK:
    case TcpState.TIME_WAIT:
      enterClosed(c);
      return;
    default:
      enterClosed(c, "reset"); // SYN-RECEIVED (refused), ESTABLISHED, FIN-WAIT-*, CLOSE-WAIT
  }
}

/** Place text into the receive buffer, decide the ACK, and process an in-order FIN. */
function receiveText(c: Conn, now: number, seq: number, data: Uint8Array, fin: boolean): void {
  const t = c.tcb;
  if (t.appClosed && data.length > 0) {
    // Nobody will ever read this: tell the peer with a RST (RFC 9293 §3.10.4, RFC 2525 §2.17).
    c.out.push(rstSegmentFor(t));
    enterClosed(c);
    return;
  }
  let off = seqSub(seq, t.rcvNxt);
  if (off < 0) {
    const cut = Math.min(-off, data.length); // already received: trim the front
    data = data.subarray(cut);
    off += cut;
  }
  const room = c.rcv.window - off;
  if (data.length > room) {
    data = data.subarray(0, Math.max(0, room)); // beyond the window: trim the tail, and its FIN
    fin = false;
  }
  const start = seqAdd(t.rcvNxt, off); // sequence number of data[0]
  if (data.length > 0) {
    if (data.length > t.rcvMssSeen) t.rcvMssSeen = Math.min(data.length, t.rcvMss);
    const hadHoles = c.rcv.ranges.length > 0;
    const adv = c.rcv.insert(off, data);
    if (adv < 0) {
      fin = false; // too fragmented: dropped; the peer will retransmit
      t.ackNow = true;
    } else if (adv > 0) {
      t.rcvNxt = seqAdd(t.rcvNxt, adv);
      emit(c, "readable");
      t.unackedBytes += adv;
      if (hadHoles || c.cfg.delayedAckMs === 0 || t.unackedBytes >= 2 * t.rcvMssSeen) {
        t.ackNow = true; // a hole filled (RFC 5681 §4.2), or every second full segment (RFC 1122 §4.2.3.2)
      } else if (t.delackDeadline < 0) {
        t.delackDeadline = now + c.cfg.delayedAckMs;
      }
    } else {
      t.ackNow = true; // out of order: an immediate duplicate ACK, with SACK blocks (RFC 5681 §4.2, RFC 2018)
    }
  }
  if (fin && t.rcvFinSeq < 0) t.rcvFinSeq = seqAdd(start, data.length);
  if (t.rcvFinSeq >= 0 && t.rcvFinSeq === t.rcvNxt) finArrives(c, now);
}

/** RFC 9293 §3.10.7.4 eighth check: the FIN is in order. */
function finArrives(c: Conn, now: number): void {
  const t = c.tcb;
  t.rcvNxt = seqAdd(t.rcvNxt, 1);
  t.ackNow = true;
  emit(c, "peer-closed");
  switch (t.state) {
    case TcpState.SYN_RECEIVED:
    case TcpState.ESTABLISHED:
      t.state = TcpState.CLOSE_WAIT;
      break;
    case TcpState.FIN_WAIT_1:
      if (finAcked(c)) enterTimeWait(c, now);
      else t.state = TcpState.CLOSING;
      break;
    case TcpState.FIN_WAIT_2:
      enterTimeWait(c, now);
      break;
  }
}
