#!/usr/bin/env bash
# deps.sh — install what weft needs from Debian's packages, only if missing.
# Sourced by run-tests and run-benchmarks. Needs root (or sudo) when
# something is missing; prints what it installs.
weft_install_deps() {
    local want=("$@") missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "weft: installing ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

WEFT_BUILD_DEPS=(gcc g++ make cmake ninja-build pkg-config liburing-dev libjemalloc-dev libcriterion-dev)
