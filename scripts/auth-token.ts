// Mints a session token for an edge with AUTH_TOKEN_SECRET set (format: shared/src/auth-token.ts).
//   AUTH_TOKEN_SECRET=... node --import tsx scripts/auth-token.ts --sub alice --ttl 3600
// Prints the token; give it to the page as createSession({urlServer, authToken}).
import { parseArgs } from "node:util";
import { mintAuthToken } from "@edge-vod/shared";

const USAGE = "usage: AUTH_TOKEN_SECRET=... node --import tsx scripts/auth-token.ts [--sub <user>] [--ttl <seconds, default 3600>] [--secret <secret>]";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { sub: { type: "string" }, ttl: { type: "string", default: "3600" }, secret: { type: "string" }, help: { type: "boolean" } },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const secret = values.secret ?? process.env.AUTH_TOKEN_SECRET ?? "";
  const ttl = Number(values.ttl);
  if (!secret) throw new Error(`no secret: set AUTH_TOKEN_SECRET or pass --secret\n${USAGE}`);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new Error(`--ttl must be a positive whole number of seconds\n${USAGE}`);
  const exp = Math.floor(Date.now() / 1000) + ttl;
  console.log(await mintAuthToken(secret, { exp, ...(values.sub !== undefined ? { sub: values.sub } : {}) }));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(2);
});
