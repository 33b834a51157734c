#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages via apt, then the virtualenv.
# Called by `make demo` and `make test`; safe to run again (it only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the tests render report.html headless (tests/host_tools/test_report.py).
# python3-dev: Python.h for the C front-end extension (setup.py).
APT_PACKAGES=(gcc make cmake python3-dev gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm valgrind chromium)
PYTHON=${PYTHON:-python3}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing system packages: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "setup: error: missing system packages ${missing[*]} and no root or passwordless sudo." >&2
        echo "setup: install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp -t aedfw-apt.XXXXXX)
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "setup: error: apt-get could not install ${missing[*]} (log: $log)." >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: error: $PYTHON is missing or older than 3.11 (set PYTHON=/path/to/python3.11)." >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Reinstall only when the pinned requirements or the C extension's sources (setup.py builds the
# device's front end into model_dev._aed_frontend) changed.
stamp=.venv/.aedfw-requirements
want=$(cat pyproject.toml constraints.txt setup.py firmware_gen/csrc/aed/src/aed_frontend.c \
    firmware_gen/csrc/aed/include/aed_frontend.h firmware_gen/pyext/*.c \
    firmware_gen/pyext/default/* | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python packages into .venv (pinned by constraints.txt)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
    echo "$want" > "$stamp"
fi
