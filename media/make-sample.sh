#!/usr/bin/env bash
# Regenerates media/sample.mp4: the file the tests and the demo play. Everything in it is chosen for WebRTC in
# browsers: constrained baseline H.264 (no B-frames, which Chromium's WebRTC decoder cannot play), a keyframe every
# second (quick start and seek), AAC-LC that the sidecar transcodes to Opus, and faststart so the moov comes first.
set -euo pipefail

FFMPEG="${FFMPEG:-/usr/bin/ffmpeg}"
[ -x "$FFMPEG" ] || FFMPEG=ffmpeg
OUT="$(cd "$(dirname "$0")" && pwd)/sample.mp4"
TMP="$OUT.tmp.mp4"
trap 'rm -f "$TMP"' EXIT

DURATION=10
# A running clock and frame counter make frozen or skipped frames obvious in the browser.
TEXT="drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6:x=(w-tw)/2:y=h-th-24:text='%{pts\\:hms}  frame %{n}'"

encode() {
  local vf="$1"
  "$FFMPEG" -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=30:duration=$DURATION" \
    -f lavfi -i "sine=frequency=440:beep_factor=2:sample_rate=48000:duration=$DURATION" \
    -map 0:v -map 1:a -vf "$vf" \
    -c:v libx264 -threads:v 1 -profile:v baseline -level:v 3.0 -pix_fmt yuv420p -bf 0 \
    -g 30 -keyint_min 30 -sc_threshold 0 \
    -b:v 900k -maxrate 1000k -bufsize 1000k \
    -c:a aac -b:a 96k -ar 48000 -ac 2 \
    -map_metadata -1 -fflags +bitexact -flags:a +bitexact \
    -movflags +faststart -f mp4 "$TMP"
}

# One encoder thread keeps the output byte-identical between runs (x264 frame threads make rate control racy).
# drawtext needs libfreetype and the DejaVu font; fall back to the bare (still moving) pattern without them.
if ! encode "$TEXT,format=yuv420p" 2>/dev/null; then
  echo "drawtext unavailable; encoding the plain test pattern" >&2
  encode "format=yuv420p"
fi

mv -f "$TMP" "$OUT"
trap - EXIT
echo "wrote $OUT ($(stat -c %s "$OUT") bytes)"
