// sysinfo: prints uname, pid and uptime, each a system call through the kernel to
// the syscall server. `--app sysinfo` at boot, or `npm run ctl -- spawn sysinfo`.
import { getpid, uname, uptime } from "../libc/unistd.ts";
import { puts } from "../libc/stdio.ts";

export function main(_argv: string[]) {
  const u = uname();
  const pid = getpid();
  const up = uptime();
  puts(`${u.sysname} ${u.nodename} ${u.release} ${u.version} ${u.machine}; pid ${pid}; up ${up.toFixed(3)} s`);
  return { status: 0, result: { uname: u, pid, uptime: up } };
}
