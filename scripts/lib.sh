# Shared by scripts/demo and scripts/test: find Pythons, install Debian packages, make venvs.
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where the venvs and the wheel go. KBG_DEV_STATE: kbuildguard refuses KBUILDGUARD_* variables it does
# not know (a misspelt setting is an error), so a KBUILDGUARD_DEV_STATE left exported would stop
# every kbuildguard the scripts run; the old name is still read, then unset.
state=${KBG_DEV_STATE:-${KBUILDGUARD_DEV_STATE:-$repo/.venvs}}
unset KBUILDGUARD_DEV_STATE

say() { printf '\n== %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "this step installs Debian packages: run it as root (sudo $0)" >&2
        exit 1
    fi
}

# apt-get update first, then install only what is missing (idempotent).
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root
    say "apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# A pyenv Python of the given minor version (3.6, 3.13), or the system's python3 for "system".
find_python() {
    local want=$1 root
    if [ "$want" = system ]; then
        command -v python3 && return 0
        echo "no python3 on PATH ($PATH)" >&2
        return 1
    fi
    root=$(pyenv root 2>/dev/null || echo "${HOME:-/nonexistent}/.pyenv")
    for p in "$root"/versions/"$want".*/bin/python; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    command -v "python$want" && return 0
    echo "no Python $want found (pyenv versions, python$want)" >&2
    return 1
}

# require_pythons VERSION...: before anything else, say which of the Pythons a script needs are
# missing and how to get them (pyenv builds any of them; Debian 12 ships 3.11 only), then stop.
require_pythons() {
    local missing=() v
    for v in "$@"; do
        find_python "$v" >/dev/null 2>&1 || missing+=("$v")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    {
        echo "$0 needs Python $* (each as a pyenv version or python3.N on PATH); missing: ${missing[*]}"
        echo "get them with pyenv (https://github.com/pyenv/pyenv#installation), then:"
        for v in "${missing[@]}"; do
            case $v in
                3.6) echo "    pyenv install 3.6.15" ;;
                *) echo "    pyenv install $v" ;;
            esac
        done
        echo "(pyenv builds Python from source: apt-get install build-essential libssl-dev zlib1g-dev"
        echo " libbz2-dev libreadline-dev libsqlite3-dev libffi-dev liblzma-dev first)"
    } >&2
    exit 1
}

# demo_python: Python 3.13 when one is installed (the newest tested), else the system's python3
# (Debian 12: 3.11, with python3-venv for `python3 -m venv`). Prints the version word for
# find_python.
demo_python() {
    if find_python 3.13 >/dev/null 2>&1; then
        echo 3.13
        return 0
    fi
    find_python system >/dev/null || return 1
    # Debian splits ensurepip out of python3: `python3 -m venv` fails without python3-venv
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv >&2
    echo system
}

# The wheel, built once by the newest Python (or by the one named: scripts/demo on a system
# without 3.13): what users install, so that is what the tests test.
build_wheel() {
    local version=${1:-3.13} py build
    py=$(find_python "$version")
    build=$state/build
    # another Python's build venv stays its own (`python -m venv` over another's would mix them)
    [ "$version" = 3.13 ] || build=$state/build-$version
    "$py" -m venv "$build"
    "$build/bin/pip" install -q --disable-pip-version-check "setuptools>=61" wheel
    rm -rf "$state/dist"
    "$build/bin/pip" wheel -q --no-deps --no-build-isolation -w "$state/dist" "$repo"
    ls "$state"/dist/kbuildguard-*.whl
}

# venv VERSION [REQUIREMENTS] [NAME]: a fresh venv with the wheel (and the test tools when a
# requirements file is given), in $state/NAME (default pyVERSION).
make_venv() {
    local version=$1 reqs=${2:-} py venv wheel
    py=$(find_python "$version")
    venv="$state/${3:-py$version}"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    wheel=$(ls "$state"/dist/kbuildguard-*.whl)
    if [ -n "$reqs" ]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" >&2
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" >&2
    echo "$venv"
}

