#!/usr/bin/env bash
# benchmarks/peers/build.sh — build the peer baselines into build/peers/:
#   build/peers/boost-switch   Boost.Context raw fiber jump (boost_switch.cpp)
#   build/peers/tokio-bench    Tokio 1.24 counterparts of weft-bench (tokio/)
#   build/peers/tokio-echo     Tokio 1.24 echo server (tokio_echo/)
#   build/peers/uring-echo     hand-written single-thread liburing echo server
#                              (uring_echo.c)
# Everything comes from Debian packages, offline: missing packages are
# installed with apt-get (only when dpkg-query says they are missing); the
# Rust crates build with Debian's cargo/rustc against /usr/share/cargo/registry.
#
#   benchmarks/peers/build.sh [boost|tokio|uring ...]    (default: all three;
#                                   tokio = tokio-bench and tokio-echo)
#
# Exit status: 0 when every requested peer was built; 1 (with a "peers:" line
# on stderr saying which and why) when a toolchain or package cannot be had or
# a build fails, so that callers can skip those peers. A peer that did build is
# left in place either way.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/build/peers"

want_boost=0 want_tokio=0 want_uring=0
if [ $# -eq 0 ]; then
    want_boost=1 want_tokio=1 want_uring=1
fi
for a in "$@"; do
    case "$a" in
        boost) want_boost=1 ;;
        tokio) want_tokio=1 ;;
        uring) want_uring=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "peers: unknown argument '$a' (boost, tokio, uring)" >&2; exit 2 ;;
    esac
done

say() { echo "peers: $*" >&2; }

# Is a Debian package (real, or virtual via the Provides of an installed one)
# installed?
pkg_installed() {
    local p="$1" st
    st="$(dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null)" || st=
    case "$st" in *"install ok installed"*) return 0 ;; esac
    # A virtual package such as librust-tokio+rt-multi-thread-dev: look for it
    # in the Provides of the installed packages.
    dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null |
        awk -F'|' -v want="$p" '
            $1 == "install ok installed" {
                n = split($2, a, ",")
                for (i = 1; i <= n; i++) {
                    sub(/^ +/, "", a[i]); sub(/ .*/, "", a[i])
                    if (a[i] == want) found = 1
                }
            }
            END { exit !found }'
}

apt_updated=0
# ensure_pkgs PKG... — install those that are missing; 1 if that fails.
ensure_pkgs() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing Debian packages (${missing[*]}) and no apt-get to install them"
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            say "missing Debian packages (${missing[*]}); not root and no sudo to install them"
            return 1
        fi
    fi
    say "installing ${missing[*]}"
    if [ $apt_updated -eq 0 ]; then
        "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || true
        apt_updated=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >"$OUT/apt.log" 2>&1; then
        say "apt-get install ${missing[*]} failed (see $OUT/apt.log)"
        return 1
    fi
    for p in "${missing[@]}"; do
        pkg_installed "$p" || { say "package $p still missing after apt-get"; return 1; }
    done
}

mkdir -p "$OUT"
status=0

# --- Boost.Context -----------------------------------------------------------
build_boost() {
    ensure_pkgs g++ libboost-context-dev || return 1
    local cxx=g++
    command -v "$cxx" >/dev/null 2>&1 || { say "no C++ compiler (g++)"; return 1; }
    "$cxx" -std=c++17 -O2 -g -Wall -Wextra -o "$OUT/boost-switch.tmp" \
        "$HERE/boost_switch.cpp" -lboost_context || { say "boost-switch: compile failed"; return 1; }
    mv -f "$OUT/boost-switch.tmp" "$OUT/boost-switch"
    echo "built $OUT/boost-switch"
}

# --- Tokio -------------------------------------------------------------------
# Debian's cargo and rustc (/usr/bin), never a rustup toolchain that may come
# first in PATH: Debian's crate registry is packaged for Debian's rustc.
tokio_toolchain() {
    # librust-tokio-dev provides the features as virtual packages
    # (librust-tokio+rt-multi-thread-dev, librust-tokio+sync-dev, ...).
    ensure_pkgs cargo rustc librust-tokio-dev || return 1
    [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || { say "Debian's cargo/rustc not in /usr/bin"; return 1; }
    [ -d /usr/share/cargo/registry ] || { say "no Debian crate registry at /usr/share/cargo/registry"; return 1; }
}

# build_crate DIR BIN FEATURE... — cargo build benchmarks/peers/DIR (whose
# binary is BIN, needing tokio's FEATUREs) into build/peers/BIN.
build_crate() {
    local dir="$1" bin="$2" p
    shift 2
    for p in "$@"; do
        pkg_installed "librust-tokio+$p-dev" ||
            { say "Debian's tokio lacks feature package librust-tokio+$p-dev"; return 1; }
    done
    # Build from a copy under build/peers so that Cargo.lock and target/ never
    # land in the source tree; the crate's .cargo/config.toml (Debian registry,
    # offline) travels with it.
    local src="$OUT/$dir-src"
    rm -rf "$src.new" && mkdir -p "$src.new" || return 1
    cp -pR "$HERE/$dir/Cargo.toml" "$HERE/$dir/src" "$HERE/$dir/.cargo" "$src.new/" || return 1
    [ -f "$src/Cargo.lock" ] && cp "$src/Cargo.lock" "$src.new/"
    rm -rf "$src" && mv "$src.new" "$src"

    mkdir -p "$OUT/cargo-home"
    if ! (cd "$src" && CARGO_HOME="$OUT/cargo-home" CARGO_TARGET_DIR="$OUT/$dir-target" \
            RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTUP_TOOLCHAIN= \
            /usr/bin/cargo build --release --offline -q); then
        say "$bin: cargo build failed (Debian cargo $(/usr/bin/cargo --version 2>/dev/null | cut -d' ' -f2))"
        return 1
    fi
    cp -f "$OUT/$dir-target/release/$bin" "$OUT/$bin.tmp" &&
        mv -f "$OUT/$bin.tmp" "$OUT/$bin" || return 1
    echo "built $OUT/$bin"
}

# --- liburing echo loop --------------------------------------------------------
build_uring() {
    ensure_pkgs gcc liburing-dev || return 1
    local cc="${CC:-gcc}"
    command -v "$cc" >/dev/null 2>&1 || { say "no C compiler ($cc)"; return 1; }
    "$cc" -std=c11 -O2 -g -Wall -Wextra -Werror -o "$OUT/uring-echo.tmp" \
        "$HERE/uring_echo.c" -luring || { say "uring-echo: compile failed"; return 1; }
    mv -f "$OUT/uring-echo.tmp" "$OUT/uring-echo"
    echo "built $OUT/uring-echo"
}

if [ $want_boost -eq 1 ]; then
    build_boost || { say "boost-switch NOT built: skip the Boost.Context peer"; status=1; }
fi
if [ $want_tokio -eq 1 ]; then
    if tokio_toolchain; then
        build_crate tokio tokio-bench rt rt-multi-thread sync ||
            { say "tokio-bench NOT built: skip the Tokio peer"; status=1; }
        build_crate tokio_echo tokio-echo rt net io-util ||
            { say "tokio-echo NOT built: skip the Tokio echo peer"; status=1; }
    else
        say "tokio-bench and tokio-echo NOT built: skip the Tokio peers"; status=1
    fi
fi
if [ $want_uring -eq 1 ]; then
    build_uring || { say "uring-echo NOT built: skip the liburing echo peer"; status=1; }
fi
exit $status
