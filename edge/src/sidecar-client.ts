// The edge's side of the control channel to the media sidecar. Nothing here throws: a sidecar that is down,
// slow, misconfigured or answering garbage must end as a FAILED stream, never as a broken session.
import {
  Info,
  PlayResponse,
  SIDECAR_PATHS,
  StopResponse,
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
/** An SDP answer is a few KB; anything near this is not one. */
const MAX_RESPONSE_CHARS = 512 * 1024;

class SidecarError extends Error {}
/** fetch() rejected before any response: refused, reset, DNS; not a timeout. */
class UnreachableError extends SidecarError {}

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

  private async bestEffort(path: string, body: unknown): Promise<boolean> {
    try {
      await this.post(path, body, CONTROL_TIMEOUT_MS);
      return true;
    } catch (err) {
      console.warn(`sidecar ${path}: ${describe(err)}`);
      return false;
    }
  }

  private async post(path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.base) throw new SidecarError("SIDECAR_URL is missing or not an http(s) URL");
    if (!this.secret) throw new SidecarError("SIDECAR_SECRET is not set");
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.secret}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      if (err instanceof Error && err.name === "TimeoutError") throw err;
      throw new UnreachableError(err instanceof Error ? err.message : String(err));
    }
    const text = await res.text();
    if (!res.ok) throw new SidecarError(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    if (text.length > MAX_RESPONSE_CHARS) throw new SidecarError("response too large");
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new SidecarError("response is not JSON");
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.name === "TimeoutError" ? "timed out" : err.message;
  return String(err);
}