# The system's Debian sources as one-line entries (from deb822 debian.sources, else sources.list),
# so that a private apt state can reuse the same archive for another suite or architecture.
system_sources() {
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        awk 'BEGIN { RS = "" } {
            u = ""; s = ""; c = ""; k = ""
            n = split($0, L, "\n")
            for (i = 1; i <= n; i++) {
                if (L[i] ~ /^URIs:/)       { sub(/^URIs: */, "", L[i]); u = L[i] }
                if (L[i] ~ /^Suites:/)     { sub(/^Suites: */, "", L[i]); s = L[i] }
                if (L[i] ~ /^Components:/) { sub(/^Components: */, "", L[i]); c = L[i] }
                if (L[i] ~ /^Signed-By:/)  { sub(/^Signed-By: */, "", L[i]); k = L[i] }
            }
            m = split(s, S, " ")
            for (j = 1; j <= m; j++) print "deb [signed-by=" k "] " u " " S[j] " " c
        }' /etc/apt/sources.list.d/debian.sources
    else
        grep -E '^deb ' /etc/apt/sources.list
    fi
}

# private_apt DIR ARGS...: apt-get with its own sources (DIR/sources.list), lists and cache, so that
# fetching another suite or architecture never touches the system's apt configuration.
private_apt_opts() {
    local dir=$1
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    printf '%s\n' -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
}

# A copy of the checkout as git would give it, without .venvs, .git and build output: pip before
# 21.3 copies the whole folder it installs from, and later ones build in it (build/, *.egg-info).
copy_checkout() {
    local dest=$1
    rm -rf "$dest" && mkdir -p "$dest"
    tar -C "$repo" --exclude=./.git --exclude=./.venvs --exclude=./build --exclude=./dist --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.hypothesis --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.kbuildguard \
        -cf - . | tar -C "$dest" -xf -
}

# The installed CLI runs, from outside the source tree, and finds its templates.
smoke_installed() {
    local venv=$1 out
    out=$(mktemp -d)
    (cd / && "$venv/bin/kbuildguard" --version && "$venv/bin/kbuildguard" detect --help >/dev/null &&
        "$venv/bin/kbuildguard" init -C "$out/mod" >/dev/null) >&2 || return 1
    [ -s "$out/mod/kbuildguard.toml" ] || { echo "kbuildguard init wrote no kbuildguard.toml" >&2; return 1; }
    rm -rf "$out"
}

# check_source_install VERSION: what a user does on that Python without a wheel from elsewhere, in a
# fresh venv: `pip install CHECKOUT` with the venv's own pip (18.1 on 3.6.15: no PEP 517, it runs
# setup.py), then with pip upgraded as far as that Python goes, `pip wheel CHECKOUT` and
# `pip install kbuildguard-X.tar.gz` (an sdist made by the build venv); the CLI is run after each
# install. Prints the wheel it built, for tests/integration/test_source_install.py. Every step
# returns on failure: `set -e` does not apply inside a function called from $( ) or before ||.
check_source_install() {
    local version=$1 py dir venv pip_max sdist
    local pip=(-m pip -q --disable-pip-version-check)
    py=$(find_python "$version") || return 1
    dir=$state/source-$version
    rm -rf "$dir" && mkdir -p "$dir" && copy_checkout "$dir/src" || return 1
    venv=$dir/venv
    "$py" -m venv "$venv" || return 1
    say "Python $version: pip install a source checkout ($("$venv/bin/python" -m pip --version | cut -d' ' -f1,2))"
    "$venv/bin/python" "${pip[@]}" install "$dir/src" >&2 && smoke_installed "$venv" || return 1
    pip_max=pip
    [ "$version" = 3.6 ] && pip_max="pip<22"  # 21.3.1 is the last pip for 3.6
    "$venv/bin/python" "${pip[@]}" install -U "$pip_max" >&2 || return 1
    say "Python $version: pip wheel a source checkout, pip install an sdist ($("$venv/bin/python" -m pip --version | cut -d' ' -f1,2))"
    "$venv/bin/python" "${pip[@]}" wheel --no-deps -w "$dir/wheel" "$dir/src" >&2 || return 1
    # the sdist as a release would make it: once, by the newest Python
    [ -x "$state/build/bin/python" ] || "$(find_python 3.13)" -m venv "$state/build" || return 1
    "$state/build/bin/python" "${pip[@]}" install "setuptools>=61" wheel build >&2 &&
        copy_checkout "$dir/sdist-src" &&
        "$state/build/bin/python" -m build -q --sdist --no-isolation --outdir "$dir/sdist" "$dir/sdist-src" >&2 || return 1
    sdist=$(ls "$dir"/sdist/kbuildguard-*.tar.gz) || return 1
    "$venv/bin/python" "${pip[@]}" install --force-reinstall --no-deps "$sdist" >&2 && smoke_installed "$venv" || return 1
    ls "$dir"/wheel/kbuildguard-*.whl
}

