import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  createFmp4Recorder,
  type FragmentInfo,
  type Fmp4RecordFileInfo,
  type Fmp4RecorderOptions,
  type RecordFileHandle,
} from "../../sidecar/src/record/fmp4-recorder.ts";
import { LocalDiskAccess } from "../../sidecar/src/files/local-disk.ts";
import { openMp4 } from "../../sidecar/src/mp4/reader.ts";
import { FFMPEG, probePackets, type ProbePacket } from "../helpers/fixtures.ts";
import { loadMedia, makeRecordFixture, toRtp, type LoadedMedia, type RtpEvent, type RtpStreams } from "../helpers/record-media.ts";

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, "../..");
const T0 = 1_000_000;

let tmp: string;
let media: LoadedMedia;
let rtp: RtpStreams;
let fileNo = 0;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fmp4-recorder-"));
  // 4 s at 30 fps, a keyframe every second (like a publisher answering our keyframe requests), 20 ms Opus.
  media = await loadMedia(await makeRecordFixture(tmp, "in.mp4", { seconds: 4, gop: 30 }));
  rtp = toRtp(media);
});

after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

interface Recorded {
  info: Fmp4RecordFileInfo;
  file: string;
  video: ProbePacket[];
  audio: ProbePacket[];
  codecs: string[];
  /** Fake-clock media time (ms) of each keyframe request. */
  keyframeRequestsAt: number[];
  errors: Error[];
  fragments: FragmentInfo[];
}

interface RecordOptions extends Partial<Fmp4RecorderOptions> {
  events?: RtpEvent[];
  /** Send the sender reports first (default true). */
  senderReports?: boolean;
  /** Extra arrival delay (ms) of an event. */
  delay?: (e: RtpEvent) => number;
  /** Called before each event is pushed (e.g. to stop at some point). */
  beforePush?: (e: RtpEvent, index: number) => void;
}

async function record(o: RecordOptions = {}): Promise<Recorded> {
  const file = path.join(tmp, `rec-${++fileNo}.mp4`);
  let now = T0;
  const fragments: FragmentInfo[] = [];
  const rec = createFmp4Recorder({
    path: file,
    tracks: { video: true, audio: { channels: 2 } },
    now: () => now,
    onFragment: (f) => fragments.push(f),
    ...o,
  });
  const keyframeRequestsAt: number[] = [];
  const errors: Error[] = [];
  rec.onKeyframeNeeded = () => keyframeRequestsAt.push(now - T0);
  rec.onError = (err) => errors.push(err);
  if (o.senderReports !== false) {
    rec.senderReport("video", rtp.videoSr.ntp, rtp.videoSr.rtp);
    rec.senderReport("audio", rtp.audioSr.ntp, rtp.audioSr.rtp);
  }
  const events = o.events ?? rtp.events;
  for (const [i, e] of events.entries()) {
    now = Math.max(now, T0 + e.mediaMs + (o.delay?.(e) ?? 0));
    o.beforePush?.(e, i);
    if (e.kind === "video") rec.pushVideo(e.packet);
    else rec.pushAudio(e.packet);
    // Let the muxer and the file catch up after each frame, as real time would.
    if (e.kind === "video" && e.packet.header.marker) await rec.whenIdle();
  }
  const info = await rec.finish();
  assert.equal(await rec.finish(), info, "finish is idempotent");
  const probe = await probePackets(file);
  return {
    info,
    file,
    video: probe.packets.filter((p) => p.codecType === "video"),
    audio: probe.packets.filter((p) => p.codecType === "audio"),
    codecs: probe.streams.map((s) => s.codecName),
    keyframeRequestsAt,
    errors,
    fragments,
  };
}

/** Input video timestamps (90 kHz) relative to frame `first`, for the frames kept. */
function expectedVideoPts(kept: (i: number) => boolean, first = 0): number[] {
  const base = media.video[first]!.dts;
  return media.video.flatMap((s, i) => (kept(i) ? [Math.round(((s.dts - base) * 90000) / media.videoTimescale)] : []));
}

/** Input audio timestamps (48 kHz) relative to video frame `firstVideo`, for audio at or after it. */
function expectedAudioPts(firstVideo = 0): number[] {
  const originMs = (media.video[firstVideo]!.dts * 1000) / media.videoTimescale;
  return media.audio.flatMap((s) => {
    const ms = (s.dts * 1000) / media.audioTimescale;
    return ms >= originMs ? [Math.round(((ms - originMs) * 48000) / 1000)] : [];
  });
}

