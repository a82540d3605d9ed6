"""kbuildguard's settings, resolved once per invocation, each value remembering where it came from.

The cascade, first layer that sets a value wins:

    command line  >  KBUILDGUARD_* environment  >  [kbuildguard] in kbuildguard.toml  >  default

For example, with ``match = "minor"`` in kbuildguard.toml and ``KBUILDGUARD_MATCH=exact`` in the
environment, ``kbuildguard make`` uses exact (origin ``KBUILDGUARD_MATCH``), and
``kbuildguard make --match version`` uses version (origin ``--match``).

Two rules keep a setting from pointing somewhere the user did not ask for:

- The target kernel is one setting with two spellings, a release (``kernel``) and a build tree
  (``kernel_dir``): the highest layer that names either decides both. ``--kernel R`` is never
  combined with a ``KBUILDGUARD_KERNEL_DIR`` from the environment; a layer that names both asks
  for that tree *and* checks that it is release R.
- The compiler: ``--cc`` > ``CC=`` after ``--`` > ``KBUILDGUARD_CC`` > ``$CC``. kbuildguard.toml
  cannot name a compiler or a build tree: a repository someone cloned must not choose which
  programs run (``make -C TREE`` runs TREE's Makefile).

Which commands read a kbuildguard.toml at all is one rule, ``reads_project_file()``: only the
commands that work *on* a module repository (``make``, ``init``, ``setup``) read the file of the
folder they work in, and say which settings they took from it. Every other command (``check``,
``sign``, ``detect``, ``explain``, ``doctor``, ``reboot-check``, ...) judges modules or kernels and
never reads one: a cloned repository's ``match = "major"`` must not loosen a verdict run inside it,
and a broken file must not fail it (issue 22).

Every command resolves through ``resolve()``; nothing below the CLI reads ``KBUILDGUARD_*`` or
argparse objects. Unknown ``KBUILDGUARD_*`` variables are errors, and so is one set to the empty
string (``KBUILDGUARD_KERNEL="$KVER"`` with KVER unset must not mean the running kernel).
"""

import os
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

from kbuildguard.errors import ConfigError, UsageError
from kbuildguard.strenum import StrEnum

DEFAULT_SCL_ROOT = "/opt/rh"
MATCH_LEVELS = ("exact", "version", "minor", "major")


class Layer(StrEnum):
    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    FILE = "kbuildguard.toml"
    DEFAULT = "default"



class Value(NamedTuple):
    value: Optional[str]
    origin: str  # "--kernel", "KBUILDGUARD_KERNEL", "kbuildguard.toml [kbuildguard] kernel", "default"
    layer: Layer

    def describe(self) -> str:
        """How the user named it, for messages: ``--kernel-dir /x``, ``KBUILDGUARD_KERNEL_DIR=/x``."""
        if self.layer is Layer.ENVIRONMENT:
            return "%s=%s" % (self.origin, self.value)
        if self.layer is Layer.FILE:
            return "%s = %r" % (self.origin, self.value)
        return "%s %s" % (self.origin, self.value) if self.value is not None else self.origin


class CommandLine(NamedTuple):
    """What the command line says; None for an option that was not given."""

    match: Optional[str] = None
    cc: Optional[str] = None
    kernel: Optional[str] = None
    kernel_dir: Optional[str] = None
    sysroot: Optional[str] = None
    log_file: Optional[str] = None
    make_args: Sequence[str] = ()  # after --: a CC= there is a command-line compiler
    sign_key: Optional[str] = None  # make --sign-key
    sign_cert: Optional[str] = None  # make --sign-cert


class Common(NamedTuple):
    """The options every command shares, as the command line gave them."""

    cli: CommandLine
    proc_version_file: Optional[str] = None
    # "--proc-version-file -": stdin, read once by cli.main_inner (a stream cannot be read twice)
    proc_version_data: Optional[bytes] = None


class FileSettings(NamedTuple):
    """The ``[kbuildguard]`` table of kbuildguard.toml: only what a repository may decide."""

    match: Optional[str] = None
    kernel: Optional[str] = None
    sign_key: Optional[str] = None  # the [sign] table's key and cert: paths, data (never a program)
    sign_cert: Optional[str] = None


