"""The README and docs/ pages cannot rot silently.

- every relative link (and its #anchor) leads to a file (and a heading) that exists;
- every `kbuildguard VERB --flag` they show, in a code span or a code block, is an option that
  `kbuildguard VERB --help` prints (the parser is built in-process: nothing is started);
- the exit-code table of docs/reference.md is errors.py's table, row for row;
- the README stays a front page (at most 260 lines): the detail lives in docs/, by task.
"""

import contextlib
import io
import os
import re
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from kbuildguard.cli import build_parser
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


def without_code(text: str) -> str:
    """Markdown outside fenced blocks and code spans: where links and headings are."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: str) -> Set[str]:
    seen: Dict[str, int] = {}
    result = set()
    text = re.sub(r"^```.*?^```", "", read(path), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else "%s-%d" % (base, n))
    return result


def links(path: str) -> Iterator[str]:
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(read(path))):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not ours to check
            yield target


def test_slug_follows_github():
    assert slug("Module signatures and `make --sign`") == "module-signatures-and-make---sign"
    assert slug("Promises: what is guaranteed, under which failure") == "promises-what-is-guaranteed-under-which-failure"


@pytest.mark.parametrize("page", pages(), ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
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
    """Every code block line and every code span: where commands are shown."""
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.splitlines():
            yield line
    for span in re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)):
        yield span


# Where a command starts: a line or span, a prompt, sudo, a shell operator, a quoted MAKE[0]= or
# `python3 kbuildguard.pyz` -- not benchmark output that merely mentions `kbuildguard check -q`.
COMMAND = re.compile(r"(?:^|\$ |sudo |&& |\| |\"|python3 )kbuildguard(?:\.pyz)? ([a-z][a-z-]*)((?: +[^ ]+)*)")
END_OF_COMMAND = ("#", "&&", "||", "|", ">", ";", "--")


# Prose names a command by its verb alone: `make --sign`, `check --json`. GNU make's own options are
# shown as `make -C TREE ...` or alone, never as `make --long-option`.
SHORT = re.compile(r"^(detect|make|check|sign|doctor|setup|explain|init|rpm-macros)((?: +--[a-z][^ ]*)(?: +[^ ]+)*)$")


def shown_commands(text: str) -> Iterator[Tuple[str, List[str]]]:
    """(verb, flags) of each `kbuildguard VERB ...` shown; make's own arguments after `--` are not ours."""
    for code in code_texts(text):
        matches = list(COMMAND.finditer(code)) or list(SHORT.finditer(code))
        for match in matches:
            verb, rest = match.group(1), match.group(2)
            flags = []
            for token in rest.split():
                if token in END_OF_COMMAND or token.startswith("#"):
                    break
                token = token.strip("\"'`),")
                if re.match(r"--?[A-Za-z]", token):
                    flags.append(token.split("=", 1)[0])
            yield verb, flags


def help_text(verb: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        build_parser().parse_args([verb, "--help"])
    return out.getvalue()


def test_shown_commands_finds_flags():
    shown = list(shown_commands("```sh\nkbuildguard make --kernel R -- V=1 -j8  # x\n```\n`kbuildguard check --json`"
                                "`make --sign` `make -C TREE M=$PWD clean`"))
    assert shown == [("make", ["--kernel"]), ("check", ["--json"]), ("make", ["--sign"])]


def test_every_shown_flag_is_in_its_verbs_help():
    helps: Dict[str, str] = {}
    unknown = []
    count = 0
    for page in pages():
        for verb, flags in shown_commands(read(page)):
            if verb not in helps:
                try:
                    helps[verb] = help_text(verb)
                except AssertionError:
                    helps[verb] = ""
            if not helps[verb]:
                unknown.append("%s: kbuildguard %s: no such command" % (os.path.relpath(page, REPO), verb))
                continue
            for flag in flags:
                count += 1
                if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), helps[verb]):
                    unknown.append("%s: kbuildguard %s %s: not in its --help" % (os.path.relpath(page, REPO), verb, flag))
    assert not unknown, "\n".join(unknown)
    assert count > 60  # the pages show many commands: a broken finder must not pass quietly


def test_a_made_up_flag_is_caught():
    assert not re.search(r"(?<![\w-])--no-such-flag(?![\w-])", help_text("make"))


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
