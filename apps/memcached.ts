// memcached: the cache server, written as a C program is written against POSIX — one
// event loop (epoll by default; poll or select with --event-handler), nonblocking sockets,
// speculative accept (until EAGAIN) and speculative read (a new connection is read at
// once; a readable one until EAGAIN), replies queued per connection and written at once,
// with POLLOUT asked for only while a queue is not empty. The data path uses the C-style
// calls (tryAccept, tryRecv, trySend: -errno, no throw). It uses only the SocketApi of
// `--sockets fast|syscall|linux` (libc/sockets.ts), so the same code runs on newts's fast
// sockets, on newts's system-call sockets and on the host's Linux sockets.
//
//   memcached [-p PORT] [-l ADDR] [-m MB] [-M] [-I SIZE] [-c CONNS] [-A] [-v]
//             [--event-handler epoll|poll|select] [--exit-after N] [--sockets fast|syscall|linux]
//
//   -p 11211, -l 0.0.0.0, -m 64 (megabytes for items; k/m/g suffixes take bytes),
//   -M       return "SERVER_ERROR out of memory storing object" (binary 0x82) instead of evicting
//   -I 1m    the largest item (with k or m suffix), at most half of -m
//   -c 1024  connections; beyond: "ERROR Too many open connections" and a hang-up
//   -A       the `shutdown` command stops the server
//   --exit-after N  stop after N commands (tests); otherwise until killed or `shutdown`
//
// The protocol of a connection is picked by its first byte, as memcached does: 0x80 is the
// binary protocol (memcached/binary.ts), anything else the text protocol with the meta
// commands (memcached/text.ts, meta.ts); the cache is memcached/store.ts, the event loop
// memcached/server.ts (its select/poll/epoll poller is common/poller.ts, shared with httpd).
// A connection's work per wake-up is bounded (commands and reads), and one whose replies
// pile up past HIGH_WATER is not read until they drain, so no client stalls the others.
// Every wait has a finite timeout (WAIT_MS), so a kill or shutdown is never held up.
// Returns { status, result: { commands, connections, stats, sockets } } when it stops.
import { type Backend, openSockets, socketsFromArgs } from "../libc/sockets.ts";
import { puts } from "../libc/stdio.ts";
import { Server, type Options } from "./memcached/server.ts";

const USAGE =
  "usage: memcached [-p PORT] [-l ADDR] [-m MB] [-M] [-I SIZE] [-c CONNS] [-A] [-v] [--event-handler epoll|poll|select] [--exit-after N] [--sockets fast|syscall|linux]";

function parseAddr(s: string): number | null {
  const p = s.split(".");
  if (p.length !== 4) return null;
  let a = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return null;
    a = a * 256 + Number(x);
  }
  return a >>> 0;
}

/** "1048576", "512k", "1m", "1g": bytes; null if not such a size. */
function parseSize(s: string, unit: number): number | null {
  const m = /^(\d+)([kKmMgG]?)$/.exec(s);
  if (!m) return null;
  const mult = { "": unit, k: 1024, m: 1 << 20, g: 1 << 30 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * mult;
}

/** memcached's options (short and long forms); an error string on a bad one. */
export function parseOptions(argv: string[]): Options | string {
  const o: Options = {
    port: 11211, addr: 0, iface: "0.0.0.0", maxBytes: 64 << 20, evict: true, itemSizeMax: 1 << 20, maxConns: 1024,
    shutdown: false, handler: "epoll", exitAfter: 0, verbose: false,
  };
  const withValue: Record<string, string> = {
    "-p": "port", "--port": "port", "-l": "listen", "--listen": "listen", "-m": "memory", "--memory-limit": "memory",
    "-I": "item", "--max-item-size": "item", "-c": "conns", "--conn-limit": "conns", "--event-handler": "handler",
    "--exit-after": "exit", "-t": "threads", "--threads": "threads", "-U": "udp", "--udp-port": "udp",
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let v: string | undefined;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    if (eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    } else if (/^-[plmIctU]./.test(a)) {
      v = a.slice(2);
      a = a.slice(0, 2);
    }
    const what = withValue[a];
    if (what) {
      if (v === undefined) v = argv[++i];
      if (v === undefined) return `${a} needs a value`;
      switch (what) {
        case "port": {
          const n = Number(v);
          if (!/^\d+$/.test(v) || n < 0 || n > 65535) return `bad port '${v}'`;
          o.port = n;
          break;
        }
        case "listen": {
          const ad = parseAddr(v);
          if (ad === null) return `bad address '${v}'`;
          o.addr = ad;
          o.iface = v;
          break;
        }
        case "memory": {
          const n = parseSize(v, 1 << 20);
          if (n === null || n <= 0) return `bad memory limit '${v}'`;
          o.maxBytes = n;
          break;
        }
        case "item": {
          const n = parseSize(v, 1);
          if (n === null || n < 1024) return `bad item size '${v}' (at least 1024 bytes)`;
          if (n > 128 << 20) return "Cannot set item size limit higher than 128 mb.";
          o.itemSizeMax = n;
          break;
        }
        case "conns": {
          const n = Number(v);
          if (!/^\d+$/.test(v) || n < 1) return `bad connection limit '${v}'`;
          o.maxConns = n;
          break;
        }
        case "handler":
          if (v !== "epoll" && v !== "poll" && v !== "select") return `--event-handler: expected epoll, poll or select, got '${v}'`;
          o.handler = v;
          break;
        case "exit": {
          const n = Number(v);
          if (!/^\d+$/.test(v)) return `bad --exit-after '${v}'`;
          o.exitAfter = n;
          break;
        }
        default:
          break; // -t, -U: accepted, one thread and no UDP here
      }
      continue;
    }
    switch (a) {
      case "-M":
      case "--disable-evictions":
        o.evict = false;
        break;
      case "-A":
      case "--enable-shutdown":
        o.shutdown = true;
        break;
      case "-v":
      case "-vv":
      case "--verbose":
        o.verbose = true;
        break;
      default:
        return `unknown option '${argv[i]}'`;
    }
  }
  if (o.itemSizeMax > o.maxBytes / 2) return "Cannot set item size limit higher than 1/2 of memory max.";
  return o;
}

export function main(argv: string[]) {
  const args = [...argv];
  let backend: Backend;
  try {
    backend = socketsFromArgs(args);
  } catch (e) {
    puts(`${(e as Error).message}`);
    return { status: 2, result: (e as Error).message };
  }
  const o = parseOptions(args.slice(1));
  if (typeof o === "string") {
    puts(`${o}`);
    puts(USAGE);
    return { status: 2, result: o };
  }
  return new Server(openSockets(backend), o, backend).run();
}
