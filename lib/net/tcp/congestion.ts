// congestion.ts — Reno/NewReno congestion control: RFC 5681 slow start and congestion
// avoidance, fast retransmit on three duplicate ACKs, RFC 6582 NewReno recovery, and
// an RFC 6675-lite use of the SACK scoreboard to pick what to retransmit.
//
// "Lite" means: the NewReno cwnd inflation governs new data; in recovery each ACK
// received grants one retransmission, spent on the next hole (a range not SACKed,
// below the highest SACKed byte, not yet retransmitted in this recovery). Without
// SACK the only hole is SND.UNA, which is NewReno exactly. There is no "pipe"
// estimate and no rescue retransmission; a retransmission lost again is repaired by
// the RTO.

import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from "./seq.ts";
import type { Tcb } from "./tcb.ts";

/** RFC 5681 §3.1 initial window. */
export function initialCwnd(mss: number): number {
  if (mss > 2190) return 2 * mss;
  if (mss > 1095) return 3 * mss;
  return 4 * mss;
}

/** Bytes in flight as RFC 5681 counts them (sent, not cumulatively ACKed). */
export function flightSize(t: Tcb): number {
  return seqSub(t.sndMax, t.sndUna);
}

function halveSsthresh(t: Tcb): void {
  t.ssthresh = Math.max(Math.floor(flightSize(t) / 2), 2 * t.sndMss);
}

/** An ACK advanced SND.UNA by `acked` bytes; `ack` is the new SND.UNA. */
export function onNewAck(t: Tcb, acked: number, ack: number): void {
  if (t.inRecovery) {
    if (seqGe(ack, t.recover)) {
      // RFC 6582 §3.2 step 3 (full acknowledgment), option 1.
      t.cwnd = Math.min(t.ssthresh, Math.max(flightSize(t), t.sndMss) + t.sndMss);
      t.inRecovery = false;
      t.dupAcks = 0;
      t.caAcked = 0;
    } else {
      // Partial acknowledgment: deflate by what was acked, add back one SMSS if that
      // was at least one SMSS, and retransmit the next hole.
      t.cwnd = Math.max(t.sndMss, t.cwnd - acked + (acked >= t.sndMss ? t.sndMss : 0));
      t.rexmitCredit++;
    }
    return;
  }
  t.dupAcks = 0;
  // Keep "recover" trailing SND.UNA so the RFC 6582 §3.2 step 2 test stays
  // meaningful after the sequence space wraps.
  if (seqGt(ack, t.recover)) t.recover = seqAdd(ack, -1);
  if (t.cwnd < t.ssthresh) {
    t.cwnd += Math.min(acked, t.sndMss); // slow start, L = 1 SMSS (RFC 5681 §3.1, RFC 3465)
  } else {
    t.caAcked += acked; // congestion avoidance: one SMSS per cwnd of data acked
    if (t.caAcked >= t.cwnd) {
      t.caAcked -= t.cwnd;
      t.cwnd += t.sndMss;
    }
  }
}

/** A duplicate ACK (RFC 5681 §2) arrived. Returns true when it triggers a fast retransmit. */
export function onDupAck(t: Tcb): boolean {
  t.dupAcks++;
  if (t.inRecovery) {
    t.cwnd += t.sndMss; // inflate: a segment left the network (RFC 6582 §3.2 step 4)
    t.rexmitCredit++;
    return false;
  }
  // RFC 5681: the third duplicate; RFC 6675 §5 (IsLost): or DupThresh segments SACKed above SND.UNA.
  if (t.dupAcks < 3 && sackedBytes(t) < 3 * t.sndMss) return false;
  // RFC 6582 §3.2 step 2: only if the ACK covers more than "recover".
  if (!seqGt(t.sndUna, t.recover)) return false;
  halveSsthresh(t);
  t.recover = t.sndMax;
  t.cwnd = t.ssthresh + 3 * t.sndMss;
  t.inRecovery = true;
  t.highRxt = t.sndUna;
  t.rexmitCredit = 1;
  t.caAcked = 0;
  return true;
}

