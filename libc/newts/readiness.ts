// The newts backend's readiness calls: select, poll and epoll_wait sweep their fds in user
// space, from the rings and the readiness words the stack publishes, and sleep on the
// doorbell only when nothing is ready (over sockets of two stack servers, in short slices,
// since one wait watches one arena).
import { ERR, HUP, KIND_ERROR, RDHUP } from "../../lib/sock/abi.ts";
import { EBADF, EEXIST, EINVAL, ENOENT, EOPNOTSUPP } from "../../lib/sys/errno.ts";
import { K } from "../counters.ts";
import {
  EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLONESHOT, type EpollEvent, POLLERR, POLLHUP, POLLIN, POLLNVAL,
  POLLOUT, POLLRDHUP, type PollFd, type SelectResult, SOCK_CLOEXEC, SOCK_DGRAM,
} from "../api.ts";
import { SocketControl } from "./control.ts";
import { type ArenaRec, type Epoll, newFd, streamState } from "./fd.ts";

/** What epoll reports whether asked or not. */
const EPOLL_MASK = EPOLLERR | EPOLLHUP;

/** select, poll and the epoll calls (the last layer: NewtsSockets adds only its constructor and stats). */
export class SocketReadiness extends SocketControl {
  /** revents of one fd for `events`, from the rings and the readiness word (arms the want words when not ready). */
  private revents(k: number, fd: number, events: number): number {
    const e = this.fds.get(fd);
    if (!e) return POLLNVAL;
    const s = e.sock;
    this.check(k, e);
    let r = 0;
    const bits = s.readinessBits();
    if (e.type === SOCK_DGRAM) {
      const rd = s.readable();
      if (rd && s.peekKind() === KIND_ERROR) r |= POLLERR; // an ICMP error waits (ECONNREFUSED, ...)
      else if (events & POLLIN && rd) r |= POLLIN;
      if (events & POLLOUT && s.writable()) r |= POLLOUT;
      if (bits & ERR) r |= POLLERR;
      if (bits & HUP) r |= POLLHUP;
      return r;
    }
    streamState(e);
    const rd = s.readable();
    if (e.listening) return events & POLLIN && rd ? POLLIN : 0;
    if (rd && s.peekKind() === KIND_ERROR && !e.connecting) {
      // a reset's ERROR is in the ring (its readiness bits may trail it by a moment)
      return POLLERR | POLLHUP | (events & (POLLIN | POLLOUT | POLLRDHUP));
    }
    if (!e.connected && !e.connecting && (bits & ERR) === 0) return POLLHUP | (events & POLLOUT ? POLLOUT : 0); // never connected
    if (events & POLLIN && (rd || e.peeked || e.shutRd)) r |= POLLIN;
    if (events & POLLOUT && !e.connecting && (e.shutWr || s.writable())) r |= POLLOUT;
    if (bits & ERR) r |= POLLERR | POLLHUP | (events & (POLLOUT | POLLIN | POLLRDHUP)); // reset: both directions are shut
    if (bits & HUP) r |= POLLHUP;
    if (bits & RDHUP) {
      if (events & POLLRDHUP) r |= POLLRDHUP;
      if (events & POLLIN) r |= POLLIN;
      if (e.shutWr) r |= POLLHUP;
    }
    return r;
  }

  /**
   * Sleeps until ready() or the timeout (-1: none), on the doorbell of the arena of fds (in
   * short slices when they span several arenas, or in syscall mode).
   */
  private sleepUntil(k: number, fds: Iterable<number>, ready: () => boolean, timeoutMs: number): void {
    this.sleeping(k);
    const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
    let ar: ArenaRec | null = null;
    let mixed = false;
    for (const fd of fds) {
      const e = this.fds.get(fd);
      if (!e) continue;
      if (ar && ar !== e.ar) {
        mixed = true;
        break;
      }
      ar = e.ar;
    }
    this.block(ar, -1, ready, deadline, mixed || this.mode === "syscall");
  }

  /** Fills out[] for fds; how many are ready. */
  private scan(k: number, fds: PollFd[], out: number[]): number {
    let n = 0;
    for (let i = 0; i < fds.length; i++) {
      out[i] = this.revents(k, fds[i]!.fd, fds[i]!.events);
      if (out[i] !== 0) n++;
    }
    return n;
  }

  private doPoll(k: number, fds: PollFd[], timeoutMs: number): number[] {
    const out = new Array<number>(fds.length).fill(0);
    if (this.scan(k, fds, out) > 0 || timeoutMs === 0) {
      this.ok(k);
      return out;
    }
    this.sleepUntil(k, fds.map((p) => p.fd), () => this.scan(k, fds, out) > 0, timeoutMs);
    return out;
  }

