// What a layer of the stack sees of its neighbours: ports to them, the pools it
// can read, the pool it owns, its configuration and store, and calls to them.
//
// Split stack (the default): each layer is a server; the lower server opens the
// channel to the upper one (nic -> pf -> ip -> tcp/udp); pools are created by the
// server that fills them and lent to the servers a packet may reach. A restarted
// server re-attaches everything from Proc.restored(); its neighbours reclaim the
// buffers it held.
//
// Single stack (`--stack single`, servers/stack.ts): all layers in one server,
// joined by LocalPorts; calls between layers are function calls.
import { IPCALL, KC } from "../ipc/calls.ts";
import type { Message } from "../ipc/message.ts";
import { PoolOwner } from "../ipc/pool.ts";
import type { ChannelInfo, PoolInfo, Proc } from "../sys/proc.ts";
import { NO_REPLY, type Handler } from "../sys/server.ts";
import { storeRegion, type Store } from "../sys/store.ts";
import { PacketPort, PoolSet, PORT_SLOT_BYTES, PORT_SLOTS, type Port } from "./port.ts";

/** What the layers of a single-stack server share. */
export interface SingleStack {
  /** This layer's name (nic, pf, ip, udp, tcp). */
  layer: string;
  pools: PoolSet;
  /** Pools owned by the stack from earlier generations, in creation order. */
  ownedLeft: PoolOwner[];
  /** Local calls between layers: layer name -> message type -> function. */
  calls: Map<string, Map<number, (payload: unknown) => unknown>>;
  store: Store;
}

export class Links {
  readonly proc: Proc;
  readonly pools: PoolSet;
  readonly ports = new Map<string, Port>();
  readonly stats = { peerRestarts: 0, reclaimed: 0 };
  /** The layer's configuration (from the command line, through the kernel). */
  readonly config: Record<string, unknown>;
  /** Where the layer saves what must survive its restart. */
  readonly store: Store;
  readonly single: SingleStack | null;
  private owned: PoolOwner | null = null;

  constructor(proc: Proc, single: SingleStack | null = null) {
    this.proc = proc;
    this.single = single;
    this.pools = single ? single.pools : new PoolSet();
    this.config = (single ? (proc.init.extra[single.layer] as Record<string, unknown> | undefined) : proc.init.extra) ?? {};
    this.store = single ? single.store : storeRegion(proc.init.store);
    if (single) return; // the stack server attaches restored resources once, for all layers
    for (const r of proc.restored()) {
      if (r.kind === "chan") this.addChannel(r.info);
      else if (r.kind === "pool") this.pools.add(proc.attachPool(r.info));
    }
  }

  get restarted(): boolean {
    return this.proc.init.generation > 0;
  }

  private nameOf(ep: number): string {
    for (const [n, e] of Object.entries(this.proc.endpoints)) if (e === ep) return n;
    return String(ep);
  }

  addChannel(info: ChannelInfo): Port {
    const port = new PacketPort(this.proc.attachChannel(info), this.pools);
    this.ports.set(this.nameOf(info.peer), port);
    return port;
  }

  /** Joins this layer to a neighbour in the same server (single stack). */
  addLocal(name: string, port: Port): void {
    this.ports.set(name, port);
  }

  /** Opens the channel to an upper neighbour (first start only; restored after a restart). */
  openUp(name: string): Port | undefined {
    const have = this.ports.get(name);
    if (have || this.single) return have;
    const ep = this.proc.endpoint(name);
    const ch = this.proc.openChannel(ep, { kind: "slots", slots: PORT_SLOTS, slotSize: PORT_SLOT_BYTES });
    const port = new PacketPort(ch, this.pools);
    this.ports.set(name, port);
    return port;
  }

  /** Creates (first start) or finds (after a restart) the one pool this layer owns, lent to `share`. */
  ownPool(count: number, bufSize: number, share: string[]): PoolOwner {
    if (this.owned) return this.owned;
    let pool: PoolOwner | undefined;
    if (this.single) pool = this.single.ownedLeft.shift();
    else for (const p of this.pools.pools.values()) if (p instanceof PoolOwner) pool = p;
    if (!pool) {
      const eps = this.single ? [] : share.map((n) => this.proc.endpoint(n)).filter((e) => e !== this.proc.ep);
      pool = this.proc.createPool(count, bufSize, eps);
    }
    this.pools.add(pool);
    this.owned = pool;
    return pool;
  }

  port(name: string): Port | undefined {
    return this.ports.get(name);
  }

  /** A call to a neighbouring layer: kernel IPC between servers, a function call in one. */
  call(name: string, type: number, payload: unknown): unknown {
    if (this.single) {
      const f = this.single.calls.get(name)?.get(type);
      if (!f) throw new Error(`no local call ${type} on layer ${name}`);
      return f(payload);
    }
    return this.proc.sendrec(this.proc.endpoint(name), type, payload, 2000);
  }

  flush(): void {
    for (const p of this.ports.values()) p.flush();
  }

  private readonly routes = new Map<number, { src: number; at: number }>();

  /** Our address towards `dst` (asks ip, then remembers it for a minute). */
  sourceFor(dst: number): number {
    const now = performance.now();
    const r = this.routes.get(dst);
    if (r && now - r.at < 60_000) return r.src;
    const v = this.call("ip", IPCALL.ROUTE, { dst }) as { src: number };
    this.routes.set(dst, { src: v.src, at: now });
    return v.src;
  }
}

/** Kernel messages about channels and pools, for a stack server's dispatch table. */
export function linkHandlers<S extends { links: Links }>(): Record<number, Handler<S>> {
  return {
    [KC.CHANNEL]: (s, m: Message) => {
      s.links.addChannel(m.payload as ChannelInfo);
      return NO_REPLY;
    },
    [KC.POOL]: (s, m: Message) => {
      s.links.pools.add(s.links.proc.attachPool(m.payload as PoolInfo));
      return NO_REPLY;
    },
    [KC.PEER_RESTARTED]: (s, m: Message) => {
      const p = m.payload as { ep: number; name: string };
      s.links.stats.peerRestarts++;
      s.links.stats.reclaimed += s.links.pools.reclaim(p.ep);
      return NO_REPLY;
    },
  };
}
