"""Command line: argparse, dispatch, and the one place where errors become exit codes.

``main()`` builds the Context from injectable parts (tests pass a fake runner, streams, an
environment) and maps every failure to its exit code; ``main_inner()`` dispatches to the
command's own module under kbuildguard/commands/. Nothing else here.
"""

import argparse
import os
import signal
import sys
import traceback
from typing import IO, TYPE_CHECKING, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import __version__
from kbuildguard.console import Console, printable, wants_color
from kbuildguard.context import Context
from kbuildguard.errors import HANDLED_SIGNALS, KbgError, Stopped, UsageError, exit_code_table
from kbuildguard.probecache import ProbeCache
from kbuildguard.run import Runner
from kbuildguard.settings import CommandLine, Common, check_environment

if TYPE_CHECKING:  # the commands are imported when dispatched, not at start
    from kbuildguard.cireport import ReportPaths
    from kbuildguard.commands.common import FetchOptions

EPILOG_EXIT = "exit codes:\n" + exit_code_table()
# rpm-macros runs no check: its own codes, not the table of check/make
RPM_MACROS_EPILOG = """examples:
  kbuildguard rpm-macros --install                 all three files, where rpm reads them (as root)
  kbuildguard rpm-macros --install --root /srv/buildroot
  kbuildguard rpm-macros --file etc > /etc/rpm/macros.zz-kbuildguard

exit codes:
    0  printed, or written
    2  usage error: bad command line
   12  invalid KBUILDGUARD_* setting
   14  --install: a file there is not kbuildguard's (not overwritten), or cannot be written"""

EXAMPLES = {
    "detect": """examples:
  kbuildguard detect                              the running kernel
  kbuildguard detect --kernel 6.1.0-56-amd64      an installed build tree
  kbuildguard detect --proc-version-file v.txt    plan for a machine you only have /proc/version from
  kbuildguard detect --kernel 6.1.0-56-amd64 --json""",
    "make": """examples:
  kbuildguard make                                in a module repository, for the running kernel
  kbuildguard make --kernel 6.1.0-56-amd64        for another installed kernel
  kbuildguard make -C src/driver clean
  kbuildguard make modules_install -- INSTALL_MOD_PATH=/tmp/root -j4
  kbuildguard make --install --yes                install the kernel's compiler first if missing""",
    "explain": """examples:
  kbuildguard explain kdemo.ko                    why it would not load: the running kernel's dmesg, and the file's check
  kbuildguard explain kdemo.ko --dmesg boot.log --kernel 6.1.0-56-amd64
  journalctl -k | kbuildguard explain kdemo --dmesg -
  kbuildguard explain kdemo                       why the loaded module kdemo will not unload""",
    "check": """examples:
  kbuildguard check vendor/driver.ko --kernel 6.1.0-56-amd64
  kbuildguard check /lib/modules/6.1.0-56-amd64/extra --json""",
    "init": """examples:
  kbuildguard init                                kbuildguard.toml and kdemo.c in this folder
  kbuildguard init -C mydriver --name mydriver""",
    "setup": """examples:
  kbuildguard setup --dry-run                     what it would install for the running kernel
  kbuildguard setup --kernel 6.1.0-56-amd64 --yes
  kbuildguard setup --sysroot /var/lib/mock/root --dry-run --json""",
    "doctor": """examples:
  kbuildguard doctor                              the toolchain for the running kernel
  kbuildguard doctor --kernel-dir /usr/src/linux --json
  kbuildguard doctor --kernel 6.1.0-56-amd64 --btf --vmlinux /boot/vmlinuz-6.1.0-56-amd64""",
}