  select(readfds: Iterable<number>, writefds: Iterable<number>, timeoutMs: number): SelectResult {
    const k = K.select;
    this.enter(k);
    const want = new Map<number, number>();
    for (const fd of readfds) want.set(fd, (want.get(fd) ?? 0) | POLLIN);
    for (const fd of writefds) want.set(fd, (want.get(fd) ?? 0) | POLLOUT);
    const fds: PollFd[] = [];
    for (const [fd, events] of want) {
      if (!this.fds.has(fd)) this.raise(this.deny(k, EBADF), "select", fd);
      fds.push({ fd, events });
    }
    const rev = this.doPoll(k, fds, timeoutMs);
    const r: SelectResult = { n: 0, readfds: new Set(), writefds: new Set() };
    fds.forEach(({ fd, events }, i) => {
      const v = rev[i]!;
      if (events & POLLIN && v & (POLLIN | POLLHUP | POLLERR)) r.readfds.add(fd);
      if (events & POLLOUT && v & (POLLOUT | POLLERR)) r.writefds.add(fd);
    });
    r.n = r.readfds.size + r.writefds.size;
    return r;
  }

  poll(fds: PollFd[], timeoutMs: number): number[] {
    this.enter(K.poll);
    return this.doPoll(K.poll, fds, timeoutMs);
  }

  epoll_create1(flags = 0): number {
    const k = K.epoll_create1;
    this.enter(k);
    if (flags & ~SOCK_CLOEXEC) this.raise(this.deny(k, EINVAL), "epoll_create1", -1);
    const fd = newFd(this);
    this.eps.set(fd, { fd, cloexec: (flags & SOCK_CLOEXEC) !== 0, interest: new Map() });
    this.ok(k);
    return fd;
  }

  /** epfd's epoll instance, or EINVAL (a socket) or EBADF thrown. */
  private epollOf(k: number, what: string, epfd: number): Epoll {
    const ep = this.eps.get(epfd);
    if (!ep) this.raise(this.deny(k, this.fds.has(epfd) ? EINVAL : EBADF), what, epfd);
    return ep;
  }

  epoll_ctl(epfd: number, op: number, fd: number, events = 0, data?: number): void {
    const k = K.epoll_ctl;
    this.enter(k);
    const ep = this.epollOf(k, "epoll_ctl", epfd);
    if (fd === epfd) this.raise(this.deny(k, EINVAL), "epoll_ctl", epfd);
    if (!this.fds.has(fd)) this.raise(this.deny(k, this.eps.has(fd) ? EOPNOTSUPP : EBADF), "epoll_ctl", fd);
    const have = ep.interest.get(fd);
    switch (op) {
      case EPOLL_CTL_ADD:
        if (have) this.raise(this.deny(k, EEXIST), "epoll_ctl", fd);
        ep.interest.set(fd, { events, data: data ?? fd, lastRev: 0, lastArr: -1 });
        break;
      case EPOLL_CTL_MOD:
        if (!have) this.raise(this.deny(k, ENOENT), "epoll_ctl", fd);
        have.events = events;
        have.data = data ?? fd;
        have.lastRev = 0;
        have.lastArr = -1;
        break;
      case EPOLL_CTL_DEL:
        if (!have) this.raise(this.deny(k, ENOENT), "epoll_ctl", fd);
        ep.interest.delete(fd);
        break;
      default:
        this.raise(this.deny(k, EINVAL), "epoll_ctl", fd);
    }
    this.ok(k);
  }

  /** One sweep of an interest set into out (at most max); how many. */
  private sweep(k: number, ep: Epoll, max: number, out: EpollEvent[]): number {
    out.length = 0;
    for (const [fd, it] of ep.interest) {
      if (out.length >= max) break;
      const want = it.events & ~(EPOLLET | EPOLLONESHOT);
      if (want === 0 && (it.events & EPOLLONESHOT) !== 0) continue; // disarmed
      const rev = this.revents(k, fd, want | EPOLL_MASK) & (want | EPOLL_MASK);
      if (rev === 0) {
        it.lastRev = 0;
        continue;
      }
      if (it.events & EPOLLET) {
        const arr = this.fds.get(fd)!.sock.rxArrivals();
        if (rev === it.lastRev && arr === it.lastArr) continue; // nothing new since the last report
        it.lastRev = rev;
        it.lastArr = arr;
      }
      if (it.events & EPOLLONESHOT) it.events = EPOLLONESHOT;
      out.push({ data: it.data, events: rev });
    }
    return out.length;
  }

  epoll_wait(epfd: number, max: number, timeoutMs: number): EpollEvent[] {
    const k = K.epoll_wait;
    this.enter(k);
    const ep = this.epollOf(k, "epoll_wait", epfd);
    if (!(max > 0)) this.raise(this.deny(k, EINVAL), "epoll_wait", epfd);
    const out: EpollEvent[] = [];
    if (this.sweep(k, ep, max, out) > 0 || timeoutMs === 0) {
      this.ok(k);
      return out;
    }
    // The sweep consumes edges (EPOLLET, EPOLLONESHOT): once it found events, they are the
    // answer; a second look (the sleep re-checks ready()) must not sweep them away.
    let found = false;
    this.sleepUntil(k, ep.interest.keys(), () => found || (found = this.sweep(k, ep, max, out) > 0), timeoutMs);
    return out;
  }
}
