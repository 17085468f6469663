#!/usr/bin/env bash
# Installs what SAPIEN needs to render without a GPU: the Vulkan loader and Mesa's CPU driver (lavapipe) of
# version >= 24.3. On Debian 12 the stock Mesa (22.3) is too old, so the driver comes from the distribution's own
# bookworm-backports suite, on the same mirror the machine already uses. Safe to run more than once.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo bash $0)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# scripts/setup.sh passes its apt-get wrapper that waits while another apt/dpkg process holds the package lock; run
# on its own, apt-get still waits for the dpkg lock (not for the package-lists lock of `apt-get update`).
apt_get() {
  if [ -n "${APT_GET:-}" ]; then bash "$APT_GET" "$@"; else apt-get -o "DPkg::Lock::Timeout=${APT_LOCK_WAIT:-600}" "$@"; fi
}
. /etc/os-release
pkgs="libvulkan1 mesa-vulkan-drivers"
target=()
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Reuse the mirror the machine is configured with rather than naming one here.
    uri=$(grep -rhs "^URIs:" /etc/apt/sources.list.d/*.sources | grep -v security | head -n1 | awk '{print $2}')
    [ -n "$uri" ] || uri=$(grep -hs "^deb " /etc/apt/sources.list | grep -v security | head -n1 | awk '{print $2}')
    [ -n "$uri" ] || { echo "cannot find the Debian mirror in /etc/apt; add bookworm-backports by hand" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  target=(-t bookworm-backports)
fi
apt_get update -q
apt_get install -y -q --no-install-recommends "${target[@]}" $pkgs
echo "Vulkan loader and CPU driver installed."
