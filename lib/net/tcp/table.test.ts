import { describe, expect, test } from "vitest";
import { TcpFlag } from "../types.ts";
import { TcpConnection } from "./connection.ts";
import { TcpListener } from "./listener.ts";
import { endpointKey, FourTupleMap, TcpTable } from "./table.ts";
import { Prng, SimLink } from "./simlink.fixture.ts";
import { TcpState } from "./tcb.ts";

const LOCAL = 0x0a000002;

function tenThousand() {
  const table = new TcpTable();
  const conns: TcpConnection[] = [];
  const r = new Prng(17);
  for (let i = 0; i < 10_000; i++) {
    const c = new TcpConnection();
    // Many remotes, some sharing an address or a port, a few local ports.
    const remote = { addr: 0xc0a80000 + (i % 2500), port: 1024 + Math.floor(i / 2500) };
    c.connect(0, { addr: LOCAL, port: 80 + (i % 3) }, remote, r.next());
    expect(table.add(c)).toBe(true);
    conns.push(c);
  }
  return { table, conns };
}

describe("connection table", () => {
  test("endpoint keys are exact for every address and port", () => {
    expect(endpointKey(0xffffffff, 0xffff)).toBe(2 ** 48 - 1);
    expect(endpointKey(1, 0)).not.toBe(endpointKey(0, 65536 - 1 + 1));
    expect(endpointKey(0x0a000001, 80)).toBe(0x0a000001 * 65536 + 80);
  });

  test("10,000 connections: each 4-tuple finds its own connection, unknown ones find none", () => {
    const { table, conns } = tenThousand();
    expect(table.size).toBe(10_000);
    for (const c of conns) {
      const t = c.tcb;
      expect(table.lookup(t.localAddr, t.localPort, t.remoteAddr, t.remotePort)).toBe(c);
    }
    expect(table.lookup(LOCAL, 80, 0xc0a80000, 9999)).toBeUndefined();
    expect(table.lookup(LOCAL, 83, 0xc0a80000, 1024)).toBeUndefined();
    // The same 4-tuple cannot be added twice.
    const dup = new TcpConnection();
    dup.connect(0, conns[5]!.local, conns[5]!.remote, 1);
    expect(table.add(dup)).toBe(false);
    // Removing half leaves exactly the other half.
    for (let i = 0; i < conns.length; i += 2) expect(table.remove(conns[i]!)).toBe(true);
    expect(table.size).toBe(5_000);
    for (let i = 0; i < conns.length; i++) {
      const t = conns[i]!.tcb;
      expect(table.lookup(t.localAddr, t.localPort, t.remoteAddr, t.remotePort)).toBe(i % 2 ? conns[i] : undefined);
    }
  });

  test("dispatch routes a segment to its connection among 10,000, and RSTs strays", () => {
    const { table, conns } = tenThousand();
    const c = conns[4321]!;
    const t = c.tcb;
    const synAck = {
      srcPort: t.remotePort, dstPort: t.localPort, seq: 777, ack: (t.iss + 1) >>> 0, flags: TcpFlag.SYN | TcpFlag.ACK,
      window: 65535, urgent: 0, options: { mss: 1460 }, payload: new Uint8Array(0),
    };
    c.poll(0);
    const r = table.dispatch(1, synAck, t.remoteAddr, t.localAddr);
    expect(r.conn).toBe(c);
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(conns.filter((x) => x.state === TcpState.ESTABLISHED).length).toBe(1);
    const stray = table.dispatch(1, { ...synAck, dstPort: 9 }, t.remoteAddr, t.localAddr);
    expect(stray.replies.map((o) => [o.seg.flags, o.seg.seq, o.dst])).toEqual([[TcpFlag.RST, synAck.ack, t.remoteAddr]]);
  });

  test("listeners: an exact address wins over the wildcard", () => {
    const table = new TcpTable();
    const any = new TcpListener({}, 4);
    const exact = new TcpListener({}, 4);
    table.listen(0, 80, any);
    table.listen(LOCAL, 80, exact);
    expect(table.listenerFor(LOCAL, 80)).toBe(exact);
    expect(table.listenerFor(LOCAL + 1, 80)).toBe(any);
    expect(table.listenerFor(LOCAL, 81)).toBeUndefined();
    expect(table.listen(0, 80, exact)).toBe(false);
  });

  test("FourTupleMap counts and iterates", () => {
    const m = new FourTupleMap<number>();
    m.set(1, 2, 3, 4, 10);
    m.set(1, 2, 3, 4, 11);
    m.set(1, 3, 3, 4, 12);
    expect(m.size).toBe(2);
    expect([...m.values()].sort()).toEqual([11, 12]);
    expect(m.delete(1, 2, 3, 4)).toBe(true);
    expect(m.delete(1, 2, 3, 4)).toBe(false);
    expect(m.size).toBe(1);
  });
});

describe("the control block is plain data", () => {
  test("after a lossy transfer it survives structuredClone and JSON unchanged", () => {
    const link = new SimLink({ seed: 11, lossRate: 0.05 });
    const a = link.host(0x0a000001);
    const b = link.host(LOCAL);
    const l = b.listen(80);
    const c = a.connect(link.now, 40000, LOCAL, 80);
    let s: TcpConnection | undefined;
    const data = new Uint8Array(300_000);
    let sent = 0;
    let checked = 0;
    link.run({
      app: () => {
        if (c.state === TcpState.ESTABLISHED) sent += c.send(data.subarray(sent));
        s ??= l.accept();
        s?.recv();
        // Check mid-flight, while holes and SACK blocks exist.
        if (c.tcb.sacked.length > 0 || (s && s.tcb.rcvFinSeq < 0 && checked < 50)) {
          for (const t of [c.tcb, s?.tcb]) {
            if (!t) continue;
            expect(structuredClone(t)).toEqual(t);
            expect(JSON.parse(JSON.stringify(t))).toEqual(t);
            checked++;
          }
        }
      },
      until: () => sent === data.length && c.unackedBytes === 0,
    });
    expect(checked).toBeGreaterThan(10);
    expect(Object.values(c.tcb).every((v) => typeof v === "number" || typeof v === "boolean" || Array.isArray(v))).toBe(true);
  });
});
