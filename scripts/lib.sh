# Shared by scripts/demo and scripts/test: find Pythons, install Debian packages, make venvs.
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${KBUILDGUARD_DEV_STATE:-$repo/.venvs}

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
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for p in "$root"/versions/"$want".*/bin/python; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    command -v "python$want" && return 0
    echo "no Python $want found (pyenv versions, python$want)" >&2
    return 1
}

# The wheel, built once by the newest Python: what users install, so that is what the tests test.
build_wheel() {
    local py
    py=$(find_python 3.13)
    "$py" -m venv "$state/build"
    "$state/build/bin/pip" install -q --disable-pip-version-check "setuptools>=61" wheel
    rm -rf "$state/dist"
    "$state/build/bin/pip" wheel -q --no-deps --no-build-isolation -w "$state/dist" "$repo"
    ls "$state"/dist/kbuildguard-*.whl
}

# venv VERSION REQUIREMENTS: a fresh venv with the wheel and the test tools.
make_venv() {
    local version=$1 reqs=$2 py venv wheel
    py=$(find_python "$version")
    venv="$state/py$version"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    wheel=$(ls "$state"/dist/kbuildguard-*.whl)
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" >&2
    echo "$venv"
}
