// The file every benchmark serves or publishes: 10 s of 640x360 30 fps H.264 at ~1 Mbps (keyframe every second,
// no B-frames) with Opus 64k, made with ffmpeg so it is the same on every machine.
import { makeFixture } from "../test/helpers/fixtures.ts";

export function makeBenchFile(dir: string, name = "bench.mp4"): Promise<string> {
  return makeFixture(dir, name, [
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=10"],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10"],
    ...["-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0", "-b:v", "1M", "-maxrate", "1M", "-bufsize", "1M"],
    ...["-c:a", "libopus", "-b:a", "64k"],
  ]);
}
