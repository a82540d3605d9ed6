#!/bin/bash
# The script part of examples/ci/action.yml (GitHub Actions) and examples/ci/gitlab-ci.yml: build
# one module repository for several kernels with `kbuildguard make`, write JUnit, SARIF and a
# Markdown summary whatever the result, and exit with kbuildguard's own exit code
# (docs/packagers.md#ci-reports lists them). Everything comes from the environment:
#
#   KBG_KERNELS     the kernels: R, R1,R2, all, or 'available:6.1.0-*-amd64' (required)
#   KBG_MODULE_DIR  the module repository (default: .)
#   KBG_FETCH       yes: download kernels that are not installed (--fetch); default yes for
#                   available:GLOB, no otherwise
#   KBG_FETCH_FROM  --fetch-from SOURCE (e.g. debian:bookworm), optional
#   KBG_SIGN_KEY    sign the verified modules with this key file or pkcs11: URI (make --sign), optional
#   KBG_SIGN_CERT   its certificate, optional
#   KBG_REPORT_DIR  where junit.xml, kbuildguard.sarif and summary.md go (default: kbuildguard-reports)
#   KBUILDGUARD     the command to run (default: kbuildguard; split on spaces, e.g. "python3 -m kbuildguard")
#   GITHUB_STEP_SUMMARY  set by GitHub Actions: the Markdown matrix is appended to it
set -u

kernels=${KBG_KERNELS:-}
if [ -z "$kernels" ]; then
    echo "kbuildguard-ci: KBG_KERNELS is empty: name the kernels (R1,R2 or available:GLOB)" >&2
    exit 2
fi
module_dir=${KBG_MODULE_DIR:-.}
reports=${KBG_REPORT_DIR:-kbuildguard-reports}
case "$kernels" in available:*) fetch=${KBG_FETCH:-yes} ;; *) fetch=${KBG_FETCH:-no} ;; esac

mkdir -p -- "$reports" || exit 14
read -r -a kbg <<< "${KBUILDGUARD:-kbuildguard}"
args=(make -C "$module_dir" --kernel "$kernels"
      --junit "$reports/junit.xml" --sarif "$reports/kbuildguard.sarif" --markdown "$reports/summary.md")
if [ "$fetch" = yes ]; then
    args+=(--fetch)
    if [ -n "${KBG_FETCH_FROM:-}" ]; then
        args+=(--fetch-from "$KBG_FETCH_FROM")
    fi
fi
if [ -n "${KBG_SIGN_KEY:-}" ]; then
    args+=(--sign --sign-key "$KBG_SIGN_KEY")
    if [ -n "${KBG_SIGN_CERT:-}" ]; then
        args+=(--sign-cert "$KBG_SIGN_CERT")
    fi
fi

"${kbg[@]}" "${args[@]}"
code=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$reports/summary.md" ]; then
    cat -- "$reports/summary.md" >> "$GITHUB_STEP_SUMMARY"
fi
echo "kbuildguard-ci: kbuildguard exited $code; reports in $reports" >&2
exit "$code"
