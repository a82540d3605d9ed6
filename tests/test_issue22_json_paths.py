"""Issue 22: every JSON output carries a file name in one documented form (docs/reference.md): its
bytes read as UTF-8, a byte that is not UTF-8 as the four characters \\xNN -- never a \\udcNN escape."""

import json
import os

from test_build import machine, run  # noqa: F401 (machine is a fixture)

from kbuildguard.console import for_json


def test_names_python_could_not_decode_are_their_bytes_as_utf8():
    # 3.6 under LC_ALL=C decodes every non-ASCII byte of a name to a lone surrogate
    assert for_json("/tmp/k\udcc3\udcb6rnel") == "/tmp/k\u00f6rnel"
    assert for_json("/tmp/\udcff\udcfe.ko") == "/tmp/\\xff\\xfe.ko"
    assert for_json({"p\udcff": ["\udcc3\udcb6", 1, None, ("x",)]}) == {"p\\xff": ["\u00f6", 1, None, ["x"]]}
    assert for_json("plain") == "plain" and for_json("\u00f6") == "\u00f6"


def test_make_dry_run_json_of_a_non_utf8_folder(machine):  # noqa: F811
    repo = os.path.join(os.fsencode(machine["repo"]), b"mod\xff\xc3\xb6")
    os.mkdir(repo)
    for name, text in ((b"kbuildguard.toml", '[[module]]\nname = "kdemo"\n'), (b"kdemo.c", "/* module */\n")):
        with open(os.path.join(repo, name), "w") as f:
            f.write(text)
    code, out, err, _ = run(machine, "make", "-C", os.fsdecode(repo), "--kernel-dir", machine["tree"], "--dry-run", "--json")
    assert code == 0, err
    assert "\\udc" not in out
    text = json.dumps(json.loads(out))
    assert "mod\\\\xff\\u00f6" in text  # \xff as four characters, the valid UTF-8 as the character
