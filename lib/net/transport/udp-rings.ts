// Fast UDP sockets: datagrams travel through the app's socket arena (lib/sock). The
// arena walk (or a SOCK_KICK) drains a socket's TX datagrams, each validated by
// SockStack (a violation resets that socket and is counted; it never throws) and
// sent like a datagram by message; datagrams from ip go into the socket's RX ring
// (pushDatagram, which also publishes readiness and wakes the app if it sleeps on
// the socket; dropped and counted when the ring is full).
import type { FastApp } from "../../sock/fastapp.ts";
import type { SockStack, TxDesc } from "../../sock/stack.ts";
import { type Geometry, KIND_DATAGRAM, VIOLATION } from "../../sock/abi.ts";
import { ErrnoError } from "../../sys/errno.ts";
import { downTag, HEADROOM } from "../stackproto.ts";
import { IpProtocol } from "../ipv4.ts";
import { emitUdp, UDP_HEADER_LEN } from "../udp.ts";
import { MAX_DGRAM } from "./udp-kipc.ts";
import { bindPort, closeSock, type UdpSock, type UdpState } from "./udp-state.ts";

/** Socket buffer sizes of an arena socket: RX sized like RCVBUF, TX for one maximal datagram. */
export const FAST_GEOMETRY: Partial<Geometry> = { txSlots: 64, txData: 65536, rxSlots: 256, rxData: 262144 };
/** TX descriptors drained per socket per walk (the rest wait for the next walk). */
const TX_BUDGET = 64;

/** Drains one arena socket's TX; a violation resets the socket (counted), a drained CLOSE closes it. */
export function drainSock(s: UdpState, fa: FastApp<UdpSock>, slot: number): void {
  const k = fa.socks.get(slot);
  const sk = fa.arena.sock(slot);
  if (!k || !sk) return;
  s.draining = k;
  const r = sk.drainTx(s.onTx, TX_BUDGET);
  s.draining = null;
  if (r === VIOLATION) {
    s.stats.violations++;
    fa.arena.reset(slot);
  } else if (sk.isClosed) closeSock(s, k);
}

/** One drained TX descriptor: a datagram goes to ip (CLOSE is handled after the drain; CONNECT/SHUTDOWN mean nothing for UDP). */
export function onTxDesc(s: UdpState, d: TxDesc, sk: SockStack): void {
  const k = s.draining;
  if (!k || d.kind !== KIND_DATAGRAM) return;
  if (!(d.port > 0) || d.length > MAX_DGRAM) {
    s.stats.fastTxDrops++;
    return;
  }
  const ip = s.links.port("ip");
  const buf = ip ? s.pool.alloc(UDP_HEADER_LEN + d.length, HEADROOM) : null;
  if (!ip || !buf) {
    s.stats.fastTxDrops++;
    return;
  }
  const view = s.pool.view(buf)!;
  try {
    if (k.lport === 0) bindPort(s, k, 0, 0);
    const dst = d.arg >>> 0;
    const src = k.laddr !== 0 ? k.laddr : s.links.sourceFor(dst);
    const payload = view.subarray(UDP_HEADER_LEN, UDP_HEADER_LEN + d.length);
    if (d.length > 0) sk.copyTx(d.offset, d.length, payload);
    emitUdp({ srcPort: k.lport, dstPort: d.port, payload }, view, src, dst);
    if (!ip.send({ ...buf, tag: downTag(IpProtocol.UDP), a: dst, b: src >>> 0 })) {
      s.pool.release(buf);
      s.stats.fastTxDrops++;
      return;
    }
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e;
    s.pool.release(buf);
    s.stats.fastTxDrops++;
    return;
  }
  s.stats.fastTx++;
}

/** Walks every arena's activity; true if any socket had work. */
export function pollArenas(s: UdpState): boolean {
  const did = s.arenas.poll();
  if (did) s.links.port("ip")?.flush();
  return did;
}

/** A datagram for an arena socket: into its RX ring (counted; dropped when full). */
export function pushDatagram(s: UdpState, k: UdpSock, payload: Uint8Array, addr: number, port: number): void {
  const f = k.fast!;
  const r = f.sk.pushDatagram(payload, addr, port);
  if (r === 1) s.stats.fastRx++;
  else if (r === VIOLATION) violation(s, k);
  else s.stats.fastRxFull++;
}

/** An ICMP error for an arena socket: an ERROR descriptor in its RX ring. */
export function pushError(s: UdpState, k: UdpSock, errno: number): void {
  if (k.fast!.sk.pushError(errno) === VIOLATION) violation(s, k);
}

/** The app broke the ABI on this socket: reset it, count it. */
function violation(s: UdpState, k: UdpSock): void {
  s.stats.violations++;
  k.fast!.fa.arena.reset(k.fast!.slot);
}
