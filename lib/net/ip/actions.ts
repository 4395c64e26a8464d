// The IP engine's contract with its owner: actions it returns, output requests and results, counters.
import { IpProtocol, type Ipv4Repr } from "../ipv4.ts";
import type { QuotedDatagram } from "../icmp.ts";
import type { ArpOptions } from "./arp.ts";
import type { ReasmOptions } from "./frag.ts";

// The errnos the engine fails with, re-exported for its users.
export { EADDRNOTAVAIL, EHOSTUNREACH, ENETUNREACH } from "../../sys/errno.ts";

/** A datagram for a transport (TCP, UDP, or another registered protocol). */
export interface Delivery {
  proto: number;
  src: number;
  dst: number;
  /** The transport segment. Aliases the input frame (or the reassembly buffer): copy it to keep it. */
  payload: Uint8Array;
  ipRepr: Ipv4Repr;
  /** The whole datagram, header first: what unreachable() quotes. Aliases like payload. */
  datagram: Uint8Array;
  /** Interface it came in on. */
  iface: string;
  /** Sent to a broadcast address (only UDP gets these). */
  broadcast: boolean;
}

/** A reply to one of our echoRequest()s. */
export interface EchoReply {
  src: number;
  dst: number;
  ident: number;
  seq: number;
  /** A copy of the echoed data. */
  data: Uint8Array;
  ttl: number;
  /** now - the time echoRequest() was called, in the caller's ms. */
  rtt: number;
}

/** An ICMP error about a datagram we sent, for the transport that sent it (RFC 1122 §3.2.2.1, §4.1.3.3, §4.2.3.9). */
export interface IcmpError {
  /** Who reported it; our own address when `local` (the next hop never answered ARP). */
  from: number;
  kind: "destUnreachable" | "timeExceeded";
  code: number;
  /** Next-hop MTU for fragmentation-needed (RFC 1191), else 0. */
  mtu: number;
  /** The quoted header fields and leading data (ports, TCP sequence number). */
  original: QuotedDatagram;
  local: boolean;
}

/** What the engine asks its owner to do. Exactly one key per action. */
export type IpAction =
  | { deliver: Delivery }
  | { send: Uint8Array; iface: string }
  | { echoReply: EchoReply }
  | { icmpError: IcmpError };

export interface OutputRequest {
  /** Source address; must be one of ours. Chosen from the outgoing interface when absent or 0. */
  src?: number;
  dst: number;
  proto: number;
  payload: Uint8Array;
  /** 1..255, default opts.defaultTtl. */
  ttl?: number;
  tos?: number;
  /** Set DF: too-big datagrams fail with EMSGSIZE and the MTU instead of being fragmented (RFC 1191). */
  dontFrag?: boolean;
}

export type OutputResult =
  | { ok: true; actions: IpAction[] }
  | { ok: false; errno: number; error: string; /** Set with EMSGSIZE: the largest datagram that fits. */ mtu?: number };

export interface IpOptions {
  arp: Partial<ArpOptions>;
  reasm: Partial<ReasmOptions>;
  /** TTL of datagrams we originate (RFC 1700 era default 64, as Linux). */
  defaultTtl: number;
  /** ICMP errors per second and burst (RFC 1812 §4.3.2.8 rate limiting). */
  icmpErrorRate: number;
  icmpErrorBurst: number;
  /** Outstanding echo requests remembered for matching replies. */
  maxEchoPending: number;
  echoTimeoutMs: number;
  /** Protocols handed to transports; others get protocol-unreachable (RFC 1122 §3.2.2.1). */
  protocols: number[];
}

export const DEFAULT_IP_OPTIONS: IpOptions = {
  arp: {},
  reasm: {},
  defaultTtl: 64,
  icmpErrorRate: 100,
  icmpErrorBurst: 50,
  maxEchoPending: 256,
  echoTimeoutMs: 60_000,
  protocols: [IpProtocol.TCP, IpProtocol.UDP],
};

/** Named drop and event counters of the IP engine; they only grow. */
export function newIpStats() {
  return {
    framesIn: 0,
    framesOut: 0,
    /** input() named an interface that does not exist (or there is none). */
    noIface: 0,
    linkTruncated: 0,
    /** Destination MAC neither ours nor broadcast/multicast (promiscuous NIC). */
    linkNotForUs: 0,
    linkUnknownType: 0,
    arpBad: 0,
    datagramsIn: 0,
    badVersion: 0,
    /** IHL < 5 or total length < header length. */
    badHeader: 0,
    /** Buffer shorter than the header or the total length. */
    truncated: 0,
    badChecksum: 0,
    /** Martian source: broadcast, multicast, loopback, class E, or our own address (RFC 1122 §3.2.1.3, RFC 1812 §5.3.7). */
    badSource: 0,
    /** Not one of our addresses or broadcasts: newts does not forward (RFC 1122 §3.3.4.2 weak host model). */
    notForUs: 0,
    /** IP unicast inside a link-layer broadcast (RFC 1122 §3.3.6: SHOULD discard). */
    linkBroadcastUnicast: 0,
    /** Broadcast datagrams for anything but UDP (no TCP to broadcast; no smurf amplification for pings). */
    broadcastNotUdp: 0,
    unknownProtocol: 0,
    delivered: 0,
    /** Datagrams to our own addresses or 127/8, turned around without a NIC. */
    loopback: 0,
    icmpIn: 0,
    icmpBadChecksum: 0,
    icmpMalformed: 0,
    icmpUnknownType: 0,
    echoRequestsIn: 0,
    echoRepliesSent: 0,
    echoRepliesIn: 0,
    /** Echo replies matching no outstanding request. */
    echoUnmatched: 0,
    echoTimedOut: 0,
    icmpErrorsIn: 0,
    /** ICMP errors quoting a datagram we could not have sent (RFC 5927 §4.1 validation). */
    icmpErrorsBogus: 0,
    icmpErrorsSent: 0,
    /** Errors not sent because RFC 1122 §3.2.2 forbids them (about errors, broadcasts, later fragments). */
    icmpErrorsSuppressed: 0,
    icmpRateLimited: 0,
    outRequests: 0,
    outErrors: 0,
    /** Datagrams split into fragments, and the fragments made. */
    outFragmented: 0,
    outFragments: 0,
    /** Queued frames whose next hop never answered ARP, reported as host unreachable. */
    hostUnreachable: 0,
  };
}
export type IpStats = ReturnType<typeof newIpStats>;