# Keys a repository's kbuildguard.toml may not set, and why (the error says so).
FILE_FORBIDDEN = {
    "cc": "a repository cannot choose the compiler (it would run a program of its choosing): use --cc or KBUILDGUARD_CC",
    "kernel_dir": "a repository cannot choose the build tree (make runs the tree's Makefile): use --kernel-dir or KBUILDGUARD_KERNEL_DIR",
}

# The commands that read the kbuildguard.toml of the folder they work in (see the module docstring).
PROJECT_FILE_COMMANDS = ("make", "init", "setup")


def reads_project_file(command: str) -> bool:
    """Whether COMMAND takes settings from a kbuildguard.toml: the one rule every command asks."""
    return command in PROJECT_FILE_COMMANDS


# Every KBUILDGUARD_* variable kbuildguard reads, with what it sets: the one list behind the check of
# stray variables below, the man page's ENVIRONMENT and docs/reference.md's table (clidoc.py).
ENVIRONMENT_HELP = (
    ("KBUILDGUARD_MATCH", "how closely a compiler must match the kernel's (as --match: exact, version, minor, major)"),
    ("KBUILDGUARD_CC", "the compiler to use (as --cc); refused if it does not match the kernel's"),
    ("KBUILDGUARD_KERNEL", "the target kernel release, or all, or R1,R2 (as --kernel)"),
    ("KBUILDGUARD_KERNEL_DIR", "the kernel build tree (as --kernel-dir)"),
    ("KBUILDGUARD_SYSROOT", "the root of the target system, for a build root or an image (as --sysroot)"),
    ("KBUILDGUARD_LOG", "where the complete log goes (as --log-file)"),
    ("KBUILDGUARD_SCL_ROOT", "where Software Collections toolsets are looked for (default /opt/rh, or SYSROOT/opt/rh)"),
    ("KBUILDGUARD_SIGN_KEY", "the module signing key (as --sign-key)"),
    ("KBUILDGUARD_SIGN_CERT", "the module signing certificate (as --sign-cert)"),
    ("KBUILDGUARD_NO_CACHE", "1: check neither uses nor stores remembered answers (as check --no-cache)"),
)
ENVIRONMENT = tuple(name for name, _ in ENVIRONMENT_HELP)


class Settings(NamedTuple):
    match: Value
    cc: Value
    kernel: Value
    kernel_dir: Value
    sysroot: Value
    log: Value
    scl_root: Value
    sign_key: Value
    sign_cert: Value

    def as_json(self) -> Dict[str, Any]:
        return {name: {"value": v.value, "origin": v.origin} for name, v in zip(self._fields, self)}


def _default(value: Optional[str] = None) -> Value:
    return Value(value, "default", Layer.DEFAULT)


def _env(env: Mapping[str, str], name: str) -> Optional[Value]:
    value = env.get(name)
    return Value(value, name, Layer.ENVIRONMENT) if value else None


def _cli(value: Optional[str], option: str) -> Optional[Value]:
    return Value(value, option, Layer.COMMAND_LINE) if value else None


def _file(value: Optional[str], key: str) -> Optional[Value]:
    return Value(value, "kbuildguard.toml [kbuildguard] %s" % key, Layer.FILE) if value else None


def _first(*layers: Optional[Value]) -> Optional[Value]:
    for layer in layers:
        if layer is not None:
            return layer
    return None


def make_arg_cc(make_args: Sequence[str]) -> Optional[str]:
    """The compiler a ``CC=`` after ``--`` names; UsageError when it cannot be taken as it stands.

    GNU make applies command-line variable assignments in order, so the last CC= wins (read.c
    handles each as an override): taking the first would say one compiler and build with another.
    kbuild calls $(CC) for every object and checks that compiler (scripts/Kconfig.include,
    scripts/cc-version.sh): a command with arguments ("ccache gcc-12") is not one compiler whose
    identity can be matched against the kernel's."""
    given = [arg[3:] for arg in make_args if arg.startswith("CC=")]
    if len(given) > 1:
        raise UsageError("CC= is given %d times after -- (%s): GNU make would use the last; give one"
                         % (len(given), ", ".join("CC=" + g for g in given)))
    if not given:
        return None
    value = given[0]
    if not value.strip():
        raise UsageError("CC= after -- was given an empty value (an unset shell variable?)",
                         hint="give it a value, or leave it out")
    if len(value.split()) > 1:
        raise UsageError("CC=%s after -- is a command with arguments, not a compiler: kbuildguard must match "
                         "the compiler itself against the kernel's" % value,
                         hint="give the compiler (CC=%s), or a wrapper script that runs the command and "
                              "name that script" % value.split()[-1])
    return value.strip()  # GNU make drops the blanks around a variable's value


