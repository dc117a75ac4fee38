// The edge's side of the control channel to the media sidecar. Nothing here throws: a sidecar that is down,
// slow, misconfigured or answering garbage must end as a FAILED stream, never as a broken session.
import {
  HealthResponse,
  Info,
  PlayResponse,
  SIDECAR_PATHS,
  StopResponse,
  VodControlResponse,
  signRequest,
  type VodControlRequest,
  type PlayRequest,
  type PublishRequest,
  type ReleaseRequest,
  type StopRequest,
} from "@edge-vod/shared";

/** Opening a file and building an answer can take a while (first open of a file transcodes its audio). */
const PLAY_TIMEOUT_MS = 15_000;
const CONTROL_TIMEOUT_MS = 5_000;
/** Stopping a recording waits for the file to be finalized (a remux, ~10 ms per second recorded), up to a cap. */
const STOP_RECORDING_TIMEOUT_MS = 20_000;
/** A health check runs on every keep-alive tick; an answer slower than this is as good as none. */
const HEALTH_TIMEOUT_MS = 2_000;
/** An SDP answer is a few KB; anything near this is not one. */
const MAX_RESPONSE_CHARS = 512 * 1024;
/** Listings (every stream or recording of a sidecar) are larger: about 300 bytes per entry. */
const MAX_LISTING_CHARS = 16 * 1024 * 1024;

class SidecarError extends Error {}
/** fetch() rejected before any response: refused, reset, DNS; not a timeout. */
class UnreachableError extends SidecarError {}

export type SidecarHealth = { reachable: false } | { reachable: true; instance?: string };

/** The sidecar's answer, or why there is none; `unreachable` when no connection could be made at all. */
export type OfferResult = PlayResponse | { ok: false; info: string; unreachable?: boolean };

/** SIDECAR_URL without trailing slashes, or null when it is missing or not an http(s) URL. */
export function sidecarBaseUrl(url: string | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    return u.toString().replace(/\/+$/, "");
  } catch {
    return null;
  }
}

export class SidecarClient {
  private readonly base: string | null;

  constructor(
    url: string | undefined,
    private readonly secret: string | undefined,
  ) {
    this.base = sidecarBaseUrl(url);
  }

  play(req: PlayRequest): Promise<OfferResult> {
    return this.offer(SIDECAR_PATHS.play, req);
  }

  publish(req: PublishRequest): Promise<OfferResult> {
    return this.offer(SIDECAR_PATHS.publish, req);
  }

  private async offer(path: string, req: PlayRequest | PublishRequest): Promise<OfferResult> {
    try {
      const parsed = PlayResponse.safeParse(await this.post(path, req, PLAY_TIMEOUT_MS));
      if (!parsed.success) throw new SidecarError("response does not match PlayResponse");
      if (parsed.data.ok && parsed.data.sdp.length === 0) throw new SidecarError("empty SDP answer");
      return parsed.data;
    } catch (err) {
      console.warn(`sidecar ${path} for ${req.mediaSessionId}: ${describe(err)}`);
      // No connection at all (refused, reset before an answer): nothing ran there, so another sidecar may be tried.
      // A timeout is not that: the sidecar may still be setting the stream up.
      const unreachable = err instanceof UnreachableError;
      return { ok: false, info: Info.MEDIA_SERVER_UNAVAILABLE, ...(unreachable ? { unreachable } : {}) };
    }
  }

  /** A seek, pause, resume or state query; a sidecar that does not answer is "Media server unavailable". */
  async vod(req: VodControlRequest): Promise<VodControlResponse> {
    try {
      const parsed = VodControlResponse.safeParse(await this.post(SIDECAR_PATHS.vod, req, CONTROL_TIMEOUT_MS));
      if (!parsed.success) throw new SidecarError("response does not match VodControlResponse");
      return parsed.data;
    } catch (err) {
      console.warn(`sidecar ${SIDECAR_PATHS.vod} for ${req.mediaSessionId}: ${describe(err)}`);
      return { ok: false, info: Info.MEDIA_SERVER_UNAVAILABLE };
    }
  }

