// Tests for the hostfwd backend: a guest built from lib/net/tcp at 10.0.2.15, real host sockets on 127.0.0.1.
import { afterEach, describe, expect, test } from "vitest";
import type { Socket } from "bun";
import { macEqual, parseIpv4Addr, parseMac } from "../../lib/net/addr.ts";
import { ArpOp, type ArpRepr } from "../../lib/net/arp.ts";
import { emitEthernet, ETHERNET_HEADER_LEN, EtherType, parseEthernet } from "../../lib/net/ethernet.ts";
import { emitIcmp, icmpBufferLen, type IcmpRepr, parseIcmp } from "../../lib/net/icmp.ts";
import { emitIpv4, IPV4_HEADER_LEN, IpProtocol, parseIpv4 } from "../../lib/net/ipv4.ts";
import { emitTcp, parseTcp, tcpBufferLen } from "../../lib/net/tcp-wire.ts";
import { TcpConnection, TcpListener, TcpTable } from "../../lib/net/tcp/index.ts";
import { TcpFlag, type TcpRepr } from "../../lib/net/types.ts";
import { attachWire, openWire } from "../wire.ts";
import { macOf } from "./backend.ts";
import { pollIn } from "./libc.ts";
import { HOST_MAC_TEXT, HostfwdBackend, type HostfwdStats, parseHostfwd } from "./hostfwd.ts";
import { arpFrame, arpOf } from "./frames.fixture.ts";

const GUEST = parseIpv4Addr("10.0.2.15")!;
const HOST = parseIpv4Addr("10.0.2.2")!;
const GUEST_MAC = macOf(undefined);
const HOST_MAC = parseMac(HOST_MAC_TEXT)!;

/** What a guest app does with a connection at each step. */
type App = (c: TcpConnection) => void;

/** Echo: everything read is written back; the peer's EOF is passed on once all is echoed. */
const echo = (): App => {
  let shut = false;
  return (c) => {
    while (c.readableBytes > 0 && c.sendSpace > 0) c.send(c.recv(c.sendSpace));
    if (c.eof && !shut) {
      shut = true;
      c.shutdownWrite();
    }
  };
};

/** Sends `data` then FIN at once (half-close), and keeps reading to EOF into `got`. */
const sourceThenSink = (data: Uint8Array, got: Uint8Array[]): App => {
  let off = 0;
  let shut = false;
  return (c) => {
    if (off < data.length) off += c.send(data.subarray(off, off + c.sendSpace));
    if (off === data.length && !shut) {
      shut = true;
      c.shutdownWrite();
    }
    while (c.readableBytes > 0) got.push(c.recv());
  };
};

/** newts as the test sees it: a TCP table at 10.0.2.15 talking to the backend in frames. */
class Guest {
  readonly table = new TcpTable();
  readonly conns: { c: TcpConnection; app: App }[] = [];
  readonly apps = new Map<number, () => App>();
  readonly arps: ArpRepr[] = [];
  readonly icmps: IcmpRepr[] = [];
  readonly rsts: TcpRepr[] = [];
  lastSrcMac: Uint8Array | null = null;
  constructor(readonly b: HostfwdBackend) {}

  listen(port: number, app: () => App): void {
    this.table.listen(GUEST, port, new TcpListener({ secret: [1, 2], mslMs: 100 }, 256));
    this.apps.set(port, app);
  }

  /** One frame from the backend. */
  deliver(f: Uint8Array): void {
    const e = parseEthernet(f);
    if (!e.ok) throw new Error(`backend sent a bad frame: ${e.error}`);
    this.lastSrcMac = e.value.src;
    if (e.value.etherType === EtherType.ARP) {
      this.arps.push(arpOf(f)!);
      return;
    }
    const ip = parseIpv4(e.value.payload);
    if (!ip.ok) throw new Error(ip.error);
    if (ip.value.protocol === IpProtocol.ICMP) {
      const m = parseIcmp(ip.value.payload);
      if (m.ok) this.icmps.push(m.value);
      return;
    }
    const s = parseTcp(ip.value.payload, ip.value.src, ip.value.dst);
    if (!s.ok) throw new Error(s.error);
    if (s.value.flags & TcpFlag.RST) this.rsts.push(s.value);
    const r = this.table.dispatch(performance.now(), s.value, ip.value.src, ip.value.dst);
    for (const o of r.replies) this.sendTcp(o.seg, o.src, o.dst);
    if (r.accepted) {
      this.table.listenerFor(GUEST, s.value.dstPort)?.accept();
      this.conns.push({ c: r.accepted, app: this.apps.get(s.value.dstPort)!() });
    }
  }

