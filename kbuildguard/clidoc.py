"""The man page and the bash completion, generated from cli.build_parser(): they cannot drift from it.

Run at package build time (the RPM spec, debian/rules, scripts/build-packages)::

    python3 -m kbuildguard.clidoc man  > kbuildguard.1
    python3 -m kbuildguard.clidoc bash > kbuildguard.bash

argparse has no public API to walk a parser, so this reads ``parser._actions`` and the sub-parsers'
``_choices_actions``, as argparse-manpage and shtab do; tests/test_clidoc.py checks every subcommand
and flag appears, so a change in argparse's internals fails a test rather than a page going thin.
Options with ``help=argparse.SUPPRESS`` are hidden here as in ``--help``.
"""

import argparse
import sys
from typing import IO, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import __version__
from kbuildguard.cli import EXAMPLES, build_parser
from kbuildguard.errors import exit_code_table
from kbuildguard.settings import ENVIRONMENT_HELP


class Option(NamedTuple):
    flags: Tuple[str, ...]     # ("-C",) or ("--kernel",); empty for a positional
    metavar: Optional[str]     # None for a flag that takes no value
    choices: Tuple[str, ...]
    help: str


class Command(NamedTuple):
    name: str
    help: str
    options: Tuple[Option, ...]
    examples: str


def _metavar(action: argparse.Action) -> Optional[str]:
    if action.nargs == 0:
        return None
    if action.choices:
        return "{%s}" % ",".join(str(c) for c in action.choices)
    if isinstance(action.metavar, str):
        return action.metavar
    return action.dest.upper()


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    # "%(default)s" and "%%" as --help shows them
    text = action.help or ""
    try:
        return text % dict(vars(action), prog=parser.prog)
    except (KeyError, TypeError, ValueError):
        return text.replace("%%", "%")


def _options(parser: argparse.ArgumentParser) -> Tuple[Option, ...]:
    out = []
    for action in parser._actions:  # noqa: SLF001 - no public walk (see the module docstring)
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        out.append(Option(tuple(action.option_strings), _metavar(action),
                          tuple(str(c) for c in action.choices or ()), _help(parser, action)))
    return tuple(out)


def commands(parser: Optional[argparse.ArgumentParser] = None) -> Tuple[Tuple[Option, ...], Tuple[Command, ...]]:
    """The top-level options and every subcommand, in --help's order."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    cmds = []
    for sub in subs:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        for name, p in sub.choices.items():
            cmds.append(Command(name, helps.get(name, "").replace("%%", "%"), _options(p), EXAMPLES.get(name, "")))
    return _options(parser), tuple(cmds)


# -- man page (man-pages(7), groff_man(7)) ------------------------------------------------------------

def _roff(text: str) -> str:
    """Escape for roff: backslashes, and a leading dot or quote that would start a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _option_tag(opt: Option) -> str:
    names = ", ".join("\\fB%s\\fR" % _roff(f) for f in opt.flags)
    if opt.metavar:
        value = "\\fI%s\\fR" % _roff(opt.metavar)
        return "%s %s" % (names, value) if names else value
    return names


