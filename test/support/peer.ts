// A test-side wire peer for machines booted with `--net dgram,...`: it plays the
// host 10.0.2.2 on the other end of newts's NIC. Every Ethernet frame newts sends
// arrives here as one UDP datagram on 127.0.0.1; the peer records it (parsed),
// answers ARP for the addresses it owns and ICMP echo requests sent to them, feeds
// TCP segments to its own clients (lib/net/tcp TcpConnection, driven by the frames
// and a timer), and sends whatever crafted frame a test builds, valid or not.
//
//   const peer = await WirePeer.open();                 // binds 127.0.0.1:peer.port
//   const m = await Machine.boot({ apps: [], net: `dgram,local=0,remote=${peer.port}` });
//   peer.attach(m.wire!.localPort!);                    // where newts listens
//   const c = await peer.connect(7000);                 // a real TCP connection to `nc -l 7000`
//   c.write(bytes); c.shutdown();                       // PeerTcp: until(), data(), sndNxt, rcvNxt, abort()
//   const k = peer.mark();                              // number of the next frame to arrive
//   peer.sendFrame(tcpFrame({ dstPort: 9, flags: TcpFlag.SYN }, { badChecksum: true }));
//   await peer.waitFor((f) => f.tcp?.srcPort === 9, 2000, k);   // the frame, or undefined
//
// Frames are built from 10.0.2.2 (MAC 02:00:0a:00:02:02) to 10.0.2.15 (52:54:00:12:34:56)
// unless a field says otherwise, with correct checksums unless asked to corrupt them.
import type { udp } from "bun";
import { formatIpv4Addr, parseIpv4Addr, parseMac } from "../../lib/net/addr.ts";
import { type ArpRepr, ArpOp, emitArp, parseArp, ARP_LEN } from "../../lib/net/arp.ts";
import { emitEthernet, ETHERNET_HEADER_LEN, EtherType, parseEthernet } from "../../lib/net/ethernet.ts";
import { emitIcmp, icmpBufferLen, type IcmpRepr, parseIcmp } from "../../lib/net/icmp.ts";
import { emitIpv4, IPV4_HEADER_LEN, IpProtocol, type Ipv4Repr, parseIpv4 } from "../../lib/net/ipv4.ts";
import { emitTcp, parseTcp, tcpBufferLen } from "../../lib/net/tcp-wire.ts";
import { emitUdp, parseUdp, type UdpRepr, UDP_HEADER_LEN } from "../../lib/net/udp.ts";
import { finish, pseudoHeaderSum, sum } from "../../lib/net/checksum.ts";
import { isnFor, TcpConnection, type TcpConfig, type TcpEvent, TcpState } from "../../lib/net/tcp/index.ts";
import { type TcpRepr, TcpFlag } from "../../lib/net/types.ts";

export { TcpFlag };

const ip = (s: string): number => parseIpv4Addr(s)!;

export const NEWTS_IP = ip("10.0.2.15");
export const PEER_IP = ip("10.0.2.2");
export const NEWTS_MAC = parseMac("52:54:00:12:34:56")!;
export const PEER_MAC = parseMac("02:00:0a:00:02:02")!;
export const SUBNET = ip("10.0.2.0");

