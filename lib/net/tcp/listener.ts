// listener.ts — a listening socket: the SYN queue (half-open connections, SYN-ACK
// retransmission), the accept queue (completed connections not yet accepted), and
// SYN cookies (RFC 4987 §3.6) when the SYN queue is full, so that a SYN flood
// cannot keep real clients out.
//
// A listener owns no connection after handing it out: onSegment returns the new
// ESTABLISHED TcpConnection (the caller puts it in its table at once, since its
// segments start arriving), and keeps a reference in the accept queue for accept().

import { type TcpOptions, type TcpRepr, TcpFlag } from "../types.ts";
import { offeredWscale } from "./connect.ts";
import { TcpConnection } from "./connection.ts";
import { seqAdd, seqSub } from "./seq.ts";
import { checkCookie, decodeTsOptions, encodeTsOptions, isnFor, makeCookie, type Secret } from "./syncookie.ts";
import { FourTupleMap } from "./fourtuple.ts";
import { type Endpoint, type ResolvedConfig, resolveConfig, type TcpConfig, TcpState } from "./tcb.ts";

const EMPTY = new Uint8Array(0);

export interface ListenerConfig extends TcpConfig {
  /** Most half-open connections kept (default: the backlog, at least 128). Beyond it, SYN cookies. */
  synQueueSize?: number;
  /** SYN-ACK retransmissions before a half-open entry is dropped (default 5). */
  synAckRetries?: number;
  /** Key for ISNs and cookies. Servers must draw it at random; the default is for tests only. */
  secret?: Secret;
  /** Answer with SYN cookies when the SYN queue is full (default true); false drops such SYNs. */
  synCookies?: boolean;
}

/** A half-open connection: what we keep between the SYN and the final ACK. */
interface SynEntry {
  local: Endpoint;
  remote: Endpoint;
  iss: number;
  irs: number;
  peer: TcpOptions;
  sentAt: number;
  retries: number;
  deadline: number;
}

/** Reply from onSegment: segments back to the sender, and a new connection when a handshake completed. */
export interface ListenResult {
  replies: TcpRepr[];
  accepted?: TcpConnection;
}

/** Counters, for tests and `ps`-style tools. */
export interface ListenerStats {
  synReceived: number;
  cookiesSent: number;
  cookiesAccepted: number;
  cookiesRejected: number;
  /** SYNs (or final ACKs) dropped because the accept queue was full. */
  acceptQueueDrops: number;
  /** Half-open entries dropped after synAckRetries. */
  synTimeouts: number;
}

export class TcpListener {
  readonly cfg: ResolvedConfig;
  readonly backlog: number;
  readonly stats: ListenerStats = { synReceived: 0, cookiesSent: 0, cookiesAccepted: 0, cookiesRejected: 0, acceptQueueDrops: 0, synTimeouts: 0 };
  private readonly synQueueSize: number;
  private readonly synAckRetries: number;
  private readonly secret: Secret;
  private readonly cookies: boolean;
  private readonly synQueue = new FourTupleMap<SynEntry>();
  private readonly acceptQueue: TcpConnection[] = [];

  constructor(cfg: ListenerConfig = {}, backlog = 128) {
    this.cfg = resolveConfig(cfg);
    this.backlog = Math.max(1, backlog | 0);
    // Like Linux's tcp_max_syn_backlog: half-open connections are not bounded by a small
    // listen backlog (a cookie connection that finds the accept queue full is lost: it has
    // no SYN-ACK to retransmit).
    this.synQueueSize = Math.max(0, cfg.synQueueSize ?? Math.max(this.backlog, 128));
    this.synAckRetries = cfg.synAckRetries ?? 5;
    this.secret = cfg.secret ?? [0x6e657774, 0x73746370];
    this.cookies = cfg.synCookies ?? true;
  }

  /** Half-open connections held. */
  get synQueueLength(): number {
    return this.synQueue.size;
  }

  /** Completed connections waiting for accept(). */
  get acceptQueueLength(): number {
    return this.acceptQueue.length;
  }

