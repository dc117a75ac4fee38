// The muxing half of a VP8 copy. Debian's ffmpeg (5.1) encodes VP8 but cannot put it in MP4 ("VP8 muxing is
// currently not supported"), so it writes IVF to a pipe and mediabunny, which writes `vp08` MP4, makes the copy: a
// fragmented MP4 written as it goes, so that the first viewer plays it while it grows (see growing-index.ts), with
// each frame at ffmpeg's own 90 kHz time (the source's presentation time: its sound, played from the source or its
// Opus copy, stays in step).
import type { Readable } from "node:stream";
import type { FileHandle } from "node:fs/promises";
import { EncodedPacket, EncodedVideoPacketSource, Mp4OutputFormat, Output, StreamTarget, type StreamTargetChunk } from "mediabunny";
import { vp8KeyframeSize } from "../rtp/vp8-rtp.ts";

/** IVF (the libvpx test container): a 32-byte file header, then per frame a 12-byte header (size, pts) and the frame. */
const IVF_HEADER = 32;
const IVF_FRAME_HEADER = 12;
/** A frame larger than this is not a VP8 frame of any picture we prepare (ffmpeg's output is broken). */
const MAX_FRAME_BYTES = 32 << 20;

/** Reads ffmpeg's IVF from `input` and writes the fragmented MP4 to `out` (from offset 0); resolves once it is whole. */
export async function muxVp8Copy(input: Readable, out: FileHandle): Promise<void> {
  const target = new StreamTarget(
    new WritableStream<StreamTargetChunk>({
      write: async ({ data, position }) => {
        for (let done = 0; done < data.byteLength; ) {
          const { bytesWritten } = await out.write(data, done, data.byteLength - done, position + done);
          if (!(bytesWritten > 0)) throw new Error("write made no progress");
          done += bytesWritten;
        }
      },
    }),
    { chunked: false },
  );
  // Fragments close at keyframes only; the recipe puts the first ones close together so that playback starts soon.
  const output = new Output({ format: new Mp4OutputFormat({ fastStart: "fragmented", minimumFragmentDuration: 0.2 }), target });
  const source = new EncodedVideoPacketSource("vp8");
  // frameRate 90000 makes the track timescale 90 kHz: ffmpeg's times go in exactly.
  output.addVideoTrack(source, { frameRate: 90_000 });
  await output.start();

  let rate = 90_000;
  let scale = 1;
  let held: { data: Uint8Array; pts: number; key: boolean } | undefined;
  let lastDelta = 3000;
  let first = true;
  const add = async (frame: { data: Uint8Array; pts: number; key: boolean }, duration: number) => {
    let meta;
    if (first) {
      const size = vp8KeyframeSize(frame.data);
      if (!size) throw new Error("the VP8 stream does not start with a keyframe");
      meta = { decoderConfig: { codec: "vp8", codedWidth: size.width, codedHeight: size.height } };
      first = false;
    }
    await source.add(new EncodedPacket(frame.data, frame.key ? "key" : "delta", (frame.pts * scale) / rate, (duration * scale) / rate), meta);
  };

  let buf: Buffer = Buffer.alloc(0);
  let headerRead = false;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let at = 0;
    if (!headerRead) {
      if (buf.length < IVF_HEADER) continue;
      if (buf.toString("latin1", 0, 4) !== "DKIF" || buf.toString("latin1", 8, 12) !== "VP80") throw new Error("ffmpeg's output is not VP8 in IVF");
      rate = buf.readUInt32LE(16) || 90_000;
      scale = buf.readUInt32LE(20) || 1;
      at = buf.readUInt16LE(6) || IVF_HEADER;
      headerRead = true;
    }
    while (buf.length - at >= IVF_FRAME_HEADER) {
      const size = buf.readUInt32LE(at);
      if (size > MAX_FRAME_BYTES) throw new Error(`IVF frame of ${size} bytes`);
      if (buf.length - at < IVF_FRAME_HEADER + size) break;
      const pts = Number(buf.readBigInt64LE(at + 4));
      // A copy, not a view: the chunk it came in is let go.
      const data = Uint8Array.prototype.slice.call(buf, at + IVF_FRAME_HEADER, at + IVF_FRAME_HEADER + size);
      at += IVF_FRAME_HEADER + size;
      if (size === 0) continue;
      // Each frame goes to the muxer once the next one is known: it lasts until then.
      if (held) {
        if (pts <= held.pts) continue; // never before the frame already placed: the MP4 needs rising times
        lastDelta = pts - held.pts;
        await add(held, lastDelta);
      }
      held = { data, pts: Math.max(0, pts), key: (data[0]! & 1) === 0 };
    }
    buf = buf.subarray(at);
  }
  if (!held) throw new Error("ffmpeg wrote no VP8 frame");
  await add(held, lastDelta);
  await output.finalize();
}
