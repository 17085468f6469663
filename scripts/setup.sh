#!/usr/bin/env bash
# One-time set-up on a Debian/Ubuntu machine: system packages (Vulkan loader + a CPU Vulkan driver new enough for
# SAPIEN), a virtual environment in .venv, and the package with its test dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PYTHON="${PYTHON:-python3}"
# apt-get that waits (up to APT_LOCK_WAIT s, default 600) while another apt/dpkg process holds the package lock,
# e.g. unattended-upgrades on a freshly booted machine, instead of failing at once.
APT_GET="$PWD/scripts/apt-get-wait"
APT=(env DEBIAN_FRONTEND=noninteractive "APT_LOCK_WAIT=${APT_LOCK_WAIT:-600}" bash "$APT_GET")

if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
  $SUDO "${APT[@]}" update -q
  $SUDO "${APT[@]}" install -y -q python3-venv python3-dev
fi
$SUDO env "APT_GET=$APT_GET" "APT_LOCK_WAIT=${APT_LOCK_WAIT:-600}" bash vla_ood_envs/runtime/install_vulkan.sh
# A C compiler and the Vulkan headers build the compatibility layer for old CPU drivers (tests render through it).
if ! { command -v cc >/dev/null && [ -f /usr/include/vulkan/vk_layer.h ]; }; then
  $SUDO "${APT[@]}" install -y -q --no-install-recommends gcc libc6-dev libvulkan-dev
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if ! command -v nvidia-smi >/dev/null 2>&1; then
  # No NVIDIA GPU: install the CPU build of torch first, so the package's `torch>=2.3` is already satisfied and
  # pip never downloads a multi-GB CUDA wheel.
  "${PIP[@]}" "torch==2.13.0"
fi
"${PIP[@]}" -e ".[dev]"
echo "set-up done: activate with 'source .venv/bin/activate', check with 'vla-ood doctor'"
