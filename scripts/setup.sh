#!/usr/bin/env bash
# Install everything gemma-edge needs, idempotently: a Python 3.11 virtualenv with the pinned packages,
# Debian's chromium and adb where missing, a Vulkan driver (lavapipe) where there is none, and the web demo's
# pinned npm packages.
# Re-running it on a set-up machine takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "gemma-edge needs Python 3.11"' \
  || { echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.gemma-edge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages (first time: a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first and alone, so pip takes the pinned CPU wheel where one is provided (PIP_FIND_LINKS).
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi

need_apt=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v adb >/dev/null 2>&1 || need_apt+=(adb)
# Real English text for the calibrated int4 recipes (GPTQ, OSCAR) and verify's held-out perplexity
# (sdk_build/convert/text_corpus.py): the Python 3.11 documentation's sources, PSF License.
[ -d /usr/share/doc/python3.11/html/_sources ] || need_apt+=(python3.11-doc)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} from Debian"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (no apt-get here); browser and adb tests will be skipped"
  fi
fi

# A Vulkan driver for LiteRT-LM's GPU engine (`sdk-build verify --backend gpu`, `lab gpu`): lavapipe, Mesa's
# software Vulkan driver, where the machine has none. Dawn (the engine's WebGPU layer) refuses the lavapipe of
# Debian 12's own Mesa 22.3 ("shaderUniform*ArrayDynamicIndexing required"); bookworm-backports' Mesa 25 works.
# A machine whose Vulkan already offers a device (a real GPU) is left alone.
if ! .venv/bin/python -m sdk_build.gpu.vulkan >/dev/null 2>&1 || ! dpkg --compare-versions \
     "$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo 0)" ge 24; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if .venv/bin/python -m sdk_build.gpu.vulkan 2>/dev/null | grep -qv "software"; then
    :  # a hardware Vulkan device is there: nothing to install
  elif command -v apt-get >/dev/null 2>&1; then
    codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
    suite=()
    if [ "$codename" = bookworm ]; then
      list=/etc/apt/sources.list.d/gemma-edge-bookworm-backports.list
      if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
      fi
      suite=(-t bookworm-backports)
    fi
    echo "setup: installing lavapipe (Mesa's software Vulkan driver${suite:+, from bookworm-backports})"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${suite[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    echo "setup: please install a Vulkan driver (Mesa's lavapipe, 24 or newer); GPU-engine checks will refuse to run"
  fi
  .venv/bin/python -m sdk_build.gpu.vulkan || echo "setup: warning: still no usable Vulkan device"
fi

# Every package the lock pins (not only the first one ever added): a checkout that already had tasks-genai still
# gets @litert-lm/core and @litertjs/wasm-utils when the lock gains them.
npm_missing=""
if [ -f web_demo/package-lock.json ]; then
  for pkg in $(grep -o '"node_modules/[^"]*"' web_demo/package-lock.json | tr -d '"'); do
    [ -f "web_demo/$pkg/package.json" ] || npm_missing="$npm_missing ${pkg#node_modules/}"
  done
fi
if [ -n "$npm_missing" ]; then
  command -v npm >/dev/null 2>&1 || { echo "setup: npm is required for the web demo (install Node.js 20+)"; exit 1; }
  echo "setup: installing the web demo's npm packages (pinned by package-lock.json; missing:$npm_missing)"
  (cd web_demo && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ready"