  /** Take the oldest completed connection (it may already have data, or even be closed). */
  accept(): TcpConnection | undefined {
    return this.acceptQueue.shift();
  }

  /** A segment for this listener's port from `remoteAddr` to `localAddr` with no connection of its own. */
  onSegment(now: number, seg: TcpRepr, localAddr: number, remoteAddr: number): ListenResult {
    const f = seg.flags;
    const la = localAddr >>> 0, lp = seg.dstPort, ra = remoteAddr >>> 0, rp = seg.srcPort;
    const entry = this.synQueue.get(la, lp, ra, rp);
    if (f & TcpFlag.RST) {
      // RFC 9293 §3.10.7.2: ignore; but a RST for a half-open entry in its window frees it.
      if (entry && seg.seq >>> 0 === seqAdd(entry.irs, 1)) this.synQueue.delete(la, lp, ra, rp);
      return { replies: [] };
    }
    if (f & TcpFlag.ACK) {
      if (f & TcpFlag.SYN) return { replies: [rst(seg)] }; // SYN-ACK to a listener
      return this.finalAck(now, seg, la, lp, ra, rp, entry);
    }
    if (!(f & TcpFlag.SYN)) return { replies: [] }; // neither SYN nor ACK: drop
    this.stats.synReceived++;

    if (entry) {
      if (seg.seq >>> 0 === entry.irs) return { replies: [this.synAck(entry, now)] }; // retransmitted SYN
      this.synQueue.delete(la, lp, ra, rp); // a new incarnation: start over
    }
    if (this.acceptQueue.length >= this.backlog) {
      this.stats.acceptQueueDrops++; // like Linux: the client will retry
      return { replies: [] };
    }
    const local = { addr: la, port: lp };
    const remote = { addr: ra, port: rp };
    if (this.synQueue.size < this.synQueueSize) {
      const e: SynEntry = {
        local, remote, iss: isnFor(this.secret, now, la, lp, ra, rp), irs: seg.seq >>> 0, peer: { ...seg.options, sack: undefined },
        sentAt: now, retries: 0, deadline: now + this.cfg.initialRtoMs,
      };
      this.synQueue.set(la, lp, ra, rp, e);
      return { replies: [this.synAck(e, now)] };
    }
    if (!this.cookies) return { replies: [] };
    // SYN queue full: answer with a cookie and keep nothing.
    this.stats.cookiesSent++;
    const peer = seg.options;
    const iss = makeCookie(this.secret, now, la, lp, ra, rp, seg.seq, peer.mss ?? 536);
    const e: SynEntry = { local, remote, iss, irs: seg.seq >>> 0, peer, sentAt: now, retries: 0, deadline: -1 };
    return { replies: [this.synAck(e, now, true)] };
  }

  /** The ACK that may complete a handshake: from the SYN queue, or carrying a valid cookie. */
  private finalAck(now: number, seg: TcpRepr, la: number, lp: number, ra: number, rp: number, entry: SynEntry | undefined): ListenResult {
    const ack = seg.ack >>> 0;
    let open: { iss: number; irs: number; peer: TcpOptions; sentAt: number } | undefined;
    if (entry) {
      const d = seqSub(seg.seq >>> 0, seqAdd(entry.irs, 1));
      if (ack !== seqAdd(entry.iss, 1) || d < 0 || d >= Math.min(this.cfg.recvBufferSize, 65535)) return { replies: [rst(seg)] };
      open = { iss: entry.iss, irs: entry.irs, peer: entry.peer, sentAt: entry.sentAt };
    } else {
      const irs = seqAdd(seg.seq >>> 0, -1);
      const mss = checkCookie(this.secret, now, seqAdd(ack, -1), la, lp, ra, rp, irs);
      if (mss === undefined) {
        this.stats.cookiesRejected++;
        return { replies: [rst(seg)] }; // RFC 9293 §3.10.7.2: an ACK in LISTEN gets <SEQ=SEG.ACK><CTL=RST>
      }
      const ts = seg.options.timestamp;
      const peer: TcpOptions = { mss };
      if (ts) Object.assign(peer, decodeTsOptions(ts.ecr & 63), { timestamp: { val: ts.val, ecr: 0 } });
      open = { iss: seqAdd(ack, -1), irs, peer, sentAt: -1 };
    }
    if (this.acceptQueue.length >= this.backlog) {
      this.stats.acceptQueueDrops++; // keep the entry; the peer's retransmission will try again
      return { replies: [] };
    }
    if (entry) this.synQueue.delete(la, lp, ra, rp);
    else this.stats.cookiesAccepted++;
    const conn = TcpConnection.passive(this.cfg, now, {
      local: { addr: la, port: lp }, remote: { addr: ra, port: rp }, iss: open.iss, irs: open.irs, peer: open.peer,
      offeredWindow: Math.min(this.cfg.recvBufferSize, 65535), synAckSentAt: open.sentAt, ack: seg,
    });
    // The ACK may carry data or a FIN: let the connection process it like any segment.
    if (seg.payload.length > 0 || seg.flags & TcpFlag.FIN) conn.onSegment(now, seg);
    if (conn.state !== TcpState.CLOSED) this.acceptQueue.push(conn);
    return { replies: [], accepted: conn };
  }

