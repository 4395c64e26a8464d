import { ErrnoError } from "../../lib/sys/errno.ts";

/** The errno a call threw (0: it returned); anything but an ErrnoError is thrown on. */
export function errnoOf(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno;
    throw e;
  }
  return 0;
}
