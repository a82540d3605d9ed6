"""CI reports (--junit, --sarif, --markdown): the shapes CI readers accept, validated against the real
schemas (tests/data/schemas/README.md says where each came from), and hostile strings kept inert."""

import json
import os

import pytest
from test_build import GCC11_COMMENT, RELEASE, InstallingRunner, KbuildRunner, machine  # noqa: F401 (machine: the fixture)
from test_build import run as run_make
from test_docs import anchors

from conftest import make_tree, tree_outputs
from elfbuild import build_module
from kbuildguard import cireport
from kbuildguard.cireport import KernelResult, ModuleResult
from kbuildguard.cli import main
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.verify import ModuleReport, Verdict

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "data", "schemas")
DOCS = os.path.join(os.path.dirname(HERE), "docs")

HOSTILE = "ev|il\n<x>&]]>\x1b[2J\x00\x07\udcff`*_[a](b)"


def _junit_schema():
    """lxml where it installs, else xmlschema (pure Python); neither: the test says so and skips."""
    path = os.path.join(SCHEMAS, "junit-10.xsd")
    try:
        from lxml import etree
    except ImportError:
        etree = None
    if etree is not None:
        schema = etree.XMLSchema(etree.parse(path))

        def validate(text):
            doc = etree.fromstring(text.encode("utf-8"))
            assert schema.validate(doc), schema.error_log
            return doc
        return validate
    xmlschema = pytest.importorskip("xmlschema", reason="neither lxml nor xmlschema installs on this Python")
    xs = xmlschema.XMLSchema(path)

    def validate_xs(text):
        import xml.etree.ElementTree as ET
        xs.validate(text)
        return ET.fromstring(text.encode("utf-8"))
    return validate_xs


def _sarif_validate(text):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed for this Python "
                                                          "(tests/requirements*.txt lists it where it installs)")
    with open(os.path.join(SCHEMAS, "sarif-schema-2.1.0.json"), encoding="utf-8") as f:
        schema = json.load(f)
    data = json.loads(text)
    jsonschema.Draft4Validator(schema).validate(data)
    return data


def _checks(**bad):
    out = []
    for gate in Gate:
        if gate in (Gate.READ, Gate.COMPRESSION):
            continue
        ok, effect, message = bad.get(str(gate), (True, Effect.OK, "%s matches" % gate))
        out.append(Check(name=gate, ok=ok, expected="e " + HOSTILE, found="f " + HOSTILE, message=message,
                         fix="fix " + HOSTILE if not ok else "", effect=effect))
    return tuple(out)


def _results():
    good = ModuleReport(path="/w/out/kdemo.ko", verdict=Verdict.OK, checks=_checks(
        signature=(True, Effect.TAINTS, "unsigned: the kernel taints"), btf=(True, Effect.NOT_CHECKED, "no BTF")),
        info=None)
    bad = ModuleReport(path="/w/out/" + HOSTILE + ".ko", verdict=Verdict.MISMATCH, checks=_checks(
        vermagic=(False, Effect.REJECTED, "vermagic differs " + HOSTILE),
        unload=(True, Effect.CANNOT_UNLOAD, "no exit function")), info=None)
    return [KernelResult(kernel="6.1.0-56-amd64", modules=(ModuleResult(good.path, good), ModuleResult(bad.path, bad))),
            KernelResult(kernel="6.1.0-57-" + HOSTILE, modules=(), error="build failed: make exited 2 " + HOSTILE,
                         exit_code=7)]