# clang_kernel: a small kernel built by clang-16 and ld.lld-16 (make LLVM=-16) from Debian's
# linux-source-6.1: tinyconfig plus tests/data/clang-kernel.config (issue 14). Built once per
# inputs (source package version, config fragment, clang/lld/pahole versions) into
# /var/cache/kbuildguard-ci/clang-kernel-KEY, where the whole tree stays (about 1.5 GB: kbuild's
# external-module path needs scripts/, tools/objtool, include/, the Makefiles and vmlinux for module
# BTF; trimming it would test a layout no user has). Older keys are removed. Prints the tree.
clang_kernel() {
    local llvm=16 frag=$repo/tests/data/clang-kernel.config cache=/var/cache/kbuildguard-ci key dir start
    apt_install linux-source-6.1 "clang-$llvm" "lld-$llvm" "llvm-$llvm" flex bison bc libelf-dev libssl-dev dwarves xz-utils >&2
    key=$( { dpkg-query -W -f='${Package} ${Version}\n' linux-source-6.1 "clang-$llvm" "lld-$llvm" "llvm-$llvm" dwarves
             cat "$frag"; } | sha256sum | cut -c1-16)
    dir=$cache/clang-kernel-$key
    if [ -f "$dir/.done" ]; then echo "$dir/linux"; return 0; fi
    need_root
    # measured: 1352 s on 2 cores shared at load 5 (about 6 minutes reported on 2 idle cores)
    say "build a clang-$llvm kernel from linux-source-6.1 into $dir (6 to 25 minutes on 2 cores)"
    for old in "$cache"/clang-kernel-*; do [ -e "$old" ] && [ "$old" != "$dir" ] && rm -rf "$old"; done
    rm -rf "$dir" && mkdir -p "$dir/linux"
    # built where it stays: the tree records absolute paths (auto.conf.cmd, .cmd files)
    tar -C "$dir/linux" --strip-components=1 -xf /usr/src/linux-source-6.1.tar.xz || return 1
    start=$(date +%s)
    (cd "$dir/linux" &&
        make -s LLVM=-$llvm tinyconfig &&
        scripts/kconfig/merge_config.sh -m .config "$frag" >/dev/null &&
        make -s LLVM=-$llvm olddefconfig &&
        make -s LLVM=-$llvm -j"$(nproc)" all) >"$dir/build.log" 2>&1 || {
        tail -30 "$dir/build.log" >&2; echo "the clang kernel build failed: $dir/build.log" >&2; return 1; }
    # every option of the fragment must have survived olddefconfig (a dependency may drop one)
    grep -E '^CONFIG_[A-Z0-9_]+=' "$frag" | while read -r line; do
        grep -qx "$line" "$dir/linux/.config" || { echo "the clang kernel lacks $line" >&2; exit 1; }
    done || return 1
    echo "$(( $(date +%s) - start ))" > "$dir/build-seconds"
    touch "$dir/.done"
    echo "$dir/linux"
}

