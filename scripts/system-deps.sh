#!/usr/bin/env bash
# Install the Debian packages the copilot and its tests need, only those missing.
# Idempotent: a second run checks with dpkg and touches nothing.
set -euo pipefail

PACKAGES=(libportaudio2 espeak-ng sox libsox-fmt-all flac pulseaudio pulseaudio-utils libasound2-plugins chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
