// A 30-s H.264 + AAC file whose every frame shows its own number, for the seek and pause tests: after a seek the RTP
// timestamps follow the wall clock, not the media time, so only the picture can say which moment of the file is on
// screen. The time is drawn as text for people (and the README screenshot), the frame number as a row of blocks for
// the pages, which read it back from the <video> through a canvas.
import { existsSync } from "node:fs";
import type { Page } from "playwright-core";
import { makeFixture } from "./fixtures.ts";

export const CLOCK = {
  width: 640,
  height: 360,
  fps: 30,
  seconds: 30,
  /** Keyframes at 0, 10 and 20 s exactly, so a position such as 14.3 s is far from any keyframe. */
  keyframeEverySec: 10,
} as const;
export const CLOCK_FRAME_MS = 1000 / CLOCK.fps;
export const CLOCK_DURATION_MS = CLOCK.seconds * 1000;

/**
 * The blocks, along the bottom of the picture on a black band: block 0 always white, block 11 always black (guards
 * that tell a clean read from a half-decoded or scaled picture), blocks 1..10 the frame number, least significant bit
 * first (10 bits: up to frame 1023, 34 s).
 */
const CODE = { blocks: 12, bits: 10, size: 40, gap: 8, x0: 32, y: 306, band: 60 } as const;

const FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf";

function clockFilter(): string {
  const { bits, size, gap, x0, y, band } = CODE;
  // Without the font file drawtext asks fontconfig for its default font.
  const font = existsSync(FONT) ? `fontfile=${FONT}:` : "";
  const bandY = y - (band - size) / 2;
  const block = (i: number) => `drawbox=x=${x0 + i * (size + gap)}:y=${y}:w=${size}:h=${size}:color=white:t=fill`;
  const filters = [
    `drawtext=${font}text='%{pts\\:hms}':fontsize=64:fontcolor=white:x=(w-tw)/2:y=100`,
    `drawtext=${font}text='frame %{n}':fontsize=28:fontcolor=0xb0c4de:x=(w-tw)/2:y=200`,
    `drawbox=x=0:y=${bandY}:w=iw:h=${band}:color=black:t=fill`,
    block(0),
  ];
  for (let k = 0; k < bits; k++) filters.push(`${block(k + 1)}:enable='mod(floor(n/${2 ** k}),2)'`);
  return filters.join(",");
}

/**
 * Makes the clock file as `dir/name`: 640x360, 30 fps, H.264 constrained baseline (no B-frames) with a keyframe
 * exactly every 10 s, and a 440 Hz beep as AAC (so the sidecar prepares an Opus copy, as for most real files).
 */
