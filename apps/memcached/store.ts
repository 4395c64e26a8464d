// memcached's cache, for apps/memcached.ts: a hash map of items, one LRU list, memory
// accounting against a limit (-m) with eviction from the LRU tail (or, with -M, an error
// instead), an item size limit (-I), lazy expiry on an injectable clock, flush_all (now or
// at a later time), CAS unique ids and incr/decr on 64-bit unsigned decimals. The semantics
// follow memcached 1.6's items.c/memcached.c (do_store_item, do_add_delta, realtime,
// item_size_ok), so the protocols (text.ts, meta.ts, binary.ts) can match its replies.
//
// Keys are JS strings holding one byte per char (latin1: char code = byte), so binary keys
// from the binary protocol or base64 meta keys map exactly; keyBytes() turns them back.
// Values are Uint8Arrays that are never modified once stored (incr/decr and append build a
// new array), so an output queue may keep referring to one after the item changes.
//
// Sizes are accounted as memcached does (ITEM_ntotal with CAS): 48 bytes of header, 8 of
// CAS, the key and its NUL, the value and its "\r\n".

export const KEY_MAX_LENGTH = 250;
/** Relative expiration times up to 30 days; larger ones are absolute unix times. */
export const REALTIME_MAXDELTA = 60 * 60 * 24 * 30;
export const ITEM_HEADER = 56;
const U64 = (1n << 64n) - 1n;

/** memcached's ITEM_ntotal for a key of nkey bytes and a value of nbytes bytes. */
export function itemTotal(nkey: number, nbytes: number): number {
  return ITEM_HEADER + nkey + 1 + nbytes + 2;
}

/** A key string (one char per byte) from bytes. */
export function bytesToKey(b: Uint8Array, start = 0, end = b.length): string {
  let s = "";
  if (end - start <= 64) {
    for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
    return s;
  }
  for (let i = start; i < end; i += 8192) {
    s += String.fromCharCode.apply(null, b.subarray(i, Math.min(end, i + 8192)) as unknown as number[]);
  }
  return s;
}

/** The bytes of a key string (or of any latin1 string: protocol lines). */
export function keyBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

export class Item {
  prev: Item | null = null;
  next: Item | null = null;
  /** Last access (seconds, the store's clock). */
  time: number;
  /** Absolute expiry (seconds), 0 = never. */
  exptime: number;
  cas = 0;
  fetched = false;
  /** meta: marked stale by md I / ms I (X), a win token handed out (W/Z), key given base64 (b). */
  stale = false;
  tokenSent = false;
  keyBinary = false;
  readonly size: number;
  constructor(
    readonly key: string,
    readonly value: Uint8Array,
    readonly flags: number,
    exptime: number,
    now: number,
  ) {
    this.exptime = exptime;
    this.time = now;
    this.size = itemTotal(key.length, value.length);
  }
}

export type StoreMode = "set" | "add" | "replace" | "append" | "prepend" | "cas";
export type StoreStatus = "STORED" | "EXISTS" | "NOT_FOUND" | "NOT_STORED" | "TOO_LARGE" | "NO_MEMORY";
export type DeltaStatus = "OK" | "NOT_FOUND" | "NON_NUMERIC" | "EXISTS" | "NO_MEMORY";

/** The cache's counters, named as memcached's `stats`. */
export class Counters {
  cmd_get = 0;
  cmd_set = 0;
  cmd_flush = 0;
  cmd_touch = 0;
  cmd_meta = 0;
  get_hits = 0;
  get_misses = 0;
  get_expired = 0;
  get_flushed = 0;
  delete_misses = 0;
  delete_hits = 0;
  incr_misses = 0;
  incr_hits = 0;
  decr_misses = 0;
  decr_hits = 0;
  cas_misses = 0;
  cas_hits = 0;
  cas_badval = 0;
  touch_hits = 0;
  touch_misses = 0;
  store_too_large = 0;
  store_no_memory = 0;
  total_items = 0;
  expired_unfetched = 0;
  evicted_unfetched = 0;
  evictions = 0;
  reclaimed = 0;
}

export interface StoreOptions {
  /** -m: bytes the items may take (default 64 MB). */
  maxBytes?: number;
  /** -I: the largest item (ITEM_ntotal) stored (default 1 MB). */
  itemSizeMax?: number;
  /** false with -M: return an out-of-memory error instead of evicting. */
  evict?: boolean;
  /** Seconds (unix time; fractions are dropped). Default Date.now() / 1000. */
  clock?: () => number;
}

/** How far an -M store looks from the LRU tail for expired items to reclaim. */
const RECLAIM_SEARCH = 50;

