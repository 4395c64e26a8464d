// The packet filter's logic (pure, no I/O): rule language, state table, and the filter that combines them.
export * from "./rules.ts";
export * from "./state.ts";
export * from "./filter.ts";