def test_junit_validates_against_jenkins_xsd_and_counts():
    validate = _junit_schema()
    doc = validate(cireport.junit(_results()))
    suites = doc.findall("testsuite")
    assert [s.get("name") for s in suites][0] == "6.1.0-56-amd64"
    first = suites[0]
    per_module = len(Gate) - 2
    assert first.get("tests") == str(2 * per_module)
    # failures: the refused vermagic and the module that never unloads; skipped: the unchecked btf
    assert (first.get("failures"), first.get("skipped")) == ("2", "1")
    cases = first.findall("testcase")
    assert {c.get("classname") for c in cases} == {"6.1.0-56-amd64.kdemo", "6.1.0-56-amd64." + cireport.module_name(
        cireport.clean(HOSTILE) + ".ko")}
    vermagic = [c for c in cases if c.get("name") == "vermagic" and c.find("failure") is not None][0]
    assert vermagic.find("failure").get("message").startswith("will be rejected at load: vermagic differs")
    assert "\n" not in vermagic.find("failure").get("message")
    assert vermagic.find("failure").text.startswith("will be rejected at load")  # what GitLab shows
    # the kernel whose build failed is a failed testcase, not a missing row
    build = suites[1].findall("testcase")
    assert [c.get("name") for c in build] == ["build"] and build[0].find("failure").get("type") == "exit 7"


def test_junit_names_two_modules_of_one_name_apart():
    rep = _results()[0].modules[0].report
    k = KernelResult(kernel="6.1", modules=(ModuleResult("/a/kdemo.ko", rep), ModuleResult("/b/kdemo.ko", rep._replace(path="/b/kdemo.ko"))))
    doc = _junit_schema()(cireport.junit([k]))
    assert {c.get("classname") for c in doc.iter("testcase")} == {"6.1.kdemo", "6.1.kdemo~2"}


def test_junit_has_no_character_xml_forbids():
    text = cireport.junit(_results())
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text and "\udcff" not in text
    assert "\\x1b" in text and "\\xff" in text
    text.encode("utf-8")  # no lone surrogate survives


