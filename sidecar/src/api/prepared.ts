// `GET /v1/prepared/<key>` and `/status`: a copy this host prepares for the fleet (it holds the copy's lease), for
// the other hosts whose viewers follow it while it is written (prepare/fleet.ts). Signed like every control call.
import type { Hono } from "hono";
import { SIDECAR_PREPARED_PATH, type ErrorBody, type PreparedStatus } from "@edge-vod/shared";
import type { PrepareCache } from "../prepare/prepare-cache.ts";

/** A follower reads a span per refill; a larger ask is cut to this. */
const MAX_RANGE_BYTES = 16 << 20;

export function preparedRoutes(app: Hono, prepare: PrepareCache): void {
  const notHere = () => new Response(JSON.stringify({ error: "Not prepared here" } satisfies ErrorBody), { status: 404, headers: { "content-type": "application/json" } });
  app.get(`${SIDECAR_PREPARED_PATH}/:key/status`, (c) => {
    const served = prepare.served(c.req.param("key"));
    return served ? c.json(served.status satisfies PreparedStatus) : notHere();
  });
  app.get(`${SIDECAR_PREPARED_PATH}/:key`, async (c) => {
    const served = prepare.served(c.req.param("key"));
    if (!served) return notHere();
    const m = /^bytes=(\d+)-(\d+)$/.exec(c.req.header("range") ?? "");
    const size = served.status.size;
    const start = m ? Number(m[1]) : 0;
    const end = Math.min(m ? Number(m[2]) : size - 1, size - 1, start + MAX_RANGE_BYTES - 1);
    if (start > end) return c.json({ error: "Range not satisfiable" } satisfies ErrorBody, 416);
    const buf = new Uint8Array(end - start + 1);
    const got = await served.reader.read(buf, 0, buf.length, start);
    return new Response(buf.subarray(0, got), {
      status: 206,
      headers: { "content-type": "video/mp4", "content-range": `bytes ${start}-${start + got - 1}/${size}` },
    });
  });
}
