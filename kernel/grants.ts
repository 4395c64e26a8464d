// Shared memory between processes: grants (a SAB posted on a process's grant port),
// channels (CHAN_OPEN), packet pools (POOL_CREATE), memory a process made and shares
// (socket arenas), and what a restarted process gets back of all of it.
import { createByteRingBuffer, createSlotRingBuffer } from "../lib/ipc/ring.ts";
import { createPool } from "../lib/ipc/pool.ts";
import { encodeMessage } from "../lib/ipc/message.ts";
import { K, KC, KERNEL } from "../lib/ipc/calls.ts";
import { EINVAL, EPERM, ESRCH } from "../lib/sys/errno.ts";
import type { ChannelInfo, ChannelOpts, PoolInfo, Restored } from "../lib/sys/proc.ts";
import type { Slot } from "./slot.ts";
import type { Router } from "./route.ts";
import type { KernelState } from "./state.ts";

type Ok = (x: unknown) => void;
type Fail = (e: number, s: string) => void;

/** Grants, channels and pools, and their re-granting to a process's next generation. */
export class Grants {
  private nextGrant = 1;
  private nextChan = 1;
  private nextPool = 1;

  constructor(
    private readonly k: KernelState,
    private readonly router: Router,
  ) {}

  /** Posts `sab` to a process's grant port (or keeps it for its first one); returns the grant id. */
  grant(to: Slot, sab: SharedArrayBuffer, meta: Record<string, unknown>): number {
    const id = this.nextGrant++;
    if (to.grantPort) to.grantPort.postMessage({ id, sab, meta });
    else to.earlyGrants.push({ id, sab, meta }); // not started yet: given with its first port
    return id;
  }

  /** CHAN_OPEN: two rings between the caller and a peer in its ACL, each side given the other's doorbell. */
  openChannel(from: Slot, p: Record<string, unknown>, ok: Ok, fail: Fail): void {
    const peerEp = Number(p.peer);
    const peer = this.k.slots[peerEp];
    if (!peer || !from.ipc.has(peerEp)) return fail(peer ? EPERM : ESRCH, `channel to endpoint ${peerEp} refused`);
    const kind: "slots" | "stream" = p.kind === "slots" ? "slots" : "stream";
    let a: SharedArrayBuffer;
    let b: SharedArrayBuffer;
    try {
      if (kind === "stream") {
        const bytes = Number(p.bytes ?? 64 * 1024);
        a = createByteRingBuffer(bytes);
        b = createByteRingBuffer(bytes);
      } else {
        const slots = Number(p.slots ?? 256);
        const slotSize = Number(p.slotSize ?? 16);
        a = createSlotRingBuffer(slots, slotSize);
        b = createSlotRingBuffer(slots, slotSize);
      }
    } catch (e) {
      return fail(EINVAL, (e as Error).message);
    }
    const chan = this.nextChan++;
    const opts: ChannelOpts = { kind, bytes: p.bytes as number | undefined, slots: p.slots as number | undefined, slotSize: p.slotSize as number | undefined };
    const mine: ChannelInfo = {
      ...opts, chan, peer: peerEp,
      txGrant: this.grant(from, a, { chan, role: "tx" }),
      rxGrant: this.grant(from, b, { chan, role: "rx" }),
      peerDoorbellGrant: this.grant(from, peer.doorbellSab, { chan, role: "peer-doorbell" }),
    };
    const theirs: ChannelInfo = {
      ...opts, chan, peer: from.ep,
      txGrant: this.grant(peer, b, { chan, role: "tx" }),
      rxGrant: this.grant(peer, a, { chan, role: "rx" }),
      peerDoorbellGrant: this.grant(peer, from.doorbellSab, { chan, role: "peer-doorbell" }),
    };
    from.resources.push({ kind: "chan", chan, peer: peerEp, opts, tx: a, rx: b, peerDoorbell: peer.doorbellSab });
    peer.resources.push({ kind: "chan", chan, peer: from.ep, opts, tx: b, rx: a, peerDoorbell: from.doorbellSab });
    this.router.deliver(peer, encodeMessage({ dst: peerEp, src: KERNEL, type: KC.CHANNEL, id: 0, flags: 0 }, theirs));
    ok(mine);
  }

