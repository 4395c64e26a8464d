// timer.ts — the connection's clocks: RTO per RFC 6298 (with Karn's rule), zero-window
// persist timer, keepalive, delayed ACK, TIME-WAIT 2*MSL and the FIN-WAIT-2 timeout.
//
// Every timer is a deadline in the Tcb (-1 when off). The owner calls onTick(now)
// whenever now >= nextDeadline(); onTick only changes state and flags, and the next
// poll() emits whatever segments follow (retransmissions, probes, ACKs).

import type { TcpRepr } from "../types.ts";
import { onRto } from "./congestion.ts";
import { seqAdd, seqGt } from "./seq.ts";
import { type Conn, enterClosed, isClosed, type Tcb, TcpState } from "./tcb.ts";

/** RFC 6298 clock granularity G, in ms. */
const CLOCK_G = 1;

/** Feed one RTT sample (ms) into the estimator and recompute the RTO (RFC 6298 §2.2–2.4). */
export function rttSample(c: Conn, r: number): void {
  const t = c.tcb;
  // A negative sample or one beyond the largest RTO is nonsense (a forged or stale echo): ignore it.
  if (!(r >= 0) || r > c.cfg.maxRtoMs) return;
  if (t.srtt === 0) {
    t.srtt = Math.max(r, 1);
    t.rttvar = r / 2;
  } else {
    t.rttvar = 0.75 * t.rttvar + 0.25 * Math.abs(t.srtt - r);
    t.srtt = 0.875 * t.srtt + 0.125 * r;
  }
  // A fresh sample also ends any backoff (Karn: samples never come from ambiguous retransmissions).
  t.rto = clampRto(c, t.srtt + Math.max(CLOCK_G, 4 * t.rttvar));
}

export function clampRto(c: Conn, rto: number): number {
  return Math.min(c.cfg.maxRtoMs, Math.max(c.cfg.minRtoMs, Math.ceil(rto)));
}

/** Earliest pending deadline, or -1 when no timer runs. */
export function nextDeadline(t: Tcb): number {
  let d = -1;
  for (const x of [t.rtoDeadline, t.persistDeadline, t.delackDeadline, t.keepDeadline, t.timeWaitDeadline, t.finWait2Deadline]) {
    if (x >= 0 && (d < 0 || x < d)) d = x;
  }
  return d;
}

/** Run every timer whose deadline has passed. */
export function onTick(c: Conn, now: number): void {
  const t = c.tcb;
  t.lastNow = now;
  if (t.state === TcpState.CLOSED) return;
  if (t.timeWaitDeadline >= 0 && now >= t.timeWaitDeadline) {
    enterClosed(c); // RFC 9293 §3.10.8: TIME-WAIT timeout
    return;
  }
  if (t.finWait2Deadline >= 0 && now >= t.finWait2Deadline) {
    enterClosed(c);
    return;
  }
  if (t.rtoDeadline >= 0 && now >= t.rtoDeadline) {
    rtoExpired(c, now);
    if (isClosed(t)) return;
  }
  if (t.persistDeadline >= 0 && now >= t.persistDeadline) {
    persistExpired(c, now);
    if (isClosed(t)) return;
  }
  if (t.delackDeadline >= 0 && now >= t.delackDeadline) {
    t.delackDeadline = -1;
    t.ackNow = true;
  }
  if (t.keepDeadline >= 0 && now >= t.keepDeadline) keepaliveExpired(c, now);
}

/** RFC 6298 §5.4–5.7: retransmit from SND.UNA, back off, and give up after too many tries. */
function rtoExpired(c: Conn, now: number): void {
  const t = c.tcb;
  t.rtoDeadline = -1;
  if (t.sndUna === t.sndMax) return; // nothing outstanding (stale timer)
  const limit = t.state === TcpState.SYN_SENT || t.state === TcpState.SYN_RECEIVED ? c.cfg.synRetries : c.cfg.maxRetries;
  if (++t.retries > limit) {
    enterClosed(c, "timed-out");
    return;
  }
  t.statRtoExpiries++;
  t.rto = Math.min(c.cfg.maxRtoMs, t.rto * 2); // §5.5 back off
  t.rttSeq = -1; // Karn: never time a retransmitted segment
  if (t.state !== TcpState.SYN_SENT && t.state !== TcpState.SYN_RECEIVED) onRto(t);
  t.sndNxt = t.sndUna; // go back N: the next output resends from SND.UNA (SYN, data or FIN)
  t.lastNow = now;
}