export class Store {
  readonly maxBytes: number;
  readonly itemSizeMax: number;
  readonly evict: boolean;
  readonly counters = new Counters();
  private readonly clock: () => number;
  private readonly map = new Map<string, Item>();
  /** LRU: head is the most recently used. */
  private head: Item | null = null;
  private tail: Item | null = null;
  private used = 0;
  private nextCas = 1;
  /** A delayed flush_all: every item older than this time is gone once it arrives. */
  private flushAt = 0;

  constructor(opts: StoreOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.itemSizeMax = opts.itemSizeMax ?? 1024 * 1024;
    this.evict = opts.evict ?? true;
    this.clock = opts.clock ?? (() => Date.now() / 1000);
  }

  /** The store's current time in whole seconds. */
  now(): number {
    return Math.floor(this.clock());
  }

  get bytes(): number {
    return this.used;
  }

  get count(): number {
    return this.map.size;
  }

  /**
   * memcached's realtime(): a protocol exptime to an absolute time. 0: never; negative:
   * already expired; up to 30 days: seconds from now; beyond: a unix time.
   */
  realtime(exptime: number): number {
    if (exptime === 0) return 0;
    if (exptime < 0) return 1;
    if (exptime > REALTIME_MAXDELTA) return exptime;
    return this.now() + exptime;
  }

  /** Whether an item of this key and value length fits under -I. */
  itemSizeOk(nkey: number, nbytes: number): boolean {
    return itemTotal(nkey, nbytes) <= this.itemSizeMax;
  }

  // ---- lookups -----------------------------------------------------------------------

  private maintain(now: number): void {
    if (this.flushAt !== 0 && this.flushAt <= now) {
      this.flushAt = 0;
      this.clear();
    }
  }

  private expired(it: Item, now: number): boolean {
    return it.exptime !== 0 && it.exptime <= now;
  }

  /** The live item under key, or null (an expired one is dropped). No LRU bump, no counting. */
  peek(key: string): Item | null {
    const now = this.now();
    this.maintain(now);
    const it = this.map.get(key);
    if (!it) return null;
    if (this.expired(it, now)) {
      this.counters.get_expired++;
      this.unlink(it);
      this.counters.reclaimed++;
      if (!it.fetched) this.counters.expired_unfetched++;
      return null;
    }
    return it;
  }

  /** Marks an item used: LRU head, last access time, fetched. */
  bump(it: Item): void {
    it.time = this.now();
    it.fetched = true;
    if (this.head === it) return;
    this.lruRemove(it);
    this.lruPush(it);
  }

  /**
   * A retrieval (get/gets, binary get, mg): the live item or null, counted as memcached
   * counts gets; with `touch` (an absolute exptime: gat, binary GAT/touch) the item's
   * expiry is replaced and it counts as a touch.
   */
  fetch(key: string, opts: { touch?: number; bump?: boolean } = {}): Item | null {
    const it = this.peek(key);
    if (opts.touch !== undefined) {
      this.counters.cmd_touch++;
      if (it) {
        this.counters.touch_hits++;
        it.exptime = opts.touch;
      } else this.counters.touch_misses++;
    } else {
      this.counters.cmd_get++;
      if (it) this.counters.get_hits++;
      else this.counters.get_misses++;
    }
    if (it && opts.bump !== false) this.bump(it);
    return it;
  }

  /** touch: a new absolute exptime for a live item. */
  touch(key: string, exptime: number): Item | null {
    return this.fetch(key, { touch: exptime });
  }

  // ---- changes -----------------------------------------------------------------------