/** The retransmission timer expired (RFC 5681 §3.1 eq. 4, RFC 6582 §3.2 step 6). */
export function onRto(t: Tcb): void {
  if (flightSize(t) > 0) halveSsthresh(t);
  t.cwnd = t.sndMss; // loss window
  t.caAcked = 0;
  t.inRecovery = false;
  t.dupAcks = 0;
  t.recover = t.sndMax;
  t.rexmitCredit = 0;
  // RFC 2018 §8: after a timeout, SACK information may have been reneged; forget it.
  t.sacked = [];
}

/** Bytes the scoreboard marks as SACKed. */
export function sackedBytes(t: Tcb): number {
  let n = 0;
  for (const [l, r] of t.sacked) n += seqSub(r, l);
  return n;
}

/**
 * Merge the SACK blocks of an incoming ACK into the scoreboard (only blocks within
 * (SND.UNA, SND.MAX]). Returns true when they SACKed bytes not SACKed before, which
 * makes the ACK a duplicate in RFC 6675's sense even if its window changed.
 */
export function updateScoreboard(t: Tcb, blocks: ReadonlyArray<readonly [number, number]> | undefined): boolean {
  const before = blocks && blocks.length ? sackedBytes(t) : 0;
  if (blocks) {
    for (const [l0, r0] of blocks.slice(0, 4)) {
      const l = seqMax(l0 >>> 0, t.sndUna);
      const r = seqMin(r0 >>> 0, t.sndMax);
      if (!seqLt(l, r)) continue; // empty, inverted, or out of range: ignore (hostile or stale)
      insertBlock(t, l, r);
    }
  }
  // Drop what the cumulative ACK now covers.
  const kept: Array<[number, number]> = [];
  for (const [l, r] of t.sacked) {
    if (seqLe(r, t.sndUna)) continue;
    kept.push([seqMax(l, t.sndUna), r]);
  }
  t.sacked = kept;
  return blocks !== undefined && blocks.length > 0 && sackedBytes(t) > before;
}

function insertBlock(t: Tcb, l: number, r: number): void {
  const out: Array<[number, number]> = [];
  let placed = false;
  for (const b of t.sacked) {
    if (seqLt(b[1], l)) out.push(b);
    else if (seqGt(b[0], r)) {
      if (!placed) { out.push([l, r]); placed = true; }
      out.push(b);
    } else {
      l = seqMin(l, b[0]);
      r = seqMax(r, b[1]);
    }
  }
  if (!placed) out.push([l, r]);
  // Bound the scoreboard: keep the lowest blocks, which matter most for recovery.
  t.sacked = out.length > 16 ? out.slice(0, 16) : out;
}

/** Highest SACKed sequence number (right edge of the last block), or SND.UNA. */
export function sackHigh(t: Tcb): number {
  return t.sacked.length ? t.sacked[t.sacked.length - 1]![1] : t.sndUna;
}

/**
 * The next range to retransmit in recovery: [seq, seq+len) with len <= maxLen, or
 * undefined. Holes start at max(SND.UNA, HighRxt), skip SACKed ranges, and (beyond
 * SND.UNA itself) must lie below the highest SACKed byte: only there is loss inferred.
 */
export function nextHole(t: Tcb, maxLen: number): { seq: number; len: number } | undefined {
  let s = seqMax(t.sndUna, t.highRxt);
  if (s === t.sndUna) {
    let end = seqAdd(s, maxLen);
    for (const [l] of t.sacked) if (seqGt(l, s)) { end = seqMin(end, l); break; }
    end = seqMin(end, t.sndMax);
    return seqLt(s, end) ? { seq: s, len: seqSub(end, s) } : undefined;
  }
  for (const [l, r] of t.sacked) {
    if (seqLt(s, l)) {
      const end = seqMin(l, seqAdd(s, maxLen));
      return { seq: s, len: seqSub(end, s) };
    }
    if (seqLt(s, r)) s = r;
  }
  return undefined;
}
