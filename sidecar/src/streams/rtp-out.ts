// One outgoing RTP track of a viewer: of a file (vod://, vod-live://, our own sequence numbers over the packets'
// media timestamps) or of a published stream (its publisher's sequence numbers, offset).
//
// Our own send path under werift's session, written by hand because werift's RTCRtpSender costs several times the
// SRTP and the UDP send it wraps (a header object, extension arrays sorted per packet, three promises, a scan of its
// sent-packet map per packet). werift keeps ICE, DTLS, the keys, RTCP in (PLI) and sender reports out; here each
// packet is one 12-byte header rewrite in a preallocated buffer, then either the native send (native/send-batch.ts:
// the peer's packets of a tick protected and sent in one addon call, AES-CM or GCM) or, on the JS path, SRTP by
// SrtpProtector straight into the datagram and one send on the ICE pair's socket, connected to the peer.
// Retransmissions for NACKs come from a small history of this track. If neither path can be used (on the JS path an
// SRTP profile other than AES-CM; a non-UDP pair), werift's sender does the work.
import dgram from "node:dgram";
import { RtpHeader, RtpPacket, type RTCRtpSender } from "werift";
import { writeRtpHeader } from "../rtp/rtp-header.ts";
import type { Orientation } from "../webrtc/answer.ts";
import { installFastSrtp, type DtlsTransportWithSrtp, type SrtpProtector } from "../rtp/srtp-protect.ts";
import { mediaCounters } from "../runtime/media-counters.ts";
import { connectedFdOf, connectedSender, type DatagramSend, type UdpTransportLike } from "../webrtc/connected-socket.ts";
import { installNativeSrtp } from "../native/native-srtp.ts";
import { sendBatch, type NativeTarget } from "../native/send-batch.ts";
import { senderReports } from "./sender-reports.ts";
import { SendHistory } from "./send-history.ts";

/** Room for any datagram this path writes: header, CVO block, a payload of up to 1400 bytes, the SRTP tag. */
const DATAGRAM_BYTES = 1500;

/**
 * Video packets kept for NACK (see send-history.ts): 256 at real time, ~1.4 s of 1 Mbps video (werift's own sender
 * keeps 128); 1024 while a catch-up sends a GOP at up to 45x real time, where a loss early in the burst is NACKed
 * while hundreds more packets go out, and for 2 s after it.
 */
const VIDEO_HISTORY = 256;
const VIDEO_BURST_HISTORY = 1024;
const BURST_HOLD_MS = 2000;
/** Audio is not NACKed (no nack feedback for Opus, as in browsers): a few for a peer that asks anyway. */
const AUDIO_HISTORY = 64;
const SRTP_TAG = 10;
/** Seconds from the NTP epoch (1900) to the Unix epoch. */
const NTP_UNIX_OFFSET_S = 2_208_988_800;

interface Link {
  /** The native send of this peer (every track of the peer shares it), when the addon is loaded. */
  native: NativeTarget | undefined;
  /** The JS path's protector (undefined on the native path). */
  protector: SrtpProtector | undefined;
  /** Sends one datagram to the pair's remote end (connected socket: see webrtc/connected-socket.ts). */
  send: DatagramSend;
  pair: unknown;
  /** Where the next datagram is written; replaced when a send had to keep it (a queued send). */
  datagram: Buffer;
  /** datagram.subarray(0, n) by n: a view per packet was garbage of its own. */
  views: Buffer[];
}

// Read once: the getter makes a new number per call.
const TIME_ORIGIN = performance.timeOrigin;

/** The parts of werift's sender and transports this path reads; checked at run time, typed loosely on purpose. */
interface SenderInternals {
  ssrc: number;
  dtlsTransport?: DtlsTransportWithSrtp & {
    state: string;
    iceTransport: { connection: { nominated?: { protocol: { transport?: Partial<UdpTransportLike> }; remoteAddr: [string, number] } } };
  };
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** RFC 8285 one-byte header extension block carrying the video orientation (CVO) byte: 8 bytes after the header. */
const CVO_BLOCK = 8;

export class RtpOut {
  private seq = Math.floor(Math.random() * 0x10000);
  private readonly header = Buffer.alloc(12);
  /** The header of a frame's last packet when the video orientation extension is sent (marker packets carry it). */
  private cvoHeader: Buffer | undefined;
  private cvo: { id: number; byte: number } | undefined;
  /** undefined: not resolved yet; null: werift's sender sends for this track. */
  private link: Link | null | undefined;
  /** performance.now() of the last packet sent (0: none yet). */
  private lastSendMs = 0;
  private readonly history: SendHistory;