/** The MAC the peer answers with for one of its addresses: 02:00 + the IPv4 address. */
export function macFor(addr: number): Uint8Array {
  return new Uint8Array([0x02, 0x00, addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff]);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One frame newts sent, as received, with whatever parsed. */
export interface RxFrame {
  /** Position in peer.frames (monotonic, also across clear()). */
  n: number;
  at: number;
  bytes: Uint8Array;
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  etherType: number;
  arp?: ArpRepr;
  /** The IPv4 header fields (payload aliases `bytes`). */
  ip?: Ipv4Repr;
  /** Set for a whole datagram (not a fragment) carrying a valid segment. */
  tcp?: TcpRepr;
  udp?: UdpRepr;
  icmp?: IcmpRepr;
}

export interface IpOpts {
  src?: number;
  dst?: number;
  ttl?: number;
  tos?: number;
  ident?: number;
  dontFrag?: boolean;
  moreFrags?: boolean;
  /** Bytes, a multiple of 8. */
  fragOffset?: number;
  /** Flip bits of the IPv4 header checksum. */
  badIpChecksum?: boolean;
  /** Raw IPv4 option bytes (padded with zeros, EOL, to a multiple of 4; at most 40). */
  ipOptions?: Uint8Array;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
}

export interface TcpOpts extends IpOpts {
  /** Flip bits of the TCP checksum. */
  badChecksum?: boolean;
  /** Raw option bytes (padded to 4 with zeros) instead of seg.options. */
  rawOptions?: Uint8Array;
  /** Overwrite the data-offset nibble (after the checksum is computed unless fixChecksum). */
  dataOffset?: number;
}

function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

/** Ones'-complement checksum over a TCP or UDP segment with its pseudo-header. */
export function transportChecksum(seg: Uint8Array, src: number, dst: number, proto: number): number {
  return finish(sum(seg, 0, seg.length, pseudoHeaderSum(src, dst, proto, seg.length)));
}

/** An Ethernet frame around `payload`. */
export function ethFrame(etherType: number, payload: Uint8Array, srcMac: Uint8Array = PEER_MAC, dstMac: Uint8Array = NEWTS_MAC): Uint8Array {
  const buf = new Uint8Array(ETHERNET_HEADER_LEN + payload.length);
  emitEthernet({ dst: dstMac, src: srcMac, etherType, payload }, buf);
  return buf;
}

let identCounter = 0x4000;

/** Ones'-complement checksum of an IPv4 header of `hl` bytes at `b` (checksum field included as is). */
export function ipHeaderChecksum(b: Uint8Array, hl = (b[0]! & 0x0f) * 4): number {
  return finish(sum(b, 0, hl));
}

/** An IPv4 datagram (no Ethernet header). */
export function ipv4Datagram(proto: number, payload: Uint8Array, o: IpOpts = {}): Uint8Array {
  const buf = new Uint8Array(IPV4_HEADER_LEN + payload.length);
  emitIpv4(
    {
      src: o.src ?? PEER_IP, dst: o.dst ?? NEWTS_IP, protocol: proto, ttl: o.ttl ?? 64, tos: o.tos ?? 0,
      ident: o.ident ?? (identCounter = (identCounter + 1) & 0xffff), dontFrag: o.dontFrag ?? false,
      moreFrags: o.moreFrags ?? false, fragOffset: o.fragOffset ?? 0, payload,
    },
    buf,
  );
  let out = buf;
  if (o.ipOptions && o.ipOptions.length > 0) {
    const optLen = Math.min(40, (o.ipOptions.length + 3) & ~3);
    const hl = IPV4_HEADER_LEN + optLen;
    out = new Uint8Array(hl + payload.length);
    out.set(buf.subarray(0, IPV4_HEADER_LEN));
    out.set(o.ipOptions.subarray(0, optLen), IPV4_HEADER_LEN);
    out.set(payload, hl);
    out[0] = 0x40 | (hl >> 2);
    out[2] = out.length >> 8;
    out[3] = out.length & 0xff;
    out[10] = 0;
    out[11] = 0;
    const c = ipHeaderChecksum(out, hl);
    out[10] = c >> 8;
    out[11] = c & 0xff;
  }
  if (o.badIpChecksum) out[10]! ^= 0x5a;
  return out;
}

/** Ethernet + IPv4 around `payload`. */
export function ipv4Frame(proto: number, payload: Uint8Array, o: IpOpts = {}): Uint8Array {
  return ethFrame(EtherType.IPV4, ipv4Datagram(proto, payload, o), o.srcMac, o.dstMac);
}

/** A TCP segment's bytes (header, options, payload) with its checksum for src -> dst. */
export function tcpBytes(seg: Partial<TcpRepr> & { dstPort: number }, o: TcpOpts = {}): Uint8Array {
  const src = o.src ?? PEER_IP;
  const dst = o.dst ?? NEWTS_IP;
  const repr: TcpRepr = {
    srcPort: seg.srcPort ?? 40000, dstPort: seg.dstPort, seq: seg.seq ?? 1000, ack: seg.ack ?? 0, flags: seg.flags ?? TcpFlag.SYN,
    window: seg.window ?? 65535, urgent: seg.urgent ?? 0, options: o.rawOptions ? {} : (seg.options ?? {}), payload: seg.payload ?? new Uint8Array(0),
  };
  let b: Uint8Array;
  if (o.rawOptions) {
    const optLen = (o.rawOptions.length + 3) & ~3;
    const hl = 20 + optLen;
    const base = new Uint8Array(20 + repr.payload.length);
    emitTcp(repr, base, src, dst);
    b = new Uint8Array(hl + repr.payload.length);
    b.set(base.subarray(0, 20), 0);
    b.set(o.rawOptions, 20);
    b.set(repr.payload, hl);
    b[12] = (hl / 4) << 4;
    b[16] = 0;
    b[17] = 0;
    const c = transportChecksum(b, src, dst, IpProtocol.TCP);
    b[16] = c >> 8;
    b[17] = c & 0xff;
  } else {
    b = new Uint8Array(tcpBufferLen(repr));
    emitTcp(repr, b, src, dst);
  }
  if (o.dataOffset !== undefined) {
    b[12] = ((o.dataOffset & 0x0f) << 4) | (b[12]! & 0x0f);
    b[16] = 0;
    b[17] = 0;
    const c = transportChecksum(b, src, dst, IpProtocol.TCP);
    b[16] = c >> 8;
    b[17] = c & 0xff;
  }
  if (o.badChecksum) b[17]! ^= 0x5a;
  return b;
}

export function tcpFrame(seg: Partial<TcpRepr> & { dstPort: number }, o: TcpOpts = {}): Uint8Array {
  return ipv4Frame(IpProtocol.TCP, tcpBytes(seg, o), o);
}

export function udpBytes(u: { srcPort?: number; dstPort: number; payload: Uint8Array }, o: IpOpts & { badChecksum?: boolean } = {}): Uint8Array {
  const b = new Uint8Array(UDP_HEADER_LEN + u.payload.length);
  emitUdp({ srcPort: u.srcPort ?? 40000, dstPort: u.dstPort, payload: u.payload }, b, o.src ?? PEER_IP, o.dst ?? NEWTS_IP);
  if (o.badChecksum) {
    // Still non-zero (0 would mean "no checksum", RFC 768) and still wrong.
    b[7]! ^= 0x5a;
    if (b[6] === 0 && b[7] === 0) b[7] = 0x5a;
  }
  return b;
}

export function udpFrame(u: { srcPort?: number; dstPort: number; payload: Uint8Array }, o: IpOpts & { badChecksum?: boolean } = {}): Uint8Array {
  return ipv4Frame(IpProtocol.UDP, udpBytes(u, o), o);
}

export function icmpBytes(repr: IcmpRepr, o: { badChecksum?: boolean } = {}): Uint8Array {
  const b = new Uint8Array(icmpBufferLen(repr));
  emitIcmp(repr, b);
  if (o.badChecksum) b[3]! ^= 0x5a;
  return b;
}

export function icmpFrame(repr: IcmpRepr, o: IpOpts & { badChecksum?: boolean } = {}): Uint8Array {
  return ipv4Frame(IpProtocol.ICMP, icmpBytes(repr, o), o);
}

/** An echo request from the peer (ident, seq, data). */
export function echoRequestFrame(ident: number, seq: number, data: Uint8Array = new Uint8Array(32), o: IpOpts & { badChecksum?: boolean } = {}): Uint8Array {
  return icmpFrame({ kind: "echoRequest", ident, seq, data }, o);
}

export function arpFrame(repr: ArpRepr, srcMac: Uint8Array = repr.senderMac, dstMac: Uint8Array = NEWTS_MAC): Uint8Array {
  const b = new Uint8Array(ARP_LEN);
  emitArp(repr, b);
  return ethFrame(EtherType.ARP, b, srcMac, dstMac);
}

function parseFrame(n: number, bytes: Uint8Array): RxFrame {
  const f: RxFrame = { n, at: performance.now(), bytes, dstMac: bytes.subarray(0, 6), srcMac: bytes.subarray(6, 12), etherType: -1 };
  const e = parseEthernet(bytes);
  if (!e.ok) return f;
  f.etherType = e.value.etherType;
  if (f.etherType === EtherType.ARP) {
    const a = parseArp(e.value.payload);
    if (a.ok) f.arp = a.value;
  } else if (f.etherType === EtherType.IPV4) {
    const p = parseIpv4(e.value.payload);
    if (!p.ok) return f;
    f.ip = p.value;
    if (p.value.moreFrags || p.value.fragOffset !== 0) return f;
    const { src, dst, payload } = p.value;
    if (p.value.protocol === IpProtocol.TCP) {
      const t = parseTcp(payload, src, dst);
      if (t.ok) f.tcp = t.value;
    } else if (p.value.protocol === IpProtocol.UDP) {
      const u = parseUdp(payload, src, dst);
      if (u.ok) f.udp = u.value;
    } else if (p.value.protocol === IpProtocol.ICMP) {
      const c = parseIcmp(payload);
      if (c.ok) f.icmp = c.value;
    }
  }
  return f;
}

const key = (lport: number, rport: number) => lport * 65536 + rport;

export class WirePeer {
  /** Our UDP port on 127.0.0.1: boot newts with `remote=` this. */
  readonly port: number;
  /** Every frame newts sent since the last clear(), oldest first. */
  frames: RxFrame[] = [];
  /** Index in `frames` of frame number n is n - base. */
  private base = 0;
  private count = 0;
  /** newts's UDP port (m.wire.localPort). */
  newtsPort = 0;
  /** Addresses the peer owns: answers ARP requests and ICMP echo requests for them. */
  owns: (addr: number) => boolean = (a) => a === PEER_IP;
  /** Counters of what the peer did on its own. */
  readonly stats = { rx: 0, tx: 0, txFailed: 0, arpAnswered: 0, echoAnswered: 0, tcpIn: 0, tcpNoConn: 0 };
  private readonly sock: udp.Socket<"uint8array">;
  private readonly waiters = new Set<{ pred: (f: RxFrame) => boolean; resolve: (f: RxFrame) => void }>();
  private readonly clients = new Map<number, PeerTcp>();
  private readonly timer: ReturnType<typeof setInterval>;
  private nextPort = 30000 + Math.floor(Math.random() * 10000);
  private closed = false;

  private constructor(sock: udp.Socket<"uint8array">) {
    this.sock = sock;
    this.port = sock.port;
    this.timer = setInterval(() => this.tick(), 5);
  }

  static async open(): Promise<WirePeer> {
    let peer: WirePeer | null = null;
    const sock = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port) => {
          peer?.onDatagram(data, port);
        },
      },
    });
    peer = new WirePeer(sock);
    return peer;
  }

  /** Sets newts's port (the machine's m.wire.localPort). */
  attach(newtsPort: number): void {
    this.newtsPort = newtsPort;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.sock.close();
  }

  /** Forgets recorded frames (numbering goes on). */
  clear(): void {
    this.base = this.count;
    this.frames = [];
  }

  /** The number the next received frame will get: pass it to waitFor/since. */
  mark(): number {
    return this.count;
  }

  /** Recorded frames numbered >= n. */
  since(n: number): RxFrame[] {
    return this.frames.slice(Math.max(0, n - this.base));
  }

  /** Sends one frame to newts. False if the socket would block (the frame is not sent). */
  sendFrame(bytes: Uint8Array): boolean {
    if (this.closed || !this.newtsPort) throw new Error("peer: not attached to newts");
    const ok = this.sock.send(bytes, this.newtsPort, "127.0.0.1");
    if (ok) this.stats.tx++;
    else this.stats.txFailed++;
    return ok;
  }

  /**
   * Sends many frames, `batch` at a time with a short pause between batches so that
   * newts's socket buffer is not simply overrun (the host drops what does not fit).
   * Resolves with how many were handed to the host.
   */
  async sendBurst(frames: Iterable<Uint8Array>, batch = 32, pauseMs = 1): Promise<number> {
    let sent = 0;
    let n = 0;
    for (const f of frames) {
      let tries = 0;
      while (!this.sendFrame(f) && tries++ < 50) await sleep(1);
      if (tries <= 50) sent++;
      if (++n % batch === 0) await sleep(pauseMs);
    }
    return sent;
  }

  /**
   * Resolves with the first recorded frame numbered >= since (default: from now on)
   * that matches, or undefined after timeoutMs.
   */
  waitFor(pred: (f: RxFrame) => boolean, timeoutMs = 5000, since = this.count): Promise<RxFrame | undefined> {
    const have = this.since(since).find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => {
      const w = {
        pred,
        resolve: (f: RxFrame | undefined) => {
          clearTimeout(t);
          this.waiters.delete(w);
          resolve(f);
        },
      };
      const t = setTimeout(() => w.resolve(undefined), timeoutMs);
      this.waiters.add(w);
    });
  }

  // ---- receive path ----

  private onDatagram(data: Uint8Array, port: number): void {
    if (port !== this.newtsPort && this.newtsPort !== 0) return;
    if (!this.newtsPort) this.newtsPort = port;
    this.stats.rx++;
    const f = parseFrame(this.count++, copy(data));
    this.frames.push(f);
    try {
      this.react(f);
    } finally {
      for (const w of [...this.waiters]) if (w.pred(f)) w.resolve(f);
    }
  }

  private react(f: RxFrame): void {
    if (f.arp && f.arp.op === ArpOp.REQUEST && this.owns(f.arp.targetIp) && f.arp.senderIp !== f.arp.targetIp) {
      const mac = f.arp.targetIp === PEER_IP ? PEER_MAC : macFor(f.arp.targetIp);
      this.stats.arpAnswered++;
      this.sendFrame(arpFrame({ op: ArpOp.REPLY, senderMac: mac, senderIp: f.arp.targetIp, targetMac: f.arp.senderMac, targetIp: f.arp.senderIp }, mac, f.arp.senderMac));
      return;
    }
    if (f.icmp?.kind === "echoRequest" && f.ip && this.owns(f.ip.dst)) {
      this.stats.echoAnswered++;
      this.sendFrame(icmpFrame({ kind: "echoReply", ident: f.icmp.ident, seq: f.icmp.seq, data: f.icmp.data }, { src: f.ip.dst, dst: f.ip.src, srcMac: f.dstMac, dstMac: f.srcMac }));
      return;
    }
    if (f.tcp && f.ip && f.ip.dst === PEER_IP) {
      this.stats.tcpIn++;
      const c = this.clients.get(key(f.tcp.dstPort, f.tcp.srcPort));
      if (!c) {
        this.stats.tcpNoConn++;
        return;
      }
      c.onSegment(f.tcp);
    }
  }

  private tick(): void {
    const now = performance.now();
    for (const c of this.clients.values()) c.onTimer(now);
  }

  // ---- TCP clients ----

  /** A new ephemeral source port for a client or a crafted segment. */
  ephemeralPort(): number {
    this.nextPort = this.nextPort >= 60999 ? 30000 : this.nextPort + 1;
    return this.nextPort;
  }

  /** Opens a TCP connection from 10.0.2.2 to newts:port (not awaited: see PeerTcp.established). */
  open(port: number, opts: PeerTcpOptions = {}): PeerTcp {
    const lport = opts.localPort ?? this.ephemeralPort();
    const c = new PeerTcp(this, lport, port, opts);
    this.clients.set(key(lport, port), c);
    c.start();
    return c;
  }

  /**
   * Connects to newts:port, retrying while nobody listens yet (a RST) until timeoutMs.
   * Throws if no connection could be made.
   */
  async connect(port: number, opts: PeerTcpOptions = {}, timeoutMs = 15_000): Promise<PeerTcp> {
    const t0 = performance.now();
    for (;;) {
      const c = this.open(port, opts);
      const r = await c.established(Math.max(100, timeoutMs - (performance.now() - t0)));
      if (r === "connected") return c;
      this.forget(c);
      if (performance.now() - t0 > timeoutMs) throw new Error(`peer: could not connect to port ${port} (${r})`);
      await sleep(50);
    }
  }

  /** Stops driving a client (it stays as it is; later segments for it are ignored). */
  forget(c: PeerTcp): void {
    this.clients.delete(key(c.localPort, c.remotePort));
  }

  /** Transmits a segment from 10.0.2.2 to newts. */
  transmit(seg: TcpRepr): void {
    this.sendFrame(tcpFrame(seg, {}));
  }
}

