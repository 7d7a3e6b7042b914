#!/usr/bin/env bash
# Run the device lab's GPU surface on a bare GPU host: one that has Python 3 (with numpy) and a GPU driver but none
# of gemma-edge's dependencies and no package index (a lab machine, a lent cloud GPU).
#
#   bash scripts/gpu_host.sh CARRY PACKS OUT [lab options...]
#
# CARRY holds what the host lacks: litert_lm/ (the package's .py files and liblitert-lm.so or liblitert-lm.so.xz,
# which needs only libc) and Debian's .debs of the Vulkan loader (libvulkan1) and of the GL dispatch libraries
# NVIDIA's Vulkan driver links (libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0), unpacked into /. PACKS is a folder made by
# `python -m device_tests.weightless pack` (random-weight bundles as structure + seed) and/or real bundles with
# their manifest.json. Reports go to OUT. Lab options (default: --runs 3 --warmup 1 --prefill 512 --decode 128)
# are passed to `python -m device_tests.lab gpu`.
set -euo pipefail
carry=$1 packs=$2 out=$3; shift 3
cd "$(dirname "$0")/.."
site=/tmp/gemma-edge-site; mkdir -p "$site/litert_lm" "$out"
cp "$carry"/litert_lm/*.py "$site/litert_lm/"
if [ -f "$carry/litert_lm/liblitert-lm.so.xz" ] && [ ! -f "$site/litert_lm/liblitert-lm.so" ]; then
  python3 -c "import lzma,sys; open(sys.argv[2],'wb').write(lzma.decompress(open(sys.argv[1],'rb').read()))" \
    "$carry/litert_lm/liblitert-lm.so.xz" "$site/litert_lm/liblitert-lm.so"
elif [ -f "$carry/litert_lm/liblitert-lm.so" ]; then cp "$carry/litert_lm/liblitert-lm.so" "$site/litert_lm/"; fi
# The Vulkan loader and, for NVIDIA's ICD (libGLX_nvidia), the GL vendor-neutral dispatch libraries.
for deb in "$carry"/*.deb; do [ -f "$deb" ] && dpkg -x "$deb" /; done; ldconfig
# NVIDIA's container images ship the Vulkan ICD outside the loader's search path.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; fi
done
export PYTHONPATH="$site:$PWD" XDG_RUNTIME_DIR=/tmp GEMMA_EDGE_CACHE=/tmp/gemma-edge-cache
python3 -m sdk_build.gpu.vulkan
bundles=/tmp/gemma-edge-bundles
if [ -f "$packs/weightless.json" ]; then python3 -m device_tests.weightless unpack "$packs" "$bundles"; else bundles=$packs; fi
python3 -m device_tests.lab gpu --bundles "$bundles" --report-dir "$out" --no-history \
  ${*:---runs 3 --warmup 1 --prefill 512 --decode 128}
