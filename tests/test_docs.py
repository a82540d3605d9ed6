"""The README and docs/ pages cannot rot silently.

- every relative link (and its #anchor) leads to a file (and a heading) that exists;
- every `kbuildguard VERB --flag` they show, in a code span or a code block, is an option that
  `kbuildguard VERB --help` prints (the parser is built in-process: nothing is started);
- the exit-code table of docs/reference.md is errors.py's table, row for row;
- the README stays a front page (at most 260 lines): the detail lives in docs/, by task.
"""

import argparse
import contextlib
import io
import os
import re
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from kbuildguard import cli
from kbuildguard.errors import EXIT_CODES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
README_MAX_LINES = 260


def pages() -> List[str]:
    found = [os.path.join(REPO, "README.md")]
    found += sorted(os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith(".md"))
    return found


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)


def without_code(text: str) -> str:
    """Markdown outside fenced blocks and code spans: where links and headings are."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: str) -> Set[str]:
    seen: Dict[str, int] = {}
    result = set()
    text = FENCE.sub("", read(path))
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else "%s-%d" % (base, n))
    return result


def links(path: str) -> Iterator[str]:
    """Inline links, reference definitions ([r]: target), and HTML href/src; an undefined reference
    ([x][r] with no [r]: line) is yielded as "[r]: undefined" so that it fails as a dead link."""
    text = without_code(read(path))
    defined = {label.lower() for label in re.findall(r"^[ ]{0,3}\[([^\]]+)\]:", text, re.M)}
    found = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    found += re.findall(r"^[ ]{0,3}\[[^\]]+\]:\s*<?([^\s>]+)", text, re.M)
    found += re.findall(r"<(?:a|img)\b[^>]*?\s(?:href|src)=[\"']([^\"']+)[\"']", text, re.I)
    for text_part, label in re.findall(r"\[([^\]]*)\]\[([^\]]*)\]", text):
        if (label or text_part).lower() not in defined:
            found.append("[%s]: undefined" % (label or text_part))
    for target in found:
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not ours to check
            yield target


def test_slug_follows_github():
    assert slug("Module signatures and `make --sign`") == "module-signatures-and-make---sign"
    assert slug("Promises: what is guaranteed, under which failure") == "promises-what-is-guaranteed-under-which-failure"


@pytest.mark.parametrize("page", pages(), ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if target.endswith(": undefined"):
            broken.append("%s: a reference with no definition" % target)
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(page), file_part)) if file_part else page
        if not os.path.exists(dest):
            broken.append("%s: no such file" % target)
        elif anchor and (not dest.endswith(".md") or anchor not in anchors(dest)):
            broken.append("%s: no heading with that anchor" % target)
    assert not broken, "%s: %s" % (os.path.relpath(page, REPO), "; ".join(broken))


def test_links_are_seen():
    # The link finder must see the README's map, or the test above checks nothing.
    assert "docs/reference.md" in list(links(os.path.join(REPO, "README.md")))


def code_texts(text: str) -> Iterator[str]:
    """Every code line and every code span: where commands are shown. Code lines are those of fenced
    blocks (indented ones too, inside list items) and of indented blocks (4 spaces or a tab)."""
    for _, block in FENCE.findall(text):
        for line in re.sub(r"\\\n[ \t]*", " ", block).splitlines():  # a backslash continues the command
            yield line
    rest = FENCE.sub("", text)
    for line in rest.splitlines():
        if re.match(r"( {4}|\t)\S", line):
            yield line
    for span in re.findall(r"`([^`\n]+)`", rest):
        yield span


# How a command line reaches kbuildguard: VAR=value assignments, shell keywords and wrappers before
# it, then the program itself (a path to it, the zipapp, or python -m).
WRAPPERS = ("sudo", "time", "env", "exec", "nohup", "command", "nice", "ionice", "xargs", "timeout", "chroot",
            "systemd-run", "watch", "if", "then", "else", "elif", "while", "until", "do", "!", "ssh")
# each wrapper's options that take a value: sudo -u USER, nice -n 10, xargs -I {}, timeout -s KILL
WRAPPER_ARGS = {"sudo": ("-u", "-g", "-C", "-h", "-p"), "nice": ("-n",), "ionice": ("-c", "-n", "-p"),
                "xargs": ("-I", "-P", "-L", "-n", "-d", "-a", "-s", "-E"), "timeout": ("-s", "-k"),
                "systemd-run": ("-p", "--property", "--unit", "-u", "-M", "-H", "--uid", "--gid", "--slice", "-E",
                                "--setenv", "--description"), "watch": ("-n",), "env": ("-u", "-C"),
                "ssh": ("-i", "-p", "-l", "-o", "-J", "-F")}
WRAPPER_OPERANDS = {"ssh": 1, "timeout": 1, "chroot": 1}  # ssh HOST, timeout DURATION, chroot DIR: then the command
PROGRAMS = ("kbuildguard", "kbuildguard.pyz")
SEPARATORS = re.compile(r";|&&|\|\||\||\$\(|\(|\)|`|\$ ")
END_OF_COMMAND = ("--", ">", ">>", "2>", "2>&1", "<", "&")
PROMPT = re.compile(r"^(\S+@\S+:\S*[#$]|\$)$")  # root@host:~#, user@host:~$, $ (a lone # is a comment)
YAML_KEY = re.compile(r"^\s*(?:-\s+)?(?:run|script|before_script|after_script|command|cmd)\s*:\s*(?:-\s+)?")
YAML_ITEM = re.compile(r"^\s*-\s+(?=\S)")  # a script: list's items


def _program(tokens: List[str]) -> int:
    """How many leading tokens start kbuildguard (0: this is not a kbuildguard command)."""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if re.match(r"^[A-Za-z_][\w\[\]]*=", token):  # KBUILDGUARD_CC=gcc, MAKE[0]=
            i += 1
        elif token in WRAPPERS:
            i += 1
            while i < len(tokens) and tokens[i].startswith("-") and tokens[i] != "--":
                i += 2 if tokens[i] in WRAPPER_ARGS.get(token, ()) else 1
            i += WRAPPER_OPERANDS.get(token, 0)
        else:
            break
    if i >= len(tokens):
        return 0
    if os.path.basename(tokens[i]) in PROGRAMS:
        return i + 1
    if re.match(r"^python[\d.]*$", os.path.basename(tokens[i])):
        if tokens[i + 1:i + 3] == ["-m", "kbuildguard"]:
            return i + 3
        if i + 1 < len(tokens) and os.path.basename(tokens[i + 1]) in PROGRAMS:
            return i + 2
    return 0


def _flags(tokens: List[str]) -> List[str]:
    flags = []
    for token in _own(tokens):
        if re.match(r"--?[A-Za-z]", token):
            flags.append(token.split("=", 1)[0])
    return flags


def _own(tokens: List[str]) -> List[str]:
    """kbuildguard's own arguments: up to make's `--`, a redirection or a comment."""
    own = []
    for token in tokens:
        if token in END_OF_COMMAND or token.startswith("#"):
            break
        own.append(token)
    return own


def verbs() -> List[str]:
    """Every subcommand, from the parser (fetch and reboot-check included)."""
    sub = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0]
    return sorted(sub.choices)


# Prose names a command by its verb alone: `make --sign`, `check --json`. GNU make's own options are
# shown as `make -C TREE ...` or alone, never as `make --long-option`.
SHORT = re.compile(r"^(%s)((?: +--[a-z][^ ]*)(?: +[^ ]+)*)$" % "|".join(re.escape(v) for v in verbs()))


def shown_invocations(text: str) -> Iterator[List[str]]:
    """The arguments of each kbuildguard command shown (after the program, the global flags
    included); a verb alone in prose (`make --sign`) gives [verb, flags...]."""
    for code in code_texts(text):
        code = YAML_KEY.sub("", code) if YAML_KEY.match(code) else YAML_ITEM.sub("", code)
        code = re.sub(r"[\"']", " ", code.strip())  # MAKE[0]="kbuildguard make ...": quotes only group words
        found = False
        for segment in SEPARATORS.split(" " + code):
            tokens = segment.split()
            while tokens and PROMPT.match(tokens[0]):
                tokens = tokens[1:]
            if not tokens or tokens[0].startswith("#"):
                continue
            start = _program(tokens)
            if not start:
                continue
            found = True
            yield tokens[start:]
        match = SHORT.match(code) if not found else None
        if match:
            yield [match.group(1)] + match.group(2).split()


def shown_commands(text: str) -> Iterator[Tuple[str, List[str]]]:
    """(verb, flags) of each kbuildguard command shown; ("", flags) for the flags before the verb.
    make's own arguments after `--` are not ours."""
    for rest in shown_invocations(text):
        verb_at = next((i for i, t in enumerate(rest) if not t.startswith("-")), len(rest))
        if verb_at:
            yield "", _flags(rest[:verb_at])
        # a verb in capitals is a placeholder (`kbuildguard COMMAND --help`), not a command
        if verb_at < len(rest) and re.match(r"[a-z][a-z-]*$", rest[verb_at]):
            yield rest[verb_at], _flags(rest[verb_at + 1:])


