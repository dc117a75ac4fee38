// What a viewer's life reports to the edge: PLAYING once it sends, one end event (STOPPED / FAILED with info).
import { StreamStatus, type PlayRequest } from "@edge-vod/shared";
import type { EventSink } from "../events/edge-notifier.ts";
import type { EndStatus, ViewerEvents } from "./peer-viewer.ts";

/** Events of the viewer that `req` asked for; `forget` runs before its end event is sent. */
export function viewerEvents(notify: EventSink, req: Pick<PlayRequest, "eventsUrl" | "sessionRef" | "mediaSessionId">, forget: () => void): ViewerEvents {
  const send = (status: typeof StreamStatus.PLAYING | EndStatus, info?: string) =>
    notify(req.eventsUrl, {
      sessionRef: req.sessionRef,
      mediaSessionId: req.mediaSessionId,
      status,
      ...(info !== undefined ? { info } : {}),
    });
  return {
    playing: () => send(StreamStatus.PLAYING),
    ended: (status, info) => {
      forget();
      send(status, info);
    },
  };
}
