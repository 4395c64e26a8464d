// The single stack (`--stack single`, the paper's combined stack): the driver,
// pf, ip, udp and tcp layers in one server, for small machines. Each layer runs
// the very code of its own server (freshLayer or restartLayer, handlers, poll) over Links whose
// ports are in-process queues and whose calls are function calls; packets still
// move as descriptors into the same pools. The kernel knows this server by the
// layers' names too, so the syscall server and ctl reach it unchanged.
import { bellsSleeping } from "../lib/sock/fastapp.ts";
import { IPCALL, NET, SRV_CTL } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import { PoolOwner } from "../lib/ipc/pool.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type Handler, type ServerDef } from "../lib/sys/server.ts";
import { storeRegion } from "../lib/sys/store.ts";
import { Links, type SingleStack } from "../lib/net/links.ts";
import { LocalPort, PoolSet } from "../lib/net/port.ts";
import * as nic from "../drivers/nic.ts";
import * as pf from "./pf.ts";
import * as ip from "./ip.ts";
import * as udp from "./udp.ts";
import * as tcp from "./tcp.ts";

/** In start order: pools are created in this order, and found again in it after a restart. */
const LAYERS = [
  { name: "nic", mod: nic },
  { name: "pf", mod: pf },
  { name: "ip", mod: ip },
  { name: "udp", mod: udp },
  { name: "tcp", mod: tcp },
] as const;

type AnyDef = ServerDef<unknown>;

interface Layer {
  name: string;
  def: AnyDef;
  s: unknown;
}

interface State {
  layers: Layer[];
  byName: Map<string, Layer>;
}

/** What every layer module exports (drivers/nic.ts, servers/{pf,ip,udp,tcp}.ts). */
type LayerInit = (proc: Proc, links: Links) => unknown;

/**
 * The layers over one set of pools, joined by local ports. `ownedLeft`: the pools of an
 * earlier generation, in creation order (each layer's ownPool takes the next); `restart`:
 * each layer starts with its restartLayer (else its freshLayer).
 */
function build(proc: Proc, ownedLeft: PoolOwner[], restart: boolean): State {
  const pools = new PoolSet();
  const calls: SingleStack["calls"] = new Map();
  const links = new Map<string, Links>();
  LAYERS.forEach(({ name }, i) => {
    links.set(name, new Links(proc, { layer: name, pools, ownedLeft, calls, store: storeRegion(proc.init.store, i, LAYERS.length) }));
  });
  const join = (a: string, b: string) => {
    const [pa, pb] = LocalPort.pair(proc.ep, pools);
    links.get(a)!.addLocal(b, pa);
    links.get(b)!.addLocal(a, pb);
  };
  join("nic", "pf");
  join("pf", "ip");
  join("ip", "udp");
  join("ip", "tcp");
  const layers: Layer[] = LAYERS.map(({ name, mod }) => ({
    name,
    def: mod.server as unknown as AnyDef,
    s: ((restart ? mod.restartLayer : mod.freshLayer) as LayerInit)(proc, links.get(name)!),
  }));
  const byName = new Map(layers.map((l) => [l.name, l]));
  // ip's calls, as function calls for the transports.
  const ipl = byName.get("ip")!;
  const ipCalls = new Map<number, (payload: unknown) => unknown>();
  for (const t of [IPCALL.ROUTE, IPCALL.ADDRS]) {
    ipCalls.set(t, (payload) => ipl.def.handlers[t]!(ipl.s, fakeMessage(proc, t, payload), proc));
  }
  calls.set("ip", ipCalls);
  return { layers, byName };
}

/** A first start: the layers make their pools and channels. */
function fresh(proc: Proc): State {
  return build(proc, [], false);
}

/**
 * After a restart: the stack re-attaches the pools it owned (the kernel re-grants them;
 * there is no channel, its layers are joined in-process) and hands them to the layers in
 * creation order; each layer reloads its part of the store in its restartLayer.
 */
function restart(proc: Proc): State {
  const ownedLeft: PoolOwner[] = [];
  for (const r of proc.restored()) {
    if (r.kind !== "pool") continue;
    const p = proc.attachPool(r.info);
    if (p instanceof PoolOwner) ownedLeft.push(p);
  }
  return build(proc, ownedLeft, true);
}

function fakeMessage(proc: Proc, type: number, payload: unknown): Message {
  return { dst: proc.ep, src: proc.ep, type, id: 0, flags: 0, payload };
}

/** Hands a message to one layer's handler. */
function to(layer: Layer | undefined, m: Message, proc: Proc): unknown {
  const h = layer?.def.handlers[m.type];
  return h ? h(layer!.s, m, proc) : NO_REPLY;
}

const byLayer: Handler<State> = (s, m, proc) => {
  const name = (m.payload as { layer?: unknown; name?: unknown } | undefined)?.layer ?? (m.payload as { name?: unknown } | undefined)?.name;
  return to(s.byName.get(String(name)), m, proc);
};

export const server: ServerDef<State> = {
  initFresh: fresh,
  initRestart: restart,
  handlers: {
    [NET.CALL]: byLayer,
    [SRV_CTL]: byLayer,
    [NET.APP_EXITED]: (s, m, proc) => {
      to(s.byName.get("tcp"), m, proc);
      to(s.byName.get("udp"), m, proc);
      return NO_REPLY;
    },
    [IPCALL.ROUTE]: (s, m, proc) => to(s.byName.get("ip"), m, proc),
    [IPCALL.ADDRS]: (s, m, proc) => to(s.byName.get("ip"), m, proc),
  },
  poll(s, proc) {
    let did = false;
    for (const l of s.layers) if (l.def.poll?.(l.s, proc)) did = true;
    return did;
  },
  nextDeadline(s) {
    let d = Number.POSITIVE_INFINITY;
    for (const l of s.layers) if (l.def.nextDeadline) d = Math.min(d, l.def.nextDeadline(l.s));
    return d;
  },
  idle(s, proc, ms) {
    // The transport layers' bells say "asleep" so apps ring the doorbell's eventfd,
    // which the nic layer's sleep watches with the device (store, then recheck).
    if (bellsSleeping(true)) {
      bellsSleeping(false);
      return;
    }
    const n = s.byName.get("nic")!;
    if (n.def.idle) n.def.idle(n.s, proc, ms);
    else proc.idle(ms);
    bellsSleeping(false);
  },
};