  /** Timers, apps, output. */
  step(now: number): void {
    for (const l of this.table.listenersAll()) for (const o of l.onTick(now)) this.sendTcp(o.seg, o.src, o.dst);
    for (let i = 0; i < this.conns.length; i++) {
      const { c, app } = this.conns[i]!;
      const d = c.nextDeadline();
      if (d >= 0 && now >= d) c.onTick(now);
      app(c);
      for (const seg of c.poll(now)) this.sendTcp(seg, GUEST, c.remote.addr);
      if (c.events().includes("closed")) {
        this.table.remove(c);
        this.conns.splice(i--, 1);
      }
    }
  }

  sendTcp(seg: TcpRepr, src: number, dst: number): void {
    const f = new Uint8Array(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + tcpBufferLen(seg));
    const l4 = f.subarray(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN);
    emitTcp(seg, l4, src, dst);
    expect(this.b.send(ipFrame(f, IpProtocol.TCP, src, dst, l4))).toBe(true);
  }
}

/** Wraps an L4 payload already at f[34..] in IPv4 and Ethernet headers (guest to gateway). */
function ipFrame(f: Uint8Array, protocol: number, src: number, dst: number, l4: Uint8Array): Uint8Array {
  const l3 = f.subarray(ETHERNET_HEADER_LEN);
  emitIpv4({ src, dst, protocol, ttl: 64, tos: 0, ident: 1, dontFrag: true, moreFrags: false, fragOffset: 0, payload: l4 }, l3);
  emitEthernet({ dst: HOST_MAC, src: GUEST_MAC, etherType: EtherType.IPV4, payload: l3 }, f);
  return f;
}

function icmpFrame(m: IcmpRepr, dst = HOST): Uint8Array {
  const f = new Uint8Array(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + icmpBufferLen(m));
  const l4 = f.subarray(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN);
  emitIcmp(m, l4);
  return ipFrame(f, IpProtocol.ICMP, GUEST, dst, l4);
}

/** A host client on a real socket (Bun.connect), with write queueing and half-close. */
class Client {
  chunks: Uint8Array[] = [];
  ended = false;
  closed = false;
  error: Error | undefined;
  private pending: Uint8Array[] = [];
  private endAfter = false;
  private s!: Socket<undefined>;

  static async connect(port: number): Promise<Client> {
    const cl = new Client();
    cl.s = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_s, d) => void cl.chunks.push(new Uint8Array(d)),
        drain: () => cl.flush(),
        end: () => void (cl.ended = true),
        close: (_s, e) => {
          cl.closed = true;
          cl.error ??= e;
        },
        error: (_s, e) => void (cl.error = e),
      },
    });
    return cl;
  }
  /** The host saw the far end's FIN (Bun reports `close` alone when our side had shut down already). */
  get eof(): boolean {
    return this.ended || this.closed;
  }
  get received(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
  bytes(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
  write(d: Uint8Array, thenEnd = false): void {
    this.pending.push(d);
    this.endAfter ||= thenEnd;
    this.flush();
  }
  private flush(): void {
    while (this.pending.length > 0) {
      const d = this.pending[0]!;
      const n = this.s.write(d);
      if (n < d.length) {
        this.pending[0] = d.subarray(Math.max(n, 0));
        return;
      }
      this.pending.shift();
    }
    if (this.endAfter) {
      this.endAfter = false;
      this.s.shutdown();
    }
  }
  terminate(): void {
    this.s.terminate();
  }
}

function randomBytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Moves frames between the backend and the guest, yielding to the event loop (host sockets), until `done`. */
async function run(b: HostfwdBackend, g: Guest, done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > end) throw new Error(`timed out; backend ${JSON.stringify(b.stats())}`);
    for (let i = 0; i < 200; i++) {
      const moved = b.recv(256, (f) => g.deliver(f));
      g.step(performance.now());
      if (moved === 0) break;
    }
    await new Promise((r) => setImmediate(r));
  }
}

const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

function setup(opts: { guestPort?: number; max?: number } = {}): { b: HostfwdBackend; g: Guest; port: number } {
  const b = new HostfwdBackend({ forwards: [{ hostPort: 0, guestPort: opts.guestPort ?? 80 }], maxConnections: opts.max });
  open.push(b);
  return { b, g: new Guest(b), port: b.forwards[0]!.hostPort };
}