def test_sarif_validates_against_oasis_schema():
    data = _sarif_validate(cireport.sarif(_results(), "/w"))
    run = data["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["kbuildguard/" + str(g) for g in Gate] + ["kbuildguard/build"]
    levels = {(r["ruleId"], r["level"]) for r in run["results"]}
    assert ("kbuildguard/vermagic", "error") in levels and ("kbuildguard/unload", "error") in levels
    assert ("kbuildguard/signature", "warning") in levels and ("kbuildguard/btf", "note") in levels
    assert ("kbuildguard/build", "error") in levels
    for r in run["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    located = [r for r in run["results"] if r["ruleId"] == "kbuildguard/vermagic"][0]
    uri = located["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("out/ev%7Cil") and uri.endswith(".ko")  # relative to the checkout: code scanning places it
    assert "\n" not in located["message"]["text"]


def test_sarif_help_names_the_gates_anchors():
    """Each rule's help names a heading that docs/ has: renaming a heading fails here. No helpUri:
    the project has no public address, and an invented one would be a dead link in every alert."""
    have = anchors(os.path.join(DOCS, "gates.md"))
    for rule in json.loads(cireport.sarif([], "/"))["runs"][0]["tool"]["driver"]["rules"]:
        assert "helpUri" not in rule
        page, anchor = rule["help"]["text"].split(cireport.DOCS, 1)[1].split("#")
        assert anchor in anchors(os.path.join(DOCS, page)), rule["help"]["text"]
    assert len(have) > len(Gate)


def test_markdown_matrix_escapes_cells():
    text = cireport.markdown(_results())
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = table[0]
    columns = header.count(" | ") + 1
    for row in table[2:]:
        # an escaped \| is no column: every row has the header's number of cells
        assert row.replace("\\|", "").count(" | ") + 1 == columns, row
    assert "<x>" not in text and "&lt;x&gt;" in text and "\x1b" not in text
    assert "**REFUSED**" in text and "**no unload**" in text
    assert "build failed" in text


def test_writes_are_atomic_and_leave_no_temp(tmp_path, monkeypatch):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    target = tmp_path / "r.xml"
    target.write_text("old")
    cireport.write_atomic(str(target), "new")
    assert target.read_text() == "new" and os.listdir(str(tmp_path)) == ["r.xml"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"

    def fail(a, b):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cireport.os, "replace", fail)
    with pytest.raises(cireport.CannotWrite, match="No space left"):
        cireport.write_atomic(str(target), "newer")
    assert target.read_text() == "new" and os.listdir(str(tmp_path)) == ["r.xml"]

    def signal(a, b):
        raise KeyboardInterrupt
    monkeypatch.setattr(cireport.os, "replace", signal)
    with pytest.raises(KeyboardInterrupt):
        cireport.write_atomic(str(target), "newer")
    assert os.listdir(str(tmp_path)) == ["r.xml"]


def test_a_symlinked_report_replaces_its_target(tmp_path):
    (tmp_path / "real.xml").write_text("old")
    os.symlink("real.xml", str(tmp_path / "link.xml"))
    paths = cireport.check_paths(cireport.ReportPaths(junit="link.xml"), str(tmp_path))
    cireport.write(paths, [], str(tmp_path))
    assert os.path.islink(str(tmp_path / "link.xml")) and "<testsuites" in (tmp_path / "real.xml").read_text()


def _cli(capsys, *argv):
    code = main(list(argv), env={"PATH": "/nonexistent"})
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_check_writes_all_three_and_still_fails(capsys, tmp_path):
    tree = make_tree(tmp_path / "tree")
    (tmp_path / "good.ko").write_bytes(build_module())
    (tmp_path / "bad.ko").write_bytes(build_module(vermagic="6.1.0-9-amd64 SMP "))
    reports = tmp_path / "reports"
    reports.mkdir()
    code, _, err = _cli(capsys, "check", str(tmp_path / "good.ko"), str(tmp_path / "bad.ko"), "--kernel-dir", tree,
                        "--junit", str(reports / "j.xml"), "--sarif", str(reports / "s.sarif"),
                        "--markdown", str(reports / "m.md"))
    assert code == 8, err
    doc = _junit_schema()((reports / "j.xml").read_text())
    failed = [c for c in doc.iter("testcase") if c.find("failure") is not None]
    assert ("vermagic", doc.find("testsuite").get("name") + ".bad") in {(c.get("name"), c.get("classname")) for c in failed}
    data = _sarif_validate((reports / "s.sarif").read_text())
    assert any(r["ruleId"] == "kbuildguard/vermagic" and r["level"] == "error" for r in data["runs"][0]["results"])
    assert "| bad |" in (reports / "m.md").read_text()
    assert sorted(os.listdir(str(reports))) == ["j.xml", "m.md", "s.sarif"]


@pytest.mark.parametrize("argv, code, words", [
    (["--junit", "nope/j.xml"], 14, "does not exist"),
    (["--sarif", "."], 14, "is a folder"),
    (["--junit", ""], 2, "empty"),
    (["--junit", "same", "--sarif", "./same"], 2, "same file"),
    (["--junit", "/dev/null"], 14, "not a regular file"),
    (["--sarif", "good.ko"], 2, "a module's name"),
    (["--junit", "link", "--sarif", "same"], 2, "same file"),
])
def test_bad_report_paths_are_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, code, words):
    monkeypatch.chdir(str(tmp_path))
    os.symlink("same", str(tmp_path / "link"))
    tree = make_tree(tmp_path / "tree")
    (tmp_path / "good.ko").write_bytes(build_module())
    got, out, err = _cli(capsys, "check", str(tmp_path / "good.ko"), "--kernel-dir", tree, *argv)
    assert got == code and words in err and out == ""
    assert len([line for line in err.splitlines() if line.strip() and not line.startswith("hint")]) == 1, err


def test_make_reports_a_rejected_module_and_a_failed_kernel(machine):  # noqa: F811
    reports = machine["tmp"] / "reports"
    reports.mkdir()
    runner = KbuildRunner(machine["outputs"], comment=GCC11_COMMENT)
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(reports / "j.xml"),
                               "--sarif", str(reports / "s.sarif"), runner=runner)
    assert code == 8, err
    doc = _junit_schema()((reports / "j.xml").read_text())
    compiler = [c for c in doc.iter("testcase") if c.get("name") == "compiler"][0]
    assert compiler.get("classname").endswith(".kdemo") and compiler.find("failure") is not None
    data = _sarif_validate((reports / "s.sarif").read_text())
    uri = [r for r in data["runs"][0]["results"] if r["ruleId"] == "kbuildguard/compiler"][0][
        "locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert ".kbuildguard/rejected" in uri  # where the module is now: quarantined

    runner = KbuildRunner(machine["outputs"], returncode=2)
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(reports / "j.xml"),
                               runner=runner)
    assert code == 7, err
    doc = _junit_schema()((reports / "j.xml").read_text())
    case = doc.find("testsuite/testcase")
    assert case.get("name") == "build" and case.find("failure").get("type") == "exit 7"


def test_make_many_kernels_one_report(machine):  # noqa: F811
    root = machine["tmp"] / "sysroot"
    for release in ("6.1.0-56-amd64", "6.1.0-57-amd64"):
        machine["outputs"].update(tree_outputs(make_tree(root / "usr/src" / ("linux-headers-" + release), release=release)))
    md = machine["tmp"] / "summary.md"
    code, _, err, _ = run_make(machine, "make", "--sysroot", str(root), "--kernel", "6.1.0-56-amd64,6.1.0-57-amd64,9.9.9-x",
                               "--markdown", str(md), "--junit", str(machine["tmp"] / "j.xml"))
    assert code == 4, err
    text = md.read_text()
    # no in-tree module to compare struct module's layout with: "?" in the layout column, honestly
    assert "| 6.1.0-56-amd64 | kdemo | not-checked | ok |" in text and "| 6.1.0-57-amd64 | kdemo | not-checked |" in text
    assert "| 9.9.9-x | - | **kernel not found" in text
    doc = _junit_schema()((machine["tmp"] / "j.xml").read_text())
    assert [s.get("name") for s in doc.findall("testsuite")] == ["6.1.0-56-amd64", "6.1.0-57-amd64", "9.9.9-x"]


def test_dry_run_writes_no_report(machine):  # noqa: F811
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--dry-run",
                               "--junit", str(machine["tmp"] / "j.xml"))
    assert code == 0, err
    assert not (machine["tmp"] / "j.xml").exists()