def _target(cli: CommandLine, env: Mapping[str, str], file: FileSettings) -> List[Value]:
    """kernel and kernel_dir, both from the highest layer that names either."""
    layers = [
        (_cli(cli.kernel, "--kernel"), _cli(cli.kernel_dir, "--kernel-dir")),
        (_env(env, "KBUILDGUARD_KERNEL"), _env(env, "KBUILDGUARD_KERNEL_DIR")),
        (_file(file.kernel, "kernel"), None),
    ]
    for kernel, kernel_dir in layers:
        if kernel is not None or kernel_dir is not None:
            return [kernel or _default(), kernel_dir or _default()]
    return [_default(), _default()]


def _check_target(kernel: Value, kernel_dir: Value) -> None:
    for value in (kernel, kernel_dir):
        if value.value is not None and (not value.value.strip() or "\n" in value.value):
            raise ConfigError("%s: empty or multi-line value" % value.origin)
    release = kernel.value
    if release is not None and "," in release and not all(r.strip() for r in release.split(",")):
        # issue 22: `--kernel ,` or `--kernel "$A,$B"` with B unset had meant no kernel at all and an
        # empty table with exit 0 (a check that checked nothing)
        error = UsageError if kernel.layer is Layer.COMMAND_LINE else ConfigError
        raise error("%s: the kernel list %r has an empty item (an unset shell variable?)" % (kernel.origin, release),
                    hint="name each kernel: R1,R2")
    if release is not None and (("," not in release and release != release.strip())
                                or any(re.search(r"\s", r.strip()) for r in release.split(","))):
        # issue 22: `--kernel '6.1.0-57-amd64 '` searched /lib/modules/6.1.0-57-amd64 /build. A release has
        # no blank (scripts/setlocalversion; uname -r); a list may space its items ("R1, R2").
        error = UsageError if kernel.layer is Layer.COMMAND_LINE else ConfigError
        raise error("%s: %r has a blank in it; a kernel release has none (a stray space in a shell variable?)"
                    % (kernel.origin, release), hint="give the release as uname -r prints it")
    if release is not None and release != "all" and ("/" in release or release in (".", "..")):
        raise ConfigError("%s: %r is not a kernel release (a build tree is named with --kernel-dir)" % (kernel.origin, release))


def check_environment(env: Mapping[str, str]) -> None:
    """The KBUILDGUARD_* variables, checked the same way for every command (cli.main_inner calls it
    before dispatching; resolve() again): an unknown name or an empty value is ConfigError."""
    stray = sorted(k for k in env if k.startswith("KBUILDGUARD_") and k not in ENVIRONMENT)
    if stray:
        raise ConfigError("unknown environment setting(s) %s (known: %s)" % (", ".join(stray), ", ".join(ENVIRONMENT)),
                          hint="unset it; a misspelt setting is an error rather than silently ignored")
    empty = sorted(k for k in ENVIRONMENT if k in env and not env[k].strip())
    if empty:
        # issue 22: an empty value would silently mean the default (the running kernel, any compiler)
        raise ConfigError("%s is set but empty (an unset shell variable?)" % ", ".join(empty),
                          hint="give it a value, or unset it")


