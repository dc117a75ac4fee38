// Calls to the operator's backend (REST_HOOK_URL), WCS's REST hooks. See shared/src/rest-hooks.ts for the methods
// and bodies, and hook-signature.ts for how they are signed.
import { Info, hookHeaders, type ConnectHookBody, type DataHookBody, type RestHookMethod, type StreamHookBody } from "@edge-vod/shared";
import type { RestHookConfig } from "./config.ts";

export type HookVerdict = { ok: true } | { ok: false; info: string };

type Body = ConnectHookBody | StreamHookBody | DataHookBody;

async function post(cfg: RestHookConfig, method: RestHookMethod, body: Body): Promise<Response> {
  const text = JSON.stringify(body);
  return fetch(`${cfg.url}/${method}`, {
    method: "POST",
    headers: await hookHeaders(cfg.secret, text),
    body: text,
    signal: AbortSignal.timeout(cfg.timeoutMs),
  });
}

/**
 * An authorizing hook (connect, publishStream, playStream, OnDataEvent). Fails closed: anything but 200 refuses with
 * "Restricted access" (WCS's words), no answer within the timeout or a network error with "Authorization backend
 * unavailable". Never throws.
 */
export async function authorize(cfg: RestHookConfig, method: RestHookMethod, body: Body): Promise<HookVerdict> {
  try {
    const res = await post(cfg, method, body);
    // The answer's body is not used (WCS reads SIP settings from it), only drained so the connection can be reused.
    await res.body?.cancel().catch(() => {});
    if (res.status === 200) return { ok: true };
    console.warn(`REST hook ${method}: HTTP ${res.status}, refused`);
    return { ok: false, info: Info.RESTRICTED_ACCESS };
  } catch (err) {
    const why = err instanceof Error && err.name === "TimeoutError" ? `no answer in ${cfg.timeoutMs} ms` : String(err);
    console.warn(`REST hook ${method}: ${why}, refused`);
    return { ok: false, info: Info.AUTH_BACKEND_UNAVAILABLE };
  }
}

/** A reporting hook: one attempt, its outcome only logged. For ctx.waitUntil: the client never waits for it. */
export async function notify(cfg: RestHookConfig, method: RestHookMethod, body: Body): Promise<void> {
  try {
    const res = await post(cfg, method, body);
    await res.body?.cancel().catch(() => {});
    if (!res.ok) console.warn(`REST hook ${method}: HTTP ${res.status}`);
  } catch (err) {
    console.warn(`REST hook ${method}: ${String(err)}`);
  }
}
