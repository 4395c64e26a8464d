// The channels and pools a stack server shares with its neighbours, kept across
// restarts: the lower server opens the channel to the upper one (nic -> pf -> ip ->
// tcp/udp); pools are created by the server that fills them and lent to the
// servers a packet may reach. A restarted server re-attaches everything from
// Proc.restored(); its neighbours reclaim the buffers it held.
import { KC } from "../ipc/calls.ts";
import type { Message } from "../ipc/message.ts";
import { PoolOwner } from "../ipc/pool.ts";
import type { ChannelInfo, PoolInfo, Proc } from "../sys/proc.ts";
import { NO_REPLY, type Handler } from "../sys/server.ts";
import { PacketPort, PoolSet, PORT_SLOT_BYTES, PORT_SLOTS } from "./port.ts";

export class Links {
  readonly proc: Proc;
  readonly pools = new PoolSet();
  readonly ports = new Map<number, PacketPort>();
  readonly stats = { peerRestarts: 0, reclaimed: 0 };

  constructor(proc: Proc) {
    this.proc = proc;
    for (const r of proc.restored()) {
      if (r.kind === "chan") this.addChannel(r.info);
      else this.pools.add(proc.attachPool(r.info));
    }
  }

  get restarted(): boolean {
    return this.proc.init.generation > 0;
  }

  addChannel(info: ChannelInfo): PacketPort {
    const port = new PacketPort(this.proc.attachChannel(info), this.pools);
    this.ports.set(info.peer, port);
    return port;
  }

  /** Opens the channel to an upper neighbour (first start only; restored after a restart). */
  openUp(name: string): PacketPort {
    const ep = this.proc.endpoint(name);
    const have = this.ports.get(ep);
    if (have) return have;
    const ch = this.proc.openChannel(ep, { kind: "slots", slots: PORT_SLOTS, slotSize: PORT_SLOT_BYTES });
    const port = new PacketPort(ch, this.pools);
    this.ports.set(ep, port);
    return port;
  }

  /** Creates (first start) or finds (after a restart) the one pool this server owns, lent to `share`. */
  ownPool(count: number, bufSize: number, share: string[]): PoolOwner {
    for (const p of this.pools.pools.values()) if (p instanceof PoolOwner) return p;
    const eps = share.map((n) => this.proc.endpoint(n)).filter((e) => e !== this.proc.ep);
    const pool = this.proc.createPool(count, bufSize, eps);
    this.pools.add(pool);
    return pool;
  }

  port(name: string): PacketPort | undefined {
    const ep = this.proc.endpoints[name];
    return ep === undefined ? undefined : this.ports.get(ep);
  }

  flush(): void {
    for (const p of this.ports.values()) p.flush();
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
