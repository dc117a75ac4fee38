// VP8 MP4 fixtures: Debian's ffmpeg (5.1) encodes VP8 but cannot write it into MP4, so ffmpeg writes IVF to a pipe
// and the sidecar's own muxer for VP8 copies (muxVp8Copy, mediabunny) turns it into a fragmented `vp08` MP4, the
// same kind of file a VP8 copy or a VP8 recording is. Video only: pair it with an Opus file for sound.
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { muxVp8Copy } from "../../sidecar/src/prepare/vp8-copy.ts";
import { FFMPEG } from "./fixtures.ts";

export interface Vp8FixtureOptions {
  seconds: number;
  /** Default 320x180. */
  size?: string;
  /** Default 30. */
  fps?: number;
  /** Seconds between keyframes (forced, so they are exactly there). Default 1, what a browser encoder asked for PLIs sends about. */
  keyframeEverySec?: number;
}

/** Writes `dir/name`: testsrc2 encoded by libvpx in real time, every frame at its 90 kHz presentation time. */
export async function makeVp8Fixture(dir: string, name: string, opts: Vp8FixtureOptions): Promise<string> {
  const out = path.join(dir, name);
  const size = opts.size ?? "320x180";
  const fps = opts.fps ?? 30;
  const every = opts.keyframeEverySec ?? 1;
  const args = [
    ...["-nostdin", "-hide_banner", "-loglevel", "error"],
    ...["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=${fps}:duration=${opts.seconds}`],
    ...["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-auto-alt-ref", "0"],
    ...["-b:v", "500k", "-pix_fmt", "yuv420p", "-threads", "1"],
    ...["-force_key_frames", `expr:gte(t,n_forced*${every})`, "-g", String(Math.round(every * fps * 4))],
    // Passthrough: IVF is no variable-frame-rate format, so ffmpeg would otherwise fill the 90 kHz grid with copies.
    ...["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000", "-f", "ivf", "pipe:1"],
  ];
  const child = spawn(FFMPEG, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
  const fh = await fs.open(out, "w+");
  try {
    await muxVp8Copy(child.stdout, fh);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`VP8 fixture ${name}: ${String(err)}\n${stderr}`);
  } finally {
    await fh.close();
  }
  const code = await exited;
  if (code !== 0) throw new Error(`VP8 fixture ${name}: ffmpeg exited with ${code}\n${stderr}`);
  return out;
}
