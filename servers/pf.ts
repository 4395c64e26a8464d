// The pf server: the packet filter between the driver and ip. Every frame from
// the wire passes `in`, every frame to it `out`; non-IPv4 frames (ARP) pass. The
// rules survive a restart in the server's store; states are rebuilt from traffic
// (any TCP packet but a RST may create one, see lib/net/pf/filter.ts).
import { SRV_CTL } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import { EINVAL, ErrnoError } from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import type { ServerDef } from "../lib/sys/server.ts";
import { loadStore, saveStore } from "../lib/sys/store.ts";
import { Links, linkHandlers } from "../lib/net/links.ts";
import type { Port } from "../lib/net/port.ts";
import { PacketFilter } from "../lib/net/pf/filter.ts";
import { parseRules } from "../lib/net/pf/rules.ts";
import { ETH_HLEN } from "../lib/net/stackproto.ts";

interface State {
  links: Links;
  filter: PacketFilter;
  rulesText: string;
  lastExpire: number;
  stats: { inPassed: number; inBlocked: number; outPassed: number; outBlocked: number; nonIp: number; noRoute: number };
}

function compile(text: string): PacketFilter {
  const r = parseRules(text);
  if (!r.ok) throw new ErrnoError(EINVAL, r.errors.map((e) => `line ${e.line}: ${e.message}`).join("; "));
  return new PacketFilter(r.rules);
}

/** The layer over its links with the rules `text` (all passes if they do not compile), joined to ip. */
function layerState(proc: Proc, links: Links, text: string): State {
  let filter: PacketFilter;
  try {
    filter = compile(text);
  } catch (e) {
    proc.log(`rules not loaded (${(e as Error).message}); passing everything`);
    filter = compile("");
  }
  links.openUp("ip");
  return { links, filter, rulesText: text, lastExpire: 0, stats: { inPassed: 0, inBlocked: 0, outPassed: 0, outBlocked: 0, nonIp: 0, noRoute: 0 } };
}

/** A first start (a server of its own, or a layer of servers/stack.ts): the rules from the command line. */
export function freshLayer(proc: Proc, links: Links): State {
  return layerState(proc, links, String(links.config.rules ?? ""));
}

/**
 * After a restart: the rules last loaded (`pf load`, saved in the store), else those of
 * the command line. The channels to nic and ip come back with Links (restored by the
 * kernel); openUp opens the one to ip only if the last generation died before it did.
 * States are not kept: traffic rebuilds them.
 */
export function restartLayer(proc: Proc, links: Links): State {
  const saved = loadStore(links.store) as { rules?: string } | null;
  return layerState(proc, links, saved?.rules ?? String(links.config.rules ?? ""));
}

/** Moves frames from one port to the other through the filter. */
function pump(s: State, from: Port | undefined, to: Port | undefined, dir: "in" | "out", now: number): number {
  if (!from) return 0;
  return from.recv(64, (p, frame) => {
    let pass = true;
    if (frame.length >= ETH_HLEN && frame[12] === 0x08 && frame[13] === 0x00) {
      pass = s.filter.check(now, dir, frame.subarray(ETH_HLEN)).verdict === "pass";
    } else s.stats.nonIp++;
    if (pass && to && to.send(p)) {
      if (dir === "in") s.stats.inPassed++;
      else s.stats.outPassed++;
      return;
    }
    if (!pass) {
      if (dir === "in") s.stats.inBlocked++;
      else s.stats.outBlocked++;
    } else s.stats.noRoute++;
    s.links.pools.release(p);
  });
}

export const server: ServerDef<State> = {
  initFresh: (p) => freshLayer(p, new Links(p)),
  initRestart: (p) => restartLayer(p, new Links(p)),
  handlers: {
    ...linkHandlers<State>(),
    [SRV_CTL]: (s, m: Message, proc) => {
      const p = (m.payload ?? {}) as { cmd?: string; text?: string };
      switch (p.cmd) {
        case "show":
          return `${s.filter.describe(performance.now())}\nframes: ${JSON.stringify(s.stats)}`;
        case "load": {
          const r = parseRules(String(p.text ?? ""));
          if (!r.ok) throw new ErrnoError(EINVAL, r.errors.map((e) => `line ${e.line}: ${e.message}`).join("; "));
          s.filter.replaceRules(r.rules);
          s.rulesText = String(p.text ?? "");
          saveStore(s.links.store, { rules: s.rulesText });
          return `loaded ${r.rules.length} rule(s); states kept`;
        }
        case "flush":
          s.filter.replaceRules(s.filter.listRuleset(), { flushStates: true });
          return "states flushed";
        default:
          throw new ErrnoError(EINVAL, `pf: unknown command '${p.cmd}' (show, load, flush)`);
      }
    },
  },
  poll(s) {
    const now = performance.now();
    const nic = s.links.port("nic");
    const ip = s.links.port("ip");
    const n = pump(s, nic, ip, "in", now) + pump(s, ip, nic, "out", now);
    if (n > 0) s.links.flush();
    if (now - s.lastExpire > 1000) {
      s.lastExpire = now;
      s.filter.expire(now);
    }
    return n > 0;
  },
  nextDeadline: () => 1000,
};