export interface PeerTcpOptions {
  localPort?: number;
  cfg?: TcpConfig;
  /** Rewrites each segment before it leaves (e.g. a hostile MSS in the SYN). */
  mangle?: (seg: TcpRepr) => TcpRepr;
}

const SECRET: [number, number] = [0x70656572, 0x74637000];

/** A TCP client at 10.0.2.2 talking to newts through the wire peer. */
export class PeerTcp {
  readonly conn: TcpConnection;
  readonly localPort: number;
  readonly remotePort: number;
  readonly events: TcpEvent[] = [];
  private readonly peer: WirePeer;
  private readonly mangle?: (seg: TcpRepr) => TcpRepr;
  private readonly rx: Uint8Array[] = [];
  private rxLen = 0;
  private pending: Uint8Array[] = [];
  private waiters: Array<() => void> = [];
  /** Segments this client sent and received. */
  readonly stats = { out: 0, in: 0 };

  constructor(peer: WirePeer, localPort: number, remotePort: number, opts: PeerTcpOptions) {
    this.peer = peer;
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.mangle = opts.mangle;
    this.conn = new TcpConnection(opts.cfg ?? {});
  }

  start(): void {
    const now = performance.now();
    this.conn.connect(now, { addr: PEER_IP, port: this.localPort }, { addr: NEWTS_IP, port: this.remotePort }, isnFor(SECRET, now, PEER_IP, this.localPort, NEWTS_IP, this.remotePort));
    this.pump(now);
  }