  /**
   * A storage command (memcached's do_store_item): mode set/add/replace/append/prepend/cas,
   * with the protocol's exptime (realtime() is applied here) and, for cas (or any mode
   * where it is not 0), the client's CAS unique. append/prepend keep the old flags and
   * expiry. TOO_LARGE and NO_MEMORY unlink an existing item on set, as memcached does
   * (no stale data after a failed set).
   * `stale` (ms with I): a cas whose unique is older than the item's stores the value as
   * stale instead of failing.
   */
  store(
    mode: StoreMode,
    key: string,
    value: Uint8Array,
    flags: number,
    exptime: number,
    cas: bigint = 0n,
    opts: { stale?: boolean; keyBinary?: boolean; absExptime?: boolean } = {},
  ): { status: StoreStatus; item?: Item } {
    const c = this.counters;
    c.cmd_set++;
    const abs = opts.absExptime ? exptime : this.realtime(exptime);
    if (!this.itemSizeOk(key.length, value.length)) {
      c.store_too_large++;
      if (mode === "set") this.remove(key);
      return { status: "TOO_LARGE" };
    }
    const old = this.peek(key);
    if (mode === "add" && old) {
      this.bump(old); // add only adds a nonexistent item, but promotes it
      return { status: "NOT_STORED" };
    }
    if (!old && (mode === "replace" || mode === "append" || mode === "prepend")) return { status: "NOT_STORED" };
    let it: Item;
    if (mode === "cas") {
      if (!old) {
        c.cas_misses++;
        return { status: "NOT_FOUND" };
      }
      if (BigInt(old.cas) === cas) {
        c.cas_hits++;
        it = new Item(key, value, flags, abs, this.now());
      } else if (opts.stale && cas < BigInt(old.cas)) {
        it = new Item(key, value, flags, old.exptime, this.now());
        it.stale = true;
        it.tokenSent = old.tokenSent;
      } else {
        c.cas_badval++;
        return { status: "EXISTS" };
      }
    } else if (mode === "append" || mode === "prepend") {
      const o = old!;
      if (cas !== 0n && BigInt(o.cas) !== cas) return { status: "EXISTS" };
      if (!this.itemSizeOk(key.length, o.value.length + value.length)) return { status: "NOT_STORED" };
      const v = new Uint8Array(o.value.length + value.length);
      if (mode === "append") {
        v.set(o.value, 0);
        v.set(value, o.value.length);
      } else {
        v.set(value, 0);
        v.set(o.value, value.length);
      }
      it = new Item(key, v, o.flags, o.exptime, this.now());
      it.keyBinary = o.keyBinary;
    } else {
      it = new Item(key, value, flags, abs, this.now());
    }
    if (opts.keyBinary) it.keyBinary = true;
    if (!this.makeRoom(it.size, old)) {
      c.store_no_memory++;
      if (mode === "append" || mode === "prepend") return { status: "NOT_STORED" };
      if (mode === "set" && old) this.unlink(old);
      return { status: "NO_MEMORY" };
    }
    this.link(it, old);
    return { status: "STORED", item: it };
  }

  /** delete (with a CAS unique: only if it matches): DELETED, NOT_FOUND or EXISTS. */
  delete(key: string, cas: bigint = 0n): "DELETED" | "NOT_FOUND" | "EXISTS" {
    const it = this.peek(key);
    if (!it) {
      this.counters.delete_misses++;
      return "NOT_FOUND";
    }
    if (cas !== 0n && BigInt(it.cas) !== cas) {
      this.counters.delete_misses++;
      return "EXISTS";
    }
    this.counters.delete_hits++;
    this.unlink(it);
    return "DELETED";
  }

  /** Removes an item without counting (a failed set, a flush). */
  remove(key: string): boolean {
    const it = this.map.get(key);
    if (!it) return false;
    this.unlink(it);
    return true;
  }

  /**
   * incr/decr (memcached's do_add_delta): the value must be a decimal unsigned 64-bit
   * number; incr wraps at 2^64, decr stops at 0. A result no longer than the old value
   * is padded with spaces to the old length, as memcached's in-place update does. With a
   * CAS unique (binary, ma C) the item must match. The item gets a new CAS unique.
   */
  incrDecr(key: string, incr: boolean, delta: bigint, cas: bigint = 0n): { status: DeltaStatus; value?: bigint; item?: Item } {
    const c = this.counters;
    const it = this.peek(key);
    if (!it) {
      if (incr) c.incr_misses++;
      else c.decr_misses++;
      return { status: "NOT_FOUND" };
    }
    if (it.value.length === 0) return { status: "NON_NUMERIC" };
    if (cas !== 0n && BigInt(it.cas) !== cas) return { status: "EXISTS" };
    const cur = parseU64Data(it.value);
    if (cur === null) return { status: "NON_NUMERIC" };
    let v: bigint;
    if (incr) v = (cur + (delta & U64)) & U64;
    else v = delta > cur ? 0n : cur - delta;
    if (incr) c.incr_hits++;
    else c.decr_hits++;
    const digits = v.toString();
    let bytes: Uint8Array;
    if (digits.length <= it.value.length) {
      bytes = new Uint8Array(it.value.length).fill(0x20);
      for (let i = 0; i < digits.length; i++) bytes[i] = digits.charCodeAt(i);
    } else bytes = keyBytes(digits);
    const n = new Item(key, bytes, it.flags, it.exptime, this.now());
    n.keyBinary = it.keyBinary;
    n.fetched = it.fetched;
    if (!this.makeRoom(n.size, it)) {
      c.store_no_memory++;
      return { status: "NO_MEMORY" };
    }
    this.link(n, it);
    return { status: "OK", value: v, item: n };
  }