def _add_kernel_options(p: argparse.ArgumentParser, proc_version: bool = False, layout: bool = False) -> None:
    g = p.add_argument_group("target kernel (default: the running kernel)")
    g.add_argument("--kernel", metavar="RELEASE",
                   help="an installed kernel release (/lib/modules/R/build, /usr/src/kernels/R, /usr/src/linux-headers-R); "
                        "for make also `all` or R1,R2: one build per kernel")
    g.add_argument("--kernel-dir", metavar="DIR", help="a kernel build tree")
    g.add_argument("--sysroot", metavar="DIR", help="a chroot, image or build root whose kernel is the target (never trusts this machine's /proc/version)")
    if proc_version:
        g.add_argument("--proc-version-file", metavar="FILE", help="a file holding the target's /proc/version line ('-': stdin)")
    if layout:
        g.add_argument("--vmlinux", metavar="FILE", help="the kernel's BTF, vmlinux or vmlinuz: the struct module layout to compare with")
        g.add_argument("--kernel-config", metavar="FILE", help="the kernel's own .config (default: /boot/config-R, /proc/config.gz)")
        g.add_argument("--symvers", metavar="FILE", action="append", default=[],
                       help="the Module.symvers of another out-of-tree module this one uses (repeatable); make passes "
                            "it to kbuild as KBUILD_EXTRA_SYMBOLS")
    p.add_argument("--match", choices=["exact", "version", "minor", "major"],
                   help="how closely the compiler must match the kernel's (default: version = family and X.Y.Z)")


def _add_fetch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("kernels that are not installed (downloaded into a cache, never installed; docs/forecast.md)")
    g.add_argument("--fetch", action="store_true",
                   help="download the packages of --kernel R (or R1,R2, or 'available:GLOB') and unpack them into the "
                        "cache (~/.cache/kbuildguard/kernels, /var/cache/kbuildguard/kernels for root): the target")
    g.add_argument("--fetch-from", metavar="SOURCE",
                   help="debian[:SUITE], ubuntu[:SUITE], dnf[:ROOT[:RELEASEVER]], zypper[:ROOT] (default: this machine's "
                        "distribution; Debian picks the suite from the release when its own lists lack it)")
    g.add_argument("--refresh", action="store_true", help="read a private suite's package lists again (apt-get update)")


def _fetch(args: argparse.Namespace) -> "FetchOptions":
    from kbuildguard.commands.common import FetchOptions

    return FetchOptions(bool(getattr(args, "fetch", False)), getattr(args, "fetch_from", None), bool(getattr(args, "refresh", False)))


def _add_signature_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sig-enforce", choices=["yes", "no"],
                   help="whether the target kernel enforces module signatures (module.sig_enforce=1, lockdown), for a "
                        "target kbuildguard cannot see (default: read from the running kernel, the sysroot, the config)")


