// The nic server: the driver. Frames from the wire are copied once into the
// driver's receive pool and travel up as descriptors (nic -> pf -> ip -> tcp/udp);
// frames from pf are written to the wire and their buffers returned. Descriptor
// rings in the style of virtio-net / i82599: a receive and a transmit ring of
// fixed slots, processed in batches.
import { SRV_CTL } from "../lib/ipc/calls.ts";
import type { PoolOwner } from "../lib/ipc/pool.ts";
import type { Proc } from "../lib/sys/proc.ts";
import type { ServerDef } from "../lib/sys/server.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import { eventfdCreate } from "../lib/sys/ffi.ts";
import type { Backend } from "./backends/backend.ts";
import { attachWire, type WireSpec } from "./wire.ts";

/** The fault injector's counts, wherever it sits in the chain of wrapped backends. */
function faultsOf(b: Backend | null): unknown {
  for (let x = b as (Backend & { faults?: () => unknown; inner?: Backend }) | undefined | null; x; x = x.inner as typeof x) {
    if (typeof x.faults === "function") return x.faults();
  }
  return undefined;
}

const RX_BUFFERS = 2048;
const RX_BUF_SIZE = 2048; // a full Ethernet frame (1514) with room to spare
const BATCH = 64;

interface State {
  links: Links;
  wire: Backend | null;
  pool: PoolOwner;
  stats: { rxNoBuffer: number; rxNoRing: number; rxTooBig: number; tx: number };
}

/**
 * The driver over its links: attached to the machine's wire (the machine owns the device,
 * so every generation attaches to the same one), with its receive pool and the channel to
 * pf, and the doorbell on an eventfd when the device has one (idle polls both).
 */
function attach(proc: Proc, links: Links, restarted: boolean): State {
  const spec = links.config.wire as WireSpec | undefined;
  const wire = spec ? attachWire(spec, new Int32Array(proc.init.machine, 0, 1)) : null;
  const pool = links.ownPool(RX_BUFFERS, RX_BUF_SIZE, ["pf", "ip", "tcp", "udp"]);
  links.openUp("pf");
  if (wire && wire.fd >= 0) proc.doorbell.setEventfd(eventfdCreate());
  if (wire) proc.log(`attached to ${wire.name}${restarted ? " (restarted)" : ""}`);
  return { links, wire, pool, stats: { rxNoBuffer: 0, rxNoRing: 0, rxTooBig: 0, tx: 0 } };
}

/** A first start (a server of its own, or a layer of servers/stack.ts): a new receive pool lent to the stack, a channel to pf. */
export function freshLayer(proc: Proc, links: Links): State {
  return attach(proc, links, false);
}

/**
 * After a restart: nothing is reloaded (the driver keeps no store). It re-attaches to the
 * same device, finds its receive pool among those Links restored (its neighbours reclaim
 * the buffers it held when the kernel tells them it restarted) and its channel to pf,
 * and makes a new eventfd for its doorbell.
 */
export function restartLayer(proc: Proc, links: Links): State {
  return attach(proc, links, true);
}

export const server: ServerDef<State> = {
  initFresh: (p) => freshLayer(p, new Links(p)),
  initRestart: (p) => restartLayer(p, new Links(p)),
  handlers: {
    ...linkHandlers<State>(),
    [SRV_CTL]: (s) => ({
      wire: s.wire?.name ?? "none", device: s.wire?.stats(), driver: s.stats, pool: s.pool.stats, free: s.pool.freeCount,
      faults: faultsOf(s.wire),
    }),
  },
  poll(s) {
    const pf = s.links.port("pf");
    if (!pf) return false;
    let n = 0;
    if (s.wire) {
      n += s.wire.recv(BATCH, (frame) => {
        if (frame.length > RX_BUF_SIZE) {
          s.stats.rxTooBig++;
          return;
        }
        const d = s.pool.alloc(frame.length);
        if (!d) {
          s.stats.rxNoBuffer++;
          return;
        }
        s.pool.view(d)!.set(frame);
        if (!pf.send({ ...d, tag: 0, a: 0, b: 0 })) {
          s.stats.rxNoRing++;
          s.pool.release(d);
        }
      });
    }
    n += pf.recv(BATCH, (p, frame) => {
      if (s.wire?.send(frame)) s.stats.tx++;
      s.links.pools.release(p);
    });
    pf.flush();
    return n > 0;
  },
  // Wait for the device and the rings at once: poll(2) on the device fd and the
  // doorbell's eventfd, which pf rings when it queues frames for us.
  idle(s, proc, ms) {
    if (s.wire && s.wire.fd >= 0) {
      proc.beat();
      const pf = s.links.port("pf");
      proc.doorbell.sleepPoll(() => !!pf?.hasInput() || proc.hasWork(), Math.min(ms, 50), s.wire.fd);
    } else proc.idle(ms);
  },
};
