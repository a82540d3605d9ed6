"""The man page and the bash completion are generated from the parser (kbuildguard/clidoc.py): every
subcommand and every flag that --help shows is in both. The oracle is argparse's own --help text,
not the walk clidoc does."""

import io
import re

from kbuildguard import __version__, clidoc
from kbuildguard.cli import build_parser, main

FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _subcommands():
    parser = build_parser()
    text = parser.format_help()
    listed = re.findall(r"^    ([a-z][\w-]*)(?:  |\n)", text.split("  COMMAND\n", 1)[1].split("\n\n")[0], re.M)
    return parser, listed


def _flags_of(parser, name):
    """The flags in the left column of the subcommand's --help (not those named in help prose)."""
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    flags = set()
    for line in sub.format_help().split("examples:")[0].split("\n"):
        column = re.match(r"^  (-\S.*?)(?:  |$)", line)
        if column:
            flags |= set(FLAG.findall(column.group(1)))
    return flags


def test_man_page_lists_every_subcommand_and_flag():
    parser, names = _subcommands()
    page = clidoc.man_page()
    assert page.startswith('.TH KBUILDGUARD 1 "" "kbuildguard %s"' % __version__)
    assert len(names) >= 9
    for name in names:
        assert ".SS %s\n" % name.replace("-", "\\-") in page, name
        section = page.split(".SS %s\n" % name.replace("-", "\\-"))[1].split("\n.SS ")[0]
        for flag in _flags_of(parser, name):
            assert "\\fB%s\\fR" % flag.replace("-", "\\-") in section, (name, flag)
    assert "\\fB\\-\\-version\\fR" in page
    assert ".SH EXIT STATUS" in page


def test_man_page_escapes_roff():
    # a help text starting with a dot would be a roff request; a backslash an escape
    assert clidoc._roff(".x\\y-z") == "\\&.x\\ey\\-z"


def test_hidden_options_stay_hidden():
    # explain's --match is argparse.SUPPRESS: not in --help, so not in the page either
    section = clidoc.man_page().split(".SS explain\n")[1].split("\n.SS ")[0]
    assert "\\-\\-match" not in section


def test_bash_completion_offers_every_subcommand_and_flag():
    parser, names = _subcommands()
    script = clidoc.bash_completion()
    assert script.rstrip().endswith("complete -o filenames -F _kbuildguard kbuildguard")
    top = re.search(r'if \[ -z "\$cmd" \]; then\n\s+COMPREPLY=\(\$\(compgen -W "([^"]*)"', script).group(1).split()
    assert set(names) <= set(top) and "--version" in top
    for name in names:
        block = script.split("\n        %s)\n" % name)[1].split("\n            ;;")[0]
        offered = set(re.search(r'\[\[ \$cur == -\* \]\]; then\n\s+COMPREPLY=\(\$\(compgen -W "([^"]*)"', block).group(1).split())
        assert _flags_of(parser, name) <= offered, name
    # values: the choices of --match, installed kernels for --kernel, folders for -C
    make = script.split("\n        make)\n")[1].split("\n            ;;")[0]
    assert '--match) COMPREPLY=($(compgen -W "exact version minor major"' in make
    assert "--kernel) COMPREPLY=($(compgen -W \"all $(command ls /lib/modules" in make
    assert '-C) COMPREPLY=($(compgen -d -- "$cur"))' in make


def test_generator_entry_point(capsys):
    assert clidoc.main(["man"], io.StringIO()) == 0
    assert clidoc.main(["zsh"], io.StringIO()) == 2
    assert "usage: python3 -m kbuildguard.clidoc" in capsys.readouterr().err


def test_cli_itself_is_unchanged_by_the_generator():
    # generating does not add a subcommand: cli.py stays argparse-only
    assert main(["completion"], stdout=io.StringIO(), stderr=io.StringIO()) == 2


def test_environment_and_files_are_one_list_for_the_man_page_and_the_reference_page():
    """docs/reference.md's tables are clidoc.reference_tables() verbatim, and the man page names every
    KBUILDGUARD_* variable the settings accept and every file of the list."""
    import os
    import re

    from kbuildguard import clidoc, settings

    page = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "reference.md")).read()
    block = re.search(r"<!-- generated: python3 -m kbuildguard.clidoc reference -->\n(.*?)<!-- end generated -->", page, re.S)
    assert block is not None and block.group(1) == clidoc.reference_tables()
    man = clidoc.man_page()
    environment = man[man.index(".SH ENVIRONMENT"):man.index(".SH FILES")]
    files = man[man.index(".SH FILES"):man.index(".SH SEE ALSO")]
    assert re.findall(r"\\fB(KBUILDGUARD_\w+)\\fR", environment) == list(settings.ENVIRONMENT)
    for path, _ in clidoc.FILES:
        assert "\\fI%s\\fR" % clidoc._roff(path) in files, path
    # the variables the code reads are the list's: a new _env(env, "KBUILDGUARD_X") needs a line in it
    from kbuildguard.gates import answers

    source = open(settings.__file__).read()
    read = set(re.findall(r'_env\(env, "(KBUILDGUARD_\w+)"\)', source)) | {answers.ENV_OFF}  # check's cache reads its own
    assert read == set(settings.ENVIRONMENT)
