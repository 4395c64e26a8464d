// The event loop's readiness interface, shared by the apps (httpd, memcached): one of
// three event handlers (select, poll or epoll, as lighttpd's server.event-handler) behind
// one small interface. The app says which events it wants per fd (IN, OUT; errors always
// come back) and gets [fd, events] pairs from each wait, in poll's bit values (POLLIN ===
// EPOLLIN, POLLOUT === EPOLLOUT, POLLERR === EPOLLERR, POLLHUP === EPOLLHUP).
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, POLLIN, POLLOUT, type PollFd, type SocketApi } from "../../libc/api.ts";

/** The event handlers, as the apps' --event-handler names them. */
export const HANDLERS = ["select", "poll", "epoll"] as const;
export type Handler = (typeof HANDLERS)[number];

export interface Poller {
  readonly name: Handler;
  /** Watches fd for events (IN, OUT; errors always), adding it or changing what it watches. */
  set(fd: number, events: number): void;
  del(fd: number): void;
  /** Ready fds with their events, waiting at most timeoutMs. */
  wait(timeoutMs: number, out: Array<[number, number]>): void;
  /** Lets go of what the handler holds (epoll's descriptor). */
  close(): void;
}

class EpollPoller implements Poller {
  readonly name = "epoll";
  private readonly ep: number;
  private readonly on = new Map<number, number>();
  constructor(private readonly api: SocketApi, private readonly maxEvents: number) {
    this.ep = api.epoll_create1(0);
  }
  set(fd: number, events: number): void {
    const had = this.on.get(fd);
    if (had === events) return;
    this.api.epoll_ctl(this.ep, had === undefined ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, events);
    this.on.set(fd, events);
  }
  del(fd: number): void {
    if (!this.on.delete(fd)) return;
    try {
      this.api.epoll_ctl(this.ep, EPOLL_CTL_DEL, fd);
    } catch {
      // gone already
    }
  }
  wait(timeoutMs: number, out: Array<[number, number]>): void {
    for (const e of this.api.epoll_wait(this.ep, this.maxEvents, timeoutMs)) out.push([e.data, e.events]);
  }
  close(): void {
    this.api.close(this.ep);
  }
}

/** poll and select keep the interest set here and hand it over on every wait. */
abstract class SetPoller implements Poller {
  abstract readonly name: Handler;
  protected readonly on = new Map<number, number>();
  constructor(protected readonly api: SocketApi) {}
  set(fd: number, events: number): void {
    this.on.set(fd, events);
  }
  del(fd: number): void {
    this.on.delete(fd);
  }
  abstract wait(timeoutMs: number, out: Array<[number, number]>): void;
  close(): void {
    // nothing held in the kernel
  }
}

class PollPoller extends SetPoller {
  readonly name = "poll";
  wait(timeoutMs: number, out: Array<[number, number]>): void {
    const fds: PollFd[] = [];
    for (const [fd, events] of this.on) fds.push({ fd, events });
    const rev = this.api.poll(fds, timeoutMs);
    for (let i = 0; i < fds.length; i++) if (rev[i]) out.push([fds[i]!.fd, rev[i]!]);
  }
}

class SelectPoller extends SetPoller {
  readonly name = "select";
  wait(timeoutMs: number, out: Array<[number, number]>): void {
    const r: number[] = [];
    const w: number[] = [];
    for (const [fd, events] of this.on) {
      if (events & POLLIN) r.push(fd);
      if (events & POLLOUT) w.push(fd);
    }
    const s = this.api.select(r, w, timeoutMs);
    const ready = new Map<number, number>();
    for (const fd of s.readfds) ready.set(fd, POLLIN);
    for (const fd of s.writefds) ready.set(fd, (ready.get(fd) ?? 0) | POLLOUT);
    for (const e of ready) out.push(e);
  }
}

/** The poller of handler h on api; epoll's waits return at most maxEvents fds. */
export function makePoller(h: Handler, api: SocketApi, maxEvents = 1024): Poller {
  return h === "epoll" ? new EpollPoller(api, maxEvents) : h === "poll" ? new PollPoller(api) : new SelectPoller(api);
}
