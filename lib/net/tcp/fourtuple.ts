// Connections and SYN-queue entries by their four-tuple: one map type shared by the
// connection table and the listeners' SYN queues.

/**
 * An IPv4 endpoint as an exact 48-bit number, addr * 2^16 + port (a JS number holds
 * it exactly); a four-tuple is two of them, so the map is two-level: remote
 * endpoint, then local endpoint.
 */
export function endpointKey(addr: number, port: number): number {
  return (addr >>> 0) * 65536 + (port & 0xffff);
}

/** A map keyed by (localAddr, localPort, remoteAddr, remotePort): O(1) get/set/delete. */
export class FourTupleMap<V> {
  private readonly byRemote = new Map<number, Map<number, V>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(la: number, lp: number, ra: number, rp: number): V | undefined {
    return this.byRemote.get(endpointKey(ra, rp))?.get(endpointKey(la, lp));
  }

  /** Insert or replace. */
  set(la: number, lp: number, ra: number, rp: number, v: V): void {
    const rk = endpointKey(ra, rp);
    let inner = this.byRemote.get(rk);
    if (!inner) this.byRemote.set(rk, (inner = new Map()));
    const lk = endpointKey(la, lp);
    if (!inner.has(lk)) this.count++;
    inner.set(lk, v);
  }

  delete(la: number, lp: number, ra: number, rp: number): boolean {
    const rk = endpointKey(ra, rp);
    const inner = this.byRemote.get(rk);
    if (!inner || !inner.delete(endpointKey(la, lp))) return false;
    if (inner.size === 0) this.byRemote.delete(rk);
    this.count--;
    return true;
  }

  *values(): IterableIterator<V> {
    for (const inner of this.byRemote.values()) yield* inner.values();
  }
}
