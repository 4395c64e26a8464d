// The socket table of a transport server (tcp, udp): sockets by id, owned by an
// app, and indexed by local port; ids and ephemeral ports are handed out here.
// `dirty` says the table changed since the server last saved it (the server saves
// it to its store after each batch of calls, for a restart). Pure: no worker, no Proc.
import { EBADF, ErrnoError } from "../../sys/errno.ts";
import { EphemeralPorts } from "./ports.ts";

/** What the table needs of a socket record. */
export interface TableSock {
  id: number;
  /** The app that made it (only that app may name it). */
  app: number;
  /** Local port; 0 while unbound. */
  lport: number;
}

const NONE: ReadonlySet<never> = new Set();

export class SockTable<S extends TableSock> {
  readonly socks = new Map<number, S>();
  /** Sockets by local port (no empty sets: a port is in the map while somebody is on it). */
  readonly byPort = new Map<number, Set<S>>();
  readonly ephemeral: EphemeralPorts;
  nextId = 1;
  /** The table changed since it was last saved. */
  dirty = false;

  constructor(ephemeralStart?: number) {
    this.ephemeral = new EphemeralPorts(ephemeralStart);
  }

  get size(): number {
    return this.socks.size;
  }

  /** Every socket, in the order they were entered. */
  values(): IterableIterator<S> {
    return this.socks.values();
  }

  /** An id for a new socket. */
  newId(): number {
    return this.nextId++;
  }

  /** Enters a socket (made with newId, or reloaded after a restart); `dirty` unless told otherwise. */
  add(k: S, dirty = true): S {
    this.socks.set(k.id, k);
    if (dirty) this.dirty = true;
    return k;
  }

  /** The app's socket `id`; EBADF for an unknown id, another app's socket, or one `alive` rejects. */
  of(app: number, id: number | undefined, alive?: (k: S) => boolean): S {
    const k = id === undefined ? undefined : this.socks.get(id);
    if (!k || k.app !== app || (alive && !alive(k))) throw new ErrnoError(EBADF, "no such socket");
    return k;
  }

  /** Moves k to local port `port`. */
  setPort(k: S, port: number): void {
    this.dirty = true;
    if (k.lport !== 0) this.leave(k);
    k.lport = port;
    let set = this.byPort.get(port);
    if (!set) this.byPort.set(port, (set = new Set()));
    set.add(k);
  }

  /** The sockets on a local port, in the order they came. */
  users(port: number): ReadonlySet<S> {
    return this.byPort.get(port) ?? NONE;
  }

  /** The first socket on `port` that `pred` accepts. */
  find(port: number, pred: (k: S) => boolean): S | undefined {
    for (const k of this.users(port)) if (pred(k)) return k;
    return undefined;
  }

  /** A free ephemeral port: one `inUse` does not claim (default: one nobody is on). */
  freePort(inUse: (port: number) => boolean = (p) => this.byPort.has(p)): number {
    return this.ephemeral.take(inUse);
  }

  /** Takes k out of the table and off its port (its lport is left as it was). */
  remove(k: S): void {
    this.dirty = true;
    this.socks.delete(k.id);
    this.leave(k);
  }

  private leave(k: S): void {
    const set = this.byPort.get(k.lport);
    set?.delete(k);
    if (set && set.size === 0) this.byPort.delete(k.lport);
  }
}
