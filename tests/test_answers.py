"""check's remembered answers (gates/answers.py): served only while the module file and every kernel
fact are unchanged; racy, corrupt, foreign or opted-out books are not used."""

import json
import os
import time

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.gates import answers, loader, pool
from kbuildguard.gates.model import Gate
from kbuildguard.gates.pool import verify_paths
from kbuildguard.gates.verify import Expectation
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import MatchLevel


@pytest.fixture
def later(monkeypatch):
    """The run happens well after the files were written (the racy rule would store nothing)."""
    monkeypatch.setattr(answers, "now_ns", lambda: int(time.time() * 1e9) + 60 * 10 ** 9)


def _expect(tmp_path, level=MatchLevel.VERSION):
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))
    return Expectation(target=target, level=level, reference=None, not_compared="", loader=loader.gather(target))


def _no_reading(monkeypatch):
    def refuse(path, expect):
        raise AssertionError("read %s although its answer was remembered" % path)
    monkeypatch.setattr(pool, "verify_path", refuse)


def _modules(tmp_path):
    paths = []
    for name in ("a", "b"):
        path = tmp_path / ("%s.ko" % name)
        path.write_bytes(build_module(name=name))
        paths.append(str(path))
    return paths


def test_a_second_run_reads_no_module_and_says_the_same(tmp_path, monkeypatch, later):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    first = verify_paths(paths, expect, answers=book)
    assert len(os.listdir(str(tmp_path / "cache"))) == 1
    _no_reading(monkeypatch)
    second = verify_paths(paths, expect, answers=book)
    assert [(r.path, r.verdict, r.checks) for r in second] == [(r.path, r.verdict, r.checks) for r in first]
    assert all(r.info is None for r in second)


def test_a_changed_module_is_read_again_even_with_its_old_mtime(tmp_path, monkeypatch, later):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    verify_paths(paths, expect, answers=book)
    st = os.stat(paths[0])
    time.sleep(0.05)  # past the coarse clock's tick: the rewrite gets another ctime
    data = open(paths[0], "rb").read()
    assert b"vermagic=6." in data
    with open(paths[0], "r+b") as f:  # same inode, same size: only ctime tells
        f.write(data.replace(b"vermagic=6.", b"vermagic=7."))
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime a user can restore; ctime not
    again = verify_paths(paths, expect, answers=book)
    assert again[0].info is not None and again[0].info.vermagic.startswith("7.")  # read again
    assert again[1].info is None  # unchanged: served


def test_other_kernel_facts_are_another_book(tmp_path, later):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    verify_paths(paths, expect, answers=book)
    other = expect._replace(level=MatchLevel.EXACT)
    assert answers.facts_digest(other) != answers.facts_digest(expect)
    assert all(r.info is not None for r in verify_paths(paths, other, answers=book))
    config = dict(expect.loader.config, CONFIG_MODULE_SIG_FORCE="y")
    changed = expect._replace(loader=expect.loader._replace(config=config))
    assert answers.facts_digest(changed) != answers.facts_digest(expect)


def test_kbuildguards_own_code_is_part_of_the_key(tmp_path, monkeypatch):
    expect = _expect(tmp_path)
    before = answers.facts_digest(expect)
    monkeypatch.setattr(answers, "_code_digest", lambda: "another kbuildguard")
    assert answers.facts_digest(expect) != before


def test_a_module_written_just_now_is_not_remembered(tmp_path):
    """racy-git: a file changed within the clock's tick of its reading could change again unseen."""
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    verify_paths(paths, expect, answers=book)
    assert not os.path.exists(str(tmp_path / "cache"))
    assert all(r.info is not None for r in verify_paths(paths, expect, answers=book))


@pytest.mark.parametrize("garbage", [b"", b"{", b"\xff\xfe", b"[]", b'{"version": 1}', b"9" * 5000])
def test_a_corrupt_book_is_ignored_and_rewritten(tmp_path, later, garbage):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    verify_paths(paths, expect, answers=book)
    (name,) = os.listdir(str(tmp_path / "cache"))
    path = tmp_path / "cache" / name
    path.write_bytes(garbage)
    reports = verify_paths(paths, expect, answers=book)
    assert all(r.info is not None for r in reports)
    assert json.loads(path.read_text())["version"] == answers.VERSION


def _tampered(tmp_path):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    verify_paths(paths, expect, answers=book)
    (name,) = os.listdir(str(tmp_path / "cache"))
    return expect, paths, book, tmp_path / "cache" / name