  /** Our SYN-ACK for a SYN queue entry (or a cookie, whose TSval carries the peer's options). */
  private synAck(e: SynEntry, now: number, cookie = false): TcpRepr {
    const cfg = this.cfg;
    const o: TcpOptions = { mss: cfg.mss };
    const ws = cfg.windowScaling && e.peer.wscale !== undefined;
    const sack = cfg.sack && e.peer.sackPermitted === true;
    if (ws) o.wscale = offeredWscale(cfg);
    if (sack) o.sackPermitted = true;
    if (cfg.timestamps && e.peer.timestamp) {
      let val = (Math.floor(now) + cfg.tsOffset) >>> 0;
      if (cookie) val = (((val - 64) & ~63) | encodeTsOptions(ws ? e.peer.wscale : undefined, sack)) >>> 0;
      o.timestamp = { val, ecr: e.peer.timestamp.val >>> 0 };
    }
    return {
      srcPort: e.local.port, dstPort: e.remote.port, seq: e.iss, ack: seqAdd(e.irs, 1), flags: TcpFlag.SYN | TcpFlag.ACK,
      window: Math.min(cfg.recvBufferSize, 65535), urgent: 0, options: o, payload: EMPTY,
    };
  }

  /** Retransmit due SYN-ACKs (exponential backoff) and drop entries that ran out of tries. */
  onTick(now: number): Array<{ src: number; dst: number; seg: TcpRepr }> {
    const out: Array<{ src: number; dst: number; seg: TcpRepr }> = [];
    const dead: SynEntry[] = [];
    for (const e of this.synQueue.values()) {
      if (e.deadline < 0 || now < e.deadline) continue;
      if (e.retries >= this.synAckRetries) {
        dead.push(e);
        continue;
      }
      e.retries++;
      e.sentAt = -1; // Karn: no RTT sample from a retransmitted SYN-ACK
      e.deadline = now + Math.min(this.cfg.maxRtoMs, this.cfg.initialRtoMs * 2 ** e.retries);
      out.push({ src: e.local.addr, dst: e.remote.addr, seg: this.synAck(e, now) });
    }
    for (const e of dead) {
      this.synQueue.delete(e.local.addr, e.local.port, e.remote.addr, e.remote.port);
      this.stats.synTimeouts++;
    }
    return out;
  }

  /** Earliest SYN-ACK retransmission, or -1. */
  nextDeadline(): number {
    let d = -1;
    for (const e of this.synQueue.values()) if (e.deadline >= 0 && (d < 0 || e.deadline < d)) d = e.deadline;
    return d;
  }
}

/** <SEQ=SEG.ACK><CTL=RST> for an ACK that completes nothing. */
function rst(seg: TcpRepr): TcpRepr {
  return { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack >>> 0, ack: 0, flags: TcpFlag.RST, window: 0, urgent: 0, options: {}, payload: EMPTY };
}
