// index.ts — the TCP state machine of newts: segments and time in, segments and events out.
//
// No I/O, no clock, no randomness: the caller passes `now` (milliseconds, any origin,
// non-decreasing) and ISNs (from isnFor with a secret it drew at boot). Everything is
// deterministic, so the machine is tested without workers (see testlink.ts).
//
// ## One connection
//
//   const c = new TcpConnection(cfg);            // TcpConfig: MSS, buffers, timers…
//   c.connect(now, local, remote, iss);          // active open (or TcpListener below)
//   c.onSegment(now, seg);                       // a parsed TcpRepr addressed to c
//   c.onTick(now);                               // when now >= c.nextDeadline() (-1: none)
//   for (const seg of c.poll(now)) transmit(seg) // after any of the calls above
//   for (const ev of c.events()) …               // connected | readable | writable |
//                                                // peer-closed | reset | timed-out | closed
//   c.send(bytes) → count taken;  c.recv(max) → bytes;  c.shutdownWrite();  c.close();
//   c.abort();  c.setNoDelay(on);  c.setKeepalive(on, idleMs?, intervalMs?, count?)
//
// poll() must be called after onSegment/onTick/send/recv/close to collect what they
// caused; it is also where data, ACKs and retransmissions are generated. Segments
// returned are the caller's (payloads are copies); segments passed in are only read.
// "closed" is the last event of every connection: remove it from the table then.
//
// ## Listening and demultiplexing
//
//   const l = new TcpListener(cfg, backlog);     // cfg.secret keys ISNs and SYN cookies
//   const r = l.onSegment(now, seg, localAddr, remoteAddr);
//   // r.replies go back to remoteAddr; r.accepted (ESTABLISHED) goes into the table at once
//   l.onTick(now) → SYN-ACK retransmissions;  l.accept() → next accepted connection
//
//   const table = new TcpTable();                // 4-tuple → connection, port → listener
//   table.dispatch(now, seg, srcAddr, dstAddr)   // → connection, listener, or rstFor(seg)
//
// ## Files (split by job, as gVisor's tcp package)
//
//   seq.ts        modular sequence arithmetic       tcb.ts       control block, config, events
//   connect.ts    open, SYN options, negotiation    rcv.ts       segment arrival, reassembly, SACK, delayed ACK, FIN, rstFor
//   snd.ts        output, Nagle, SWS, probes, ACK   timer.ts     RTO (RFC 6298), persist, keepalive, TIME-WAIT
//   congestion.ts Reno/NewReno, SACK scoreboard     listener.ts  SYN queue, accept queue, SYN cookies
//   syncookie.ts  HalfSipHash, ISNs, cookies        table.ts     4-tuple lookup and dispatch
//   ring.ts       send/receive byte buffers         connection.ts TcpConnection (the API above)
//   testlink.ts   simulated link, hosts and a scripted peer, for tests

export { TcpConnection } from "./connection.ts";
export { type ListenerConfig, type ListenerStats, type ListenResult, TcpListener } from "./listener.ts";
export { rstFor } from "./rcv.ts";
export { checkCookie, halfSipHash, isnFor, makeCookie, type Secret } from "./syncookie.ts";
export { type DispatchResult, endpointKey, FourTupleMap, type Outgoing, TcpTable } from "./table.ts";
export {
  type Endpoint, type ResolvedConfig, resolveConfig, stateName, type Tcb, type TcpConfig, type TcpEvent, TcpState,
} from "./tcb.ts";
export type { PassiveOpen } from "./connect.ts";
export * as seq from "./seq.ts";