def _sig_enforce(args: argparse.Namespace) -> Optional[bool]:
    return None if args.sig_enforce is None else args.sig_enforce == "yes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbuildguard",
        description="Build out-of-tree Linux kernel modules with the compiler that built the kernel, "
                    "and refuse any module that does not match it.",
        epilog=EPILOG_EXIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="kbuildguard " + __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="show probe commands and detail")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors and the result")
    common.add_argument("--debug", action="store_true", help="show a traceback for every error")
    common.add_argument("--log-file", metavar="FILE", help="write the detailed log here")
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, epilog: Optional[str] = None) -> argparse.ArgumentParser:
        # help= is %-formatted by argparse (the command list), description= is printed as is
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text.replace("%%", "%"),
                              epilog=epilog if epilog is not None else EXAMPLES.get(name, "") + "\n\n" + EPILOG_EXIT,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("detect", "show the kernel's compiler, where each fact came from, and the local compiler that matches")
    _add_kernel_options(p, proc_version=True)
    _add_fetch_options(p)
    p.add_argument("--cc", metavar="PATH", help="judge only this compiler")
    p.add_argument("--toolchain-lock", metavar="DIR",
                   help="write DIR/RELEASE/{env,bin/}, the selected compiler, linker, pahole, rustc and LLVM= for "
                        "DKMS to source (DIR/build_environment), so a plain dkms.conf builds with them")

    p = add("make", "build the module with the kernel's compiler and refuse any .ko that does not match")
    p.add_argument("-C", dest="directory", default=".", metavar="MODULE_DIR", help="the module repository (default: .)")
    _add_kernel_options(p, layout=True)
    _add_fetch_options(p)
    p.add_argument("--cc", metavar="PATH", help="use this compiler (refused if it does not match the kernel's)")
    p.add_argument("--install", action="store_true", help="install the matching compiler if none is found (asks first)")
    p.add_argument("--yes", action="store_true", help="consent to installs without asking (RPM %%build, CI)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (compiler, generated files, make command) and exit")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="EMERGENCY ONLY: keep mismatched modules instead of quarantining them; recorded in the report")
    p.add_argument("--btf", action="store_true",
                   help="generate module BTF against the target kernel's own BTF (running kernel's, --vmlinux, /boot/vmlinuz-R)")
    p.add_argument("--sign", action="store_true",
                   help="sign the verified modules with the tree's scripts/sign-file and CONFIG_MODULE_SIG_HASH, then verify "
                        "them again (key: --sign-key/--sign-cert, KBUILDGUARD_SIGN_*, [sign] in kbuildguard.toml, else "
                        "DKMS's /var/lib/dkms/mok.key or akmods' key)")
    p.add_argument("--sign-key", metavar="KEY", help="the private key for --sign (a file, or a pkcs11: URI)")
    p.add_argument("--sign-cert", metavar="CERT", help="the certificate of --sign-key (PEM or DER)")
    _add_signature_options(p)
    p.add_argument("--trusted-cert", action="append", default=[], metavar="FILE",
                   help="a certificate the kernel trusts (repeatable), as for check: say the --sign key is enrolled")
    p.add_argument("targets", nargs="*", metavar="TARGET", help="modules (default), clean or modules_install; make arguments go after --")
    _add_report_options(p)

    p = add("doctor", "check every tool kbuild will run (linker, objtool, modpost, gcc plugins, pahole, LLVM, rustc) "
                      "against the kernel, before building")
    _add_kernel_options(p, proc_version=True)
    _add_fetch_options(p)
    p.add_argument("--cc", metavar="PATH", help="judge the toolchain of this compiler")
    p.add_argument("--btf", action="store_true", help="as make --btf: module BTF will be generated")
    p.add_argument("--vmlinux", metavar="FILE", help="the kernel's BTF, vmlinux or vmlinuz (module BTF's base)")

    p = add("check", "verify modules built elsewhere against the target kernel; with several kernels (--kernel all, "
                     "R1,R2, 'available:GLOB' --fetch) a forecast: one row per kernel and module")
    p.add_argument("paths", nargs="+", metavar="FILE.ko|DIR")
    _add_kernel_options(p, layout=True)
    _add_fetch_options(p)
    _add_signature_options(p)
    p.add_argument("--trusted-cert", action="append", default=[], metavar="FILE",
                   help="a certificate (PEM or DER) the kernel trusts (its MOK or builtin keys); repeatable: a module "
                        "signed by it is trusted, and its signature verified")
    p.add_argument("--mokutil", action="append", default=[], metavar="FILE",
                   help="the target machine's mokutil output saved to a file (repeatable): --sb-state (Secure Boot "
                        "on?), --list-enrolled (MOK keys), --db (UEFI db keys: name the file with 'db' in it), "
                        "--test-key FILE (that key enrolled)")
    _add_report_options(p)
    p.add_argument("--no-cache", action="store_true",
                   help="check every module afresh: neither use nor store the answers remembered for modules unchanged "
                        "since an earlier check against the same kernel facts (also KBUILDGUARD_NO_CACHE=1)")

    p = add("sign", "sign built modules with the kernel tree's scripts/sign-file (as make --sign), then verify them; "
                    "for an RPM's buildroot after rpm's strip step")
    p.add_argument("paths", nargs="+", metavar="FILE.ko|DIR")
    _add_kernel_options(p)
    p.add_argument("--sign-key", metavar="KEY", help="the private key (a file, or a pkcs11: URI); default as make --sign")
    p.add_argument("--sign-cert", metavar="CERT", help="the certificate of --sign-key (PEM or DER)")
    p.add_argument("--trusted-cert", action="append", default=[], metavar="FILE",
                   help="a certificate the kernel trusts (repeatable), as for check")
    _add_signature_options(p)

    p = add("fetch", "download kernels that are not installed (headers, kbuild, image) into the cache without "
                     "installing them, and print where each is unpacked")
    p.add_argument("releases", nargs="+", metavar="RELEASE|available:GLOB")
    g = p.add_argument_group("where from")
    g.add_argument("--fetch-from", metavar="SOURCE", help="as for check --fetch-from")
    g.add_argument("--refresh", action="store_true", help="read a private suite's package lists again (apt-get update)")
    g.add_argument("--list", action="store_true", help="only list the releases an available:GLOB matches; download nothing")

    p = add("reboot-check", "before rebooting into a new kernel: which modules under /lib/modules/R/{extra,updates,"
                            "weak-updates} will it refuse, and why (run by the kernel hooks; exit 0 unless --blocking)")
    p.add_argument("release", nargs="?", metavar="RELEASE", help="the new kernel's release (the hook's first argument)")
    p.add_argument("--root", metavar="DIR", help="the system the kernel is installed into (Debian's $DPKG_ROOT; default /)")
    p.add_argument("--blocking", action="store_true", help="exit 8 when a module will not load (the hook then fails)")
    _add_report_options(p)
    p.add_argument("--match", choices=["exact", "version", "minor", "major"], help=argparse.SUPPRESS)
    p.add_argument("--print-hook", choices=["postinst", "kernel-install"],
                   help="print the hook script: /etc/kernel/postinst.d/zz-kbuildguard and "
                        "/etc/kernel/header_postinst.d/zz-kbuildguard (Debian, Ubuntu: after DKMS's own) or "
                        "/etc/kernel/install.d/95-kbuildguard.install (systemd kernel-install)")

    p = add("init", "scaffold kbuildguard.toml and a module source from the templates")
    p.add_argument("-C", dest="directory", default=".", metavar="DIR")
    p.add_argument("--name", default="kdemo", help="module name (default: kdemo, the module from the original incident)")

    p = add("explain", "say why a module would not load (MODULE.ko, or --dmesg FILE): each kernel log line mapped to "
                       "its gate, cause and fix; or why a loaded MODULE will not unload (rmmod: Device or resource "
                       "busy), branch by branch of delete_module()")
    p.add_argument("module", metavar="MODULE|MODULE.ko")
    p.add_argument("--dmesg", metavar="FILE", help="the kernel log to explain (dmesg, journalctl -k, syslog, pasted; "
                                                    "'-': stdin; default: run dmesg): load-failure mode")
    p.add_argument("--ko", metavar="FILE", help="the module's .ko (default: found through modules.dep)")
    p.add_argument("--root", default="/", metavar="DIR", help="read proc/, sys/, lib/modules and boot/ under DIR (a captured system)")
    p.add_argument("--kernel", metavar="RELEASE", help="the kernel's release (default: the running kernel's)")
    p.add_argument("--kernel-dir", metavar="DIR", help="load-failure mode: the build tree the .ko is checked against")
    p.add_argument("--sysroot", metavar="DIR", help="load-failure mode: a root whose kernel the .ko is checked against")
    p.add_argument("--match", choices=["exact", "version", "minor", "major"], help=argparse.SUPPRESS)

    p = add("rpm-macros", "print the RPM macros (%%kbuildguard_make, the kmod hooks) that kbuildguard's packages install; "
                          "without a package, all three files are needed (--install)",
            epilog=RPM_MACROS_EPILOG)
    p.add_argument("--file", choices=["macros", "kmodtool", "etc"],
                   help="which file to print (default: macros): macros = /usr/lib/rpm/macros.d/macros.kbuildguard, "
                        "kmodtool = /usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool, etc = /etc/rpm/macros.zz-kbuildguard")
    p.add_argument("--install", action="store_true",
                   help="write all three files where rpm reads them; a file there that is not kbuildguard's is not "
                        "overwritten (exit 14, nothing written)")
    p.add_argument("--root", metavar="DIR", help="with --install: write under DIR (a build root, an image; default /)")

    p = add("setup", "install the target kernel's build tree and matching compiler (asks first)")
    _add_kernel_options(p, proc_version=True)
    p.add_argument("--yes", action="store_true", help="consent without asking")
    p.add_argument("--dry-run", action="store_true", help="print the exact commands and exit")
    return parser


