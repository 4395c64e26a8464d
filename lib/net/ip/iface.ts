// IP interfaces: name, MAC, one IPv4 address/prefix and MTU each, and the table that holds them.
import type { Parsed } from "../types.ts";
import {
  IPV4_BROADCAST,
  MAC_LEN,
  formatMac,
  inSubnet,
  isMulticastIpv4,
  isMulticastMac,
  parseIpv4Addr,
  parseMac,
  prefixMask,
} from "../addr.ts";

/** Ethernet's MTU (RFC 894). */
export const DEFAULT_MTU = 1500;
/** Every IPv4 link must carry 68-byte datagrams unfragmented (RFC 791 §3.2, "Fragmentation"). */
export const MIN_MTU = 68;
/** Largest IPv4 datagram (the 16-bit total length). */
export const MAX_MTU = 65535;

/** One configured interface. `mac` is owned by the table: callers must not write to it. */
export interface Iface {
  readonly name: string;
  /** 6 bytes, unicast. */
  readonly mac: Uint8Array;
  /** u32 unicast address. */
  readonly addr: number;
  /** 0..32; 32 means a point-to-point /32 (no on-link neighbours but the routes say so). */
  readonly prefixLen: number;
  /** Largest IP datagram the link carries, MIN_MTU..MAX_MTU. */
  readonly mtu: number;
}

/** What a caller gives to create an interface; addresses as text or numbers. */
export interface IfaceConfig {
  name: string;
  mac: Uint8Array | string;
  addr: number | string;
  prefixLen: number;
  mtu?: number;
}

/** The plain, JSON-safe form of an interface (snapshot). */
export interface IfaceSnapshot {
  name: string;
  mac: string;
  addr: number;
  prefixLen: number;
  mtu: number;
}

/** Validates a configuration into an Iface. Never throws. */
export function makeIface(cfg: IfaceConfig): Parsed<Iface> {
  if (typeof cfg.name !== "string" || cfg.name.length === 0 || cfg.name.length > 15)
    return { ok: false, error: `iface: name must be 1..15 characters` };
  const mac = typeof cfg.mac === "string" ? parseMac(cfg.mac) : cfg.mac;
  if (!(mac instanceof Uint8Array) || mac.length !== MAC_LEN) return { ok: false, error: `iface ${cfg.name}: bad MAC` };
  if (isMulticastMac(mac)) return { ok: false, error: `iface ${cfg.name}: MAC ${formatMac(mac)} is not unicast` };
  const addr = typeof cfg.addr === "string" ? parseIpv4Addr(cfg.addr) : cfg.addr;
  if (addr === null || !Number.isInteger(addr) || addr < 0 || addr > 0xffffffff)
    return { ok: false, error: `iface ${cfg.name}: bad address` };
  if (addr === 0 || addr === IPV4_BROADCAST || isMulticastIpv4(addr))
    return { ok: false, error: `iface ${cfg.name}: address is not a unicast host address` };
  if (!Number.isInteger(cfg.prefixLen) || cfg.prefixLen < 0 || cfg.prefixLen > 32)
    return { ok: false, error: `iface ${cfg.name}: prefix length ${cfg.prefixLen} not in 0..32` };
  const mtu = cfg.mtu ?? DEFAULT_MTU;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU)
    return { ok: false, error: `iface ${cfg.name}: MTU ${mtu} not in ${MIN_MTU}..${MAX_MTU}` };
  return { ok: true, value: { name: cfg.name, mac: mac.slice(), addr: addr >>> 0, prefixLen: cfg.prefixLen, mtu } };
}

/** The interface's network address (address with host bits cleared). */
export function ifaceNetwork(iface: Iface): number {
  return (iface.addr & prefixMask(iface.prefixLen)) >>> 0;
}

/**
 * The directed broadcast address of the interface's subnet (RFC 919, RFC 922), or null for /31 and
 * /32, which have none (RFC 3021).
 */
export function ifaceBroadcast(iface: Iface): number | null {
  if (iface.prefixLen >= 31) return null;
  return (iface.addr | ~prefixMask(iface.prefixLen)) >>> 0;
}

/** True if `addr` is the limited broadcast or this interface's directed broadcast. */
export function isBroadcastFor(iface: Iface, addr: number): boolean {
  return addr === IPV4_BROADCAST || addr === ifaceBroadcast(iface);
}

/** True if `addr` is on the interface's subnet. */
export function onLink(iface: Iface, addr: number): boolean {
  return inSubnet(addr, iface.addr, iface.prefixLen);
}

/** The configured interfaces, in the order they were added. Plain data underneath (see snapshot). */
export class IfaceTable {
  private readonly byName = new Map<string, Iface>();

  /** Adds a validated interface. Names and addresses must be unique. */
  add(cfg: IfaceConfig): Parsed<Iface> {
    const r = makeIface(cfg);
    if (!r.ok) return r;
    if (this.byName.has(r.value.name)) return { ok: false, error: `iface ${r.value.name}: exists` };
    if (this.byAddr(r.value.addr)) return { ok: false, error: `iface ${r.value.name}: address already in use` };
    this.byName.set(r.value.name, r.value);
    return r;
  }

  /** Removes an interface; true if it was there. */
  remove(name: string): boolean {
    return this.byName.delete(name);
  }

  get(name: string): Iface | undefined {
    return this.byName.get(name);
  }

  /** The first interface added (the default for input without a name). */
  first(): Iface | undefined {
    for (const i of this.byName.values()) return i;
    return undefined;
  }

  list(): Iface[] {
    return [...this.byName.values()];
  }

  /** The interface that owns unicast address `addr`. */
  byAddr(addr: number): Iface | undefined {
    for (const i of this.byName.values()) if (i.addr === addr) return i;
    return undefined;
  }

  /** True if `addr` is the directed broadcast of any interface or the limited broadcast. */
  isBroadcast(addr: number): boolean {
    if (addr === IPV4_BROADCAST) return true;
    for (const i of this.byName.values()) if (ifaceBroadcast(i) === addr) return true;
    return false;
  }

  snapshot(): IfaceSnapshot[] {
    return this.list().map((i) => ({ name: i.name, mac: formatMac(i.mac), addr: i.addr, prefixLen: i.prefixLen, mtu: i.mtu }));
  }

  /** Rebuilds a table; entries that no longer validate are skipped (a corrupt store must not stop a restart). */
  static restore(snap: unknown): IfaceTable {
    const t = new IfaceTable();
    if (!Array.isArray(snap)) return t;
    for (const s of snap) if (s && typeof s === "object") t.add(s as IfaceConfig);
    return t;
  }
}