# The files kbuildguard reads and writes, for the man page's FILES and docs/reference.md's table.
FILES = (
    ("MODULE_DIR/kbuildguard.toml", "the module repository's settings: data, never code (it cannot name a compiler or a build tree)"),
    ("MODULE_DIR/.kbuildguard/build.log", "the complete log of the last build (or --log-file, KBUILDGUARD_LOG)"),
    ("MODULE_DIR/.kbuildguard/report.json", "the last build's report (report-RELEASE.json per kernel, summary.json for several)"),
    ("MODULE_DIR/.kbuildguard/rejected/", "refused modules, kept with their reports; unverified/ holds stray .ko files moved aside"),
    ("MODULE_DIR/kbuildguard-out/RELEASE/", "verified modules, one folder per kernel (--kernel all, R1,R2)"),
    ("$XDG_CACHE_HOME/kbuildguard/ (~/.cache/kbuildguard/)", "the probe cache, layouts read from kernel images, build staging"),
    ("/var/cache/kbuildguard/kernels/", "kernel trees fetched by fetch for root without XDG_CACHE_HOME (otherwise under the cache above)"),
    ("/usr/lib/rpm/macros.d/macros.kbuildguard",
     "the RPM macros (%kbuildguard_make, %kbuildguard_check, the kmod hooks); without the package: kbuildguard rpm-macros --install writes all three"),
    ("/usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool",
     "the check chained after RPM Fusion's kmodtool signing and compression (rpm-macros --file kmodtool)"),
    ("/etc/rpm/macros.zz-kbuildguard",
     "the kmod hooks chained again after a build system's /etc/rpm/macros.* (AlmaLinux's macros.modsign; rpm-macros --file etc)"),
    ("/usr/lib/kbuildguard/dkms-post-build", "the check after a DKMS build (dkms.conf POST_BUILD)"),
    ("DIR/RELEASE/env, DIR/build_environment", "a kernel's toolchain lock for DKMS, written by detect --toolchain-lock DIR"),
    ("/etc/kernel/postinst.d/zz-kbuildguard, /etc/kernel/install.d/95-kbuildguard.install",
     "the reboot-check hooks, once installed (reboot-check --print-hook); /etc/default/kbuildguard sets KBUILDGUARD_HOOK=block"),
)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def reference_tables() -> str:
    """docs/reference.md's environment and files tables (a test keeps the page equal to this)."""
    out = ["| variable | what it sets |", "|---|---|"]
    out += ["| `%s` | %s |" % (name, _md(meaning)) for name, meaning in ENVIRONMENT_HELP]
    out += ["", "| file | what |", "|---|---|"]
    out += ["| `%s` | %s |" % (path, _md(meaning)) for path, meaning in FILES]
    return "\n".join(out) + "\n"


def man_page(parser: Optional[argparse.ArgumentParser] = None) -> str:
    top, cmds = commands(parser)
    out = ['.TH KBUILDGUARD 1 "" "kbuildguard %s" "User Commands"' % __version__,
           ".SH NAME", "kbuildguard \\- build out\\-of\\-tree Linux kernel modules with the kernel's own compiler",
           ".SH SYNOPSIS",
           ".B kbuildguard", "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR \\fIMAKE_ARGS\\fR]",
           ".br", ".B kbuildguard", "\\fB\\-\\-version\\fR | \\fB\\-h\\fR",
           ".SH DESCRIPTION",
           _roff((parser or build_parser()).description or ""),
           "Every command takes \\fB\\-h\\fR for its own help; only \\fBmake\\fR takes arguments after "
           "\\fB\\-\\-\\fR, which go to make untouched.",
           ".SH OPTIONS"]
    for opt in top:
        out += [".TP", _option_tag(opt), _roff(opt.help)]
    out.append(".SH COMMANDS")
    for cmd in cmds:
        out += [".SS %s" % _roff(cmd.name), _roff(cmd.help)]
        for opt in cmd.options:
            out += [".TP", _option_tag(opt), _roff(opt.help)]
        if cmd.examples:
            out += [".PP", ".nf", _roff(cmd.examples), ".fi"]
    out += [".SH EXIT STATUS", ".nf", _roff(exit_code_table()), ".fi",
            ".SH ENVIRONMENT",
            "Settings are taken from the command line, then \\fBKBUILDGUARD_*\\fR variables, then "
            "\\fIkbuildguard.toml\\fR in the module folder, then the packaged defaults. Any other "
            "\\fBKBUILDGUARD_*\\fR variable is an error (exit 12)."]
    for name, meaning in ENVIRONMENT_HELP:
        out += [".TP", "\\fB%s\\fR" % _roff(name), _roff(meaning)]
    out.append(".SH FILES")
    for path, meaning in FILES:
        out += [".TP", "\\fI%s\\fR" % _roff(path), _roff(meaning)]
    out += [".SH SEE ALSO", "\\fBmake\\fR(1), \\fBdkms\\fR(8), \\fBrpmbuild\\fR(8), \\fBmodinfo\\fR(8)", ""]
    return "\n".join(out)


