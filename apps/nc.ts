// nc: a TCP (or UDP, -u) pipe from inside newts, by system calls.
//   nc -l PORT [--http] [--size N | --sink]     listen, accept one connection, then
//                                               send N pattern bytes (--http: as an HTTP
//                                               response after the request head) or
//                                               read to EOF (--sink, the default)
//   nc HOST PORT [--size N | --sink] [--send TEXT]  connect, then send or read to EOF
//   --file PATH (with -l or HOST PORT): send that file (from the host's file system)
// The result also has `ms`, from accept/connect to the end of the transfer.
// The pattern byte i is (i * 7 + (i >>> 10)) & 0xff, so the far end can check it.
// Prints and returns the byte count and an FNV-1a hash of the bytes.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import {
  accept, AF_INET, bind, close, connect, inetAddr, listen, recv, recvfrom, sendAll, sendto, shutdown, SOCK_DGRAM, SOCK_STREAM, socket,
} from "../libc/net.ts";
import { puts } from "../libc/stdio.ts";
import { EINTR, ErrnoError } from "../libc/errno.ts";

export function pattern(off: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x = off + i;
    b[i] = (x * 7 + (x >>> 10)) & 0xff;
  }
  return b;
}

function fnv(h: number, b: Uint8Array): number {
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return h;
}

function sendPattern(fd: number, size: number): number {
  let h = 0x811c9dc5;
  for (let off = 0; off < size; ) {
    const n = Math.min(8192, size - off);
    const chunk = pattern(off, n);
    sendAll(fd, chunk);
    h = fnv(h, chunk);
    off += n;
  }
  return h;
}

function sink(fd: number): { bytes: number; hash: number } {
  let bytes = 0;
  let h = 0x811c9dc5;
  for (;;) {
    const b = recv(fd, 8192);
    if (b.length === 0) break;
    bytes += b.length;
    h = fnv(h, b);
  }
  return { bytes, hash: h };
}

function readHead(fd: number): string {
  let head = "";
  while (!head.includes("\r\n\r\n") && head.length < 65536) {
    const b = recv(fd, 8192);
    if (b.length === 0) break;
    head += new TextDecoder().decode(b);
  }
  return head;
}

export function main(argv: string[]) {
  let v;
  try {
    v = parseArgs({
      args: argv.slice(1),
      options: {
        l: { type: "boolean" }, u: { type: "boolean" }, http: { type: "boolean" }, size: { type: "string" },
        sink: { type: "boolean" }, send: { type: "string" }, file: { type: "string" },
      },
      allowPositionals: true,
    });
  } catch (e) {
    puts(`nc: ${(e as Error).message}`);
    return 2;
  }
  const o = v.values;
  const pos = v.positionals;
  const size = o.size === undefined ? -1 : Number(o.size);
  if ((o.l && pos.length !== 1) || (!o.l && pos.length !== 2) || (o.size !== undefined && !(size >= 0))) {
    puts("usage: nc -l PORT [-u] [--http] [--size N | --file PATH | --sink]  |  nc HOST PORT [-u] [--size N | --file PATH | --sink] [--send TEXT]");
    return 2;
  }
  if (o.u) {
    const fd = socket(AF_INET, SOCK_DGRAM);
    if (o.l) {
      bind(fd, 0, Number(pos[0]));
      // A udp server restart interrupts the wait (EINTR); the socket itself survives it.
      let d;
      for (;;) {
        try {
          d = recvfrom(fd, 65536);
          break;
        } catch (e) {
          if (!(e instanceof ErrnoError && e.errno === EINTR)) throw e;
        }
      }
      sendto(fd, d.data, d.addr, d.port); // echo one datagram back
      close(fd);
      return { status: 0, result: { bytes: d.data.length, from: d.addr, port: d.port } };
    }
    const text = new TextEncoder().encode(o.send ?? "hello\n");
    sendto(fd, text, inetAddr(pos[0]!), Number(pos[1]));
    const d = recvfrom(fd, 65536, false, 3000);
    close(fd);
    return { status: 0, result: { bytes: d.data.length, echo: new TextDecoder().decode(d.data) } };
  }
  let fd: number;
  let peer = "";
  if (o.l) {
    const lfd = socket(AF_INET, SOCK_STREAM);
    bind(lfd, 0, Number(pos[0]));
    listen(lfd, 16);
    puts(`nc: listening on port ${pos[0]}`);
    // A tcp restart interrupts the wait (EINTR); the listening socket survives it.
    let a;
    for (;;) {
      try {
        a = accept(lfd);
        break;
      } catch (e) {
        if (!(e instanceof ErrnoError && e.errno === EINTR)) throw e;
      }
    }
    close(lfd);
    fd = a.fd;
    peer = `${a.addr}:${a.port}`;
  } else {
    fd = socket(AF_INET, SOCK_STREAM);
    connect(fd, inetAddr(pos[0]!), Number(pos[1]));
  }
  let result: { bytes: number; hash: number; ms?: number };
  const t0 = performance.now();
  if (o.send !== undefined) {
    const text = new TextEncoder().encode(o.send);
    sendAll(fd, text);
    shutdown(fd, 1);
    result = sink(fd);
  } else if (o.file !== undefined) {
    // newts has no file system yet: the file comes from the host's.
    const data = new Uint8Array(readFileSync(o.file));
    if (o.http) {
      readHead(fd);
      sendAll(fd, new TextEncoder().encode(`HTTP/1.0 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`));
    }
    sendAll(fd, data);
    shutdown(fd, 1);
    result = { bytes: data.length, hash: fnv(0x811c9dc5, data) };
  } else if (size >= 0) {
    if (o.http) {
      readHead(fd);
      sendAll(fd, new TextEncoder().encode(`HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`));
    }
    result = { bytes: size, hash: sendPattern(fd, size) };
    shutdown(fd, 1);
  } else {
    result = sink(fd);
  }
  close(fd);
  result.ms = performance.now() - t0;
  const rate = result.ms > 0 ? (result.bytes / 1e6 / (result.ms / 1000)).toFixed(1) : "-";
  puts(`nc: ${result.bytes} bytes in ${result.ms.toFixed(0)} ms (${rate} MB/s), fnv ${result.hash.toString(16)}${peer ? ` (peer ${peer})` : ""}`);
  return { status: 0, result };
}