  /**
   * A new item holding `value` if the key has none (binary incr with an initial value, ma N
   * and mg N vivify): the item, or null when it could not be stored.
   */
  create(key: string, value: Uint8Array, flags: number, absExptime: number, keyBinary = false): Item | null {
    const r = this.store("add", key, value, flags, absExptime, 0n, { absExptime: true, keyBinary });
    this.counters.cmd_set--; // not a client's set
    return r.item ?? null;
  }

  /** A new CAS unique for an item changed in place (md I). */
  recas(it: Item): void {
    it.cas = this.nextCas++;
  }

  /**
   * flush_all: delay <= 0 drops every item now; otherwise every item stored before
   * the time it names (seconds from now, or a unix time beyond 30 days) goes then.
   */
  flush(delay = 0): void {
    this.counters.cmd_flush++;
    if (delay > 0) {
      this.flushAt = this.realtime(delay);
      return;
    }
    this.flushAt = 0;
    this.clear();
  }

  /** Every live key (tests, debugging): most recently used first. */
  keys(): string[] {
    const out: string[] = [];
    for (let it = this.head; it; it = it.next) out.push(it.key);
    return out;
  }

  // ---- memory and the LRU ----------------------------------------------------------

  /**
   * Frees memory for an item of `size` bytes that replaces `old` (if any): expired items
   * from the LRU tail first, then (unless -M) the least recently used. False if it cannot.
   */
  private makeRoom(size: number, old: Item | null): boolean {
    if (size > this.maxBytes) return false;
    const freed = old ? old.size : 0;
    if (this.used - freed + size <= this.maxBytes) return true;
    const now = this.now();
    // Reclaim expired items near the tail.
    let it = this.tail;
    for (let n = 0; it && n < RECLAIM_SEARCH && this.used - freed + size > this.maxBytes; n++) {
      const prev = it.prev;
      if (it !== old && this.expired(it, now)) {
        this.unlink(it);
        this.counters.reclaimed++;
        if (!it.fetched) this.counters.expired_unfetched++;
      }
      it = prev;
    }
    if (this.used - freed + size <= this.maxBytes) return true;
    if (!this.evict) return false;
    while (this.used - freed + size > this.maxBytes) {
      let victim = this.tail;
      if (victim !== null && victim === old) victim = victim.prev;
      if (!victim) return false;
      this.unlink(victim);
      this.counters.evictions++;
      if (!victim.fetched) this.counters.evicted_unfetched++;
    }
    return true;
  }

  /** Links a new item (replacing `old`), with a new CAS unique. */
  private link(it: Item, old: Item | null): void {
    if (old) this.unlink(old);
    it.cas = this.nextCas++;
    this.map.set(it.key, it);
    this.lruPush(it);
    this.used += it.size;
    this.counters.total_items++;
  }

  private unlink(it: Item): void {
    if (this.map.get(it.key) !== it) return;
    this.map.delete(it.key);
    this.lruRemove(it);
    this.used -= it.size;
  }

  private clear(): void {
    this.map.clear();
    this.head = this.tail = null;
    this.used = 0;
  }

  private lruPush(it: Item): void {
    it.prev = null;
    it.next = this.head;
    if (this.head) this.head.prev = it;
    this.head = it;
    if (!this.tail) this.tail = it;
  }

  private lruRemove(it: Item): void {
    if (it.prev) it.prev.next = it.next;
    else if (this.head === it) this.head = it.next;
    if (it.next) it.next.prev = it.prev;
    else if (this.tail === it) this.tail = it.prev;
    it.prev = it.next = null;
  }
}

/**
 * An item's value as memcached's safe_strtoull reads it: optional leading whitespace, an
 * optional '+', decimal digits below 2^64, then the end or a whitespace byte (anything
 * after that is ignored). null if it is not such a number.
 */
export function parseU64Data(b: Uint8Array): bigint | null {
  let i = 0;
  while (i < b.length && isSpace(b[i]!)) i++;
  if (i < b.length && b[i] === 0x2b) i++;
  const start = i;
  while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
  if (i === start || i - start > 20) return null;
  if (i < b.length && !isSpace(b[i]!)) return null;
  let v = 0n;
  for (let k = start; k < i; k++) v = v * 10n + BigInt(b[k]! - 0x30);
  return v > U64 ? null : v;
}

/** C's isspace. */
export function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

// ---- stats ---------------------------------------------------------------------------

