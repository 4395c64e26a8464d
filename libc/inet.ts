// Address helpers for apps (inet_pton / inet_ntop for IPv4): addresses are numbers
// in host order, the form the socket API's addresses use.
export { formatIpv4Addr, parseIpv4Addr, IPV4_ANY as INADDR_ANY } from "../lib/net/addr.ts";
