#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine (CPU torch pinned: no CUDA download).
set -euo pipefail
cd "$(dirname "$0")"
# open3d needs libusb (and OpenMP) from the system; install them where we can (Debian/Ubuntu as root)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! ldconfig -p | grep -q libusb-1.0.so.0; then
    apt-get update -qq && apt-get install -y -qq libusb-1.0-0 libgomp1 >/dev/null
  fi
fi
python -m pip install -q --disable-pip-version-check -r requirements.txt -e .
