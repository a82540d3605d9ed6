"""examples/ci/ (issue 19 part 4): the script the GitHub action and the GitLab template call, run here
for real against Debian's installed headers; its JUnit and SARIF validated against the schemas."""

import os
import shutil
import subprocess
import sys

import pytest
from test_cireport import _junit_schema, _sarif_validate

from conftest import require
from integration.conftest import EXAMPLES

SCRIPT = os.path.join(EXAMPLES, "ci", "kbuildguard-ci.sh")


def _installed(release):
    return os.path.isdir(os.path.join("/usr/src", "linux-headers-" + release))


def _run(tmp_path, kernels, extra=None):
    require(shutil.which("bash") is not None, "bash")
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    env = dict(os.environ, KBG_KERNELS=kernels, KBG_MODULE_DIR=str(tmp_path / "kdemo"),
               KBG_REPORT_DIR=str(tmp_path / "reports"), GITHUB_STEP_SUMMARY=str(summary),
               KBUILDGUARD="%s -m kbuildguard" % sys.executable)
    env.update(extra or {})
    if not (tmp_path / "kdemo").exists():
        shutil.copytree(os.path.join(EXAMPLES, "kdemo"), str(tmp_path / "kdemo"),
                        ignore=shutil.ignore_patterns("*.o", "*.ko", ".kbuildguard", "kbuildguard-out"))
    proc = subprocess.run(["bash", SCRIPT], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.decode("utf-8", "replace")
    assert "Traceback" not in out, out
    return proc.returncode, out, summary.read_text()


def test_the_action_script_builds_two_kernels_and_reports(debian_release, compilers, tmp_path):
    cloud = debian_release.replace("-amd64", "-cloud-amd64")
    kernels = [debian_release] + ([cloud] if _installed(cloud) else [])
    code, out, summary = _run(tmp_path, ",".join(kernels))
    assert code == 0, out
    for release in kernels:
        assert os.path.isfile(str(tmp_path / "kdemo" / "kbuildguard-out" / release / "kdemo.ko")), out
    doc = _junit_schema()((tmp_path / "reports" / "junit.xml").read_text())
    assert [s.get("name") for s in doc.findall("testsuite")] == kernels
    assert doc.get("failures") == "0"
    names = {c.get("name") for c in doc.iter("testcase")}
    assert {"vermagic", "symbol_versions", "compiler", "layout"} <= names
    data = _sarif_validate((tmp_path / "reports" / "kbuildguard.sarif").read_text())
    assert not [r for r in data["runs"][0]["results"] if r["level"] == "error"], data["runs"][0]["results"]
    assert summary.startswith("# earlier step\n") and "| %s | kdemo |" % debian_release in summary


def test_a_missing_kernel_fails_the_job_and_is_reported(debian_release, compilers, tmp_path):
    code, out, summary = _run(tmp_path, debian_release + ",9.9.9-missing-amd64")
    assert code == 4, out
    doc = _junit_schema()((tmp_path / "reports" / "junit.xml").read_text())
    suites = {s.get("name"): s for s in doc.findall("testsuite")}
    assert suites[debian_release].get("failures") == "0"
    missing = suites["9.9.9-missing-amd64"].find("testcase")
    assert missing.get("name") == "build" and missing.find("failure").get("type") == "exit 4"
    assert "kernel not found" in summary
    assert "kbuildguard exited 4" in out


def test_fetched_kernels_build_through_the_action_script(debian_release, compilers, tmp_path):
    """KBG_FETCH=yes: kernels that are not installed, from scripts/test's fetch cache (no download)."""
    if not os.environ.get("KBG_TEST_FETCH_CACHE"):
        pytest.skip("needs the fetched kernels of scripts/test (KBG_TEST_FETCH_CACHE)")
    code, out, _ = _run(tmp_path, "%s,%s" % (os.environ.get("KBG_TEST_FETCH_BUILT", "6.1.0-56-amd64"),
                                            os.environ.get("KBG_TEST_FETCH_OTHER", "6.1.0-54-amd64")),
                        {"KBG_FETCH": "yes", "XDG_CACHE_HOME": os.environ["KBG_TEST_FETCH_CACHE"]})
    assert code == 0, out  # each kernel gets its own build: both load
    _junit_schema()((tmp_path / "reports" / "junit.xml").read_text())
    _sarif_validate((tmp_path / "reports" / "kbuildguard.sarif").read_text())


def test_no_kernels_is_a_usage_error(tmp_path):
    code, out, _ = _run(tmp_path, "")
    assert code == 2 and "KBG_KERNELS is empty" in out