def test_a_report_that_cannot_be_written_at_the_end(capsys, tmp_path, monkeypatch):
    """14 when all passed; after a refusal a warning, and the refusal's 8 stands (make: the build's code)."""
    tree = make_tree(tmp_path / "tree")
    (tmp_path / "good.ko").write_bytes(build_module())
    (tmp_path / "bad.ko").write_bytes(build_module(vermagic="6.1.0-9-amd64 SMP "))

    def full(path, text):
        raise cireport.CannotWrite("%s: No space left on device" % path)
    monkeypatch.setattr(cireport, "write_atomic", full)
    code, _, err = _cli(capsys, "check", str(tmp_path / "good.ko"), "--kernel-dir", tree, "--junit", str(tmp_path / "j.xml"))
    assert code == 14 and "No space left" in err
    code, _, err = _cli(capsys, "check", str(tmp_path / "bad.ko"), "--kernel-dir", tree, "--junit", str(tmp_path / "j.xml"))
    assert code == 8 and "No space left" in err and "module rejected" in err


def test_make_keeps_its_exit_code_when_a_report_cannot_be_written(machine, monkeypatch):  # noqa: F811
    def full(path, text):
        raise cireport.CannotWrite("%s: No space left on device" % path)
    monkeypatch.setattr(cireport, "write_atomic", full)
    runner = KbuildRunner(machine["outputs"], returncode=2)
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(machine["tmp"] / "j.xml"),
                               runner=runner)
    assert code == 7 and "No space left" in err
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(machine["tmp"] / "j.xml"))
    assert code == 14 and "No space left" in err


def test_the_schemas_bite():
    """A renderer that drifts fails: the validators reject what the readers would misread."""
    validate = _junit_schema()
    text = cireport.junit(_results())
    invalid = (AssertionError, ValueError)  # lxml's result asserted; xmlschema's error is a ValueError
    with pytest.raises(invalid):
        validate(text.replace(' name="vermagic"', "", 1))  # a testcase without a name
    with pytest.raises(invalid):
        validate(text.replace("<testsuites ", "<testsuites bogus=\"1\" ", 1))
    data = json.loads(cireport.sarif(_results(), "/w"))
    data["runs"][0]["results"][0]["level"] = "fatal"
    ValidationError = pytest.importorskip("jsonschema").ValidationError
    with pytest.raises(ValidationError, match="fatal"):
        _sarif_validate(json.dumps(data))
    del data["version"]
    with pytest.raises(ValidationError):
        _sarif_validate(json.dumps(data))


