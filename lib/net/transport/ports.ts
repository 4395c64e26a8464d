// Local ports of the transport servers (tcp, udp): the ephemeral range, walked
// round-robin from a cursor, and the rules that say whether a port is taken.
// Pure: no worker, no Proc.
import { EADDRINUSE, ErrnoError } from "../../sys/errno.ts";
import { EPHEMERAL_HI, EPHEMERAL_LO } from "../stackproto.ts";

/** The ephemeral range (Linux's default ip_local_port_range), handed out round-robin. */
export class EphemeralPorts {
  /** The next port to try. */
  next: number;

  constructor(start = EPHEMERAL_LO) {
    this.next = start;
  }

  /** The first port from the cursor on that `inUse` does not claim; EADDRINUSE when the whole range is taken. */
  take(inUse: (port: number) => boolean): number {
    for (let i = 0; i <= EPHEMERAL_HI - EPHEMERAL_LO; i++) {
      const p = this.next;
      this.next = p >= EPHEMERAL_HI ? EPHEMERAL_LO : p + 1;
      if (!inUse(p)) return p;
    }
    throw new ErrnoError(EADDRINUSE, "no ephemeral port left");
  }
}

/** What the TCP rule looks at in a socket on the port. */
export interface TcpPortUser {
  closed: boolean;
  listener: object | null;
  conn: object | null;
}

/**
 * TCP: a port is taken by a listener or a bound, unconnected socket; without
 * SO_REUSEADDR (`reuse`) also by any connection on it, closed ones lingering in
 * TIME_WAIT included, as on Linux (accepted connections share their listener's port).
 */
export function tcpPortInUse(users: Iterable<TcpPortUser>, reuse = false): boolean {
  for (const k of users) {
    if (!k.closed && (k.listener || !k.conn)) return true;
    if (!reuse && k.conn) return true;
  }
  return false;
}

/** What the UDP rule looks at in a socket on the port. */
export interface UdpPortUser {
  laddr: number;
}

/**
 * UDP: binding `addr` to a port conflicts with any socket bound there to the same
 * address, and with every socket there when either side is the wildcard (0).
 */
export function udpPortConflict(users: Iterable<UdpPortUser>, addr: number): boolean {
  for (const o of users) if (o.laddr === 0 || addr === 0 || o.laddr === addr) return true;
  return false;
}
