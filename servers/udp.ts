// The udp server: datagram sockets. A shell: its state is made fresh or reloaded
// after a restart, calls forwarded by the syscall server go through a table to
// their handlers, and the loop polls ip, the fast sockets' arenas and the receive
// time limits. The work is in lib/net/transport: udp-input.ts (datagrams and ICMP
// errors from ip), udp-rings.ts (fast sockets: datagrams through the app's arena),
// udp-kipc.ts (data by kernel message), socktable.ts and ports.ts, saved.ts.
//
// Fast sockets (docs/design.md §4): a SOCKET call with `arena: true` makes a socket whose
// datagrams travel through the process's socket arena (lib/sock). The arena is made
// on the app's first such socket; its control SAB, a bell (lib/sock/sockbell.ts) and
// every segment are granted to the app (Proc.grantTo), and the SOCKET answer says
// where: { sock, slot, gen, control, bell, segments }. While udp has arenas it sleeps
// in poll(2) on its doorbell's eventfd, so an app can wake it through its bell
// without a system call. bind, connect, getsockname, getpeername and close stay
// system calls (close drains what is queued first).
import { NET, SRV_CTL, SYS } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import { EINVAL, ENOTCONN, ErrnoError } from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import { complete, netCallTable, num, type NetCallFn } from "../lib/net/netcall.ts";
import { SOCK_DGRAM as ARENA_DGRAM } from "../lib/sock/abi.ts";
import { loadUdp } from "../lib/net/transport/saved.ts";
import { onPacket } from "../lib/net/transport/udp-input.ts";
import { expireWaiters, recvCall, sendCall } from "../lib/net/transport/udp-kipc.ts";
import { drainSock, FAST_GEOMETRY, onTxDesc, pollArenas } from "../lib/net/transport/udp-rings.ts";
import { bindPort, blankSock, closeSock, newUdpState, save, sockOf, type UdpState } from "../lib/net/transport/udp-state.ts";

const POOL_BUF = 65_536 + 64;

/** A first start: no sockets. udp's pool is made now, so every neighbour has attached it before the first datagram. */
export function freshLayer(proc: Proc, links: Links): UdpState {
  const pool = links.ownPool(128, POOL_BUF, ["ip", "pf", "nic"]);
  return newUdpState(proc, links, pool, drainSock, onTxDesc);
}

/**
 * After a restart. Links re-attached the channels and pools of the earlier
 * generations, and ownPool finds udp's pool among them. From the store comes the
 * socket table (docs/design.md §6: UDP bindings live in shared memory): sockets keep their
 * ports and peers, and apps their descriptors. Fast sockets' arenas are not
 * re-attached: their apps' rings go quiet, their fds answer EBADF.
 */
export function restartLayer(proc: Proc, links: Links): UdpState {
  const s = freshLayer(proc, links);
  const saved = loadUdp(links.store);
  if (!saved) return s;
  for (const x of saved.socks) {
    const k = s.socks.add({ ...blankSock(x.id, x.app), laddr: x.laddr, raddr: x.raddr, rport: x.rport }, false);
    if (x.lport !== 0) s.socks.setPort(k, x.lport);
  }
  s.socks.nextId = saved.nextId;
  s.socks.dirty = false;
  return s;
}

// ---- calls, by the system call's number ---------------------------------------

