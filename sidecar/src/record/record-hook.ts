// The operator's record hook (RECORD_HOOK_URL), this project's counterpart of WCS's on_record_hook_script: one
// JSON POST per finished recording.
//
// Authentication: the body is signed as every hook of this project is (shared/src/hook-signature.ts), the secret
// itself is never sent: X-Edge-Vod-Timestamp and X-Edge-Vod-Signature, plus
//   X-Edge-Vod-Delivery: <uuid, the same on every retry of one event, for de-duplication>
// so a receiver that knows the secret can check where the call came from, and one that does not care, or anyone on
// a plain-http path, learns nothing that would let them drive the sidecar.
//
// Delivery: a failed attempt (network error, timeout, 408, 429, 5xx) is retried with exponential backoff; other
// statuses are final. Failures are logged; the hook never throws and never makes its caller wait.
import { randomUUID } from "node:crypto";
import { HOOK_HEADERS, hookHeaders, signHookBody } from "@edge-vod/shared";

export interface RecordHookEvent {
  streamName: string;
  /** Bare file name in the records folder, as the SDK's getRecordInfo() returns it. */
  recordName: string;
  mediaSessionId: string;
  durationMs: number;
  /** Size of the finished file. */
  bytes: number;
  startTimeMs: number;
  endTimeMs: number;
  /** With a bucket: the object the recording was uploaded to (the hook waits for the upload). */
  key?: string;
  /** With a bucket: which one (`s3://bucket`). */
  store?: string;
}

/** `delivery`: the X-Edge-Vod-Delivery id, when the event may be announced again after a restart (the same then). */
export type RecordHook = (event: RecordHookEvent, opts?: { delivery?: string }) => unknown;

export interface RecordHookOptions {
  /** Per attempt, headers and body included. Default 10 s. */
  timeoutMs?: number;
  /** Attempts after the first. Default 4. */
  retries?: number;
  /** Wait before the first retry; doubled for each further one. Default 1 s. */
  backoffMs?: number;
  log?: Pick<Console, "warn" | "error">;
}

export interface RecordHookSender {
  /** Resolves once the event is delivered or given up on; never rejects. */
  (event: RecordHookEvent, opts?: { delivery?: string }): Promise<void>;
  /** Settles when every delivery started so far has succeeded or given up (for shutdown and tests). */
  idle(): Promise<void>;
}

export const RECORD_HOOK_HEADERS = HOOK_HEADERS;

/** The signature a receiver should compare (in constant time) with `X-Edge-Vod-Signature`. */
export const signRecordHook = signHookBody;

/** `url` undefined gives a hook that does nothing. */
export function createRecordHook(url: string | undefined, secret: string, opts: RecordHookOptions = {}): RecordHookSender {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const retries = opts.retries ?? 4;
  const backoffMs = opts.backoffMs ?? 1000;
  const log = opts.log ?? console;
  const pending = new Set<Promise<void>>();

  async function deliver(event: RecordHookEvent, delivery: string): Promise<void> {
    if (url === undefined) return;
    const body = JSON.stringify(event);
    for (let attempt = 0; ; attempt++) {
      let problem: string;
      let retriable = true;
      try {
        const headers = { ...(await hookHeaders(secret, body)), [HOOK_HEADERS.delivery]: delivery };
        const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(timeoutMs) });
        // Drained so that the connection can be reused; what the receiver says is not used.
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        problem = `HTTP ${res.status}`;
        retriable = res.status === 408 || res.status === 429 || res.status >= 500;
      } catch (err) {
        problem = err instanceof Error ? (err.name === "TimeoutError" ? "timed out" : `${err.message}${causeOf(err)}`) : String(err);
      }
      const what = `record hook for ${event.recordName}`;
      if (!retriable || attempt >= retries) {
        log.error(`${what}: ${problem}; giving up after ${attempt + 1} attempt(s)`);
        return;
      }
      const wait = backoffMs * 2 ** attempt;
      log.warn(`${what}: ${problem}; retrying in ${wait} ms`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  const hook = ((event: RecordHookEvent, opts?: { delivery?: string }) => {
    if (url === undefined) return Promise.resolve();
    const p = deliver(event, opts?.delivery ?? randomUUID())
      .catch((err: unknown) => log.error(`record hook for ${event.recordName}: ${String(err)}`))
      .finally(() => pending.delete(p));
    pending.add(p);
    return p;
  }) as RecordHookSender;
  hook.idle = async () => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };
  return hook;
}

function causeOf(err: Error): string {
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? ` (${cause.message})` : "";
}