def option_strings(verb: str) -> Set[str]:
    """The options the parser accepts: the verb's subparser's, or the global parser's for verb "".
    Looked up in the parser, not in --help's text, whose epilog mentions other verbs' flags."""
    parser = cli.build_parser()
    if not verb:
        return set(parser._option_string_actions)
    sub = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    if verb not in sub.choices:
        raise KeyError(verb)
    return set(sub.choices[verb]._option_string_actions)


def help_text(verb: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        cli.build_parser().parse_args([verb, "--help"])
    return out.getvalue()


def test_shown_commands_finds_flags():
    shown = list(shown_commands("```sh\nkbuildguard make --kernel R -- V=1 -j8  # x\n```\n`kbuildguard check --json`"
                                "`make --sign` `make -C TREE M=$PWD clean`"))
    assert shown == [("make", ["--kernel"]), ("check", ["--json"]), ("make", ["--sign"])]


@pytest.mark.parametrize("shown, expected", [
    ("`KBUILDGUARD_CC=gcc kbuildguard make --x`", [("make", ["--x"])]),
    ("`sudo -E kbuildguard make --x`", [("make", ["--x"])]),
    ("`sudo -u root -E kbuildguard make --x`", [("make", ["--x"])]),
    ("`cd x; kbuildguard make --x`", [("make", ["--x"])]),
    ("`cd x && kbuildguard make --x | tee log`", [("make", ["--x"])]),
    ("`time kbuildguard check --x`", [("check", ["--x"])]),
    ("`python3 -m kbuildguard make --x`", [("make", ["--x"])]),
    ("`python3 kbuildguard.pyz make --x`", [("make", ["--x"])]),
    ("`./kbuildguard.pyz make --x`", [("make", ["--x"])]),
    ("`ssh server python3 kbuildguard.pyz make --x`", [("make", ["--x"])]),
    ("`kbuildguard.pyz make --x`", [("make", ["--x"])]),
    ("`/usr/local/bin/kbuildguard make --x`", [("make", ["--x"])]),
    ("`$ kbuildguard make --x`", [("make", ["--x"])]),
    ("`MAKE[0]=\"kbuildguard make --x -C $dkms_tree\"`", [("make", ["--x", "-C"])]),
    ("`kbuildguard --no-such-global make --x`", [("", ["--no-such-global"]), ("make", ["--x"])]),
    ("```sh\n    kbuildguard make --x\n```", [("make", ["--x"])]),
    ("1. build:\n\n   ```sh\n   kbuildguard make --x\n   ```\n", [("make", ["--x"])]),
    ("text\n\n    kbuildguard make --x\n", [("make", ["--x"])]),
    ("```sh\nkbuildguard make \\\n    --x\n```", [("make", ["--x"])]),
    ("`echo kbuildguard make --x`", []),
    ("`kbuildguard COMMAND --help`", []),  # a placeholder  # an argument, not the command
    ("```\n12.1 s   kbuildguard check -q\n```", []),  # benchmark output that names a command
    ("```sh\n# kbuildguard make --x is a comment\n```", []),
])
def test_the_finder_sees_every_way_a_command_is_shown(shown, expected):
    assert list(shown_commands(shown)) == expected


PLACEHOLDER = re.compile(r"[A-Z]{2,}|[<>{}\[\]$*~]|\.\.\.|\u2026")  # KERNEL, <file>, $R, *.ko, ...


def bad_values(argv: List[str]) -> str:
    """What the real parser says about a shown command's values (`--sig-enforce maybe`: an invalid
    choice, `--jobs x`: an invalid int); "" when it takes them, or when the command has a placeholder.
    Prose shortens commands (`check --json` without its FILE): a missing argument is not an error here."""
    argv = _own(argv)
    if not argv or any(PLACEHOLDER.search(a) for a in argv):
        return ""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli.build_parser().parse_args(argv)
    except SystemExit:
        said = err.getvalue().strip().splitlines()
        return said[-1] if said and re.search(r"invalid (choice|\w+ value)", said[-1]) else ""
    return ""


def test_every_shown_value_is_one_the_parser_takes():
    wrong = ["%s: kbuildguard %s: %s" % (os.path.relpath(page, REPO), " ".join(rest), bad_values(rest))
             for page in pages() for rest in shown_invocations(read(page)) if bad_values(rest)]
    assert wrong == []


# The forms issue 21's tester showed the finder missed; each line is wrong and must be caught.
BAD_LINES = [
    "```sh\nif kbuildguard check --no-such-flag mod.ko; then echo ok; fi\n```",
    "```sh\n! kbuildguard check --no-such-flag mod.ko\n```",
    "```sh\nfind . -name '*.ko' | xargs -n 1 kbuildguard check --no-such-flag\n```",
    "```sh\ntimeout 600 kbuildguard make --no-such-flag\n```",
    "```sh\nchroot /srv/root kbuildguard make --no-such-flag\n```",
    "```console\nroot@build01:~# kbuildguard check --no-such-flag mod.ko\n```",
    "```yaml\n- run: kbuildguard make --no-such-flag\n```",
    "```sh\nkbuildguard check --sig-enforce maybe mod.ko\n```",
    "```sh\nionice -c 3 nice -n 19 kbuildguard make --no-such-flag\n```",
    "```sh\nsystemd-run --unit kbg -p MemoryMax=2G kbuildguard make --no-such-flag\n```",
    "```sh\nwatch -n 5 kbuildguard check --no-such-flag mod.ko\n```",
    "```yaml\nscript:\n  - kbuildguard make --no-such-flag\n```",
    "`kbuildguard reboot-check --no-such-flag`",
    "`fetch --no-such-flag 6.1.0-57-amd64`",
]


def page_problems(text: str) -> List[str]:
    problems = []
    for rest in shown_invocations(text):
        verb_at = next((i for i, t in enumerate(rest) if not t.startswith("-")), len(rest))
        verb = rest[verb_at] if verb_at < len(rest) else ""
        try:
            known = option_strings(verb)
        except KeyError:
            problems.append("no such command %s" % verb)
            continue
        problems += ["%s %s" % (verb, f) for f in _flags(rest[verb_at + 1:]) if f not in known]
        if bad_values(rest):
            problems.append(bad_values(rest))
    return problems


@pytest.mark.parametrize("line", BAD_LINES)
def test_each_bad_line_is_caught(line):
    assert page_problems(line) != []


def test_good_lines_pass():
    assert page_problems("```sh\ntimeout 600 kbuildguard check --sig-enforce yes mod.ko\n"
                         "root@h:~# kbuildguard check --json mod.ko\n```\n```yaml\n- run: kbuildguard make --kernel all\n```") == []


def test_the_verbs_are_the_parsers():
    assert {"fetch", "reboot-check", "make", "check", "explain"} <= set(verbs())


def test_every_shown_flag_is_in_its_verbs_parser():
    options: Dict[str, Set[str]] = {}
    unknown = []
    count = 0
    for page in pages():
        for verb, flags in shown_commands(read(page)):
            if verb not in options:
                try:
                    options[verb] = option_strings(verb)
                except KeyError:
                    options[verb] = set()
            if not options[verb]:
                unknown.append("%s: kbuildguard %s: no such command" % (os.path.relpath(page, REPO), verb))
                continue
            for flag in flags:
                count += 1
                if flag not in options[verb]:
                    unknown.append("%s: kbuildguard %s %s: the parser has no such option" % (
                        os.path.relpath(page, REPO), verb or "(before the command)", flag))
    assert not unknown, "\n".join(unknown)
    assert count > 60  # the pages show many commands: a broken finder must not pass quietly


def test_options_are_the_parsers_not_the_help_texts():
    assert "--sign" in help_text("check")  # the exit-code epilog names make's flags on every verb's --help ...
    assert "--sign" not in option_strings("check")  # ... but check has no --sign
    assert "--kernel" in option_strings("check") and "--json" in option_strings("check")
    assert option_strings("") == {"-h", "--help", "--version"}
    assert "--no-such-flag" not in option_strings("make")


def test_dead_links_of_every_form_are_seen(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](nosuch.md) [b][r] [c][nodef] [d][]\n\n[r]: other.md\n<a href=\"html.md\">x</a>\n"
                    "<img src='pic.png'>\n`[e](in-code.md)`\n")
    assert sorted(links(str(page))) == sorted(["nosuch.md", "other.md", "[nodef]: undefined", "[d]: undefined",
                                               "html.md", "pic.png"])


