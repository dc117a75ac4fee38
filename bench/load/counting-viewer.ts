// A viewer for load tests that costs far less than the server it loads: werift does ICE and DTLS for real (so the
// server under test pays for every viewer as it would for a browser), then the RTP sink (rtp-sink.c) reads its
// socket and counts RTP from the plain headers, never decrypting; STUN, DTLS and RTCP still reach werift through
// the sink, so the connection stays alive.
import type { RTCPeerConnection } from "werift";
import type { RtpSink } from "./rtp-sink.ts";

export type { WindowStats } from "./rtp-sink.ts";

export class CountingViewer {
  /** The viewer's id in the sink's window results, once attached. */
  id = 0;

  constructor(
    readonly pc: RTCPeerConnection,
    /** Payload types of the video m-line (from the answer or offer that set up the call). */
    private readonly videoPts: ReadonlySet<number>,
    private readonly sink: RtpSink,
  ) {}

  /** Resolves once ICE and DTLS are up and the sink reads the viewer's media. */
  async attach(timeoutMs = 20_000): Promise<void> {
    const pc = this.pc;
    if (pc.connectionState !== "connected") {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`viewer not connected after ${timeoutMs} ms (${pc.connectionState})`)), timeoutMs);
        const sub = pc.connectionStateChange.subscribe((state) => {
          if (state === "connected") {
            clearTimeout(timer);
            sub.unSubscribe();
            resolve();
          } else if (state === "failed" || state === "closed") {
            clearTimeout(timer);
            sub.unSubscribe();
            reject(new Error(`viewer ${state}`));
          }
        });
      });
    }
    this.id = await this.sink.add(pc, this.videoPts);
  }

  async close(): Promise<void> {
    if (this.id) await this.sink.remove(this.id).catch(() => {});
    await this.pc.close().catch(() => {});
  }
}