describe("hostfwd rules", () => {
  test("parseHostfwd", () => {
    expect(parseHostfwd("tcp:8080:80")).toEqual({ hostPort: 8080, guestPort: 80 });
    expect(parseHostfwd("tcp:0:22")).toEqual({ hostPort: 0, guestPort: 22 });
    for (const bad of ["udp:1:2", "tcp:8080", "tcp::80", "tcp:70000:80", "tcp:80:0", "tcp:1:2:3", ""]) {
      expect(typeof parseHostfwd(bad)).toBe("string");
    }
  });

  test("bad options are netdev errors; a port in use fails to open", () => {
    expect(() => openWire("hostfwd", { hostfwd: ["tcp:x:1"] })).toThrow(/^netdev: hostfwd tcp:x:1/);
    expect(() => openWire("hostfwd,guest=10.9.9.9")).toThrow(/^netdev: hostfwd: guest=10.9.9.9 is not in net/);
    expect(() => openWire("none", { hostfwd: ["tcp:1:1"] })).toThrow(/^netdev: --hostfwd needs/);
    const { b } = setup();
    expect(() => openWire("hostfwd", { hostfwd: [`tcp:${b.forwards[0]!.hostPort}:80`] })).toThrow(/^netdev: hostfwd: bind 127.0.0.1:\d+: EADDRINUSE/);
  });
});

