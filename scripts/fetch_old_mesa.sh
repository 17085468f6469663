#!/usr/bin/env bash
# Fetch Debian 12's stock Mesa CPU Vulkan driver (22.3, too old for SAPIEN on its own) into a private folder and
# print the path of an ICD manifest pointing at it. The tests use it to render through the compatibility layer
# and compare with the system's newer driver. Nothing is installed system-wide. Debian 12 only.
set -euo pipefail
out="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/mesa-stock}"
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "stock-Mesa fetch is for Debian 12 (bookworm); this is ${PRETTY_NAME:-unknown}" >&2
  exit 1
fi
lib="$out/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
if [ ! -f "$lib" ]; then
  mkdir -p "$out"
  (cd "$out" && apt-get download -q mesa-vulkan-drivers/bookworm >/dev/null 2>&1 && dpkg -x mesa-vulkan-drivers_*.deb root)
fi
icd="$out/lvp_icd_stock.json"
printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.1.230"}}\n' "$lib" > "$icd"
echo "$icd"
