// A server that only answers PING (lib/sys/server.ts answers it for every server).
// tcp, udp, ip, pf and the nic driver run this until the network stack (issue 3)
// gives them their own modules; it lets boot, supervision and fault injection be
// exercised on every server of the boot table today.
import type { ServerDef } from "../lib/sys/server.ts";

export const server: ServerDef<Record<string, never>> = {
  initFresh: () => ({}),
  handlers: {},
};