/** What the server adds to the cache's counters for `stats`. */
export interface ServerInfo {
  pid: number;
  /** Unix time the server started. */
  started: number;
  version: string;
  maxConnections: number;
  currConnections: number;
  totalConnections: number;
  rejectedConnections: number;
  bytesRead: number;
  bytesWritten: number;
  /** Extra lines at the end (the newts backend, the event handler). */
  extra?: [string, string | number][];
}

/** The general `stats` lines, in memcached's order (the ones this server keeps). */
export function generalStats(store: Store, srv: ServerInfo): [string, string | number][] {
  const now = store.now();
  const c = store.counters;
  const cpu = typeof process !== "undefined" && process.cpuUsage ? process.cpuUsage() : { user: 0, system: 0 };
  const tv = (us: number) => `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}`;
  return [
    ["pid", srv.pid],
    ["uptime", Math.max(0, now - srv.started)],
    ["time", now],
    ["version", srv.version],
    ["pointer_size", 64],
    ["rusage_user", tv(cpu.user)],
    ["rusage_system", tv(cpu.system)],
    ["max_connections", srv.maxConnections],
    ["curr_connections", srv.currConnections],
    ["total_connections", srv.totalConnections],
    ["rejected_connections", srv.rejectedConnections],
    ["connection_structures", srv.currConnections],
    ["cmd_get", c.cmd_get],
    ["cmd_set", c.cmd_set],
    ["cmd_flush", c.cmd_flush],
    ["cmd_touch", c.cmd_touch],
    ["cmd_meta", c.cmd_meta],
    ["get_hits", c.get_hits],
    ["get_misses", c.get_misses],
    ["get_expired", c.get_expired],
    ["get_flushed", c.get_flushed],
    ["delete_misses", c.delete_misses],
    ["delete_hits", c.delete_hits],
    ["incr_misses", c.incr_misses],
    ["incr_hits", c.incr_hits],
    ["decr_misses", c.decr_misses],
    ["decr_hits", c.decr_hits],
    ["cas_misses", c.cas_misses],
    ["cas_hits", c.cas_hits],
    ["cas_badval", c.cas_badval],
    ["touch_hits", c.touch_hits],
    ["touch_misses", c.touch_misses],
    ["store_too_large", c.store_too_large],
    ["store_no_memory", c.store_no_memory],
    ["auth_cmds", 0],
    ["auth_errors", 0],
    ["bytes_read", srv.bytesRead],
    ["bytes_written", srv.bytesWritten],
    ["limit_maxbytes", store.maxBytes],
    ["accepting_conns", 1],
    ["threads", 1],
    ["bytes", store.bytes],
    ["curr_items", store.count],
    ["total_items", c.total_items],
    ["expired_unfetched", c.expired_unfetched],
    ["evicted_unfetched", c.evicted_unfetched],
    ["evictions", c.evictions],
    ["reclaimed", c.reclaimed],
    ...(srv.extra ?? []),
  ];
}

/** `stats settings`. */
export function settingsStats(store: Store, s: { port: number; iface: string; maxConns: number; verbosity: number; shutdown: boolean }): [string, string | number][] {
  return [
    ["maxbytes", store.maxBytes],
    ["maxconns", s.maxConns],
    ["tcpport", s.port],
    ["udpport", 0],
    ["inter", s.iface],
    ["verbosity", s.verbosity],
    ["evictions", store.evict ? "on" : "off"],
    ["shutdown_command", s.shutdown ? "yes" : "no"],
    ["cas_enabled", "yes"],
    ["item_size_max", store.itemSizeMax],
    ["binding_protocol", "auto-negotiate"],
    ["flush_enabled", "yes"],
  ];
}

/** `stats items` / `stats slabs`: one class holding everything (newts has no slabs). */
export function itemsStats(store: Store): [string, string | number][] {
  if (store.count === 0) return [];
  const c = store.counters;
  return [
    ["items:1:number", store.count],
    ["items:1:evicted", c.evictions],
    ["items:1:evicted_unfetched", c.evicted_unfetched],
    ["items:1:reclaimed", c.reclaimed],
    ["items:1:expired_unfetched", c.expired_unfetched],
  ];
}

export function slabsStats(store: Store): [string, string | number][] {
  const c = store.counters;
  const lines: [string, string | number][] = [];
  if (store.count > 0) {
    lines.push(["1:used_chunks", store.count], ["1:mem_requested", store.bytes], ["1:get_hits", c.get_hits], ["1:cmd_set", c.cmd_set]);
  }
  lines.push(["active_slabs", store.count > 0 ? 1 : 0], ["total_malloced", store.bytes]);
  return lines;
}
