// The newts backend's descriptor table and socket arenas: what an fd of this library is,
// how a socket's arena is mapped from what the stack grants (the arena on the first socket
// of a stack server, its segments as they come), and how a descriptor's slot is opened.
import { AppArena } from "../../lib/sock/arena.ts";
import type { SockApp } from "../../lib/sock/app.ts";
import { ST_CONNECTED, ST_RESET } from "../../lib/sock/abi.ts";
import { ENOMEM, ErrnoError } from "../../lib/sys/errno.ts";
import type { Linger, SockAddr } from "../api.ts";
import type { Proc } from "../../lib/sys/proc.ts";

const MAX_FDS = 65_536;

/** What a stack server answers to SOCKET with `arena: true` (through the syscall server). */
export interface SocketReply {
  fd: number;
  slot: number;
  gen: number;
  control: number;
  bell: number;
  segments: number[];
  server?: string;
}

/** One stack server's arena in this process. */
export interface ArenaRec {
  name: string;
  arena: AppArena;
  bell: Int32Array;
  attached: Set<number>;
}

/** A socket descriptor of this library. */
export interface Fd {
  fd: number;
  sock: SockApp;
  slot: number;
  ar: ArenaRec;
  /** The syscall server's handle (-1: an accepted child, which needs none). */
  sysfd: number;
  type: number;
  nonblock: boolean;
  cloexec: boolean;
  /** A datagram socket's connected peer. */
  peer: SockAddr | null;
  opts: Map<string, number>;
  linger: Linger;
  listening: boolean;
  connecting: boolean;
  connected: boolean;
  shutRd: boolean;
  shutWr: boolean;
  /** A stream's MSG_PEEK bytes, read out of the ring and not yet delivered. */
  peeked: Uint8Array | null;
}

/** One fd in an epoll instance's interest set. */
export interface Interest {
  events: number;
  data: number;
  /** Edge-triggered: what was last reported (revents, RX arrivals), to report only changes. */
  lastRev: number;
  lastArr: number;
}

/** An epoll instance's descriptor. */
export interface Epoll {
  fd: number;
  cloexec: boolean;
  interest: Map<number, Interest>;
}

/** What the descriptor helpers use of libc's socket state (SocketCore has it). */
export interface FdTable {
  readonly proc: Proc;
  readonly fds: Map<number, Fd>;
  readonly eps: Map<number, Epoll>;
  readonly arenas: Map<string, ArenaRec>;
}

/** The lowest descriptor number free among sockets and epoll instances (from 3, as after stdio). */
export function newFd(c: FdTable): number {
  for (let fd = 3; fd < MAX_FDS; fd++) if (!c.fds.has(fd) && !c.eps.has(fd)) return fd;
  throw new ErrnoError(ENOMEM, "no fd left");
}

/** A fresh descriptor record: not yet listening or connected, no options set. */
export function fdEntry(fd: number, sock: SockApp, slot: number, ar: ArenaRec, sysfd: number, type: number, nonblock: boolean, cloexec: boolean): Fd {
  return {
    fd, sock, slot, ar, sysfd, type, nonblock, cloexec, peer: null, opts: new Map(), linger: { onoff: false, linger: 0 },
    listening: false, connecting: false, connected: false, shutRd: false, shutWr: false, peeked: null,
  };
}

/** Maps what the answer names (the server's arena on its first socket, new segments) and opens the slot. */
export function attach(c: FdTable, server: string, r: SocketReply): { sock: SockApp; ar: ArenaRec } | null {
  const p = c.proc;
  let ar = c.arenas.get(server);
  if (!ar) {
    ar = { name: server, arena: new AppArena(p.grant(r.control).sab), bell: new Int32Array(p.grant(r.bell).sab), attached: new Set() };
    c.arenas.set(server, ar);
  }
  attachSegments(c, ar, r.segments);
  const sock = ar.arena.open(r.slot, r.gen);
  return sock ? { sock, ar } : null;
}

/** Maps the segments a stack's answer lists (grant ids by segment index) that are not mapped yet. */
export function attachSegments(c: FdTable, ar: ArenaRec, segs: unknown): void {
  if (!Array.isArray(segs)) return;
  for (let i = 0; i < segs.length; i++) {
    const id = segs[i];
    if (ar.attached.has(i) || typeof id !== "number" || id < 0) continue;
    ar.arena.attachSegment(i, c.proc.grant(id).sab);
    ar.attached.add(i);
  }
}

/**
 * A child tcp premapped into a segment this library has not attached yet: the stack
 * granted the segment (through the kernel, asynchronously) when it grew the arena.
 * Wait briefly for that grant, attach it, and open the slot.
 */
export function openLate(c: FdTable, ar: ArenaRec, slot: number, gen: number): SockApp | null {
  const { index, attached } = ar.arena.segmentOf(slot);
  if (index < 0 || attached) return null;
  const deadline = performance.now() + 2000;
  for (;;) {
    const g = c.proc.findGrant((x) => x.meta.arena === ar.name && x.meta.role === "segment" && x.meta.index === index);
    if (g) {
      ar.arena.attachSegment(index, g.sab);
      ar.attached.add(index);
      return ar.arena.open(slot, gen);
    }
    if (performance.now() > deadline) return null;
    c.proc.beat();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}

/** Follows a nonblocking connect's progress through the stack's state word. */
export function streamState(e: Fd): void {
  if (!e.connecting) return;
  const st = e.sock.state();
  if (st === ST_CONNECTED) {
    e.connecting = false;
    e.connected = true;
    e.sock.takeError(); // the CONNECT's success (ERROR 0), queued before the state changed
  } else if (st === ST_RESET) e.connecting = false; // failed: the ERROR waits in the ring
  // (ST_OPEN: the stack has not taken the CONNECT yet)
}