def test_sarif_locates_a_foreign_compiler_at_the_shipped_blob(machine):  # noqa: F811
    """kbuild copies blob.o_shipped to blob.o: the compiler result names the repository's file first."""
    (machine["tmp"] / "repo" / "blob.o_shipped").write_bytes(build_module(comment=(GCC11_COMMENT,)))

    def link_blob(stage):
        with open(os.path.join(stage, "blob.o"), "wb") as f:
            f.write(build_module(comment=(GCC11_COMMENT,)))
        with open(os.path.join(stage, "kdemo.mod"), "w") as f:
            f.write("kdemo.o\nblob.o\n")

    runner = KbuildRunner(machine["outputs"], comment=GCC11_COMMENT, on_make=link_blob)
    sarif = machine["tmp"] / "s.sarif"
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--sarif", str(sarif), runner=runner)
    assert code == 8, err
    data = _sarif_validate(sarif.read_text())
    result = [r for r in data["runs"][0]["results"] if r["ruleId"] == "kbuildguard/compiler"][0]
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"] for loc in result["locations"]]
    # make ran in the repository: relative URIs, as code scanning places them in the checkout
    assert uris == ["blob.o_shipped", ".kbuildguard/rejected/kdemo.ko-rejected"], uris


def test_make_modules_install_reports_the_installed_copies(machine):  # noqa: F811
    """The installed copy is what a package ships: a row of its own, "RELEASE (installed)"."""
    root = str(machine["tmp"] / "root")

    def spoil(path):
        with open(path, "wb") as f:
            f.write(build_module(vermagic="5.10.0-99-amd64 SMP mod_unload modversions "))

    junit = machine["tmp"] / "j.xml"
    code, _, err, _ = run_make(machine, "make", "modules_install", "--kernel-dir", machine["tree"], "--junit", str(junit),
                               "--", "INSTALL_MOD_PATH=" + root, runner=InstallingRunner(machine["outputs"], alter=spoil))
    assert code == 8, err
    doc = _junit_schema()(junit.read_text())
    suites = {s.get("name"): s for s in doc.findall("testsuite")}
    assert set(suites) == {RELEASE, RELEASE + " (installed)"}
    assert suites[RELEASE].get("failures") == "0" and suites[RELEASE + " (installed)"].get("failures") != "0"


def test_reboot_check_writes_the_new_kernels_rows(capsys, tmp_path):
    """reboot-check holds /lib/modules/R/{extra,updates,weak-updates} to the new kernel: the same matrix."""
    root = tmp_path / "root"
    release = "6.1.0-56-amd64"
    make_tree(root / ("usr/src/linux-headers-" + release))
    extra = root / ("lib/modules/%s/extra" % release)
    extra.mkdir(parents=True)
    (extra / "good.ko").write_bytes(build_module())
    (extra / "old.ko").write_bytes(build_module(vermagic="6.1.0-9-amd64 SMP "))
    junit = tmp_path / "j.xml"
    code, _, err = _cli(capsys, "reboot-check", release, "--root", str(root), "--junit", str(junit))
    assert code == 0, err  # not --blocking: the hook warns, and the report says which module and gate
    doc = _junit_schema()(junit.read_text())
    failed = {(c.get("classname"), c.get("name")) for c in doc.iter("testcase") if c.find("failure") is not None}
    assert (release + ".old", "vermagic") in failed and not any(c == release + ".good" for c, _ in failed)
    empty = tmp_path / "empty"
    (empty / "lib" / "modules" / release).mkdir(parents=True)  # installed, with no out-of-tree module
    code, _, err = _cli(capsys, "reboot-check", release, "--root", str(empty), "--junit", str(junit))
    assert code == 0 and _junit_schema()(junit.read_text()).get("tests") == "0"


