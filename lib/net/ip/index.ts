// The IP layer logic (pure, no I/O): interfaces, routes, ARP cache, fragmentation and the engine that ties them.
export * from "./iface.ts";
export * from "./route.ts";
export { ArpCache, DEFAULT_ARP_OPTIONS, arpFrame, newArpStats, type ArpAction, type ArpEntrySnapshot, type ArpOptions, type ArpStats } from "./arp.ts";
export * from "./frag.ts";
export { mayReportError, ICMP_ERROR_TOS } from "./icmp.ts";
export * from "./ip.ts";
