import path from "node:path";

/** True when the module at `url` is the script node was started with (run directly, not imported). */
export const isMain = (url: string) => process.argv[1] !== undefined && path.resolve(process.argv[1]) === new URL(url).pathname;
