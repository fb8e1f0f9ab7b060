#!/usr/bin/env bash
# Set up everything tfc needs on a Debian/Ubuntu machine (as root) or an existing Python.
# Idempotent: it installs only what is missing, so running it twice is cheap.
#
#   bash scripts/bootstrap.sh     # prints the python to use (and only that) on stdout
#   export PATH="$(dirname "$(bash scripts/bootstrap.sh)"):$PATH"   # then `tfc`, `python3` are it
#
# Toolchain: gcc + make (host builds, tests), arm-none-eabi-gcc + newlib (Cortex-M7 builds).
# Python: `pip install -e '.[dev]'` into the current python3 when pip may install there, else into
# a .venv next to this repo (created on first use).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

missing_pkgs=()
need() {  # need COMMAND DEBIAN-PACKAGE...
    command -v "$1" >/dev/null 2>&1 || missing_pkgs+=("${@:2}")
}
need gcc gcc
need make make
need arm-none-eabi-gcc gcc-arm-none-eabi libnewlib-arm-none-eabi
need python3 python3 python3-pip python3-venv
# newlib is a separate package: arm-none-eabi-gcc alone cannot link against a C library.
if command -v arm-none-eabi-gcc >/dev/null 2>&1 &&
   [ ! -e "$(arm-none-eabi-gcc -print-file-name=libc.a)" ]; then
    missing_pkgs+=(libnewlib-arm-none-eabi)
fi

# The current python3 takes our packages when it is a venv, or when its site-packages is writable
# and the distro has not marked it externally managed (PEP 668, as Debian 12 does).
pip_may_install_into() {
    "$1" - <<'PY' >/dev/null 2>&1
import os, sys, sysconfig
paths = sysconfig.get_paths()
managed = os.path.exists(os.path.join(paths["stdlib"], "EXTERNALLY-MANAGED"))
writable = os.access(paths["purelib"], os.W_OK)
sys.exit(0 if sys.prefix != sys.base_prefix or (writable and not managed) else 1)
PY
}
if command -v python3 >/dev/null 2>&1; then
    if pip_may_install_into python3; then
        python3 -m pip --version >/dev/null 2>&1 || missing_pkgs+=(python3-pip)
    elif [ ! -x "$repo/.venv/bin/python" ]; then
        python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing_pkgs+=(python3-venv)
    fi
fi

if [ ${#missing_pkgs[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: please install: ${missing_pkgs[*]}" >&2
        exit 1
    fi
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "bootstrap: installing ${missing_pkgs[*]}" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing_pkgs[@]}" >&2
fi

# Pick the interpreter: the current python3 if pip may install into it, else a .venv.
python="$(command -v python3)"
if ! pip_may_install_into python3; then
    if [ ! -x "$repo/.venv/bin/python" ]; then
        echo "bootstrap: creating $repo/.venv" >&2
        "$python" -m venv "$repo/.venv" >&2
    fi
    python="$repo/.venv/bin/python"
fi

# Skip pip when tfc and the dev tools already import (a re-run, or a prepared machine).
if ! "$python" -c "import tfc, pytest, hypothesis, filecheck, xdist, torch, onnxscript" >/dev/null 2>&1 ||
   ! "$python" -m pip show -q tfc >/dev/null 2>&1; then
    echo "bootstrap: pip install -e '.[dev]' with $python" >&2
    "$python" -m pip install -q -e "$repo[dev]" >&2
fi

echo "$python"