  /**
   * The stream is over for the client whatever the sidecar says; the answer only adds what the client should
   * hear about it (a recording's file name). Null when the sidecar could not be asked.
   */
  async stop(req: StopRequest, opts: { recording?: boolean } = {}): Promise<StopResponse | null> {
    try {
      const parsed = StopResponse.safeParse(
        await this.post(SIDECAR_PATHS.stop, req, opts.recording ? STOP_RECORDING_TIMEOUT_MS : CONTROL_TIMEOUT_MS),
      );
      if (!parsed.success) throw new SidecarError("response does not match StopResponse");
      return parsed.data;
    } catch (err) {
      console.warn(`sidecar ${SIDECAR_PATHS.stop}: ${describe(err)}`);
      return null;
    }
  }

  /** Best effort: the sidecar also ends viewers on its own (ICE timeout, end of file). */
  async release(req: ReleaseRequest): Promise<boolean> {
    return this.bestEffort(SIDECAR_PATHS.release, req);
  }

  /**
   * Whether the sidecar answers, and which run of it (SidecarInstance) does. Any HTTP answer counts as reachable:
   * only a sidecar that cannot be reached at all (refused, reset, timed out) may be taken for gone; one that answers
   * without an instance (an older sidecar, an error page) is alive but cannot tell its runs apart.
   */
  async health(timeoutMs = HEALTH_TIMEOUT_MS): Promise<SidecarHealth> {
    try {
      const parsed = HealthResponse.safeParse(await this.request("GET", SIDECAR_PATHS.health, undefined, timeoutMs));
      return { reachable: true, ...(parsed.success && parsed.data.instance ? { instance: parsed.data.instance } : {}) };
    } catch (err) {
      if (err instanceof UnreachableError || (err instanceof Error && err.name === "TimeoutError")) {
        console.warn(`sidecar ${SIDECAR_PATHS.health}: ${describe(err)}`);
        return { reachable: false };
      }
      return { reachable: true };
    }
  }

  private async bestEffort(path: string, body: unknown): Promise<boolean> {
    try {
      await this.post(path, body, CONTROL_TIMEOUT_MS);
      return true;
    } catch (err) {
      console.warn(`sidecar ${path}: ${describe(err)}`);
      return false;
    }
  }

  private post(path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    return this.request("POST", path, body, timeoutMs);
  }

  /**
   * An operator's call (the REST API): the sidecar's status and JSON body as they are, 4xx included, for the
   * caller to pass on; `unreachable` when there was no usable answer at all.
   */
  async operate(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<{ status: number; body: unknown } | { unreachable: string }> {
    try {
      const { status, text } = await this.exchange(method, path, body, CONTROL_TIMEOUT_MS, MAX_LISTING_CHARS);
      return { status, body: parseJson(text) };
    } catch (err) {
      console.warn(`sidecar ${method} ${path}: ${describe(err)}`);
      return { unreachable: describe(err) };
    }
  }

  /** `body` is sent as JSON with POST; a GET has none. */
  private async request(method: "GET" | "POST", path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const { status, text } = await this.exchange(method, path, body, timeoutMs);
    if (status < 200 || status > 299) throw new SidecarError(`HTTP ${status}: ${text.slice(0, 200)}`);
    return parseJson(text);
  }

  private async exchange(
    method: "GET" | "POST" | "DELETE",
    path: string,
    body: unknown,
    timeoutMs: number,
    maxChars = MAX_RESPONSE_CHARS,
  ): Promise<{ status: number; text: string }> {
    if (!this.base) throw new SidecarError("SIDECAR_URL is missing or not an http(s) URL");
    if (!this.secret) throw new SidecarError("SIDECAR_SECRET is not set");
    const url = this.base + path;
    const payload = method === "POST" ? JSON.stringify(body) : null;
    // Signed, not the secret itself: a captured request cannot be altered or replayed (shared/src/signing.ts).
    const signature = await signRequest(this.secret, { method, url, body: payload });
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { "content-type": "application/json", ...signature },
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      if (err instanceof Error && err.name === "TimeoutError") throw err;
      throw new UnreachableError(err instanceof Error ? err.message : String(err));
    }
    const text = await res.text();
    if (text.length > maxChars) throw new SidecarError("response too large");
    return { status: res.status, text };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SidecarError("response is not JSON");
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.name === "TimeoutError" ? "timed out" : err.message;
  return String(err);
}
