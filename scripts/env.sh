# Shared environment for the project's scripts (sourced, not run).
# One target dir outside the clone, so every clone and CI run reuses compiled dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/memtrain-target}"
mkdir -p "$CARGO_TARGET_DIR"
# Software Vulkan (Mesa lavapipe) when no GPU driver is installed: wgpu tests really run on it.
LVP=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
# (mesa-vulkan-drivers also installs Intel/AMD ICDs; they find no device without /dev/dri.)
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$LVP" ] && [ ! -e /dev/nvidia0 ] && ! ls /dev/dri/renderD* >/dev/null 2>&1; then
  export VK_DRIVER_FILES="$LVP"
  export CUBECL_WGPU_DEFAULT_DEVICE="${CUBECL_WGPU_DEFAULT_DEVICE:-Cpu}"
fi
export CUBECL_AUTOTUNE_LEVEL="${CUBECL_AUTOTUNE_LEVEL:-minimal}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
