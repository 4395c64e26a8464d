// Tests for the transport servers' port rules and ephemeral range.
import { describe, expect, test } from "vitest";
import { EADDRINUSE, ErrnoError } from "../../sys/errno.ts";
import { EPHEMERAL_HI, EPHEMERAL_LO } from "../stackproto.ts";
import { EphemeralPorts, tcpPortInUse, udpPortConflict } from "./ports.ts";

describe("EphemeralPorts", () => {
  test("hands out ports round-robin from the cursor, skipping those in use", () => {
    const e = new EphemeralPorts(40000);
    expect(e.take(() => false)).toBe(40000);
    expect(e.take((p) => p === 40001 || p === 40002)).toBe(40003);
    expect(e.next).toBe(40004);
  });

  test("wraps from the top of the range to the bottom", () => {
    const e = new EphemeralPorts(EPHEMERAL_HI);
    expect(e.take(() => false)).toBe(EPHEMERAL_HI);
    expect(e.take(() => false)).toBe(EPHEMERAL_LO);
  });

  test("EADDRINUSE when every port is taken", () => {
    const e = new EphemeralPorts();
    let err: unknown;
    try {
      e.take(() => true);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(ErrnoError);
    expect((err as ErrnoError).errno).toBe(EADDRINUSE);
  });
});

describe("tcpPortInUse", () => {
  const conn = {};
  const listener = {};
  test("a listener or a bound unconnected socket takes the port, even with SO_REUSEADDR", () => {
    expect(tcpPortInUse([{ closed: false, listener, conn: null }], true)).toBe(true);
    expect(tcpPortInUse([{ closed: false, listener: null, conn: null }], true)).toBe(true);
  });

  test("a connection (closed ones in TIME_WAIT too) takes it only without SO_REUSEADDR", () => {
    for (const closed of [false, true]) {
      expect(tcpPortInUse([{ closed, listener: null, conn }], false)).toBe(true);
      expect(tcpPortInUse([{ closed, listener: null, conn }], true)).toBe(false);
    }
  });

  test("a closed unconnected socket, or nobody, leaves it free", () => {
    expect(tcpPortInUse([{ closed: true, listener: null, conn: null }])).toBe(false);
    expect(tcpPortInUse([])).toBe(false);
  });
});

describe("udpPortConflict", () => {
  test("the same address, or the wildcard on either side, conflicts", () => {
    expect(udpPortConflict([{ laddr: 0x0a00020f }], 0x0a00020f)).toBe(true);
    expect(udpPortConflict([{ laddr: 0 }], 0x0a00020f)).toBe(true);
    expect(udpPortConflict([{ laddr: 0x0a00020f }], 0)).toBe(true);
  });

  test("two different addresses share a port", () => {
    expect(udpPortConflict([{ laddr: 0x0a00020f }], 0x7f000001)).toBe(false);
    expect(udpPortConflict([], 0)).toBe(false);
  });
});