const frameTicks = () => Math.round(((media.video[1]!.dts - media.video[0]!.dts) * 90000) / media.videoTimescale);
const keyIndexes = () => media.video.flatMap((s, i) => (s.key ? [i] : []));
const ms = (i: number) => (media.video[i]!.dts * 1000) / media.videoTimescale;

/** Video sample durations (90 kHz) as the file's own tables give them. */
async function sampleDurations(file: string): Promise<number[]> {
  const f = await new LocalDiskAccess(path.dirname(file)).open(path.basename(file));
  try {
    const s = (await openMp4(f)).video!.samples;
    return Array.from(s.duration.subarray(0, s.count));
  } finally {
    await f.close();
  }
}

/** Samples (per channel, 48 kHz) ffmpeg decodes from the audio track. */
async function decodedAudioSamples(file: string): Promise<number> {
  const { stdout } = await run(FFMPEG, ["-v", "error", "-i", file, "-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "48000", "-"], {
    encoding: "buffer",
    maxBuffer: 64 << 20,
  });
  return stdout.length / 2;
}

async function decodes(file: string): Promise<void> {
  const { stderr } = await run(FFMPEG, ["-v", "error", "-i", file, "-f", "null", "-"]);
  assert.equal(stderr.trim(), "", `ffmpeg decodes ${path.basename(file)} without errors`);
}

test("H.264 + Opus in, fragmented MP4 out: every frame, the input's timestamps, aligned by sender reports", async () => {
  const r = await record();
  assert.deepEqual(r.codecs, ["h264", "opus"]);
  assert.equal(r.video.length, media.video.length);
  assert.equal(r.audio.length, media.audio.length);
  assert.deepEqual(r.video.map((p) => p.pts), expectedVideoPts(() => true));
  assert.deepEqual(r.audio.map((p) => p.pts), expectedAudioPts());
  assert.deepEqual(r.video.map((p) => p.key), media.video.map((s) => s.key));
  // Durations: each frame lasts until the next; the whole within one frame of the input.
  assert.ok(r.video.every((p) => p.duration === frameTicks()), "every video sample lasts one frame");
  const inputMs = ms(media.video.length - 1) + (frameTicks() / 90);
  assert.ok(Math.abs(r.info.durationMs - inputMs) <= frameTicks() / 90 + 20, `duration ${r.info.durationMs} vs ${inputMs}`);
  assert.equal(r.info.videoFrames, media.video.length);
  assert.equal(r.info.audioFrames, media.audio.length);
  assert.equal(r.info.sync, "sr");
  assert.ok(Math.abs(r.info.startTimeMs - rtp.wallMs0) < 1, `start ${r.info.startTimeMs} = the SR wall clock of frame 0`);
  assert.equal(r.info.endTimeMs - r.info.startTimeMs, r.info.durationMs);
  assert.equal(r.info.error, undefined);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.keyframeRequestsAt, [], "keyframes came every second: nothing to ask for");
  // A fragment per keyframe, each on disk as it closed (the last, at finish, may split off the trailing audio).
  assert.ok(r.fragments.length >= keyIndexes().length, `${r.fragments.length} fragments`);
  assert.equal(r.fragments.at(-1)!.videoSamples, media.video.length);
  assert.equal(r.fragments.at(-1)!.audioSamples, media.audio.length);
  assert.equal((await fs.stat(r.file)).size, r.info.bytes);
  await decodes(r.file);
  // Pre-skip 0: decoders play every sample (mediabunny's default 80 ms pre-skip would cut the start, shifting audio).
  assert.equal(await decodedAudioSamples(r.file), media.audio.length * 960);
});

