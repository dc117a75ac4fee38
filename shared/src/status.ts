// Stream and session statuses and info strings, spelled exactly as the Web SDK's constants.js
// (@flashphoner/websdk 2.0.276, STREAM_STATUS / STREAM_STATUS_INFO): applications compare against these.

export const StreamStatus = {
  NEW: "NEW",
  PENDING: "PENDING",
  PUBLISHING: "PUBLISHING",
  PLAYING: "PLAYING",
  PAUSED: "PAUSED",
  UNPUBLISHED: "UNPUBLISHED",
  STOPPED: "STOPPED",
  FAILED: "FAILED",
} as const;
export type StreamStatus = (typeof StreamStatus)[keyof typeof StreamStatus];

/** Statuses after which the SDK releases the stream: nothing more may be sent for it. */
export const TERMINAL_STATUSES: ReadonlySet<StreamStatus> = new Set([
  StreamStatus.FAILED,
  StreamStatus.STOPPED,
  StreamStatus.UNPUBLISHED,
]);

export const Info = {
  FILE_NOT_FOUND: "File not found",
  FILE_HAS_WRONG_FORMAT: "File has wrong format",
  FAILED_TO_READ_FILE: "Failed to read file",
  GOT_EXCEPTION_WHILE_STREAMING_FILE: "Got exception while streaming file",
  REQUESTED_STREAM_SHUTDOWN: "Requested stream shutdown",
  BAD_URI: "Bad URI",
  RESTRICTED_ACCESS: "Restricted access",
  STOPPED_BY_USER: "Stopped by user",
  STOPPED_BY_SESSION_DISCONNECT: "Stopped by session disconnect",
  FAILED_BY_ICE_TIMEOUT: "Failed by ICE timeout",
  FAILED_BY_ICE_ERROR: "Failed by ICE error",
  FAILED_BY_DTLS_ERROR: "Failed by DTLS error",
  FAILED_BY_ERROR: "Failed by error",
  NO_COMMON_CODECS: "No common codecs",
  MEDIASESSION_ID_NULL: "MediaSessionId is null",
  MEDIASESSION_ID_ALREADY_IN_USE: "MediaSessionId is already in use",
  STREAM_NOT_FOUND: "Stream not found",
  STREAM_FAILED: "Stream failed",
  SESSION_NOT_READY: "Session not ready",
  STREAM_NAME_ALREADY_IN_USE: "Stream name is already in use",
  STOPPED_BY_PUBLISHER_STOP: "Stopped by publisher stop",
  FAILED_BY_RTP_ACTIVITY: "Failed by RTP activity",
  TERMINATED_BY_KEEP_ALIVE: "Terminated by keep-alive",
  /** WCS's words for a stream ended by the REST API's `/stream/terminate` (and our `/vod/terminate`). */
  STOPPED_BY_REST_TERMINATE: "Stopped by rest /terminate",
  // Not in the SDK's list: WCS answers these cases with free text too. Kept short and stable.
  SDP_INVALID: "Invalid SDP offer",
  MEDIA_SERVER_UNAVAILABLE: "Media server unavailable",
  /** The sidecar serving a running stream stopped answering (heartbeats missing); a new play goes elsewhere. */
  MEDIA_SERVER_LOST: "Media server lost",
  NOT_SUPPORTED: "Operation not supported",
  SERVER_OVERLOADED: "Server overloaded",
  TOO_MANY_STREAMS: "Too many streams in session",
  RECORD_WRITE_FAILED: "Failed to write record file",
  /** Our addition: the file needed preparing for WebRTC (re-encode) and that failed; the log says why. */
  PREPARE_FAILED: "Failed to prepare file",
  /**
   * Our addition: a live stream's viewer whose browser does not take the publisher's video codec (a VP8 publish from
   * Firefox, played by a browser that offers only H.264). Live streams are forwarded, not transcoded.
   */
  STREAM_CODEC_NOT_SUPPORTED: "Player does not support the stream's video codec",
  /** Our addition: a video codec nothing here can decode. */
  UNSUPPORTED_VIDEO_CODEC: "Unsupported video codec",
  /** Our addition: the object store (S3_ENDPOINT) did not answer, timed out or failed (5xx): try again later. */
  STORAGE_UNAVAILABLE: "Media storage unavailable",
  /** Our addition: the object store refused us (credentials, permissions, no such bucket): the operator must act. */
  STORAGE_REFUSED: "Media storage refused access",
  /** Our addition: a bucket file was replaced or deleted while it played; a new play gets the new version. */
  FILE_CHANGED: "File changed while playing",
  // Session refusals (AUTH_TOKEN_SECRET, the REST hooks' `connect`): the `fail` frame's info and the close reason.
  AUTH_TOKEN_MISSING: "Auth token required",
  AUTH_TOKEN_INVALID: "Invalid auth token",
  AUTH_TOKEN_EXPIRED: "Auth token expired",
  /** REST_HOOK_URL did not answer in time or at all: the action is refused (fail closed). "Restricted access" is the refusal. */
  AUTH_BACKEND_UNAVAILABLE: "Authorization backend unavailable",
  /** Close reason of a socket over MAX_FRAMES_PER_SECOND. */
  TOO_MANY_FRAMES: "Too many frames",
  /** A frame over MAX_FRAME_BYTES. */
  FRAME_TOO_LARGE: "Frame too large",
  // Seek and pause of `vod://` (vod-control.ts): the FAILED DataStatusEvent's info, or the play's.
  /** An `edgeVod` sendData payload (or createStream's custom.edgeVod) that is not one of the documented ops. */
  BAD_VOD_OPERATION: "Malformed edgeVod operation",
  /** A seek (or a start) at or past the end of the file. */
  POSITION_PAST_END: "Position is past the end of the file",
  /** STOPPED: a `vod://` playback paused for longer than VOD_PAUSE_TIMEOUT_MS. */
  STOPPED_BY_PAUSE_TIMEOUT: "Stopped by pause timeout",
} as const;
export type Info = (typeof Info)[keyof typeof Info];

export const SessionStatus = {
  ESTABLISHED: "ESTABLISHED",
  FAILED: "FAILED",
} as const;