export function makeClockFixture(dir: string, name = "clock.mp4"): Promise<string> {
  const { width, height, fps, seconds, keyframeEverySec } = CLOCK;
  const gop = String(fps * keyframeEverySec);
  return makeFixture(dir, name, [
    ...["-f", "lavfi", "-i", `color=c=0x1b2636:size=${width}x${height}:rate=${fps}:duration=${seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:beep_factor=2:sample_rate=48000:duration=${seconds}`],
    ...["-vf", clockFilter()],
    ...["-c:v", "libx264", "-threads:v", "1", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-bf", "0"],
    ...["-g", gop, "-keyint_min", gop, "-sc_threshold", "0"],
    ...["-c:a", "aac", "-b:a", "64k", "-ac", "2", "-movflags", "+faststart"],
  ]);
}

/**
 * Page-side source of `function (video) -> number | null`: the media time (ms) of the frame `video` shows now, read
 * from its blocks, or null when there is no picture or the read is not clean (a block neither clearly white nor
 * clearly black, or a guard wrong). A string: tsx decorates functions with helpers that do not exist in the page.
 */
const READ_VIDEO = `function (video) {
  var C = ${JSON.stringify({ ...CODE, width: CLOCK.width, height: CLOCK.height, frameMs: CLOCK_FRAME_MS })};
  var w = video && video.videoWidth, h = video && video.videoHeight;
  if (!w || !h) return null;
  var canvas = window.__clockCanvas || (window.__clockCanvas = document.createElement("canvas"));
  var ctx = canvas.getContext("2d", { willReadFrequently: true });
  var sx = w / C.width, sy = h / C.height;
  // Only the band with the blocks is copied: a whole frame per read is wasted work on a loaded machine.
  var top = Math.floor(C.y * sy), bandH = Math.max(1, Math.ceil(C.size * sy));
  if (canvas.width !== w || canvas.height !== bandH) { canvas.width = w; canvas.height = bandH; }
  ctx.drawImage(video, 0, top, w, bandH, 0, 0, w, bandH);
  var data = ctx.getImageData(0, 0, w, bandH).data;
  var half = Math.max(1, Math.round(8 * Math.min(sx, sy)));
  var cy = Math.round((C.size / 2) * sy);
  var frame = 0;
  for (var i = 0; i < C.blocks; i++) {
    var cx = Math.round((C.x0 + i * (C.size + C.gap) + C.size / 2) * sx);
    var sum = 0, n = 0;
    for (var y = Math.max(0, cy - half); y < Math.min(bandH, cy + half); y++) {
      for (var x = cx - half; x < cx + half; x++) {
        var p = (y * w + x) * 4;
        sum += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
        n++;
      }
    }
    var luma = sum / n;
    if (luma > 96 && luma < 160) return null;
    var white = luma >= 160;
    if (i === 0 && !white) return null;
    if (i === C.blocks - 1 && white) return null;
    if (i > 0 && i <= C.bits && white) frame += Math.pow(2, i - 1);
  }
  return Math.round(frame * C.frameMs);
}`;

/**
 * An init script (openPlayer's `initScripts`) for pages that play the clock file:
 * - `window.__clockMs()`: the media time (ms) of what the `<video>` in #display shows right now, or null;
 * - `window.__clockReads`: one `{at: Date.now(), ms}` per frame the video presents (requestVideoFrameCallback), from
 *   its first, so a test sees every picture, not only those its polls happen to catch. `ms` is null for an unclean
 *   read (a black or half-decoded picture). Chromium's first presentation of a new track sometimes draws as plain
 *   black into the canvas (in plain playback too), so the very first read may be null.
 */
export const clockReader = `
  (() => {
    const readVideo = ${READ_VIDEO};
    const video = () => document.querySelector("#display video");
    window.__clockMs = () => readVideo(video());
    window.__clockReads = [];
    const attached = new WeakSet();
    const watch = () => {
      const v = video();
      if (v && !attached.has(v)) {
        attached.add(v);
        const onFrame = () => {
          window.__clockReads.push({ at: Date.now(), ms: readVideo(v) });
          v.requestVideoFrameCallback(onFrame);
        };
        v.requestVideoFrameCallback(onFrame);
      }
      // The SDK makes a new <video> for each stream, so keep looking.
      setTimeout(watch, 20);
    };
    document.addEventListener("DOMContentLoaded", watch);
  })();
`;

export interface ClockRead {
  /** Date.now() in the page when the frame was presented: the same clock for every page of a browser. */
  at: number;
  /** The frame's media time, ms; null when the picture could not be read. */
  ms: number | null;
}

/** What the page shows now (ms of media time), read straight from the video; works without clockReader. */
export function readClockMs(page: Page): Promise<number | null> {
  return page.evaluate(`(${READ_VIDEO})(document.querySelector("#display video"))`) as Promise<number | null>;
}

/** The page's presented frames so far (needs clockReader), from index `from`. */
export function clockReads(page: Page, from = 0): Promise<ClockRead[]> {
  return page.evaluate((from) => (window as unknown as { __clockReads: ClockRead[] }).__clockReads.slice(from), from);
}

/** How many presented frames the page has recorded so far (needs clockReader): a mark for clockReads(page, mark). */
export function clockMark(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { __clockReads: ClockRead[] }).__clockReads.length);
}
