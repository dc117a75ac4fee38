// What the MP4 reader gives the players: per-track metadata and a compact sample table in typed arrays
// (a 2-hour file has ~500k samples: objects per sample would cost ~100 MB, typed arrays ~10 MB).

export interface SampleTable {
  readonly count: number;
  /** Byte offset of each sample in the file. */
  readonly offset: Float64Array;
  readonly size: Uint32Array;
  /** Decode time, in the track's timescale. */
  readonly dts: Float64Array;
  /** Presentation time minus decode time, in the track's timescale. */
  readonly ctsOffset: Int32Array;
  /** Duration in the track's timescale. */
  readonly duration: Uint32Array;
  /** 1 for sync samples (keyframes). */
  readonly sync: Uint8Array;
}

export interface AvcConfig {
  /** Bytes of the length field before each NAL unit in a sample (1, 2 or 4). */
  readonly nalLengthSize: number;
  readonly sps: readonly Uint8Array[];
  readonly pps: readonly Uint8Array[];
  readonly profileIdc: number;
  readonly profileCompat: number;
  readonly levelIdc: number;
}

export interface VideoTrack {
  readonly kind: "video";
  readonly id: number;
  /** RFC 6381 codec string, e.g. `avc1.42c01e`, `hvc1...`. */
  readonly codec: string;
  readonly timescale: number;
  readonly width: number;
  readonly height: number;
  /** Present for H.264 (avc1/avc3). */
  readonly avc?: AvcConfig;
  /** True when decode order differs from presentation order (B-frames). */
  readonly hasBFrames: boolean;
  /** Display rotation from the track header's matrix, counter-clockwise degrees as ffprobe reports it. */
  readonly rotation: Rotation;
  /** Presentation time (s) of the track's media time 0, from its edit list: see EditShift. */
  readonly editShiftSec: number;
  readonly samples: SampleTable;
}

export type Rotation = 0 | 90 | 180 | 270;

export interface AudioTrack {
  readonly kind: "audio";
  readonly id: number;
  /** `mp4a.40.2` (AAC-LC), `mp4a.40.5`, `opus`, `mp4a.6b` ... lower case. */
  readonly codec: string;
  readonly timescale: number;
  readonly sampleRate: number;
  readonly channels: number;
  /** Presentation time (s) of the track's media time 0, from its edit list (audio starting late, AAC priming). */
  readonly editShiftSec: number;
  readonly samples: SampleTable;
}

export interface Mp4Index {
  readonly video?: VideoTrack;
  readonly audio?: AudioTrack;
  /** Longest track duration, seconds. */
  readonly durationSec: number;
  readonly fragmented: boolean;
}
