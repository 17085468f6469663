"""The process runtime the entry points set up before any env exists: which device SAPIEN renders on
(`device`), the Vulkan probe that answers without SAPIEN (`vulkan_probe`), the compatibility layer for CPU drivers
too old for SAPIEN (`compat`, its C source `compat_layer.c`) and the script that installs a new enough driver
(`install_vulkan.sh`, run by scripts/setup.sh). Nothing here imports the rest of the package.
"""
