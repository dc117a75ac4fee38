#!/usr/bin/env bash
# One command for every test: installs what the tests need (Debian chromium, firefox-esr with libopenh264-7 for its
# H.264 plugin, ffmpeg, OpenStack Swift with its S3 API as the real object store the bucket tests start, npm
# packages), then runs the type checks and the unit, integration and browser suites.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# The native media send (sidecar/native) is compiled at npm ci; without cc the sidecar would send from JS, and the
# tests check that the native path is the one in use.
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/firefox-esr ] || need+=(firefox-esr)
# Firefox's H.264 (test/helpers/firefox.ts, h264: true) is Debian's OpenH264 registered as its plugin.
dpkg-query -W -f='${Status}' libopenh264-7 2>/dev/null | grep -q "install ok installed" || need+=(libopenh264-7)
# The bucket tests start their own one-node Swift on loopback (test/helpers/swift.ts); nothing runs as a service.
for s in proxy object container account; do
  [ -x "/usr/bin/swift-$s-server" ] || need+=("swift-$s")
done
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npm test
