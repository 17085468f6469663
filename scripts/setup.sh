#!/usr/bin/env bash
# One-time set-up on a Debian/Ubuntu machine: system packages (Vulkan loader + a CPU Vulkan driver new enough for
# SAPIEN), a virtual environment in .venv, and the package with its test dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-dev
fi
$SUDO bash vla_ood_envs/runtime/install_vulkan.sh
# A C compiler and the Vulkan headers build the compatibility layer for old CPU drivers (tests render through it).
if ! { command -v cc >/dev/null && [ -f /usr/include/vulkan/vk_layer.h ]; }; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc libc6-dev libvulkan-dev
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
