// RTCP sender reports of every track the sidecar's own send path feeds, from one timer. werift's RTCRtpSender runs a
// loop per sender (a promise timer with an AbortSignal for every report, about one a second): two timers and their
// garbage per viewer, all firing apart. Here one 100-ms interval sends whatever reports are due, with werift's packets,
// fields and pacing (0.5-1.5 s apart), and werift's round-trip bookkeeping (lastSRtimestamp) kept as it expects.
import { RtcpSenderInfo, RtcpSourceDescriptionPacket, RtcpSrPacket, SourceDescriptionChunk, SourceDescriptionItem, compactNtp, timestampSeconds, type RTCRtpSender } from "werift";

/** The parts of werift's sender a report is made of; read at run time, typed loosely on purpose. */
interface ReportingSender {
  ssrc: number;
  stopped: boolean;
  cname?: string;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  lastSRtimestamp?: number;
  lastSentSRTimestamp?: number;
  dtlsTransport: { state: string; sendRtcp(packets: unknown[]): Promise<unknown> };
}

const TICK_MS = 100;

const nextDelayMs = () => 500 + Math.random() * 1000;

/** Where a report's NTP time comes from: the track's last packet sent (werift's own field is never set here). */
export interface SendClock {
  ntpTimestamp(): bigint;
}

interface Due {
  readonly clock: SendClock;
  at: number;
}

class SenderReports {
  private readonly due = new Map<ReportingSender, Due>();
  private timer: NodeJS.Timeout | undefined;

  add(sender: RTCRtpSender, clock: SendClock): void {
    const s = sender as unknown as ReportingSender;
    if (this.due.has(s)) return;
    this.due.set(s, { clock, at: performance.now() + nextDelayMs() });
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      // Reports never keep the process alive by themselves.
      this.timer.unref();
    }
  }

  get size(): number {
    return this.due.size;
  }

  private tick(): void {
    const now = performance.now();
    for (const [s, due] of this.due) {
      const state = s.dtlsTransport.state;
      if (s.stopped || state === "closed" || state === "failed") {
        this.due.delete(s);
        continue;
      }
      if (due.at > now) continue;
      due.at = now + nextDelayMs();
      if (state === "connected") this.send(s, due.clock.ntpTimestamp());
    }
    if (this.due.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private send(s: ReportingSender, ntpTimestamp: bigint): void {
    const packets: unknown[] = [
      new RtcpSrPacket({
        ssrc: s.ssrc,
        senderInfo: new RtcpSenderInfo({ ntpTimestamp, rtpTimestamp: s.rtpTimestamp, packetCount: s.packetCount, octetCount: s.octetCount }),
      }),
    ];
    // What werift's loop records for the round trip its RTCP receiver reports give.
    s.lastSRtimestamp = compactNtp(ntpTimestamp);
    s.lastSentSRTimestamp = timestampSeconds();
    if (s.cname) {
      packets.push(
        new RtcpSourceDescriptionPacket({
          chunks: [new SourceDescriptionChunk({ source: s.ssrc, items: [new SourceDescriptionItem({ type: 1, text: s.cname })] })],
        }),
      );
    }
    s.dtlsTransport.sendRtcp(packets).catch(() => {});
  }
}

/** The sidecar's one reporter. */
export const senderReports = new SenderReports();
