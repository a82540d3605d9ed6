import os

import pytest

from kbuildguard.errors import BadInput
from kbuildguard.identity import Family, from_macros, parse_comment, parse_compiler, parse_proc_version, parse_version_integer

DATA = os.path.join(os.path.dirname(__file__), "data", "proc_version.tsv")


def _rows():
    with open(DATA, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            release, family, version, vendor, linker, origin, text = line.rstrip("\n").split("\t")
            yield pytest.param(release, family, version, vendor, linker, text, id=release + ":" + origin[:30])


ROWS = list(_rows())


def test_corpus_is_broad():
    assert len(ROWS) >= 60
    text = open(DATA, encoding="utf-8").read()
    for needle in ("el6", "el7", "el8", "el9", "el10", "aarch64", "uek", "amzn2", "fc3", "oe1", "ky10", "an8", "-amd64",
                   "-generic", "-default", "arch1", "-lts", "-v8+", "android", "WSL2"):
        assert needle in text, needle


@pytest.mark.parametrize("release,family,version,vendor,linker,text", ROWS)
def test_proc_version_corpus(release, family, version, vendor, linker, text):
    pv = parse_proc_version(text)
    assert pv.release == release
    assert str(pv.compiler.family) == family
    assert pv.compiler.version == version
    assert pv.compiler.vendor == vendor
    if linker == "-":
        assert pv.compiler.linker is None
    else:
        assert pv.compiler.linker is not None
        assert "%s %s" % (pv.compiler.linker.name, pv.compiler.linker.version) == linker


@pytest.mark.parametrize("text,family,version,vendor,program", [
    # cc --version first lines
    ("gcc (GCC) 4.8.5 20150623 (Red Hat 4.8.5-44)", "gcc", "4.8.5", "Red Hat 4.8.5-44", ""),
    ("gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)", "gcc", "8.3.1", "Red Hat 8.3.1-3", ""),
    ("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", "gcc", "12.2.0", "Debian 12.2.0-14+deb12u1", "gcc-12"),
    ("gcc-11 (Debian 11.3.0-12) 11.3.0", "gcc", "11.3.0", "Debian 11.3.0-12", "gcc-11"),
    ("x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0", "gcc", "12.3.0", "Ubuntu 12.3.0-1ubuntu1~22.04", "x86_64-linux-gnu-gcc-12"),
    ("gcc (SUSE Linux) 7.5.0", "gcc", "7.5.0", "SUSE Linux", ""),
    ("aarch64-linux-gnu-gcc (Linaro GCC 7.5-2019.12) 7.5.0", "gcc", "7.5.0", "Linaro GCC 7.5-2019.12", "aarch64-linux-gnu-gcc"),
    ("aarch64-unknown-linux-gnu-gcc (crosstool-NG 1.24.0) 8.3.0", "gcc", "8.3.0", "crosstool-NG 1.24.0", "aarch64-unknown-linux-gnu-gcc"),
    ("aarch64-poky-linux-gcc (GCC) 11.4.0", "gcc", "11.4.0", "", "aarch64-poky-linux-gcc"),
    ("Debian clang version 16.0.6 (15~deb12u1)", "clang", "16.0.6", "Debian 15~deb12u1", ""),
    ("clang version 16.0.6 (Fedora 16.0.6-3.fc38)", "clang", "16.0.6", "Fedora 16.0.6-3.fc38", ""),
    ("Ubuntu clang version 14.0.0-1ubuntu1.1", "clang", "14.0.0", "Ubuntu 14.0.0-1ubuntu1.1", ""),
    # CONFIG_CC_VERSION_TEXT, quoted (< 5.17) and unquoted
    ('"gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)"', "gcc", "11.4.1", "Red Hat 11.4.1-3", ""),
    # .comment entries
    ("GCC: (GNU) 4.8.5 20150623 (Red Hat 4.8.5-39)", "gcc", "4.8.5", "Red Hat 4.8.5-39", ""),
    ("GCC: (GNU) 8.3.1 20190311 (Red Hat 8.3.1-3)", "gcc", "8.3.1", "Red Hat 8.3.1-3", ""),
    ("GCC: (Debian 12.2.0-14+deb12u1) 12.2.0", "gcc", "12.2.0", "Debian 12.2.0-14+deb12u1", ""),
    # LINUX_COMPILER
    ("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40", "gcc", "12.2.0", "Debian 12.2.0-14+deb12u1", "gcc-12"),
    ("gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC) ", "gcc", "4.8.5", "Red Hat 4.8.5-44", ""),
])
def test_compiler_texts(text, family, version, vendor, program):
    cid = parse_compiler(text)
    assert cid is not None
    assert (str(cid.family), cid.version, cid.vendor, cid.program) == (family, version, vendor, program)


def test_same_compiler_spelled_three_ways_is_one_identity():
    forms = ["gcc version 8.3.1 20190311 (Red Hat 8.3.1-3) (GCC)", "gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)",
             "GCC: (GNU) 8.3.1 20190311 (Red Hat 8.3.1-3)"]
    ids = {(c.family, c.version, c.vendor, c.date) for c in map(parse_compiler, forms)}
    assert len(ids) == 1


def test_gcc_date_kept():
    assert parse_compiler("gcc (GCC) 12.2.1 20221121 (Red Hat 12.2.1-7)").date == "20221121"


@pytest.mark.parametrize("text", ["", "   ", "GNU ld (GNU Binutils) 2.40", "rustc 1.70.0", "make (GNU) 4.3", "hello world"])
def test_not_a_compiler(text):
    assert parse_compiler(text) is None


def test_comment_section_every_entry_and_linkers():
    data = b"\x00GCC: (GNU) 4.8.5 20150623 (Red Hat 4.8.5-39)\x00GCC: (GNU) 8.3.1 20190311 (Red Hat 8.3.1-3)\x00Linker: LLD 16.0.6\x00"
    compilers, linkers, strings = parse_comment(data)
    assert [c.version for c in compilers] == ["4.8.5", "8.3.1"]
    assert [(lk.name, lk.version) for lk in linkers] == [("LLD", "16.0.6")]
    assert len(strings) == 3


@pytest.mark.parametrize("value,family,expected", [("80301", Family.GCC, "8.3.1"), ("120200", Family.GCC, "12.2.0"),
                                                   ("140007", Family.CLANG, "14.0.7"), ("0", Family.CLANG, None),
                                                   ("junk", Family.GCC, None)])
def test_version_integers(value, family, expected):
    assert parse_version_integer(value, family) == expected


def test_macros_gcc_4_8_without_dumpfullversion():
    assert from_macros("#define __GNUC__ 4\n#define __GNUC_MINOR__ 8\n#define __GNUC_PATCHLEVEL__ 5\n#define __aarch64__ 1\n") == (Family.GCC, "4.8.5", "aarch64")


def test_macros_clang_is_not_gcc_4_2():
    macros = "#define __GNUC__ 4\n#define __GNUC_MINOR__ 2\n#define __clang__ 1\n#define __clang_major__ 16\n#define __clang_minor__ 0\n#define __clang_patchlevel__ 6\n"
    assert from_macros(macros)[:2] == (Family.CLANG, "16.0.6")


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("\x00\x01\x02ELF", "NUL"),
    ("Linux version", "must start with"),
    ("Linux version 6.1.0 (root@host) #1 SMP", "names no compiler"),
    ("hello", "must start with"),
])
def test_bad_proc_version(text, message):
    with pytest.raises(BadInput) as exc:
        parse_proc_version(text)
    assert message in exc.value.message


def test_only_a_banner_sized_line_is_remembered():
    """The parsed compiler of a /proc/version line is remembered (pasted asks the same texts again and
    again), but only for a banner-sized line: a hostile paste cannot fill memory through the cache."""
    from kbuildguard import identity

    compiler = "(gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC"
    remembered = identity._remembered_proc_compiler
    remembered.cache_clear()
    short = "Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org) " + compiler
    assert parse_proc_version(short).compiler.version == "12.2.0"
    assert remembered.cache_info().currsize == 1
    long = "Linux version 6.1.0-13-amd64 (%s@host) " % ("x" * 2000) + compiler
    assert parse_proc_version(long).compiler.version == "12.2.0"
    assert remembered.cache_info().currsize == 1