  get state(): TcpState {
    return this.conn.state;
  }
  get isOpen(): boolean {
    return this.conn.state === TcpState.ESTABLISHED || this.conn.state === TcpState.CLOSE_WAIT;
  }
  get wasReset(): boolean {
    return this.events.includes("reset");
  }
  get eof(): boolean {
    return this.events.includes("peer-closed");
  }
  /** Bytes received so far. */
  get received(): number {
    return this.rxLen;
  }
  /** Everything received so far, in one array. */
  data(): Uint8Array {
    const out = new Uint8Array(this.rxLen);
    let o = 0;
    for (const c of this.rx) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  onSegment(seg: TcpRepr): void {
    this.stats.in++;
    const now = performance.now();
    this.conn.onSegment(now, seg);
    this.pump(now);
  }

  onTimer(now: number): void {
    const d = this.conn.nextDeadline();
    if (d >= 0 && d <= now) this.conn.onTick(now);
    this.pump(now);
  }

  /** Queues bytes to send (all of them, as room allows). */
  write(bytes: Uint8Array): void {
    this.pending.push(bytes);
    this.pump(performance.now());
  }

  /** Sends our FIN after the queued data. */
  shutdown(): void {
    this.whenDrained = () => this.conn.shutdownWrite();
    this.pump(performance.now());
  }

  /** Sends a RST and forgets the connection. */
  abort(): void {
    this.conn.abort();
    this.pump(performance.now());
    this.peer.forget(this);
  }

  private whenDrained: (() => void) | null = null;

  /** Moves queued bytes into the connection, sends its segments, reads what arrived. */
  pump(now: number): void {
    while (this.pending.length > 0) {
      const b = this.pending[0]!;
      const n = this.conn.send(b);
      if (n === b.length) this.pending.shift();
      else {
        this.pending[0] = b.subarray(n);
        break;
      }
    }
    if (this.pending.length === 0 && this.whenDrained) {
      const f = this.whenDrained;
      this.whenDrained = null;
      f();
    }
    for (;;) {
      const d = this.conn.recv(1 << 20);
      if (d.length === 0) break;
      this.rx.push(d);
      this.rxLen += d.length;
    }
    for (let seg of this.conn.poll(now)) {
      if (this.mangle) seg = this.mangle(seg);
      this.stats.out++;
      this.peer.transmit(seg);
    }
    const ev = this.conn.events();
    if (ev.length > 0) {
      this.events.push(...ev);
      if (ev.includes("readable")) {
        for (;;) {
          const d = this.conn.recv(1 << 20);
          if (d.length === 0) break;
          this.rx.push(d);
          this.rxLen += d.length;
        }
        // Reading opened the window: let the ACK go now.
        for (let seg of this.conn.poll(now)) {
          if (this.mangle) seg = this.mangle(seg);
          this.stats.out++;
          this.peer.transmit(seg);
        }
      }
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `cond` holds (checked after every segment and tick), or false after timeoutMs. */
  until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      let done = false;
      const t = setTimeout(() => {
        done = true;
        resolve(cond());
      }, timeoutMs);
      const check = () => {
        if (done) return;
        if (cond()) {
          done = true;
          clearTimeout(t);
          return resolve(true);
        }
        this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  /** "connected", "reset", "timed-out" or "timeout" (nothing yet after timeoutMs). */
  async established(timeoutMs = 10_000): Promise<string> {
    await this.until(() => this.events.some((e) => e === "connected" || e === "reset" || e === "timed-out" || e === "closed"), timeoutMs);
    if (this.events.includes("connected")) return "connected";
    return this.events.find((e) => e === "reset" || e === "timed-out" || e === "closed") ?? "timeout";
  }

  /** True once every byte written has been acknowledged. */
  allAcked(): boolean {
    return this.pending.length === 0 && this.conn.unackedBytes === 0;
  }

  /** Our next sequence number (newts's RCV.NXT once everything is acked). */
  get sndNxt(): number {
    return this.conn.tcb.sndNxt >>> 0;
  }
  /** The next sequence number we expect from newts (what we acknowledge). */
  get rcvNxt(): number {
    return this.conn.tcb.rcvNxt >>> 0;
  }
}

export { formatIpv4Addr };