def test_reference_exit_code_table_is_the_code_table():
    section = read(os.path.join(DOCS, "reference.md")).split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M)
    assert [(int(code), text) for code, text in rows] == list(EXIT_CODES)


def test_readme_is_a_front_page():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES


def backquoted_after(text: str, lead: str) -> List[str]:
    """The `words` of the sentence that starts with ``lead``, asides in parentheses left out; the
    sentence ends at the first full stop or semicolon outside backquotes and parentheses."""
    rest = text.split(lead, 1)[1]
    rest = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(".", "\0").replace(";", "\1").replace("(", "\2").replace(")", "\3"), rest)
    while True:  # innermost first
        shorter = re.sub(r"\([^()]*\)", "", rest)
        if shorter == rest:
            break
        rest = shorter
    sentence = re.split(r"[.;](?=\s|$)", rest, maxsplit=1)[0]
    return [w.replace("\0", ".").replace("\1", ";").replace("\2", "(").replace("\3", ")") for w in re.findall(r"`([^`]+)`", sentence)]


def test_reference_names_every_closed_set_of_the_json():
    from kbuildguard.explain.load import FileSays
    from kbuildguard.explain.loadlog import Kind
    from kbuildguard.gates.model import Effect, Gate

    text = read(os.path.join(DOCS, "reference.md"))
    assert backquoted_after(text, "`kind` is one of: ") == [str(k) for k in Kind]
    assert backquoted_after(text, "`file` is one of: ") == [str(v) for v in FileSays]
    assert backquoted_after(text, "`name` is one of ") == [str(g) for g in Gate]
    effects = set(backquoted_after(text, "`effect` one of "))
    assert effects == {str(e) for e in Effect}