@pytest.mark.parametrize("edit", [
    lambda d: d["checks"][0].__setitem__(0, "no-such-gate"),
    lambda d: d["checks"][0].__setitem__(6, "explodes"),
    lambda d: d["checks"][0].__setitem__(1, "yes"),
    lambda d: [row.__setitem__(6, [999]) for row in d["modules"].values()],
    lambda d: [row.__setitem__(5, "ok") or row[6].append(len(d["checks"]) - 1) for row in d["modules"].values()]
    and d["checks"].append(["symbols", False, "", "", "", "", "rejected"]),
    lambda d: [row.__setitem__(0, -1) for row in d["modules"].values()],
    lambda d: d.__setitem__("facts", "0" * 64),
])
def test_a_malformed_or_inconsistent_book_is_not_trusted(tmp_path, later, edit):
    expect, paths, book, path = _tampered(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    assert all(r.info is not None for r in verify_paths(paths, expect, answers=book))


def test_a_book_others_may_write_is_not_trusted(tmp_path, later):
    expect, paths, book, path = _tampered(tmp_path)
    os.chmod(str(path), 0o666)
    assert all(r.info is not None for r in verify_paths(paths, expect, answers=book))


def test_a_remembered_modules_exports_still_serve_its_siblings(tmp_path, later):
    expect = _expect(tmp_path)
    user, provider = str(tmp_path / "user.ko"), str(tmp_path / "provider.ko")
    (tmp_path / "user.ko").write_bytes(build_module(name="user", undefined=["_printk", "kbg_provided"]))
    (tmp_path / "provider.ko").write_bytes(build_module(name="provider", exports=["kbg_provided"]))
    book = answers.Answers(str(tmp_path / "cache"))
    verify_paths([user, provider], expect, answers=book)
    reports = verify_paths([user, provider], expect, answers=book)
    assert reports[1].info is None  # provider remembered
    assert reports[0].info is not None  # user needs a sibling: decided per run, never remembered
    assert all(c.ok for c in reports[0].checks if c.name is Gate.SYMBOLS)


def test_the_opt_out(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert answers.answers_at(str(tmp_path), home).folder == os.path.join(str(tmp_path), "answers-v1")
    assert answers.answers_at(str(tmp_path), dict(home, KBUILDGUARD_NO_CACHE="1")).folder is None
    assert answers.answers_at(str(tmp_path), dict(home, KBUILDGUARD_NO_CACHE="0")).folder is not None
    assert answers.answers_at(str(tmp_path), dict(home, KBUILDGUARD_NO_CACHE="")).folder is not None
    assert answers.answers_at(str(tmp_path), home, off=True).folder is None
    assert answers.answers_at("/nonexistent/.cache/kbuildguard", {}).folder is None  # no HOME at all
    assert answers.answers_at("cache/kbuildguard", {"XDG_CACHE_HOME": "cache"}).folder is None  # relative
    from kbuildguard.cli import build_parser

    assert build_parser().parse_args(["check", "--no-cache", "x.ko"]).no_cache is True


def test_facts_in_any_order_have_one_digest():
    one, two = [], []
    answers._canonical({"b": frozenset({"x", "y", "z"}), "a": {1, 2}}, one)
    answers._canonical({"a": {2, 1}, "b": frozenset({"z", "y", "x"})}, two)
    assert one == two


def test_facts_without_a_canonical_form_remember_nothing(tmp_path, later):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    odd = expect._replace(not_compared=object())
    assert answers.facts_digest(odd) is None
    verify_paths(paths, odd, answers=answers.Answers(str(tmp_path / "cache")))
    assert not os.path.exists(str(tmp_path / "cache"))


def test_at_most_max_books(tmp_path, later, monkeypatch):
    monkeypatch.setattr(answers, "MAX_BOOKS", 2)
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    book = answers.Answers(str(tmp_path / "cache"))
    for level in (MatchLevel.VERSION, MatchLevel.EXACT, MatchLevel.MAJOR):
        verify_paths(paths, expect._replace(level=level), answers=book)
        time.sleep(0.02)
    assert len(os.listdir(str(tmp_path / "cache"))) == 2


def test_a_fifo_or_a_link_in_place_of_the_book_is_not_read(tmp_path, later):
    expect, paths, book, path = _tampered(tmp_path)
    os.rename(str(path), str(path) + ".real")
    os.symlink(str(path) + ".real", str(path))
    assert all(r.info is not None for r in verify_paths(paths, expect, answers=book))
    os.unlink(str(path))
    os.mkfifo(str(path))  # a read would wait for ever
    assert all(r.info is not None for r in verify_paths(paths, expect, answers=book))


def test_a_folder_others_may_write_is_neither_read_nor_written(tmp_path, later):
    expect, paths, book, path = _tampered(tmp_path)
    os.chmod(str(tmp_path / "cache"), 0o777)
    assert all(r.info is not None for r in verify_paths(paths, expect, answers=book))
    os.unlink(str(path))
    verify_paths(paths, expect, answers=book)
    assert not os.path.exists(str(path))


def test_no_cache_home_is_no_error(tmp_path, later):
    expect, paths = _expect(tmp_path), _modules(tmp_path)
    (tmp_path / "file").write_text("")
    book = answers.Answers(str(tmp_path / "file" / "answers-v1"))  # its parent is a file
    assert len(verify_paths(paths, expect, answers=book)) == 2


@pytest.mark.parametrize("argv, env, remembered", [
    ([], {}, True),
    (["--no-cache"], {}, False),
    ([], {"KBUILDGUARD_NO_CACHE": "1"}, False),
])
def test_check_remembers_unless_told_not_to(tmp_path, later, argv, env, remembered):
    import io

    from kbuildguard.cli import main

    tree = make_tree(tmp_path / "tree")
    paths = _modules(tmp_path)
    env = dict(env, XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    for _ in range(2):
        out = io.StringIO()
        main(["check", "--json", "--kernel-dir", tree] + argv + paths, env=env, stdout=out, stderr=io.StringIO())
        assert [m["path"] for m in json.loads(out.getvalue())["modules"]] == paths
    assert os.path.isdir(str(tmp_path / "xdg" / "kbuildguard" / "answers-v1")) is remembered


def test_a_module_whose_name_is_not_utf8_is_remembered(tmp_path, monkeypatch, later):
    expect = _expect(tmp_path)
    odd = os.path.join(str(tmp_path), os.fsdecode(b"odd\xff\nname.ko"))
    with open(odd, "wb") as f:
        f.write(build_module(name="odd"))
    book = answers.Answers(str(tmp_path / "cache"))
    first = verify_paths([odd], expect, answers=book)
    _no_reading(monkeypatch)
    again = verify_paths([odd], expect, answers=book)
    assert again[0].info is None and again[0].checks == first[0].checks and again[0].path == odd