test("audio arriving 80 ms behind video: sender reports still align it exactly; without them arrival time does", async () => {
  const late = (e: RtpEvent) => (e.kind === "audio" ? 80 : 0);
  const withSr = await record({ delay: late });
  assert.equal(withSr.info.sync, "sr");
  assert.deepEqual(withSr.audio.map((p) => p.pts), expectedAudioPts());
  assert.deepEqual(withSr.video.map((p) => p.pts), expectedVideoPts(() => true));

  const noSr = await record({ delay: late, senderReports: false });
  assert.equal(noSr.info.sync, "arrival");
  const shift = 80 * 48;
  assert.deepEqual(noSr.audio.map((p) => p.pts), expectedAudioPts().map((t) => t + shift));
  assert.deepEqual(noSr.video.map((p) => p.pts), expectedVideoPts(() => true));
  assert.ok(Math.abs(noSr.info.startTimeMs - T0) < 1, "start time from arrival");
});

test("a lost video packet drops its frame until the next IDR, asks for a keyframe, and shifts nothing after it", async () => {
  const keys = keyIndexes();
  const lostFrame = keys[1]! + 5;
  const resume = keys[2]!;
  const victims = rtp.events.flatMap((e, k) => (e.kind === "video" && e.sample === lostFrame ? [k] : []));
  const drop = victims[Math.floor(victims.length / 2)]!;
  const r = await record({ events: rtp.events.filter((_, k) => k !== drop) });
  const kept = (i: number) => i < lostFrame || i >= resume;
  assert.deepEqual(r.video.map((p) => p.pts), expectedVideoPts(kept));
  assert.equal(r.info.videoFrames, media.video.filter((_, i) => kept(i)).length);
  // The frame before the gap lasts until the next one (the trun says so; ffprobe 5.1 does not show fragment
  // durations, so read them with the repo's mp4box-based reader).
  const durations = await sampleDurations(r.file);
  assert.equal(durations[lostFrame - 1], (resume - lostFrame + 1) * frameTicks());
  assert.ok(durations.every((d, k) => k === lostFrame - 1 || d === frameTicks()));
  assert.equal(r.audio.length, media.audio.length, "audio untouched");
  assert.ok(r.keyframeRequestsAt.length >= 1, "keyframe requested");
  for (const t of r.keyframeRequestsAt) assert.ok(t >= ms(lostFrame) && t < ms(resume), `request at ${t} ms, during the loss`);
  assert.ok(r.info.videoPacketsLost >= 1);
  await decodes(r.file);
});

test("neighbouring packets swapped in both tracks: nothing lost", async () => {
  const events = [...rtp.events];
  const swapIn = (kind: "video" | "audio", every: number) => {
    const idx = events.flatMap((e, k) => (e.kind === kind ? [k] : []));
    for (let j = 1; j + 1 < idx.length; j += every) {
      const a = idx[j]!;
      const b = idx[j + 1]!;
      [events[a], events[b]] = [events[b]!, events[a]!];
    }
  };
  swapIn("video", 5);
  swapIn("audio", 4);
  const r = await record({ events });
  assert.deepEqual(r.video.map((p) => p.pts), expectedVideoPts(() => true));
  assert.deepEqual(r.audio.map((p) => p.pts), expectedAudioPts());
  assert.deepEqual(r.keyframeRequestsAt, []);
  assert.equal(r.info.videoFramesDropped, 0);
  assert.equal(r.info.audioFramesDropped, 0);
});

test("joining mid-GOP: video before the first IDR and the audio before it are dropped; the file starts at the IDR", async () => {
  const keys = keyIndexes();
  const startFrame = keys[1]! - 10;
  const firstEvent = rtp.events.findIndex((e) => e.kind === "video" && e.sample === startFrame);
  // Start on the second packet of that frame's data when it has several, else on the frame.
  const r = await record({ events: rtp.events.slice(firstEvent + 1) });
  const first = keys[1]!;
  assert.equal(r.video[0]!.key, true);
  assert.deepEqual(r.video.map((p) => p.pts), expectedVideoPts((i) => i >= first, first));
  assert.deepEqual(r.audio.map((p) => p.pts), expectedAudioPts(first));
  assert.ok(r.audio[0]!.pts >= 0 && r.audio[0]!.pts < 960, "audio starts with the video, within one Opus frame");
  assert.ok(r.keyframeRequestsAt.length >= 1 && r.keyframeRequestsAt[0]! < ms(first), "asked for a keyframe at the start");
  assert.ok(r.info.audioFramesDropped > 0);
  await decodes(r.file);
});