def resolve(cli: CommandLine, env: Mapping[str, str], file: FileSettings = FileSettings()) -> Settings:
    """Every setting, once, for every command."""
    check_environment(env)
    for option, given in (("--kernel", cli.kernel), ("--kernel-dir", cli.kernel_dir), ("--sysroot", cli.sysroot),
                          ("--cc", cli.cc), ("--match", cli.match), ("--log-file", cli.log_file),
                          ("--sign-key", cli.sign_key), ("--sign-cert", cli.sign_cert)):
        if given is not None and not given.strip():
            # issue 22: `--kernel "$KVER"` with KVER unset must not quietly mean the running kernel
            raise UsageError("%s was given an empty value (an unset shell variable?)" % option,
                             hint="give it a value, or leave the option out")
    match = _first(_cli(cli.match, "--match"), _env(env, "KBUILDGUARD_MATCH"), _file(file.match, "match")) or _default("version")
    if match.value not in MATCH_LEVELS:
        raise ConfigError("%s: match level %r is not one of %s" % (match.origin, match.value, ", ".join(MATCH_LEVELS)))
    arg_cc = make_arg_cc(cli.make_args)
    if cli.cc and arg_cc is not None and arg_cc != cli.cc:
        # issue 22: one would be dropped without a word (kbuild takes one CC)
        raise UsageError("--cc %s and CC=%s after -- name two compilers: give one" % (cli.cc, arg_cc))
    cc = _first(_cli(cli.cc, "--cc"), _cli(arg_cc, "CC= make argument"),
                _env(env, "KBUILDGUARD_CC"), _env(env, "CC")) or _default()
    if cc.layer is Layer.ENVIRONMENT and cc.origin == "CC":
        cc = cc._replace(origin="CC environment variable")
    if cc.value and any(ord(ch) < 32 or ord(ch) == 127 for ch in cc.value):
        # KBUILDGUARD_CC=$'gcc-12\n' (a shell's $(...) keeps no newline, a file read into it may):
        # no program name holds a control character, and the raw one split the error in two
        error = ConfigError if cc.layer is Layer.ENVIRONMENT else UsageError
        # %r escapes them (console.one_line is of this layer, and layers import only lower ones)
        raise error("%s: %r contains control characters: not a compiler name" % (cc.origin, cc.value),
                    hint="give the compiler's name or path alone (e.g. gcc-12, /usr/bin/gcc-12)")
    kernel, kernel_dir = _target(cli, env, file)
    _check_target(kernel, kernel_dir)
    sysroot = _first(_cli(cli.sysroot, "--sysroot"), _env(env, "KBUILDGUARD_SYSROOT")) or _default()
    log = _first(_cli(cli.log_file, "--log-file"), _env(env, "KBUILDGUARD_LOG")) or _default()
    # A build root's toolsets are its own: SYSROOT/opt/rh unless KBUILDGUARD_SCL_ROOT names another place.
    scl_root = _env(env, "KBUILDGUARD_SCL_ROOT") or (
        Value(os.path.join(os.path.abspath(sysroot.value), DEFAULT_SCL_ROOT.lstrip("/")), sysroot.origin, sysroot.layer)
        if sysroot.value else _default(DEFAULT_SCL_ROOT))
    sign_key, sign_cert = _signing_key(cli, env, file)
    return Settings(match=match, cc=cc, kernel=kernel, kernel_dir=kernel_dir, sysroot=sysroot, log=log, scl_root=scl_root, sign_key=sign_key,
                    sign_cert=sign_cert)


def _signing_key(cli: CommandLine, env: Mapping[str, str], file: FileSettings) -> List[Value]:
    """make --sign's key and certificate: a pair, both from the highest layer that names either (a key
    from the environment is never paired with a certificate from the repository). The file's paths
    are data: sign-file reads them; the program is always the target tree's scripts/sign-file."""
    layers = [
        (_cli(cli.sign_key, "--sign-key"), _cli(cli.sign_cert, "--sign-cert")),
        (_env(env, "KBUILDGUARD_SIGN_KEY"), _env(env, "KBUILDGUARD_SIGN_CERT")),
        (Value(file.sign_key, "kbuildguard.toml [sign] key", Layer.FILE) if file.sign_key else None,
         Value(file.sign_cert, "kbuildguard.toml [sign] cert", Layer.FILE) if file.sign_cert else None),
    ]
    for key, cert in layers:
        if key is not None or cert is not None:
            if key is None or cert is None:
                named = key or cert
                assert named is not None
                # a command-line mistake is a usage error (2); a setting's, a configuration error (12)
                error = UsageError if named.layer is Layer.COMMAND_LINE else ConfigError
                raise error("%s names only half of the signing key: give the key and its certificate together "
                            "(--sign-key and --sign-cert, KBUILDGUARD_SIGN_KEY and KBUILDGUARD_SIGN_CERT, or [sign] "
                            "key and cert)" % named.describe())
            return [key, cert]
    return [_default(), _default()]