def split_make_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Everything after the first ``--`` goes to make untouched."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _common(args: argparse.Namespace, make_args: Sequence[str]) -> Common:
    cli = CommandLine(match=args.match if "match" in args else None, cc=getattr(args, "cc", None),
                      kernel=getattr(args, "kernel", None), kernel_dir=getattr(args, "kernel_dir", None),
                      sysroot=getattr(args, "sysroot", None), log_file=args.log_file, make_args=tuple(make_args),
                      sign_key=getattr(args, "sign_key", None), sign_cert=getattr(args, "sign_cert", None))
    return Common(cli, getattr(args, "proc_version_file", None))


def _detect(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import detect

    return detect.run(ctx, common, _fetch(args), lock_dir=args.toolchain_lock)


def _add_report_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("CI reports (docs/packagers.md#ci-reports): each file written atomically, whatever the result")
    g.add_argument("--junit", metavar="FILE", help="JUnit XML: one testcase per kernel x module x gate")
    g.add_argument("--sarif", metavar="FILE", help="SARIF 2.1.0: one rule per gate, results located at the .ko")
    g.add_argument("--markdown", metavar="FILE", help="a Markdown matrix (for $GITHUB_STEP_SUMMARY)")


def _reports(args: argparse.Namespace) -> "ReportPaths":
    from kbuildguard.cireport import ReportPaths

    return ReportPaths(args.junit, args.sarif, args.markdown)


def _make(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import make
    from kbuildguard.commands.make import MakeOptions

    return make.run(ctx, MakeOptions(common=common, directory=args.directory, targets=tuple(args.targets), install=args.install,
                                     yes=args.yes, dry_run=args.dry_run, allow_mismatch=args.allow_mismatch, vmlinux=args.vmlinux,
                                     kernel_config=args.kernel_config, btf=args.btf, symvers=tuple(args.symvers), sign=args.sign,
                                     sig_enforce=_sig_enforce(args), trusted_certs=tuple(args.trusted_cert), fetch=_fetch(args),
                                     reports=_reports(args)))


def _check(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import check
    from kbuildguard.commands.check import CheckOptions

    return check.run(ctx, CheckOptions(common=common, paths=tuple(args.paths), vmlinux=args.vmlinux, kernel_config=args.kernel_config,
                                       symvers=tuple(args.symvers),
                                       trusted_certs=tuple(args.trusted_cert), sig_enforce=_sig_enforce(args), mokutil=tuple(args.mokutil), fetch=_fetch(args),
                                       reports=_reports(args), no_cache=args.no_cache))


def _sign(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import sign
    from kbuildguard.commands.sign import SignOptions

    return sign.run(ctx, SignOptions(common, tuple(args.paths), _sig_enforce(args), tuple(args.trusted_cert)))


def _doctor(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import doctor
    from kbuildguard.commands.doctor import DoctorOptions

    return doctor.run(ctx, DoctorOptions(common, args.btf, args.vmlinux, _fetch(args)))


def _reboot_check(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    if args.print_hook:
        import pkgutil

        name = {"postinst": "zz-kbuildguard", "kernel-install": "95-kbuildguard.install"}[args.print_hook]
        data = pkgutil.get_data("kbuildguard", "data/hooks/" + name)
        assert data is not None
        ctx.stdout.write(data.decode("utf-8"))
        return 0
    from kbuildguard.commands import rebootcheck

    return rebootcheck.run(ctx, common, args.release or "", args.root, args.blocking, _reports(args))


def _fetch_command(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import fetch

    return fetch.run(ctx, tuple(args.releases), _fetch(args)._replace(enabled=True), args.list)


def _setup(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import setup

    return setup.run(ctx, common, args.yes, args.dry_run)


def _explain(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import explain
    from kbuildguard.commands.explain import ExplainOptions

    return explain.run(ctx, ExplainOptions(common, args.module, args.root, args.ko, args.dmesg))


def _init(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import init

    return init.run(ctx, args.directory, args.name)


def _rpm_macros(ctx: Context, args: argparse.Namespace, common: Common) -> int:
    from kbuildguard.commands import rpmmacros

    return rpmmacros.run(ctx, args.file, args.install, args.root)


# Commands are imported when dispatched: `kbuildguard --version` imports none of them, and
# `kbuildguard detect` not the build pipeline.
COMMANDS: Dict[str, Callable[[Context, argparse.Namespace, Common], int]] = {
    "detect": _detect, "doctor": _doctor, "make": _make, "check": _check, "sign": _sign, "fetch": _fetch_command, "setup": _setup,
    "explain": _explain, "init": _init, "reboot-check": _reboot_check,
    "rpm-macros": _rpm_macros}


def main_inner(ctx: Context, args: argparse.Namespace, make_args: Sequence[str]) -> int:
    """Dispatch: every command's logic is in kbuildguard/commands/<command>.py. The environment's
    KBUILDGUARD_* settings are checked here, by one rule for every command (issue 22: `fetch` and
    `rpm-macros` resolve no settings and had taken an empty or misspelt one without a word)."""
    check_environment(ctx.env)
    common = _common(args, make_args)
    if common.proc_version_file == "-":  # as `explain --dmesg -` does (issue 22)
        common = common._replace(proc_version_data=_stdin_bytes(ctx))
    return COMMANDS[args.command](ctx, args, common)


def _stdin_bytes(ctx: Context) -> bytes:
    """stdin, bounded as a kernel log is; its bytes when it has them (UTF-16 from a Windows pipe is told apart)."""
    from kbuildguard import bounded

    binary = getattr(ctx.stdin, "buffer", None)
    if binary is not None:
        return bounded.read_stream(binary, "stdin", bounded.KERNEL_LOG.size, bounded.KERNEL_LOG.what, terminal=True)
    return bounded.read_text_stream(ctx.stdin, "stdin", bounded.KERNEL_LOG).encode("utf-8")


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _install_signal_handlers() -> Dict[int, object]:
    """SIGTERM (a CI timeout), SIGHUP (a closed ssh session), SIGQUIT and SIGINT all unwind like
    Ctrl-C: make's process group is stopped and the exit code is 128 + N. Only in the main thread."""
    previous: Dict[int, object] = {}
    try:
        for sig in HANDLED_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue  # nohup, or a script's background job: what the caller ignores, we ignore too
            previous[sig] = signal.signal(sig, _raise_stopped)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        pass
    return previous


class Parsed(NamedTuple):
    args: argparse.Namespace
    make_args: List[str]


class ParseExit(Exception):
    """argparse is done before any command runs: --help, --version (0) or bad usage (2)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def parse(argv: Sequence[str], err: IO[str]) -> Parsed:
    own, make_args = split_make_args(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(own)
    except SystemExit as exc:
        raise ParseExit(int(exc.code or 0))
    if not args.command:
        parser.print_help(err)
        raise ParseExit(UsageError.exit_code)
    if make_args and args.command != "make":
        err.write("kbuildguard: usage error: only `make` takes arguments after --\n")
        raise ParseExit(UsageError.exit_code)
    empty = empty_option(parser, args)
    if empty:
        # issue 22: `--kernel "$KVER"`, `--proc-version-file "$F"`, `-C "$D"` with the variable unset
        # would silently mean the default (the running kernel, the current folder): exit 2, one line
        err.write("kbuildguard: usage error: %s was given an empty value (an unset shell variable?); "
                  "give it a value, or leave it out\n" % empty)
        raise ParseExit(UsageError.exit_code)
    return Parsed(args, make_args)


def command_parsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    """Every command's own parser, by name (tests iterate them; so does empty_option)."""
    for action in parser._actions:  # argparse has no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def empty_option(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Optional[str]:
    """The first option or argument of the command that was given an empty (or blank) string, as
    the user spelt it (``--kernel``, ``FILE.ko|DIR``); None when there is none."""
    sub = command_parsers(parser).get(args.command)
    for action in sub._actions if sub is not None else []:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            return "/".join(action.option_strings) or str(action.metavar or action.dest)
    return None


def make_context(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str], stdin: IO[str],
                 runner: Callable[[Console], Runner], euid: int, cwd: str) -> Context:
    """The Context from its parts; make opens its own log once it knows the module folder."""
    console = Console(stderr, verbosity=-1 if args.quiet else args.verbose, color=wants_color(env, stderr))
    interactive = hasattr(stdin, "isatty") and stdin.isatty()
    return Context(runner=runner(console), console=console, stdout=stdout, stdin=stdin, interactive=interactive,
                   euid=euid, env=env, cwd=cwd, json=args.json)


def fail(ctx: Context, exc: KbgError, debug: bool) -> int:
    """The one place a failure becomes a message and an exit code."""
    if debug:
        traceback.print_exc()
    ctx.console.fail(exc.title, printable(exc.message), [printable(d) for d in exc.details],
                     printable(exc.hint) if exc.hint else None)
    return exc.exit_code


def guarded(ctx: Context, parsed: Parsed) -> int:
    """Run the command; map every way it can end to an exit code (signals: 128 + N)."""
    previous = _install_signal_handlers()
    try:
        if parsed.args.log_file and parsed.args.command != "make":  # make opens its own, in the module folder
            ctx.console.open_log(ctx.path(parsed.args.log_file))
        return main_inner(ctx, parsed.args, parsed.make_args)
    except KbgError as exc:
        return fail(ctx, exc, parsed.args.debug)
    except (KeyboardInterrupt, Stopped) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        ctx.console.error("interrupted", "stopped by signal %d" % signum)
        return 128 + int(signum)
    except BrokenPipeError:
        # `kbuildguard detect | head`: the reader left; say nothing more, and keep Python's own
        # flush at exit from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        ctx.runner.close()
        ctx.console.close()


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None,
         stdout: Optional[IO[str]] = None, stderr: Optional[IO[str]] = None, stdin: Optional[IO[str]] = None,
         runner: Optional[Callable[[Console], Runner]] = None, euid: Optional[int] = None, cwd: Optional[str] = None) -> int:
    """The entry point; every part of the world can be passed in (tests), else it is this process's."""
    err = stderr or sys.stderr
    try:
        parsed = parse(list(sys.argv[1:] if argv is None else argv), err)
    except ParseExit as exc:
        return exc.code
    environment = dict(os.environ if env is None else env)
    ctx = make_context(parsed.args, environment, stdout or sys.stdout, err,
                       stdin if stdin is not None else sys.stdin,
                       runner or (lambda console: Runner(console, ProbeCache.at(environment))),
                       os.geteuid() if euid is None else euid, cwd or os.getcwd())
    return guarded(ctx, parsed)