describe("hostfwd backend", () => {
  test("answers ARP for 10.0.2.2 and pings; learns the guest's MAC", async () => {
    const { b, g } = setup();
    const mac = parseMac("52:54:00:aa:bb:cc")!;
    b.send(arpFrame({ op: ArpOp.REQUEST, senderMac: mac, senderIp: GUEST, targetMac: new Uint8Array(6), targetIp: HOST }));
    b.send(arpFrame({ op: ArpOp.REQUEST, senderMac: mac, senderIp: GUEST, targetMac: new Uint8Array(6), targetIp: GUEST + 1 }));
    b.recv(8, (f) => g.deliver(f));
    expect(g.arps).toHaveLength(1);
    expect(g.arps[0]).toMatchObject({ op: ArpOp.REPLY, senderIp: HOST, targetIp: GUEST });
    expect(macEqual(g.arps[0]!.senderMac, HOST_MAC)).toBe(true);
    expect(macEqual(g.arps[0]!.targetMac, mac)).toBe(true);
    const data = randomBytes(56, 7);
    expect(b.send(icmpFrame({ kind: "echoRequest", ident: 0x1234, seq: 9, data }))).toBe(true);
    expect(b.send(icmpFrame({ kind: "echoRequest", ident: 1, seq: 1, data }, parseIpv4Addr("8.8.8.8")!))).toBe(true); // no NAT: no reply
    b.recv(8, (f) => g.deliver(f));
    expect(g.icmps).toHaveLength(1);
    expect(g.icmps[0]).toMatchObject({ kind: "echoReply", ident: 0x1234, seq: 9 });
    expect((g.icmps[0] as { data: Uint8Array }).data).toEqual(data);
    expect(b.stats()).toMatchObject({ arpReplies: 1, pingReplies: 1, ignored: 2, badFrames: 0 });
  });

  test("5 MB each way byte-identical through one connection (echo), then a clean close", async () => {
    const { b, g, port } = setup();
    g.listen(80, echo);
    const cl = await Client.connect(port);
    const data = randomBytes(5 << 20, 1);
    const t0 = performance.now();
    cl.write(data, true); // then half-close: the guest echoes everything, then closes its side
    await run(b, g, () => cl.eof && cl.received === data.length, 60_000);
    const ms = performance.now() - t0;
    expect(Buffer.compare(cl.bytes(), data)).toBe(0);
    console.log(`hostfwd unit echo: 2 x 5 MB in ${ms.toFixed(0)} ms (${((10 * 8) / (ms / 1000)).toFixed(0)} Mbit/s both ways)`);
    await run(b, g, () => b.stats().connections === 0 && g.conns.length === 0);
    const s = b.stats();
    expect(s).toMatchObject({ accepted: 1, hostBytesIn: data.length, hostBytesOut: data.length, badFrames: 0, guestResets: 0, hostResets: 0 });
  }, 90_000);

  test("half-close from the guest: 5 MB to the host, FIN, then 5 MB back to the guest", async () => {
    const { b, g, port } = setup({ guestPort: 7000 });
    const down = randomBytes(5 << 20, 2), up = randomBytes(5 << 20, 3);
    const got: Uint8Array[] = [];
    g.listen(7000, () => sourceThenSink(down, got));
    const cl = await Client.connect(port);
    await run(b, g, () => cl.ended, 60_000); // the guest's FIN arrived after its data
    expect(cl.closed).toBe(false);
    expect(Buffer.compare(cl.bytes(), down)).toBe(0);
    cl.write(up, true);
    await run(b, g, () => cl.closed && g.conns.length === 0, 60_000);
    expect(Buffer.compare(Buffer.concat(got), up)).toBe(0);
    expect(cl.error).toBeUndefined();
  }, 90_000);

  test("flow control both ways: a stalled reader stops the writer; the epoll fd does not spin meanwhile", async () => {
    const { b, g, port } = setup();
    let reading = false;
    const got: Uint8Array[] = [];
    const down = randomBytes(16 << 20, 9);
    let off = 0;
    let n = 0;
    g.listen(80, () => {
      const first = n++ === 0; // the first connection only reads, the second only sends
      return (c) => {
        if (first && reading) while (c.readableBytes > 0) got.push(c.recv());
        while (!first && off < down.length && c.sendSpace > 0) off += c.send(down.subarray(off, off + c.sendSpace));
      };
    });
    // Host -> guest: the guest reads nothing, so the backend stops reading the host socket.
    const cl = await Client.connect(port);
    const up = randomBytes(8 << 20, 8);
    cl.write(up);
    await run(b, g, () => g.conns.length === 1);
    // Guest -> host: a host socket nobody reads (node:net, paused) stops the guest's sender.
    const net = await import("node:net");
    let stalledGot = 0;
    const paused = net.connect(port, "127.0.0.1");
    paused.pause();
    paused.on("data", (d: Buffer) => void (stalledGot += d.length));
    await run(b, g, () => g.conns.length === 2);
    let last = -1;
    for (let i = 0; i < 50; i++) {
      await run(b, g, () => true);
      await new Promise((r) => setTimeout(r, 10));
      const s = b.stats();
      if (s.hostBytesIn + s.hostBytesOut === last) break;
      last = s.hostBytesIn + s.hostBytesOut;
    }
    const s = b.stats();
    expect(s.hostBytesIn).toBeLessThan(2 << 20); // the TCP send buffer and the guest's window, not 8 MB
    expect(s.hostBytesOut).toBeLessThan(12 << 20); // the host's socket buffers (Linux autotunes them to MBs), not 16 MB
    expect(off).toBeLessThan(down.length); // the guest's sender is stalled by TCP's window
    b.recv(1024, (f) => g.deliver(f));
    expect(pollIn(b.fd, 0)).toBe(false);
    reading = true;
    paused.resume();
    await run(b, g, () => Buffer.concat(got).length === up.length && stalledGot === down.length, 60_000);
    expect(Buffer.compare(Buffer.concat(got), up)).toBe(0);
    paused.destroy();
  }, 90_000);

  test("a refused guest port resets the host socket", async () => {
    const { b, g, port } = setup({ guestPort: 81 }); // nothing listens on 81 in the guest
    const cl = await Client.connect(port);
    await run(b, g, () => cl.closed);
    expect(cl.received).toBe(0);
    expect(b.stats()).toMatchObject({ accepted: 1, guestResets: 1, connections: 0 });
  });

  test("a host socket reset aborts the guest connection", async () => {
    const { b, g, port } = setup();
    g.listen(80, () => () => {}); // reads nothing
    const cl = await Client.connect(port);
    cl.write(randomBytes(1000, 5));
    await run(b, g, () => g.conns.length === 1 && g.conns[0]!.c.readableBytes === 1000);
    cl.terminate(); // RST
    await run(b, g, () => g.conns.length === 0 && b.stats().connections === 0);
    expect(b.stats()).toMatchObject({ hostResets: 1, guestResets: 0 });
  });

  test("64 parallel connections, each echoing 64 kB; a 65th beyond the limit is reset", async () => {
    const { b, g, port } = setup({ max: 64 });
    g.listen(80, echo);
    const clients = await Promise.all(Array.from({ length: 64 }, () => Client.connect(port)));
    const datas = clients.map((_, i) => randomBytes(64 * 1024, 100 + i));
    clients.forEach((c, i) => c.write(datas[i]!));
    await run(b, g, () => clients.every((c) => c.received === 64 * 1024), 60_000);
    expect(b.stats()).toMatchObject({ accepted: 64, connections: 64 });
    const extra = await Client.connect(port);
    await run(b, g, () => extra.closed);
    expect(extra.received).toBe(0);
    clients.forEach((c) => c.write(new Uint8Array(0), true));
    await run(b, g, () => clients.every((c) => c.eof) && b.stats().connections === 0 && g.conns.length === 0);
    clients.forEach((c, i) => expect(Buffer.compare(c.bytes(), datas[i]!)).toBe(0));
    expect(b.stats()).toMatchObject({ accepted: 64, overLimit: 1, guestResets: 0, hostResets: 0 });
  }, 90_000);

  test("bad frames are counted, never thrown; stray TCP gets a RST", async () => {
    const { b, g } = setup();
    const ping = icmpFrame({ kind: "echoRequest", ident: 1, seq: 1, data: new Uint8Array(8) });
    const badIpSum = ping.slice();
    badIpSum[ETHERNET_HEADER_LEN + 10]! ^= 0xff;
    const badIcmpSum = ping.slice();
    badIcmpSum[ping.length - 1]! ^= 0xff;
    const truncated = ping.subarray(0, ETHERNET_HEADER_LEN + 10);
    const arp = arpFrame({ op: ArpOp.REQUEST, senderMac: GUEST_MAC, senderIp: GUEST, targetMac: new Uint8Array(6), targetIp: HOST });
    arp[ETHERNET_HEADER_LEN + 4] = 9; // hlen 9
    let bad = 0;
    for (const f of [new Uint8Array(3), badIpSum, badIcmpSum, truncated, arp, new Uint8Array(70_000)]) {
      expect(b.send(f)).toBe(false);
      bad++;
    }
    for (let i = 0; i < 2000; i++) {
      const f = randomBytes(20 + (i % 200), 1000 + i);
      f.set(HOST_MAC, 0);
      f[12] = 0x08;
      f[13] = i & 1 ? 0x00 : 0x06; // IPv4 or ARP
      if (i & 1) f[14] = 0x45;
      if (!b.send(f)) bad++;
    }
    // A SYN from newts to the outside world: no NAT, so an immediate RST.
    g.sendTcp({ srcPort: 40000, dstPort: 443, seq: 1, ack: 0, flags: TcpFlag.SYN, window: 1000, urgent: 0, options: {}, payload: new Uint8Array(0) },
      GUEST, parseIpv4Addr("1.1.1.1")!);
    b.recv(64, (f) => g.deliver(f));
    expect(g.rsts).toHaveLength(1);
    expect(g.rsts[0]).toMatchObject({ srcPort: 443, dstPort: 40000, ack: 2 });
    const s: HostfwdStats = b.stats();
    expect(s.badFrames).toBe(bad);
    expect(s.txDropped).toBe(bad);
    expect(s.internalErrors).toBe(0);
    expect(s.rstSent).toBe(1);
  });

  test("through the wire: the machine's listeners survive a driver restart; connections in flight are reset", async () => {
    const { device, spec } = openWire("hostfwd", { hostfwd: ["tcp:0:80"] });
    open.push(device!);
    expect(spec).toMatchObject({ kind: "hostfwd", fd: -1 });
    const port = spec.forwards![0]!.hostPort;
    const d1 = attachWire(spec, null) as HostfwdBackend;
    const g1 = new Guest(d1);
    g1.listen(80, echo);
    const c1 = await Client.connect(port);
    c1.write(new TextEncoder().encode("hello"));
    await run(d1, g1, () => c1.received === 5);
    // The driver dies without closing anything; its successor attaches to the same spec.
    const d2 = attachWire(spec, null) as HostfwdBackend;
    const g2 = new Guest(d2);
    g2.listen(80, echo);
    const c2 = await Client.connect(port);
    c2.write(new TextEncoder().encode("again"), true);
    await run(d2, g2, () => c1.closed && c2.eof);
    expect(new TextDecoder().decode(c2.bytes())).toBe("again");
    expect(d2.name).toBe(`hostfwd:${port}->80`);
    d2.close();
    // The machine's close() takes the listeners down.
    device!.close();
    await expect(Client.connect(port)).rejects.toThrow();
  });
});