  /** A packet pool owned by the caller and lent to the endpoints in `share` (each must be in its ACL). */
  createPool(from: Slot, p: Record<string, unknown>, ok: Ok, fail: Fail): void {
    const share = Array.isArray(p.share) ? p.share.map(Number) : [];
    for (const ep of share) {
      if (!this.k.slots[ep]) return fail(ESRCH, `no process at endpoint ${ep}`);
      if (!from.ipc.has(ep)) return fail(EPERM, `${from.entry.name} may not share memory with endpoint ${ep}`);
    }
    let sab: SharedArrayBuffer;
    try {
      sab = createPool(Number(p.count ?? 1024), Number(p.bufSize ?? 2048));
    } catch (e) {
      return fail(EINVAL, (e as Error).message);
    }
    const pool = this.nextPool++;
    from.resources.push({ kind: "pool", pool, owner: from.ep, sab });
    for (const ep of share) {
      const peer = this.k.slots[ep]!;
      peer.resources.push({ kind: "pool", pool, owner: from.ep, sab });
      const info: PoolInfo = { pool, owner: from.ep, grant: this.grant(peer, sab, { pool }) };
      this.router.deliver(peer, encodeMessage({ dst: ep, src: KERNEL, type: KC.POOL, id: 0, flags: 0 }, info));
    }
    const mine: PoolInfo = { pool, owner: from.ep, grant: this.grant(from, sab, { pool }) };
    ok(mine);
  }

  /**
   * A process shares memory it made (a socket arena) with another: the SAB comes
   * over the worker's message port (IPC messages cannot carry one). A server may
   * grant to the endpoints in its ACL and, with K.GRANT_APP, to any app. The
   * answer goes back on the process's own grant port: { granted: req, id } or
   * { denied: req, errno, error }. The grantor keeps the SAB as a resource, so
   * its next generation gets it back.
   */
  grantFrom(from: Slot, req: number, to: number, sab: unknown, meta: unknown): void {
    const answer = (x: Record<string, unknown>) => from.grantPort?.postMessage({ ...x, req });
    const target = this.k.slots[to];
    if (!(sab instanceof SharedArrayBuffer)) return answer({ denied: req, errno: EINVAL, error: "not a SharedArrayBuffer" });
    if (!target || target.state === "exited") return answer({ denied: req, errno: ESRCH, error: `no process at endpoint ${to}` });
    const mayApp = target.entry.kind === "app" && from.kcalls.has(K.GRANT_APP);
    if (!from.ipc.has(to) && !mayApp) {
      from.denied++;
      return answer({ denied: req, errno: EPERM, error: `${from.entry.name} may not share memory with ${target.entry.name}` });
    }
    const m = (meta && typeof meta === "object" ? meta : {}) as Record<string, unknown>;
    const id = this.grant(target, sab, { ...m, from: from.ep });
    from.resources.push({ kind: "sab", to, sab, meta: m });
    answer({ granted: req, id });
  }

  /** Grants a new generation everything its endpoint held; returns the descriptions for its init. */
  regrant(slot: Slot): Restored {
    const out: Restored = [];
    for (const r of slot.resources) {
      if (r.kind === "chan") {
        out.push({
          kind: "chan",
          info: {
            ...r.opts, chan: r.chan, peer: r.peer,
            txGrant: this.grant(slot, r.tx, { chan: r.chan, role: "tx" }),
            rxGrant: this.grant(slot, r.rx, { chan: r.chan, role: "rx" }),
            peerDoorbellGrant: this.grant(slot, r.peerDoorbell, { chan: r.chan, role: "peer-doorbell" }),
          },
        });
      } else if (r.kind === "pool") {
        out.push({ kind: "pool", info: { pool: r.pool, owner: r.owner, grant: this.grant(slot, r.sab, { pool: r.pool }) } });
      } else if (this.k.slots[r.to]?.state !== "exited") {
        out.push({ kind: "sab", to: r.to, meta: r.meta, grant: this.grant(slot, r.sab, { ...r.meta, to: r.to }) });
      }
    }
    return out;
  }

  /** Tells everyone who shares memory with a restarted process (pool owners reclaim its buffers). */
  tellPeers(slot: Slot): void {
    const peers = new Set<number>();
    for (const r of slot.resources) {
      if (r.kind === "sab") continue;
      if (r.kind === "chan") peers.add(r.peer);
      else if (r.owner !== slot.ep) peers.add(r.owner);
      else for (const s of this.k.slots) if (s && s !== slot && s.resources.some((x) => x.kind === "pool" && x.pool === (r as { pool: number }).pool)) peers.add(s.ep);
    }
    const payload = { ep: slot.ep, name: slot.entry.name, generation: slot.gen };
    for (const ep of peers) {
      const peer = this.k.slots[ep];
      if (peer && peer.state === "running") {
        this.router.deliver(peer, encodeMessage({ dst: ep, src: KERNEL, type: KC.PEER_RESTARTED, id: 0, flags: 0 }, payload));
      }
    }
  }
}
