// The wire-format layer of lib/net: re-exports of every protocol's view, Repr, parse and emit.
export * from "./types.ts";
// Checksum helpers have generic names (sum, fold, finish), so they come as a namespace.
export * as Checksum from "./checksum.ts";
export * from "./addr.ts";
export * from "./ethernet.ts";
export * from "./arp.ts";
export * from "./ipv4.ts";
export * from "./icmp.ts";
export * from "./udp.ts";
export * from "./tcp-wire.ts";
