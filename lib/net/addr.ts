// IPv4 and MAC address helpers: text <-> u32 and text <-> 6-byte arrays. Parsers return null on bad text; nothing throws.

/** IPv4 limited broadcast, 255.255.255.255 (RFC 919). */
export const IPV4_BROADCAST = 0xffffffff;
/** The unspecified address 0.0.0.0. */
export const IPV4_ANY = 0;

/** Length of a MAC (EUI-48) address in bytes. */
export const MAC_LEN = 6;

const OCTET = /^(0|[1-9][0-9]{0,2})$/; // decimal, no leading zeros (they would read as octal in inet_aton)
const HEX_BYTE = /^[0-9a-fA-F]{1,2}$/;

/** Parses dotted-quad text ("10.0.2.15") to a u32, or null if it is not exactly four octets 0..255. */
export function parseIpv4Addr(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let v = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Formats a u32 address as dotted-quad text. */
export function formatIpv4Addr(addr: number): string {
  const a = addr >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** Parses "52:54:00:12:34:56" (or with '-' separators) to 6 bytes, or null on bad text. */
export function parseMac(text: string): Uint8Array | null {
  const sep = text.includes("-") ? "-" : ":";
  const parts = text.split(sep);
  if (parts.length !== MAC_LEN) return null;
  const mac = new Uint8Array(MAC_LEN);
  for (let i = 0; i < MAC_LEN; i++) {
    const p = parts[i]!;
    if (!HEX_BYTE.test(p)) return null;
    mac[i] = parseInt(p, 16);
  }
  return mac;
}

/** Formats bytes as lowercase colon-separated hex ("52:54:00:12:34:56"). */
export function formatMac(mac: Uint8Array): string {
  let s = "";
  for (let i = 0; i < mac.length; i++) s += (i ? ":" : "") + mac[i]!.toString(16).padStart(2, "0");
  return s;
}

/** A fresh ff:ff:ff:ff:ff:ff (a function, so no caller can scribble on a shared constant). */
export function broadcastMac(): Uint8Array {
  return new Uint8Array(MAC_LEN).fill(0xff);
}

/** True if both arrays hold the same bytes. */
export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True for ff:ff:ff:ff:ff:ff. */
export function isBroadcastMac(mac: Uint8Array): boolean {
  return mac.length === MAC_LEN && mac.every((b) => b === 0xff);
}

/** True if the group bit (least significant bit of the first byte, IEEE 802) is set; includes broadcast. */
export function isMulticastMac(mac: Uint8Array): boolean {
  return mac.length > 0 && (mac[0]! & 1) === 1;
}

/** Network mask of a prefix length 0..32 as a u32 (clamped). */
export function prefixMask(prefixLen: number): number {
  if (prefixLen <= 0) return 0;
  if (prefixLen >= 32) return 0xffffffff;
  return (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** True if `addr` is inside `net`/`prefixLen`. */
export function inSubnet(addr: number, net: number, prefixLen: number): boolean {
  const m = prefixMask(prefixLen);
  return ((addr & m) >>> 0) === ((net & m) >>> 0);
}

/** True for 224.0.0.0/4 (RFC 5771). */
export function isMulticastIpv4(addr: number): boolean {
  return addr >>> 28 === 0xe;
}

/** Reads a u32 address from 4 bytes at `off` (big-endian), or null if they are not there. */
export function ipv4FromBytes(bytes: Uint8Array, off = 0): number | null {
  if (off < 0 || off + 4 > bytes.length) return null;
  return ((bytes[off]! << 24) | (bytes[off + 1]! << 16) | (bytes[off + 2]! << 8) | bytes[off + 3]!) >>> 0;
}

/** The 4 big-endian bytes of a u32 address. */
export function ipv4ToBytes(addr: number): Uint8Array {
  const a = addr >>> 0;
  return new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]);
}