# -- bash completion ----------------------------------------------------------------------------------

# What an option's value is, by its metavar: a file, a folder, or a kernel release.
_FILES = {"FILE", "KEY", "CERT", "PATH", "FILE.ko|DIR", "MODULE|MODULE.ko"}
_DIRS = {"DIR", "MODULE_DIR"}


def _value_completion(opt: Option) -> Optional[str]:
    if opt.choices:
        return 'COMPREPLY=($(compgen -W "%s" -- "$cur"))' % " ".join(opt.choices)
    if opt.metavar == "RELEASE":
        return 'COMPREPLY=($(compgen -W "all $(command ls /lib/modules 2>/dev/null)" -- "$cur"))'
    if opt.metavar in _DIRS:
        return 'COMPREPLY=($(compgen -d -- "$cur"))'
    if opt.metavar in _FILES:
        return 'COMPREPLY=($(compgen -f -- "$cur"))'
    if opt.metavar:
        return "COMPREPLY=()"
    return None


def _case(names: Sequence[str]) -> str:
    return "|".join(names)


def bash_completion(parser: Optional[argparse.ArgumentParser] = None) -> str:
    top, cmds = commands(parser)
    lines = ["# bash completion for kbuildguard %s, generated from its argparse parser by kbuildguard.clidoc" % __version__,
             "_kbuildguard() {",
             "    local cur prev cmd i",
             "    COMPREPLY=()",
             '    cur=${COMP_WORDS[COMP_CWORD]}',
             '    prev=${COMP_WORDS[COMP_CWORD-1]}',
             "    cmd=",
             "    for ((i = 1; i < COMP_CWORD; i++)); do",
             '        case ${COMP_WORDS[i]} in',
             "            --) return 0 ;;  # make's own arguments",
             "            %s) cmd=${COMP_WORDS[i]}; break ;;" % _case([c.name for c in cmds]),
             "        esac",
             "    done",
             '    if [ -z "$cmd" ]; then',
             '        COMPREPLY=($(compgen -W "%s" -- "$cur"))' % " ".join(
                 [c.name for c in cmds] + [f for o in top for f in o.flags]),
             "        return 0",
             "    fi",
             "    case $cmd in"]
    for cmd in cmds:
        flags = [f for o in cmd.options for f in o.flags]
        lines.append("        %s)" % cmd.name)
        valued: List[str] = []
        for opt in cmd.options:
            action = _value_completion(opt)
            if opt.flags and action:
                valued.append("                %s) %s; return 0 ;;" % (_case(opt.flags), action))
        if valued:
            lines += ['            case $prev in'] + valued + ["            esac"]
        positional = next((o for o in cmd.options if not o.flags), None)
        lines.append('            if [[ $cur == -* ]]; then')
        lines.append('                COMPREPLY=($(compgen -W "%s" -- "$cur"))' % " ".join(flags))
        if positional is not None:
            lines.append("            else")
            lines.append("                %s" % (_value_completion(positional) or "COMPREPLY=()"))
        lines += ["            fi", "            ;;"]
    lines += ["    esac", "    return 0", "}", "complete -o filenames -F _kbuildguard kbuildguard", ""]
    return "\n".join(lines)


GENERATORS = {"man": man_page, "bash": bash_completion, "reference": reference_tables}


def main(argv: Sequence[str], out: IO[str]) -> int:
    if len(argv) != 1 or argv[0] not in GENERATORS:
        sys.stderr.write("usage: python3 -m kbuildguard.clidoc {%s}\n" % ",".join(sorted(GENERATORS)))
        return 2
    out.write(GENERATORS[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], sys.stdout))