const CALLS: Record<number, NetCallFn<UdpState>> = {
  [SYS.SOCKET]: (s, c) => {
    const k = blankSock(s.socks.newId(), c.app);
    if (c.args.arena !== true) {
      s.socks.add(k);
      return complete(s.proc, c, k.id);
    }
    const fa = s.arenas.for(c.app, c.args.mode === "syscall");
    const slot = fa.arena.allocSlot(ARENA_DGRAM, { geometry: FAST_GEOMETRY });
    if (slot < 0) throw new ErrnoError(-slot, "no socket buffer");
    k.fast = { fa, slot, sk: fa.arena.sock(slot)! };
    fa.socks.set(slot, k);
    s.socks.add(k, false); // arena sockets are not saved
    complete(s.proc, c, s.arenas.reply(fa, k.id, slot));
  },
  [SYS.BIND]: (s, c) => {
    const k = sockOf(s, c);
    if (k.lport !== 0) throw new ErrnoError(EINVAL, "already bound");
    bindPort(s, k, num(c.args, "addr", 0), num(c.args, "port", 0));
    k.fast?.sk.setAddrs(k.laddr, k.lport, k.raddr, k.rport);
    complete(s.proc, c, 0);
  },
  [SYS.CONNECT]: (s, c) => {
    const k = sockOf(s, c);
    k.raddr = num(c.args, "addr", 0) >>> 0;
    k.rport = num(c.args, "port", 0);
    s.socks.dirty = true;
    if (k.lport === 0) bindPort(s, k, 0, 0);
    k.fast?.sk.setAddrs(k.laddr, k.lport, k.raddr, k.rport);
    complete(s.proc, c, 0);
  },
  [SYS.SEND]: sendCall,
  [SYS.SENDTO]: sendCall,
  [SYS.RECV]: recvCall,
  [SYS.RECVFROM]: recvCall,
  [SYS.GETSOCKNAME]: (s, c) => {
    const k = sockOf(s, c);
    complete(s.proc, c, { addr: k.laddr, port: k.lport });
  },
  [SYS.GETPEERNAME]: (s, c) => {
    const k = sockOf(s, c);
    if (k.rport === 0) throw new ErrnoError(ENOTCONN, "not connected");
    complete(s.proc, c, { addr: k.raddr, port: k.rport });
  },
  [SYS.SHUTDOWN]: (s, c) => {
    sockOf(s, c);
    complete(s.proc, c, 0);
  },
  [SYS.SOCK_RESIZE]: (s, c) =>
    complete(s.proc, c, s.arenas.resize(c.app, c.args, (k, sk) => {
      if (k.fast) k.fast.sk = sk;
    })),
  [SYS.SOCK_OPT]: (s, c) => {
    s.arenas.sockAt(c.app, c.args.slot);
    complete(s.proc, c, 0); // no protocol options for a datagram socket
  },
  // The baseline (`--sockets syscall`): the app's system call after a write or before a read check.
  [SYS.SOCK_KICK]: (s, c) => {
    const { fa, slot, k } = s.arenas.sockAt(c.app, c.args.slot);
    drainSock(s, fa, slot);
    s.links.port("ip")?.flush();
    complete(s.proc, c, k.fast?.sk.readiness ?? 0);
  },
  [SYS.CLOSE]: (s, c) => {
    const k = sockOf(s, c);
    // An arena socket: what the app queued before closing still goes out.
    if (k.fast && s.socks.socks.has(k.id)) drainSock(s, k.fast.fa, k.fast.slot);
    s.links.port("ip")?.flush();
    closeSock(s, k);
    complete(s.proc, c, 0);
  },
};

export const server: ServerDef<UdpState> = {
  initFresh: (p) => freshLayer(p, new Links(p)),
  initRestart: (p) => restartLayer(p, new Links(p)),
  handlers: {
    ...linkHandlers<UdpState>(),
    [NET.CALL]: netCallTable<UdpState>("udp", CALLS, EINVAL, (s) => s.socks.dirty && save(s)),
    [SRV_CTL]: (s) => ({ sockets: s.socks.size, ports: s.socks.byPort.size, bound: [...s.socks.byPort.keys()], arenas: s.arenas.size, ...s.stats, pool: s.pool.stats }),
    [NET.APP_EXITED]: (s, m: Message) => {
      const app = (m.payload as { app?: number } | undefined)?.app;
      // Datagrams the app sent just before it exited still go out (sendto had returned).
      if (typeof app === "number" && s.arenas.takeLast(app)) s.links.port("ip")?.flush();
      for (const k of [...s.socks.values()]) if (k.app === app) closeSock(s, k);
      if (typeof app === "number") s.arenas.drop(app);
      save(s);
      return NO_REPLY;
    },
  },
  poll(s) {
    let did = false;
    const ip = s.links.port("ip");
    if (ip && ip.recv(64, (p, b) => onPacket(s, ip, p, b)) > 0) did = true;
    if (s.arenas.size > 0 && pollArenas(s)) did = true;
    ip?.flush();
    if (expireWaiters(s, performance.now())) did = true;
    return did;
  },
  nextDeadline: (s) => (s.socks.size > 0 ? 20 : Number.POSITIVE_INFINITY),
  // With arenas, sleep in poll(2) on the doorbell's eventfd (the kernel and ip ring it
  // through SLEEPING = 2), and tell each app through its bell that we sleep.
  idle(s, proc, ms) {
    s.arenas.idle(proc, ms, () => server.poll!(s, proc));
  },
};