def test_make_refused_before_building_is_a_failed_build_row(machine):  # noqa: F811
    junit = machine["tmp"] / "j.xml"
    code, _, err, runner = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(junit),
                                    env={"KBUILDGUARD_CC": "gcc-11"})
    assert code == 6 and runner.makes == [], err
    case = _junit_schema()(junit.read_text()).find("testsuite/testcase")
    assert case.get("name") == "build" and case.find("failure").get("type") == "exit 6"
    assert "compiler refused" in case.find("failure").get("message")


# -- issue 19 item 3: every SARIF result has a location; a failed build names the compiler's errors --

def test_every_sarif_result_has_a_location_and_a_failed_build_without_compiler_lines_is_at_the_makefile(tmp_path):
    """GitHub's upload-sarif rejects a whole file for one result without a location ("expected at
    least one location"): the build result had none."""
    folder = tmp_path / "mod"
    folder.mkdir()
    (folder / "Makefile").write_text("obj-m := kdemo.o\n")
    results = _results()
    results[1] = results[1]._replace(folder=str(folder))
    data = _sarif_validate(cireport.sarif(results, str(tmp_path)))
    for r in data["runs"][0]["results"]:
        assert r["locations"], r
    build = [r for r in data["runs"][0]["results"] if r["ruleId"] == "kbuildguard/build"][0]
    assert build["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "mod/Makefile"
    # Kbuild first where there is one (what kbuild reads in M=), the toml where neither exists
    (folder / "Kbuild").write_text("obj-m := kdemo.o\n")
    build = [r for r in json.loads(cireport.sarif(results, str(tmp_path)))["runs"][0]["results"] if r["ruleId"] == "kbuildguard/build"][0]
    assert build["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "mod/Kbuild"


def test_a_failed_build_is_located_at_the_compilers_first_error_in_the_folder(tmp_path):
    k = KernelResult(kernel="6.1.0-57-amd64", modules=(), error="build failed: make exited with status 2", exit_code=7,
                     folder=str(tmp_path / "mod"),
                     compiler_errors=("/usr/src/linux-headers-6.1/include/linux/x.h:3:1: error: in a header",
                                      "src/kdemo.c:12:11: error: 'foo' undeclared (first use in this function)",
                                      "src/kdemo.c:14: error: no column here"))
    data = _sarif_validate(cireport.sarif([k], str(tmp_path)))
    loc = data["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "mod/src/kdemo.c"
    assert loc["region"] == {"startLine": 12, "startColumn": 11}
    # JUnit's failure text and the Markdown list carry the first error lines, relative to the folder
    doc = _junit_schema()(cireport.junit([k]))
    text = doc.find("testsuite/testcase/failure").text
    assert "src/kdemo.c:12:11: error: 'foo' undeclared" in text and text.startswith("build failed: make exited")
    assert "src/kdemo.c:12:11: error: 'foo' undeclared" in cireport.markdown([k]).replace("\\_", "_")


def test_make_locates_a_compile_error_in_the_module_folder_not_the_stage(machine):  # noqa: F811
    """The whole path: the compiler's line names the staged copy (M=STAGE); the reports name the
    module folder's file."""
    reports = machine["tmp"] / "reports"
    reports.mkdir()
    holder = []

    def fail(stage):
        holder[0].console.child_output(("  CC [M]  %s/kdemo.o\n%s/kdemo.c:12:11: error: 'foo' undeclared\n"
                                        % (stage, stage)).encode())
    runner = KbuildRunner(machine["outputs"], returncode=2, on_make=fail)
    holder.append(runner)
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(reports / "j.xml"),
                               "--sarif", str(reports / "s.sarif"), runner=runner)
    assert code == 7, err
    data = _sarif_validate((reports / "s.sarif").read_text())
    loc = data["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("kdemo.c") and loc["region"]["startLine"] == 12, loc
    # relative to where make ran (the module folder here), a file that exists there
    assert loc["artifactLocation"]["uri"] == "kdemo.c" and os.path.isfile(os.path.join(machine["repo"], "kdemo.c"))
    text = _junit_schema()((reports / "j.xml").read_text()).find("testsuite/testcase/failure").text
    assert "\nkdemo.c:12:11: error: 'foo' undeclared" in text and ".cache" not in text.split("compiler errors")[1]


# -- issue 19 item 5: the Markdown matrix and SARIF URIs --------------------------------------------

def test_markdown_result_of_a_refused_module_is_its_verdict_not_its_last_effect():
    rep = ModuleReport(path="/w/kdemo.ko", verdict=Verdict.MISMATCH, checks=_checks(
        vermagic=(False, Effect.REJECTED, "vermagic differs"), btf=(True, Effect.NOT_CHECKED, "no BTF")), info=None)
    rep = rep._replace(checks=tuple(c for c in rep.checks if c.name is not Gate.UNLOAD))
    row = [line for line in cireport.markdown([KernelResult(kernel="6.1", modules=(ModuleResult(rep.path, rep),))]).splitlines()
           if line.startswith("| 6.1 |")][0]
    assert row.split(" | ")[2] == "**mismatch**" and "not-checked" not in row.split(" | ")[2]


def test_markdown_names_two_modules_of_one_name_apart():
    rep = _results()[0].modules[0].report
    k = KernelResult(kernel="6.1", modules=(ModuleResult("/a/kdemo.ko", rep), ModuleResult("/b/kdemo.ko", rep._replace(path="/b/kdemo.ko"))))
    rows = [line.split(" | ")[1] for line in cireport.markdown([k]).splitlines() if line.startswith("| 6.1 |")]
    assert rows == ["kdemo", "kdemo~2"]


def test_markdown_escapes_del_c1_and_bidi_controls():
    name = "/w/a\x7fb\x85c\u202ed\u2066e\u2069f.ko"
    rep = _results()[0].modules[0].report._replace(path=name)
    text = cireport.markdown([KernelResult(kernel="6.1\u202e", modules=(ModuleResult(name, rep),))])
    for ch in ("\x7f", "\x85", "\u202a", "\u202e", "\u2066", "\u2069"):
        assert ch not in text
    assert "\\\\x7f" in text and "\\\\u202e" in text and "\\\\u2066" in text


def test_sarif_uri_percent_encodes_the_real_bytes_of_a_name(tmp_path):
    assert cireport.artifact_uri(str(tmp_path / "out" / "k\x01\x1bd.ko"), str(tmp_path)) == {"uri": "out/k%01%1Bd.ko"}
    # an undecodable byte of the name (surrogateescape) is that byte
    assert cireport.artifact_uri(str(tmp_path / "k\udcff.ko"), str(tmp_path)) == {"uri": "k%FF.ko"}
    assert cireport.artifact_uri("/elsewhere/k\x01.ko", str(tmp_path)) == {"uri": "file:///elsewhere/k%01.ko"}


# -- issue 19 item 7: /proc, process substitutions, a folder that takes no file ----------------------

def _refused(capsys, tmp_path, monkeypatch, *argv):
    monkeypatch.chdir(str(tmp_path))
    tree = make_tree(tmp_path / "tree")
    (tmp_path / "good.ko").write_bytes(build_module())
    return _cli(capsys, "check", str(tmp_path / "good.ko"), "--kernel-dir", tree, *argv)


def test_a_report_under_proc_is_refused_before_any_work(capsys, tmp_path, monkeypatch):
    code, out, err = _refused(capsys, tmp_path, monkeypatch, "--junit", "/proc/version")
    assert code == 14 and "under /proc" in err and out == ""


def test_a_process_substitution_is_refused_before_any_work(capsys, tmp_path, monkeypatch):
    """<(echo) is /dev/fd/N, a link to a pipe: the report could never be renamed onto it."""
    r, w = os.pipe()
    try:
        code, out, err = _refused(capsys, tmp_path, monkeypatch, "--sarif", "/dev/fd/%d" % r)
    finally:
        os.close(r)
        os.close(w)
    assert code == 14 and "under /proc" in err and out == ""


def test_a_folder_that_takes_no_new_file_is_refused_up_front(capsys, tmp_path, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, out, err = _refused(capsys, tmp_path, monkeypatch, "--junit", "j.xml")
    assert code == 14 and "cannot create a file in" in err and "Read-only file system" in err and out == ""
    assert not (tmp_path / "j.xml").exists()


def test_the_up_front_probe_leaves_no_file(capsys, tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    reports.mkdir()
    cireport.check_paths(cireport.ReportPaths(junit=str(reports / "j.xml")), str(tmp_path))
    assert os.listdir(str(reports)) == []


@pytest.mark.parametrize("value", ["plain", "a&b<c>d", "say \"hi\" and 'bye'", "tab\there\nnew line\rcr", "&amp; already", "ü ✓"])
def test_own_xml_escapes_round_trip_through_a_parser(value):
    """cireport escapes XML itself (xml.sax.saxutils imports urllib.request, http, email and ssl):
    whatever it writes, an XML parser reads back as the same value (attributes keep tabs and line
    breaks; character data keeps all but CR, which XML normalizes)."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    doc = ET.fromstring("<a b=%s>%s</a>" % (cireport.quoteattr(value), cireport.escape(value.replace("\r", ""))))
    assert doc.attrib["b"] == value and (doc.text or "") == value.replace("\r", "")


# -- issue 19's re-test, finding 6: modpost's error, the generated Kbuild, SARIF's newlines ----------

def test_modposts_error_is_carried_and_located_at_kbuildguard_toml_not_the_generated_kbuild(machine):  # noqa: F811
    """kdemo.c calls an undefined function: the compile passes, modpost fails. The three reports
    carried only "make exited with status 2"; SARIF located it at the Kbuild kbuildguard generated."""
    reports = machine["tmp"] / "reports"
    reports.mkdir()
    holder = []

    def fail(stage):
        holder[0].console.child_output(('  MODPOST %s/Module.symvers\nERROR: modpost: "no_such_fn" [%s/kdemo.ko] undefined!\n'
                                        % (stage, stage)).encode())
    runner = KbuildRunner(machine["outputs"], returncode=2, on_make=fail)
    holder.append(runner)
    code, _, err, _ = run_make(machine, "make", "--kernel-dir", machine["tree"], "--junit", str(reports / "j.xml"),
                               "--sarif", str(reports / "s.sarif"), "--markdown", str(reports / "m.md"), runner=runner)
    assert code == 7, err
    assert os.path.isfile(os.path.join(machine["repo"], "Kbuild"))  # generated from kbuildguard.toml
    line = 'ERROR: modpost: "no_such_fn" [kdemo.ko] undefined!'
    data = _sarif_validate((reports / "s.sarif").read_text())
    result = data["runs"][0]["results"][0]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "kbuildguard.toml", result
    text = result["message"]["text"]
    assert line in text and "\\n" not in text and "\n" + line in text, repr(text)  # a real newline, not backslash-n
    junit = _junit_schema()((reports / "j.xml").read_text()).find("testsuite/testcase/failure").text
    assert "\n" + line in junit
    assert md_line(line) in (reports / "m.md").read_text()


def md_line(line):
    return cireport.md(line)


def test_sarif_message_of_a_compile_error_has_real_newlines(machine):  # noqa: F811
    reports = machine["tmp"] / "reports"
    reports.mkdir()
    holder = []

    def fail(stage):
        holder[0].console.child_output(("%s/kdemo.c:12:11: error: 'foo' undeclared\n" % stage).encode())
    runner = KbuildRunner(machine["outputs"], returncode=2, on_make=fail)
    holder.append(runner)
    assert run_make(machine, "make", "--kernel-dir", machine["tree"], "--sarif", str(reports / "s.sarif"), runner=runner)[0] == 7
    text = json.loads((reports / "s.sarif").read_text())["runs"][0]["results"][0]["message"]["text"]
    assert "\nkdemo.c:12:11: error: 'foo' undeclared" in text and "\\n" not in text, repr(text)
