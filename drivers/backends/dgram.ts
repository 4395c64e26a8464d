// The dgram backend: each frame is one UDP datagram between two newts instances (QEMU -netdev dgram).
import { EAGAIN, ErrnoError } from "../../lib/sys/errno.ts";
import { formatIpv4Addr, parseIpv4Addr } from "../../lib/net/addr.ts";
import { type Backend, type BackendStats, MAX_FRAME, MIN_FRAME, macOf, zeroStats } from "./backend.ts";
import * as C from "./libc.ts";

//  struct sockaddr_in (16 bytes)
//  0          2          4          8               16
//  +----------+----------+----------+---------------+
//  | family   | port(BE) | addr(BE) | zero[8]       |
//  +----------+----------+----------+---------------+
const SOCKADDR_IN_LEN = 16;

function sockaddrIn(host: string, port: number): Uint8Array {
  const a = parseIpv4Addr(host);
  if (a === null) throw new Error(`dgram: bad IPv4 address "${host}"`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`dgram: bad port ${port}`);
  const sa = new Uint8Array(SOCKADDR_IN_LEN);
  const dv = new DataView(sa.buffer);
  dv.setUint16(0, C.AF_INET, true);
  dv.setUint16(2, port);
  dv.setUint32(4, a);
  return sa;
}

export interface DgramOptions {
  /** Local UDP port; 0 picks a free one (read it back from `port`). */
  localPort: number;
  /** Peer's UDP port (0: none yet, see setRemote). Datagrams from any other address are counted as rxErrors and dropped. */
  remotePort: number;
  /** Local address to bind. Default 127.0.0.1. */
  localHost?: string;
  /** Peer's address. Default 127.0.0.1. */
  remoteHost?: string;
  mac?: string | Uint8Array;
  /** SO_RCVBUF / SO_SNDBUF in bytes (the kernel doubles it); default left to the kernel. */
  socketBuffer?: number;
  lock?: Int32Array | null;
  /** An already bound socket to drive (owned by the machine, see TapOptions.fd); localPort is ignored. */
  fd?: number;
}

export class DgramBackend implements Backend {
  readonly mac: Uint8Array;
  /** The bound local port. */
  readonly port: number;
  private fdNum: number;
  private peer: Uint8Array;
  private readonly buf = new Uint8Array(MAX_FRAME);
  private readonly from = new Uint8Array(SOCKADDR_IN_LEN);
  private readonly fromLen = new Uint32Array(1);
  private readonly counters: BackendStats = zeroStats();

  constructor(opts: DgramOptions) {
    this.mac = macOf(opts.mac);
    this.peer = sockaddrIn(opts.remoteHost ?? "127.0.0.1", opts.remotePort);
    const local = sockaddrIn(opts.localHost ?? "127.0.0.1", opts.localPort);
    const libc = C.netLibc(opts.lock ?? null);
    if (opts.fd !== undefined) {
      const len = new Uint32Array([SOCKADDR_IN_LEN]);
      if (libc.getsockname(opts.fd, local, len) < 0) throw new ErrnoError(C.errno(), `dgram: fd ${opts.fd} is not a bound socket`);
      this.port = new DataView(local.buffer).getUint16(2);
      this.fdNum = opts.fd;
      return;
    }
    const fd = libc.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
    if (fd < 0) throw new ErrnoError(C.errno(), "dgram: socket");
    const fail = (what: string): never => {
      const e = C.errno();
      libc.close(fd);
      throw new ErrnoError(e, `dgram: ${what}`);
    };
    if (opts.socketBuffer) {
      const v = new Int32Array([opts.socketBuffer]);
      if (libc.setsockopt(fd, C.SOL_SOCKET, C.SO_RCVBUF, v, 4) < 0) fail("setsockopt SO_RCVBUF");
      if (libc.setsockopt(fd, C.SOL_SOCKET, C.SO_SNDBUF, v, 4) < 0) fail("setsockopt SO_SNDBUF");
    }
    if (libc.bind(fd, local, SOCKADDR_IN_LEN) < 0) fail(`bind ${opts.localHost ?? "127.0.0.1"}:${opts.localPort}`);
    const len = new Uint32Array([SOCKADDR_IN_LEN]);
    if (libc.getsockname(fd, local, len) < 0) fail("getsockname");
    this.port = new DataView(local.buffer).getUint16(2);
    this.fdNum = fd;
  }

  /** "dgram:LOCALPORT->HOST:PORT". */
  get name(): string {
    const dv = new DataView(this.peer.buffer);
    return `dgram:${this.port}->${formatIpv4Addr(dv.getUint32(4))}:${dv.getUint16(2)}`;
  }

  get fd(): number {
    return this.fdNum;
  }

  recv(max: number, onFrame: (frame: Uint8Array) => void): number {
    const libc = C.netLibc();
    const c = this.counters;
    let got = 0;
    while (got < max && this.fdNum >= 0) {
      this.fromLen[0] = SOCKADDR_IN_LEN;
      // MSG_TRUNC makes an oversize datagram report its full length, so it is caught below.
      const n = libc.recvfrom(this.fdNum, this.buf, this.buf.length, C.MSG_DONTWAIT | C.MSG_TRUNC, this.from, this.fromLen);
      if (n < 0) {
        if (C.errno() !== EAGAIN) c.rxErrors++;
        break;
      }
      if (n < MIN_FRAME || n > this.buf.length || !this.fromPeer()) {
        c.rxErrors++;
        continue;
      }
      c.rxFrames++;
      c.rxBytes += n;
      got++;
      onFrame(this.buf.subarray(0, n));
    }
    return got;
  }

  /** Points the backend at another peer (e.g. once the peer's ephemeral port is known). */
  setRemote(port: number, host = "127.0.0.1"): void {
    this.peer = sockaddrIn(host, port);
  }

  /** The sender is the configured peer: same port and address (bytes 2..8 of sockaddr_in). */
  private fromPeer(): boolean {
    for (let i = 2; i < 8; i++) if (this.from[i] !== this.peer[i]) return false;
    return true;
  }

  send(frame: Uint8Array): boolean {
    const c = this.counters;
    if (this.fdNum < 0 || frame.length < MIN_FRAME || frame.length > MAX_FRAME - 28) {
      c.txDropped++;
      return false;
    }
    const n = C.netLibc().sendto(this.fdNum, frame, frame.length, C.MSG_DONTWAIT, this.peer, SOCKADDR_IN_LEN);
    if (n !== frame.length) {
      c.txDropped++;
      return false;
    }
    c.txFrames++;
    c.txBytes += frame.length;
    return true;
  }

  stats(): BackendStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.fdNum < 0) return;
    C.netLibc().close(this.fdNum);
    this.fdNum = -1;
  }
}