  constructor(
    readonly sender: RTCRtpSender,
    private readonly payloadType: number,
  ) {
    this.history =
      sender.kind === "audio" ? new SendHistory(AUDIO_HISTORY, AUDIO_HISTORY, 0) : new SendHistory(VIDEO_HISTORY, VIDEO_BURST_HISTORY, BURST_HOLD_MS);
    sender.onGenericNack.subscribe((nack) => this.resend(nack.lost));
  }

  /**
   * The NTP time of the last packet sent, for this track's sender reports: computed only when a report is built
   * (werift computes a bigint per packet).
   */
  ntpTimestamp(): bigint {
    return ntpOf(TIME_ORIGIN + (this.lastSendMs || performance.now()));
  }

  static of(t: { sender: RTCRtpSender; payloadType: number; orientation?: Orientation } | undefined): RtpOut | undefined {
    if (!t) return undefined;
    const out = new RtpOut(t.sender, t.payloadType);
    if (t.orientation) out.setOrientation(t.orientation);
    return out;
  }

  /**
   * Sends the video orientation extension (3GPP TS 26.114 CVO) on the last packet of every frame, as libwebrtc
   * does for a non-zero rotation: the browser turns the picture upright, no re-encode needed.
   */
  setOrientation(o: Orientation): void {
    // CVO byte: R1 R0 = the clockwise turn in quarter turns (C and F, camera and flip, stay 0).
    const byte = (o.clockwise / 90) & 3;
    const h = Buffer.alloc(12 + CVO_BLOCK);
    h.set([0xbe, 0xde, 0x00, 0x01, (o.id << 4) | 0, byte, 0, 0], 12);
    this.cvoHeader = h;
    this.cvo = { id: o.id, byte };
  }

  /** A catch-up burst starts: what it sends stays NACKable until burstEnded() and a while after. */
  burst(): void {
    this.history.burst();
  }

  burstEnded(): void {
    this.history.burstEnded(performance.now());
  }

  /** Sends the next packet of this track, numbered by this track. */
  send(timestamp: number, marker: boolean, payload: Uint8Array): void {
    this.sendAs((this.seq = (this.seq + 1) & 0xffff), timestamp, marker, payload);
  }

  /** Sends with the caller's sequence number: a forwarded stream keeps its source's gaps, so the browser sees loss. */
  sendAs(seq: number, timestamp: number, marker: boolean, payload: Uint8Array): void {
    const now = performance.now();
    this.history.keep(seq, timestamp >>> 0, marker, payload, now);
    this.transmit(seq, timestamp >>> 0, marker, payload, now);
  }

  private transmit(seq: number, timestamp: number, marker: boolean, payload: Uint8Array, nowMs: number): void {
    const link = this.currentLink();
    this.lastSendMs = nowMs;
    if (link === null) {
      const cvo = marker ? this.cvo : undefined;
      const header = new RtpHeader({
        payloadType: this.payloadType,
        sequenceNumber: seq,
        timestamp,
        marker,
        ...(cvo ? { extension: true, extensions: [{ id: cvo.id, payload: Buffer.from([cvo.byte]) }] } : {}),
      });
      void this.sender.sendRtp(new RtpPacket(header, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength))).catch(() => {});
      mediaCounters.rtpPackets++;
      mediaCounters.rtpBytes += header.serializeSize + payload.byteLength;
      return;
    }
    if (link === undefined) return;
    const h = marker && this.cvoHeader ? this.cvoHeader : this.header;
    writeRtpHeader(h, this.payloadType, marker, seq, timestamp, this.sender.ssrc);
    if (h !== this.header) h[0] = 0x90; // version 2 with X: a header extension follows
    if (link.native) sendBatch!.append(link.native, h, payload);
    else this.protectAndSend(link, h, payload);
    mediaCounters.rtpPackets++;
    mediaCounters.rtpBytes += h.length + payload.byteLength;
    const s = this.sender as unknown as SenderInternals;
    s.rtpTimestamp = timestamp;
    s.packetCount = (s.packetCount + 1) >>> 0;
    s.octetCount += payload.byteLength;
  }