def reference_section(title: str) -> str:
    return read(os.path.join(DOCS, "reference.md")).split("### " + title, 1)[1].split("\n#", 1)[0]


def test_reference_names_the_fields_of_unload_doctor_and_sign_json():
    from kbuildguard.build.preflight import Check as ToolCheck
    from kbuildguard.build.preflight import Status
    from kbuildguard.commands.sign import signer_json
    from kbuildguard.explain.unload import Explanation, Finding, LoadedModule
    from kbuildguard.report import explanation_json

    def named(section: str) -> Set[str]:
        return set(re.findall(r"`\"?([\w-]+)\"?`", section)) | set(re.findall(r"\"(\w+)\"", section))

    unload = named(reference_section("`explain` for unload failures"))
    assert set(LoadedModule._fields) | set(Finding._fields) | set(Explanation._fields) <= unload
    sample = Explanation(LoadedModule(name="m", size=1, refcnt=0, users=(), permanent=False, state="Live", initstate="", taint=""), None, (), None, ())
    assert set(explanation_json(sample)) <= unload
    doctor = named(reference_section("`doctor --json`"))
    assert {"ok", "kernel", "compiler", "settings", "llvm", "btf_base", "checks", "check", "subject", "status",
            "message", "packages"} <= doctor
    assert {str(c) for c in ToolCheck} | {str(s) for s in Status} <= doctor
    assert set(backquoted_after(read(os.path.join(DOCS, "reference.md")), "`check` is one of ")) == {str(c) for c in ToolCheck}
    from kbuildguard.build.modsign import Signer, SigningKey
    assert set(signer_json(Signer("p", "h", "s", SigningKey("k", "c", "o")))) <= named(reference_section("`sign --json`"))


