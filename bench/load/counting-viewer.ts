// A viewer for load tests that costs far less than the server it loads: werift does ICE and DTLS for real (so the
// server under test pays for every viewer as it would for a browser), then RTP is counted from the plain headers
// and never decrypted. werift's SRTP decrypt and its RtpPacket objects would cost the viewer side more than the
// server's send; STUN, DTLS and RTCP still go through werift so the connection stays alive.
import type { RTCPeerConnection } from "werift";
import { interceptIncomingRtp } from "../../test/helpers/werift-viewer.ts";

/** What one viewer saw during a measurement window. */
export interface WindowStats {
  videoPackets: number;
  audioPackets: number;
  /** Packets the sequence numbers say were sent in the window (first to last seen, per stream). */
  videoExpected: number;
  audioExpected: number;
  /** Per video frame (marker packet): arrival minus media time, ms; the smallest is the viewer's clock offset. */
  frameOffsets: Float64Array;
  frames: number;
}

class SeqCounter {
  count = 0;
  private first = -1;
  private ext = 0;
  private last = 0;

  reset(): void {
    this.count = 0;
    this.first = -1;
  }

  add(seq: number): void {
    this.count++;
    if (this.first < 0) {
      this.first = this.ext = seq;
      this.last = seq;
      return;
    }
    // Unwrap 16-bit sequence numbers; late (reordered) packets only count, they never move the front back.
    const delta = ((seq - this.last + 0x8000) & 0xffff) - 0x8000;
    if (delta > 0) {
      this.ext += delta;
      this.last = seq;
    }
  }

  expected(): number {
    return this.first < 0 ? 0 : this.ext - this.first + 1;
  }
}

export class CountingViewer {
  private readonly video = new SeqCounter();
  private readonly audio = new SeqCounter();
  private offsets = new Float64Array(4096);
  private frames = 0;
  private tsBase = -1;
  private tsLast = 0;
  private tsExt = 0;
  private counting = false;

  constructor(
    readonly pc: RTCPeerConnection,
    /** Payload types of the video m-line (from the answer or offer that set up the call). */
    private readonly videoPts: ReadonlySet<number>,
  ) {}

  /** Resolves once ICE and DTLS are up, from then on RTP is counted instead of decrypted. */
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
    interceptIncomingRtp(pc, (data) => {
      if (this.counting) this.onRtp(data);
      return true;
    });
  }

  private onRtp(data: Buffer): void {
    const b1 = data[1]!;
    const seq = (data[2]! << 8) | data[3]!;
    if (!this.videoPts.has(b1 & 0x7f)) {
      this.audio.add(seq);
      return;
    }
    this.video.add(seq);
    if (b1 & 0x80) {
      const ts = data.readUInt32BE(4);
      if (this.tsBase < 0) {
        this.tsBase = this.tsLast = ts;
        this.tsExt = 0;
      } else {
        this.tsExt += (ts - this.tsLast) | 0;
        this.tsLast = ts;
      }
      if (this.frames === this.offsets.length) {
        const grown = new Float64Array(this.offsets.length * 2);
        grown.set(this.offsets);
        this.offsets = grown;
      }
      this.offsets[this.frames++] = performance.now() - this.tsExt / 90;
    }
  }

  startWindow(): void {
    this.video.reset();
    this.audio.reset();
    this.frames = 0;
    this.tsBase = -1;
    this.counting = true;
  }

  endWindow(): WindowStats {
    this.counting = false;
    return {
      videoPackets: this.video.count,
      audioPackets: this.audio.count,
      videoExpected: this.video.expected(),
      audioExpected: this.audio.expected(),
      frameOffsets: this.offsets.subarray(0, this.frames),
      frames: this.frames,
    };
  }

  async close(): Promise<void> {
    await this.pc.close().catch(() => {});
  }
}