  private protectAndSend(link: Link, h: Buffer, payload: Uint8Array): void {
    const size = h.length + payload.byteLength + SRTP_TAG;
    // One buffer per track, written over packet after packet: a datagram per packet was most of the sidecar's
    // garbage. A send that had to queue keeps its buffer, and the next packet gets a new one.
    const reuse = size <= DATAGRAM_BYTES;
    const datagram = reuse ? (link.views[size] ??= link.datagram.subarray(0, size)) : Buffer.allocUnsafe(size);
    link.protector!.protectParts(h, payload, datagram, 0);
    if (!link.send(datagram) && reuse) {
      link.datagram = Buffer.allocUnsafeSlow(DATAGRAM_BYTES);
      link.views = [];
    }
  }

  /** The nominated pair's socket and the fast SRTP, once DTLS is up; re-resolved if ICE nominated another pair. */
  private currentLink(): Link | null | undefined {
    const s = this.sender as unknown as SenderInternals;
    const dtls = s.dtlsTransport;
    if (!dtls || dtls.state !== "connected") return undefined;
    const pair = dtls.iceTransport.connection.nominated;
    if (this.link !== undefined && (this.link === null || this.link.pair === pair)) return this.link;
    const transport = pair?.protocol.transport;
    const native = sendBatch ? installNativeSrtp(dtls) : false;
    const protector = native ? undefined : installFastSrtp(dtls);
    if (!pair || !transport || !(transport.socket instanceof dgram.Socket) || typeof transport.send !== "function" || (!native && !protector)) {
      this.link = null;
      return null;
    }
    sizeSendBuffer(transport.socket);
    const send = connectedSender(transport as UdpTransportLike, pair.remoteAddr[0], pair.remoteAddr[1]);
    let target: NativeTarget | undefined;
    if (native) {
      // One target per pair, shared by the peer's tracks, so a tick's video and audio leave in one call.
      target = targets.get(pair);
      if (!target) {
        const { fd, queued } = connectedFdOf(transport.socket);
        target = { srtp: native, fd, queued, sendQueued: (d) => void send(d) };
        targets.set(pair, target);
      }
    }
    // The native path stages packets in the sidecar's one arena: no datagram buffer of its own.
    const datagram = target ? NO_DATAGRAM : Buffer.allocUnsafeSlow(DATAGRAM_BYTES);
    this.link = { native: target, protector: protector || undefined, send, pair, datagram, views: [] };
    // werift starts its sender reports (a timer loop per sender) from its own send path, which this one never
    // runs; the sidecar's one reporter sends them instead.
    senderReports.add(this.sender, this);
    return this.link;
  }

  private resend(lost: number[]): void {
    // On werift's path its sender answers NACKs from its own history.
    if (this.link === null) return;
    const history = this.history;
    for (const seq of lost) {
      const payload = history.payloadOf(seq);
      if (!payload) continue;
      this.transmit(seq, history.timestampOf(seq), history.markerOf(seq), payload, performance.now());
    }
  }
}

const targets = new WeakMap<object, NativeTarget>();
const NO_DATAGRAM = Buffer.alloc(0);

/** RTP_SEND_BUFFER_BYTES: SO_SNDBUF for every media socket this path sends on (0: the kernel's default). */
let sendBufferBytes = 0;
const sized = new WeakSet<dgram.Socket>();

export function setMediaSendBuffer(bytes: number): void {
  sendBufferBytes = bytes;
}

function sizeSendBuffer(socket: dgram.Socket): void {
  if (!sendBufferBytes || sized.has(socket)) return;
  sized.add(socket);
  try {
    socket.setSendBufferSize(sendBufferBytes);
  } catch (err) {
    console.warn(`media socket: SO_SNDBUF ${sendBufferBytes} refused: ${(err as Error).message}`);
  }
}

/** NTP 64-bit timestamp (seconds since 1900 . fraction) of a Unix time in ms. */
function ntpOf(unixMs: number): bigint {
  const seconds = Math.floor(unixMs / 1000);
  const fraction = Math.floor(((unixMs - seconds * 1000) / 1000) * 0x1_0000_0000);
  return (BigInt(seconds + NTP_UNIX_OFFSET_S) << 32n) | BigInt(fraction);
}