def copied_lines(pages):
    """Prose lines and table rows (code blocks aside) of 80 characters or more that two pages share:
    issue 21 found developers.md's copy of promises.md's "Fail closed" drifted (rows missing).
    One owner per text; the others link to it. ``pages``: (name, text)."""
    seen = {}
    for name, text in pages:
        fenced = False
        for line in text.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            line = line.strip()
            if not fenced and len(line) >= 80 and not line.startswith("|---"):
                seen.setdefault(line, set()).add(name)
    return sorted("%s: %s" % (" and ".join(sorted(names)), line[:60]) for line, names in seen.items() if len(names) > 1)


def test_no_text_is_copied_between_pages():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pages = []
    for rel in ["README.md"] + ["docs/" + n for n in sorted(os.listdir(os.path.join(root, "docs"))) if n.endswith(".md")]:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            pages.append((rel, f.read()))
    assert copied_lines(pages) == []


def test_the_copy_check_sees_a_copied_row():
    row = "| a module fails a check | no `.ko` of it; `.kbuildguard/rejected/NAME.ko-rejected` + `NAME.report.json` | 8 |"
    assert copied_lines([("a.md", row), ("b.md", "x\n" + row), ("c.md", "```\n%s\n```\n" % row)]) == [
        "a.md and b.md: " + row[:60]]