# gcc_plugins: the test plugin (tests/data/gcc-plugin/kbg_plugin.c) built with gcc-11's and gcc-12's
# plugin headers, into /var/cache/kbuildguard-ci/gcc-plugins/kbg_plugin_gcc-N.so. Built here, before the
# tests, because the apt test removes gcc-11 (and with it gcc-11-plugin-dev). Prints the folder.
gcc_plugins() {
    local dir=/var/cache/kbuildguard-ci/gcc-plugins src=$repo/tests/data/gcc-plugin/kbg_plugin.c cc inc
    apt_install g++-12 gcc-11-plugin-dev gcc-12-plugin-dev >&2
    mkdir -p "$dir"
    for cc in gcc-11 gcc-12; do
        inc=$("$cc" -print-file-name=plugin)/include
        g++-12 -shared -fPIC -fno-rtti -I"$inc" -o "$dir/kbg_plugin_$cc.so.tmp" "$src" &&
            mv "$dir/kbg_plugin_$cc.so.tmp" "$dir/kbg_plugin_$cc.so" || return 1
    done
    echo "$dir"
}

# bookworm_chroot: a clean Debian 12 build chroot, as sbuild would make it, for the kbuildguard .deb
# and a module package built in it with the network cut (tests/integration/test_debian_package.py).
# debootstrap --variant=minbase from the archive this machine uses, then apt inside it installs
# what a module package's Build-Depends and sbuild's build-essential bring (gcc-12, make,
# debhelper, linux-headers-amd64), gcc-11 for the mismatch, and python3; Debian's python3-jinja2,
# python3-distro and python3-packaging are only downloaded (into the chroot's apt cache), so that the
# test installs them, offline, through the .deb's Depends. Made once per package list into
# /var/cache/kbuildguard-ci/chroot-bookworm-KEY (the test mounts it as an overlay's read-only lower
# layer, so it stays clean); older keys are removed. Prints the folder.
bookworm_chroot() {
    local cache=/var/cache/kbuildguard-ci key dir mirror start
    local install=(build-essential gcc-12 gcc-11 make debhelper fakeroot linux-headers-amd64 python3 kmod)
    local download=(python3-jinja2 python3-distro python3-packaging)
    apt_install debootstrap >&2
    mirror=$(system_sources | awk '$0 !~ /security/ { print ($2 ~ /^\[/) ? $3 : $2; exit }')
    key=$( { echo "bookworm $mirror"; printf '%s\n' "${install[@]}" -- "${download[@]}"; } | sha256sum | cut -c1-16)
    dir=$cache/chroot-bookworm-$key
    if [ -f "$dir/.done" ]; then echo "$dir/root"; return 0; fi
    need_root
    say "debootstrap a Debian 12 build chroot into $dir (once; a few minutes)"
    for old in "$cache"/chroot-bookworm-*; do [ -e "$old" ] && [ "$old" != "$dir" ] && rm -rf "$old"; done
    rm -rf "$dir" && mkdir -p "$dir"
    start=$(date +%s)
    debootstrap --variant=minbase bookworm "$dir/root" "$mirror" >"$dir/debootstrap.log" 2>&1 || {
        tail -20 "$dir/debootstrap.log" >&2; echo "debootstrap failed: $dir/debootstrap.log" >&2; return 1; }
    # the same suites as this machine (bookworm-updates, security: the kernel headers' newest ABI)
    system_sources > "$dir/root/etc/apt/sources.list"
    cp /usr/share/keyrings/debian-archive-keyring.gpg "$dir/root/usr/share/keyrings/" 2>/dev/null || true
    unshare -m sh -c '
        mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" &&
        chroot "$1" apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive chroot "$1" apt-get install -y -q --no-install-recommends $2 &&
        DEBIAN_FRONTEND=noninteractive chroot "$1" apt-get install -y -q --no-install-recommends --download-only $3' \
        sh "$dir/root" "${install[*]}" "${download[*]}" >>"$dir/debootstrap.log" 2>&1 || {
        tail -20 "$dir/debootstrap.log" >&2; echo "the chroot's apt-get failed: $dir/debootstrap.log" >&2; return 1; }
    echo "$(( $(date +%s) - start ))" > "$dir/seconds"
    touch "$dir/.done"
    echo "$dir/root"
}
