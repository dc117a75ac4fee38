// Packets for the native send, gathered per peer: every RtpOut of one viewer (video, audio, NACK resends) appends
// its plain packets to one arena shared by the whole sidecar, and the arena goes to the addon in one call when the
// next viewer's packet arrives, when it is full, or at the end of the current job (a microtask). One scheduler tick
// thus costs one protect-and-send call per viewer: a frame's equal-size packets leave as one GSO datagram, the
// rest in the same sendmmsg. Sharing the arena keeps per-viewer memory at zero for this stage.
import { nativeAddon, nativeStatus, type Addon } from "./addon.ts";
import type { NativeSrtp } from "./native-srtp.ts";

/** The socket side of one peer: its connected fd (-1: not usable now) and libuv's queue on the same socket. */
export interface NativeTarget {
  readonly srtp: NativeSrtp;
  /** The connected UDP socket's fd, or -1 (not connected yet, or closed). */
  fd(): number;
  /** Datagrams libuv still holds for this socket: while any, later packets queue behind them to keep order. */
  queued(): number;
  /** Node's own send, which queues when the kernel's buffer is full (used for what the kernel did not take). */
  sendQueued(datagram: Buffer): void;
}

/** Room for ~170 full-size packets: more than a viewer is due in one tick at any bitrate this serves. */
const ARENA_BYTES = 256 * 1024;
/** The largest tag of a profile (GCM's 16), kept after every staged packet. */
const TAG_ROOM = 16;

export class SendBatch {
  private readonly arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private readonly offsets: Uint32Array;
  private readonly lengths: Uint16Array;
  private count = 0;
  private used = 0;
  private owner: NativeTarget | undefined;
  private scheduled = false;
  private readonly flushLater = (): void => {
    this.scheduled = false;
    this.flush();
  };
  /** Packets that went through Node's queue because the kernel's buffer was full or libuv already held some. */
  queuedPackets = 0;
  failedFlushes = 0;

  constructor(private readonly addon: Addon) {
    this.offsets = new Uint32Array(addon.MAX_PACKETS);
    this.lengths = new Uint16Array(addon.MAX_PACKETS);
  }

  /** Stages header + payload for target; protected and sent at the next flush. */
  append(target: NativeTarget, header: Uint8Array, payload: Uint8Array): void {
    const size = header.length + payload.length;
    if (this.owner !== target || this.count === this.offsets.length || this.used + size + TAG_ROOM > ARENA_BYTES) {
      this.flush();
      this.owner = target;
    }
    const at = this.used;
    this.arena.set(header, at);
    this.arena.set(payload, at + header.length);
    this.offsets[this.count] = at;
    this.lengths[this.count] = size;
    this.count++;
    this.used = at + size + TAG_ROOM;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushLater);
    }
  }

  /** Protects and sends what is staged. */
  flush(): void {
    const n = this.count;
    const target = this.owner;
    this.count = 0;
    this.used = 0;
    this.owner = undefined;
    if (n === 0 || !target) return;
    const fd = target.queued() > 0 ? -1 : target.fd();
    let sent: number;
    try {
      sent = this.addon.flush(target.srtp.ctx, fd, this.arena, this.offsets, this.lengths, n);
    } catch (err) {
      // Only a bug of ours can get here (the packets are our own): this viewer's tick is lost, NACK may recover it,
      // and nobody else's media stops (a throw from the end-of-job flush would end the process).
      this.failedFlushes++;
      if (this.failedFlushes === 1 || this.failedFlushes % 1000 === 0) console.error(`native send: flush failed (${this.failedFlushes}×): ${(err as Error).message}`);
      return;
    }
    for (let i = sent; i < n; i++) {
      const at = this.offsets[i]!;
      // A copy: the arena is written over by the next viewer, and Node's queue holds the buffer until it is sent.
      target.sendQueued(Buffer.from(this.arena.subarray(at, at + this.lengths[i]!)));
      this.queuedPackets++;
    }
  }
}

/** The sidecar's one batch; undefined on the JS path. */
export const sendBatch: SendBatch | undefined = nativeAddon ? new SendBatch(nativeAddon) : undefined;

export interface MediaSendStats {
  mode: "native" | "js";
  /** Why the JS path sends, or the addon's file. */
  reason: string;
  /** Native path only: sendmmsg calls, packets they carried, GSO datagrams, EAGAINs, packets Node's queue took, drops. */
  syscalls?: number;
  packets?: number;
  gsoDatagrams?: number;
  eagain?: number;
  queued?: number;
  dropped?: number;
}

const counterBuf = new Float64Array(7);

/** For /v1/health and the metrics. */
export function mediaSendStats(): MediaSendStats {
  if (!nativeAddon || !sendBatch) return { ...nativeStatus };
  nativeAddon.counters(counterBuf);
  return {
    ...nativeStatus,
    syscalls: counterBuf[0]!,
    packets: counterBuf[2]!,
    eagain: counterBuf[3]!,
    dropped: counterBuf[4]!,
    gsoDatagrams: counterBuf[5]!,
    queued: sendBatch.queuedPackets,
  };
}
