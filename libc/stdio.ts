// libc's console output: a line to the machine's console (through the kernel's LOG call).
import { K } from "../lib/ipc/calls.ts";
import { self } from "../lib/sys/current.ts";

export function puts(line: string): void {
  self().send(0, K.LOG, { line });
}
