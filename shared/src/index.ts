export * from "./status.ts";
export * from "./frames.ts";
export * from "./stream-name.ts";
export * from "./sidecar-api.ts";