/** Zero-window probe (RFC 9293 §3.8.6.1): force one byte past the closed window, back off. */
function persistExpired(c: Conn, now: number): void {
  const t = c.tcb;
  t.persistDeadline = -1;
  if (t.sndWnd > 0) {
    t.persistBackoff = 0;
    return;
  }
  if (++t.retries > c.cfg.maxRetries) {
    enterClosed(c, "timed-out"); // no ACK at all to our probes
    return;
  }
  t.persistProbe = true;
  t.persistBackoff++;
  t.persistDeadline = now + persistInterval(c);
}

/** Persist interval: the RTO backed off by the probes already sent, within [minRto, maxRto]. */
export function persistInterval(c: Conn): number {
  const t = c.tcb;
  return clampRto(c, t.rto * 2 ** Math.min(t.persistBackoff, 16));
}

/** RFC 9293 §3.8.4 keepalive: probe an idle connection; after keepCount misses, reset it. */
function keepaliveExpired(c: Conn, now: number): void {
  const t = c.tcb;
  t.keepDeadline = -1;
  if (!t.keepalive || (t.state !== TcpState.ESTABLISHED && t.state !== TcpState.CLOSE_WAIT)) return;
  if (t.sndUna !== t.sndMax) {
    // Data outstanding: the retransmission timer watches the peer instead.
    t.keepDeadline = now + t.keepIdleMs;
    return;
  }
  if (t.keepProbes >= t.keepCount) {
    c.out.push(rstSegmentFor(t));
    enterClosed(c, "timed-out");
    return;
  }
  t.keepProbes++;
  t.keepProbeDue = true;
  t.keepDeadline = now + t.keepIntervalMs;
}

/** <SEQ=SND.NXT><CTL=RST> for this connection (RFC 9293 §3.10.4 ABORT); SND.MAX after a go-back, as for ACKs. */
export function rstSegmentFor(t: Tcb): TcpRepr {
  return {
    srcPort: t.localPort, dstPort: t.remotePort, seq: t.sndMax, ack: 0, flags: 0x04,
    window: 0, urgent: 0, options: {}, payload: new Uint8Array(0),
  };
}

/** Any segment from the peer proves it alive: restart the keepalive idle period. */
export function keepaliveHeard(c: Conn, now: number): void {
  const t = c.tcb;
  t.keepProbes = 0;
  t.keepDeadline = t.keepalive && (t.state === TcpState.ESTABLISHED || t.state === TcpState.CLOSE_WAIT) ? now + t.keepIdleMs : -1;
}

/** Start the RTO timer if data is outstanding and neither it nor the persist timer runs (RFC 6298 §5.1). */
export function armRto(c: Conn, now: number): void {
  const t = c.tcb;
  if (t.sndUna !== t.sndMax && t.rtoDeadline < 0 && t.persistDeadline < 0) t.rtoDeadline = now + t.rto;
}

/** Start timing `seq` (sent now) if nothing is being timed (RFC 6298 §3 / Karn); only without timestamps. */
export function timeSegment(t: Tcb, seq: number, now: number, isRetransmit: boolean): void {
  if (t.tsOk || isRetransmit || t.rttSeq >= 0) return;
  t.rttSeq = seq;
  t.rttTime = now;
}

/** A cumulative ACK `ack` arrived: take a sample if it covers the timed segment. */
export function ackTimed(c: Conn, ack: number, now: number): void {
  const t = c.tcb;
  if (t.rttSeq >= 0 && seqGt(ack, t.rttSeq)) {
    rttSample(c, now - t.rttTime);
    t.rttSeq = -1;
  }
}

/** Karn: retransmitting [seq, seq+len) ambiguates a timing in that range. */
export function retransmitted(t: Tcb, seq: number, len: number): void {
  if (t.rttSeq >= 0 && !seqGt(seq, t.rttSeq) && seqGt(seqAdd(seq, Math.max(len, 1)), t.rttSeq)) t.rttSeq = -1;
}
