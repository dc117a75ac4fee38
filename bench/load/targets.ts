// How the load tool gets one viewer from each server under test. Our sidecar is driven through its control API
// (the edge only signals; the media host's cost is the sidecar's alone), Janus through its WebSocket API.
import { randomUUID } from "node:crypto";
import { SIDECAR_PATHS, type PlayRequest, type PlayResponse, type StopRequest } from "@edge-vod/shared";
import type { SidecarProcess } from "../../test/helpers/sidecar-process.ts";
import { signedFetch } from "../../test/helpers/signed-fetch.ts";
import { offerAesCmOnly, testPeer, withoutCandidates } from "../../test/helpers/werift-viewer.ts";
import { CountingViewer } from "./counting-viewer.ts";
import type { JanusClient } from "./janus.ts";
import { videoPayloadTypes } from "../../test/helpers/sdp.ts";

export type ViewerFactory = () => Promise<{ viewer: CountingViewer; hangup(): Promise<void> }>;

/** Viewers of `name` on our sidecar; `broadcast` makes them join one vod-live broadcast. */
export function sidecarViewers(sidecar: SidecarProcess, name: string, broadcast?: PlayRequest["broadcast"]): ViewerFactory {
  return async () => {
    const pc = testPeer();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    offerAesCmOnly(pc);
    const body: PlayRequest = {
      sessionRef: "bench",
      // Nobody listens: the sidecar's event posts fail quietly, which costs it next to nothing.
      eventsUrl: "http://127.0.0.1:9/events",
      mediaSessionId: randomUUID(),
      name,
      sdp: withoutCandidates(pc.localDescription!.sdp),
      ...(broadcast ? { broadcast } : {}),
    };
    const res = await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.play, {
      method: "POST",
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as PlayResponse;
    if (!answer.ok) throw new Error(`play refused: ${answer.info}`);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    const viewer = new CountingViewer(pc, videoPayloadTypes(answer.sdp));
    await viewer.attach();
    return {
      viewer,
      hangup: async () => {
        await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.stop, {
          method: "POST",
          body: JSON.stringify({ sessionRef: body.sessionRef, mediaSessionId: body.mediaSessionId } satisfies StopRequest),
        }).catch(() => {});
        await viewer.close();
      },
    };
  };
}

/** Viewers of the bench mountpoint on Janus. */
export function janusViewers(client: JanusClient): ViewerFactory {
  return async () => {
    const pc = testPeer();
    const watched = await client.watch(pc);
    const viewer = new CountingViewer(pc, videoPayloadTypes(watched.offerSdp));
    await viewer.attach();
    return {
      viewer,
      hangup: async () => {
        await watched.hangup();
        await viewer.close();
      },
    };
  };
}
