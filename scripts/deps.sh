#!/usr/bin/env bash
# Installs the Debian 12 packages gstcapture needs to build, test and run,
# and only those that are missing. Uses apt-get as root, sudo otherwise.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail

PACKAGES=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-rtsp
  libswscale-dev libavutil-dev  # the swsconvert element (internal/gsthost/swsconvert.c)
  libgstrtspserver-1.0-dev redis-server
  prometheus  # prometheus and promtool: e2e tests of monitoring/ (alert rules, dashboard queries)
  ffmpeg      # ffprobe/ffmpeg as independent RTSP clients in camsim tests; the comparison in make bench
  python3-numpy python3-redis python3-pytest python3-venv python3-pip python3-setuptools python3-wheel  # clients/python: make python-test
  chromium    # the operator console's browser tests (e2e TestConsole*, driven by chromedp)
  python3-pil  # clients/python decodes JPEG frames with it (optional for users; make python-test checks the decoding)
)
PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "deps: installing with apt-get: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
