// errno for apps: the values (Linux's numbers), ErrnoError and errnoName. Apps
// import errno from here, never from lib/sys, so libc stays their only door.
export * from "../lib/sys/errno.ts";
