// How the load tool gets one viewer from each server under test. Our sidecar is driven through its control API
// (the edge only signals; the media host's cost is the sidecar's alone), Janus through its WebSocket API.
import { RTCRtpCodecParameters, type RTCPeerConnection } from "werift";
import { SIDECAR_PATHS, type PlayRequest, type StopRequest } from "@edge-vod/shared";
import type { SidecarProcess } from "../../test/helpers/sidecar-process.ts";
import { signedFetch } from "../../test/helpers/signed-fetch.ts";
import { playOnSidecar, testPeer, type ViewerSrtp } from "../../test/helpers/werift-viewer.ts";
import { CountingViewer } from "./counting-viewer.ts";
import type { JanusClient } from "./janus.ts";
import type { RtpSink } from "./rtp-sink.ts";
import { videoPayloadTypes } from "../../test/helpers/sdp.ts";

/**
 * A load viewer's peer. It bundles from its first offer: as werift's default offerer it opens an ICE transport per
 * m-line and, once the answer bundles, drops the second one without closing it (two UDP sockets leaked per viewer;
 * the bench ran out of file descriptors at 900 viewers on 2026-12-02).
 */
const loadPeer = (video?: RTCRtpCodecParameters) => testPeer(video, { bundlePolicy: "max-bundle" });

/** Connects `viewer`; a viewer that fails is closed, so that its sockets do not outlive the step. */
async function attached(pc: RTCPeerConnection, viewer: CountingViewer): Promise<void> {
  try {
    await viewer.attach();
  } catch (err) {
    await pc.close().catch(() => {});
    throw err;
  }
}

export type ViewerFactory = () => Promise<{ viewer: CountingViewer; hangup(): Promise<void> }>;

/** What a browser without H.264 offers for video (Firefox without its OpenH264 plugin): VP8 alone. */
export const VP8_ONLY = new RTCRtpCodecParameters({
  mimeType: "video/VP8",
  clockRate: 90000,
  rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
});

/**
 * Viewers of `name` on our sidecar; `broadcast` makes them join one vod-live broadcast. `video`: the one video codec
 * they offer (default H.264 42e01f, as testPeer).
 */
export function sidecarViewers(
  sink: RtpSink,
  sidecar: SidecarProcess,
  name: string,
  broadcast?: PlayRequest["broadcast"],
  video?: RTCRtpCodecParameters,
  srtp: ViewerSrtp = "chromium",
): ViewerFactory {
  return async () => {
    const pc = loadPeer(video);
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const played = await playOnSidecar(sidecar, pc, name, broadcast, srtp).catch(async (err: unknown) => {
      await pc.close().catch(() => {});
      throw err;
    });
    const viewer = new CountingViewer(pc, videoPayloadTypes(played.answerSdp), sink);
    await attached(pc, viewer);
    return {
      viewer,
      hangup: async () => {
        await signedFetch(sidecar.secret, sidecar.url + SIDECAR_PATHS.stop, {
          method: "POST",
          body: JSON.stringify({ sessionRef: played.sessionRef, mediaSessionId: played.mediaSessionId } satisfies StopRequest),
        }).catch(() => {});
        await viewer.close();
      },
    };
  };
}

/** Viewers of the bench mountpoint on Janus. */
export function janusViewers(sink: RtpSink, client: JanusClient): ViewerFactory {
  return async () => {
    const pc = loadPeer();
    const watched = await client.watch(pc).catch(async (err: unknown) => {
      await pc.close().catch(() => {});
      throw err;
    });
    const viewer = new CountingViewer(pc, videoPayloadTypes(watched.offerSdp), sink);
    await attached(pc, viewer);
    return {
      viewer,
      hangup: async () => {
        await watched.hangup();
        await viewer.close();
      },
    };
  };
}
