// Seek, pause and resume of a personal `vod://` playback, over channels the unmodified Web SDK already has:
//   page -> server  session.sendData({edgeVod: {op, mediaSessionId, positionMs?}})  (a `sendData` frame)
//   server -> page  DataStatusEvent ACCEPTED with payload {edgeVod: VodState}, or FAILED with an info
//   server -> page  notifyStreamEvent {mediaSessionId, type: "edgeVodState", payload: {edgeVod: VodState}}
//   start position  createStream({name, custom: {edgeVod: {startMs}}}), which arrives in playStream's `custom`
// Positions are ms of the file's media time from its start, the same clock for every op and event.
import { z } from "zod";
import { FRAME_LIMITS } from "./frames.ts";

export const VodOp = z.enum(["seek", "pause", "resume", "state"]);
export type VodOp = z.infer<typeof VodOp>;

/** Positions are bounded far above any file (about 11.5 days) so that arithmetic on them stays exact. */
const MAX_POSITION_MS = 1e9;
const positionMs = z.number().int().min(0).max(MAX_POSITION_MS);

export const VodCommand = z.discriminatedUnion("op", [
  z.object({ op: z.literal("seek"), mediaSessionId: z.string().min(1).max(FRAME_LIMITS.maxMediaSessionIdLength), positionMs }),
  z.object({ op: z.enum(["pause", "resume", "state"]), mediaSessionId: z.string().min(1).max(FRAME_LIMITS.maxMediaSessionIdLength) }),
]);
export type VodCommand = z.infer<typeof VodCommand>;

export const VodState = z.object({
  state: z.enum(["playing", "paused"]),
  positionMs: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative(),
});
export type VodState = z.infer<typeof VodState>;

/** The `type` of the notifyStreamEvent that carries a VodState. */
export const VOD_STATE_EVENT_TYPE = "edgeVodState";

/** How often a playing stream's state is reported between changes. */
export const VOD_STATE_INTERVAL_MS = 1000;

/** Whether a sendData payload (or createStream's custom) is ours: an object with an `edgeVod` key. */
export function isVodPayload(payload: unknown): payload is { edgeVod: unknown } {
  return typeof payload === "object" && payload !== null && !Array.isArray(payload) && "edgeVod" in payload;
}

/** The command in a payload of ours, or undefined when it is malformed. */
export function parseVodCommand(payload: { edgeVod: unknown }): VodCommand | undefined {
  const parsed = VodCommand.safeParse(payload.edgeVod);
  return parsed.success ? parsed.data : undefined;
}

/**
 * createStream's `custom.edgeVod.startMs`: the position to start at; 0 when there is none; undefined when it is there
 * but malformed (the play is refused).
 */
export function startPositionOf(custom: unknown): number | undefined {
  if (!isVodPayload(custom)) return 0;
  const parsed = z.object({ startMs: positionMs.optional() }).safeParse(custom.edgeVod);
  return parsed.success ? (parsed.data.startMs ?? 0) : undefined;
}