test("a long GOP: keyframes are asked for once a fragment has run fragmentMs, at most every 500 ms", async () => {
  const long = await loadMedia(await makeRecordFixture(tmp, "long-gop.mp4", { seconds: 4, gop: 90 }));
  const saved = { media, rtp };
  media = long;
  rtp = toRtp(long);
  try {
    const r = await record({ fragmentMs: 1000 });
    const t = r.keyframeRequestsAt;
    // Keyframes at 0 and 3 s: requests from 1 s on, every 500 ms until the 3 s keyframe, then again from 4 s (the end).
    assert.ok(t.length >= 3, `requests at ${t.join(", ")}`);
    assert.ok(t[0]! >= 1000 && t[0]! < 1000 + 2 * (1000 / 30), `first request at ${t[0]} ms`);
    for (let k = 1; k < t.length; k++) assert.ok(t[k]! - t[k - 1]! >= 500, `requests ${t[k - 1]} and ${t[k]} at least 500 ms apart`);
    assert.ok(t.every((x) => x < 3000 || x >= 4000), "none right after the keyframe at 3 s");
    assert.equal(r.video.length, long.video.length);
  } finally {
    ({ media, rtp } = saved);
  }
});

test("audio that stops while video goes on is filled with silence, so fragments keep reaching the disk", async () => {
  const stopMs = 1500;
  const events = rtp.events.filter((e) => e.kind === "video" || e.mediaMs < stopMs);
  let fragmentsBeforeFinish = 0;
  let recording = true;
  const r = await record({
    events,
    onFragment: () => {
      if (recording) fragmentsBeforeFinish++;
    },
    beforePush: (_e, i) => {
      if (i === events.length - 1) recording = false;
    },
  });
  assert.ok(fragmentsBeforeFinish >= 3, `${fragmentsBeforeFinish} fragments written while recording`);
  assert.ok(r.info.silenceFrames > 0);
  // Real audio up to the stop, then silence up to about the video's end, gapless.
  const realCount = media.audio.filter((s) => (s.dts * 1000) / media.audioTimescale < stopMs).length;
  assert.equal(r.info.audioFrames, realCount);
  assert.equal(r.audio.length, realCount + r.info.silenceFrames);
  r.audio.forEach((p, k) => assert.equal(p.pts, k * 960, `audio packet ${k} follows on`));
  const videoEnd = r.video.at(-1)!.pts / 90;
  assert.ok(r.audio.at(-1)!.pts / 48 > videoEnd - 500, "silence reaches near the end of the video");
  await decodes(r.file);
});

test("no video at all: finish still resolves, with 0 frames", async () => {
  const r = await record({ events: rtp.events.filter((e) => e.kind === "audio") });
  assert.equal(r.info.videoFrames, 0);
  assert.equal(r.info.audioFrames, 0);
  assert.equal(r.info.error, undefined);
  assert.equal(r.video.length, 0);
});

test("a write error (ENOSPC mid-write): onError once, pushes ignored, the file keeps every whole fragment", async () => {
  let allowed = 0;
  let failed = 0;
  const openFile = async (p: string): Promise<RecordFileHandle> => {
    const h = await fs.open(p, "w");
    return {
      write: async (buf, off, len, pos) => {
        // The third fragment's write: half of it lands, then the disk is full.
        if (++allowed === 4) {
          failed++;
          await h.write(buf, off, Math.floor(len / 2), pos);
          throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        }
        if (allowed > 4) throw new Error("written after the failure");
        return h.write(buf, off, len, pos);
      },
      truncate: (len) => h.truncate(len),
      sync: () => h.sync(),
      close: () => h.close(),
    };
  };
  const r = await record({ openFile });
  assert.equal(failed, 1);
  assert.equal(r.errors.length, 1, "onError called once");
  assert.match(r.errors[0]!.message, /ENOSPC/);
  assert.equal(r.info.error, r.errors[0]);
  // Two fragments made it (the ftyp was the first write); the stats stop there.
  assert.equal(r.fragments.length, 2);
  assert.equal((await fs.stat(r.file)).size, r.info.bytes, "the half-written fragment is cut off");
  assert.equal(r.info.bytes, r.fragments.at(-1)!.bytes);
  assert.equal(r.video.length, r.fragments.at(-1)!.videoSamples);
  assert.equal(r.audio.length, r.fragments.at(-1)!.audioSamples);
  assert.ok(r.info.videoFrames < media.video.length, "pushes after the error were ignored");
  assert.deepEqual(r.video.map((p) => p.pts), expectedVideoPts(() => true).slice(0, r.video.length));
  await decodes(r.file);
});

