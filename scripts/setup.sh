#!/usr/bin/env bash
# Idempotent set-up shared by the README commands and CI: a virtualenv in .venv with the project
# and its test tools installed, and pyzmq built from source against the system libzmq, because
# the pyzmq wheels bundle a libzmq without OpenPGM and the epgm data plane needs it. As root with
# apt-get it installs what that build and the network-namespace tests need (libzmq3-dev,
# pkg-config, iptables, iproute2, a compiler if missing). Elsewhere it says in one line why epgm
# will be unavailable and goes on with the wheel. Fast on a prepared machine: stamps, and one
# `zmq.has("pgm")` check. Ends with one line saying whether PGM is available.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VPY=.venv/bin/python
APT_PACKAGES=(libzmq3-dev pkg-config iptables iproute2)
PYZMQ_SPEC='pyzmq>=25'
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

# apt-get install "$@" quietly; `apt-get update` first only when the package lists are empty, or
# after a failed install. Output goes to .venv/apt.log, shown on failure.
apt_install() {
    local log=.venv/apt.log apt=(apt-get -qq -o DPkg::Lock::Timeout=120)
    : >"$log"
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        "${apt[@]}" update >>"$log" 2>&1 || true
    fi
    if ! "${apt[@]}" install -y --no-install-recommends "$@" >>"$log" 2>&1; then
        "${apt[@]}" update >>"$log" 2>&1 || true
        if ! "${apt[@]}" install -y --no-install-recommends "$@" >>"$log" 2>&1; then
            tail -n 20 "$log" >&2
            return 1
        fi
    fi
}

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || echo "$p"
    done
}

if [ ! -x "$VPY" ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        # Debian's python3 has no ensurepip without python3-venv.
        rm -rf .venv
        can_apt && mkdir -p .venv && apt_install python3-venv && rm -rf .venv
        "$PY" -m venv .venv
    fi
fi

# --- system packages (root + apt only) ----------------------------------------------------------
pgm_reason=""
if can_apt; then
    mapfile -t need < <(missing_packages "${APT_PACKAGES[@]}")
    command -v c++ >/dev/null 2>&1 || need+=(g++)
    # A compiler needs Python.h; pyenv/python.org builds ship it, Debian's python3 does not.
    if ! "$VPY" -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)'
    then
        need+=(python3-dev)
    fi
    if [ "${#need[@]}" -gt 0 ]; then
        echo "setup: apt-get install ${need[*]}"
        apt_install "${need[@]}" || pgm_reason="apt-get install ${need[*]} failed (.venv/apt.log)"
    fi
elif [ "$(id -u)" != 0 ]; then
    pgm_reason="not root, so apt-get cannot install libzmq3-dev"
else
    pgm_reason="no apt-get to install libzmq3-dev"
fi

has_pgm() { "$VPY" -c 'import sys, zmq; sys.exit(0 if zmq.has("pgm") else 1)' 2>/dev/null; }

# --- pyzmq from source against the system libzmq ------------------------------------------------
# A build that gave no PGM is not retried on every run (the stamp records the libzmq version it
# was tried with); a failed build leaves the wheel in place.
pgm_stamp=.venv/.groupcomm-pgm-attempt
pip_source=()
if pkg-config --exists libzmq 2>/dev/null; then
    libzmq=$(pkg-config --modversion libzmq)
    pip_source=(--no-binary pyzmq)
    if has_pgm; then
        :
    elif [ "$(cat "$pgm_stamp" 2>/dev/null)" = "$libzmq" ]; then
        pgm_reason="an earlier pyzmq build against libzmq $libzmq gave no PGM (rm $pgm_stamp to retry)"
    else
        echo "setup: building pyzmq from source against the system libzmq $libzmq"
        "$VPY" -m pip install --quiet --upgrade pip
        if PYZMQ_NO_BUNDLE=1 "$VPY" -m pip install --quiet --no-binary pyzmq --no-cache-dir \
            --force-reinstall --no-deps "$PYZMQ_SPEC" >.venv/pyzmq-build.log 2>&1; then
            pgm_reason="the system libzmq $libzmq has no PGM support"
        else
            pgm_reason="building pyzmq from source failed (.venv/pyzmq-build.log)"
            "$VPY" -m pip install --quiet --force-reinstall --no-deps "$PYZMQ_SPEC"
        fi
        has_pgm || echo "$libzmq" >"$pgm_stamp"
    fi
else
    pgm_reason="${pgm_reason:-no system libzmq (libzmq3-dev) to build pyzmq against}"
fi

# --- the project ----------------------------------------------------------------------------------
# The pyzmq above already satisfies the requirement, so pip keeps it; --no-binary makes sure a
# future requirement change rebuilds it from source instead of swapping in a wheel.
stamp=.venv/.groupcomm-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VPY" -m pip install --quiet --upgrade pip
    PYZMQ_NO_BUNDLE=1 "$VPY" -m pip install --quiet "${pip_source[@]}" -e '.[test,bench]'
    touch "$stamp"
fi

if line=$("$VPY" -c 'import sys, zmq
print(f"libzmq {zmq.zmq_version()}, pyzmq {zmq.__version__}")
sys.exit(0 if zmq.has("pgm") else 1)' 2>/dev/null); then
    echo "setup: PGM available ($line)"
else
    echo "setup: PGM unavailable, the epgm transport will not work: ${pgm_reason:-unknown reason}"
fi

# --- the compiled hot path ------------------------------------------------------------------------
# mypyc builds of the modules a daemon turn runs through (groupcomm/compiled.py); rebuilt only when
# the source changed. Without mypy or a compiler the source runs (GROUPCOMM_REQUIRE_COMPILED=1:
# an error instead).
"$VPY" scripts/compile.py