test("a real ENOSPC (/dev/full) and a file that cannot be opened both end in one onError and a finish that resolves", async () => {
  for (const target of ["/dev/full", path.join(tmp, "in.mp4", "not-a-dir.mp4")]) {
    const errors: Error[] = [];
    let now = T0;
    const rec = createFmp4Recorder({ path: target, tracks: { video: true, audio: { channels: 2 } }, now: () => now });
    rec.onError = (err) => errors.push(err);
    rec.senderReport("video", rtp.videoSr.ntp, rtp.videoSr.rtp);
    rec.senderReport("audio", rtp.audioSr.ntp, rtp.audioSr.rtp);
    for (const e of rtp.events) {
      now = T0 + e.mediaMs;
      if (e.kind === "video") rec.pushVideo(e.packet);
      else rec.pushAudio(e.packet);
      if (e.kind === "video" && e.packet.header.marker) await rec.whenIdle();
    }
    const info = await rec.finish();
    assert.equal(errors.length, 1, `${target}: one onError`);
    assert.equal(info.error, errors[0]);
    assert.match(String((errors[0] as NodeJS.ErrnoException).code), target === "/dev/full" ? /ENOSPC/ : /ENOTDIR|EEXIST/);
    assert.equal(info.bytes, 0);
    assert.ok(info.videoFrames < media.video.length, "pushes after the error were ignored");
  }
});

test("SIGKILL mid-recording: the file holds every fragment that was complete before the kill", async () => {
  const fixture = await makeRecordFixture(tmp, "kill.mp4", { seconds: 3, gop: 15 });
  const out = path.join(tmp, "killed.mp4");
  const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO, "test/helpers/record-child.ts"), fixture, out, "500"], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let last: FragmentInfo | undefined;
  let done = false;
  let buffered = "";
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === "done") done = true;
      if (!line.startsWith("fragment ")) continue;
      last = JSON.parse(line.slice(9)) as FragmentInfo;
      if (last.fragments >= 3) child.kill("SIGKILL");
    }
  });
  const signal = await exited;
  assert.equal(signal, "SIGKILL");
  assert.equal(done, false, "killed before it finished");
  assert.ok(last && last.fragments >= 3);
  const size = (await fs.stat(out)).size;
  assert.ok(size >= last.bytes, `file ${size} bytes, ${last.bytes} reported on disk`);
  const probe = await probePackets(out);
  assert.deepEqual(probe.streams.map((s) => s.codecName), ["h264", "opus"]);
  const video = probe.packets.filter((p) => p.codecType === "video");
  const audio = probe.packets.filter((p) => p.codecType === "audio");
  assert.ok(video.length >= last.videoSamples, `${video.length} video packets, ${last.videoSamples} reported`);
  assert.ok(audio.length >= last.audioSamples, `${audio.length} audio packets, ${last.audioSamples} reported`);
  assert.ok(last.videoSamples >= 30, "at least three 0.5 s fragments of 30 fps video");
});

test("rtp-clock: 32-bit timestamps unwrap both ways around the wrap, NTP converts to Unix ms and back", async () => {
  const { RtpTimestampUnwrapper, ntpToUnixMs, unixMsToNtp } = await import("../../sidecar/src/record/rtp-clock.ts");
  const u = new RtpTimestampUnwrapper();
  const seq = [0xffff_f000, 0xffff_ff00, 0x0000_0100, 0xffff_fff0 /* reordered, before the wrap */, 0x0000_2000];
  assert.deepEqual(seq.map((t) => u.unwrap(t)), [0xffff_f000, 0xffff_ff00, 2 ** 32 + 0x100, 0xffff_fff0, 2 ** 32 + 0x2000]);
  const ms = 1_750_000_123_456.5;
  assert.ok(Math.abs(ntpToUnixMs(unixMsToNtp(ms)) - ms) < 0.001);
  // 1 Jan 1970 is NTP second 2208988800; era 1 (after Feb 2036) wraps the seconds field.
  assert.equal(ntpToUnixMs(2_208_988_800n << 32n), 0);
  assert.equal(ntpToUnixMs(1n << 32n), (2 ** 32 + 1 - 2_208_988_800) * 1000);
});
