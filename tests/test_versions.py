import pytest

from kbuildguard.versions import compare, numeric_tuple

# (a, b, expected): rpmvercmp's own test vectors, plus Debian's tilde.
VECTORS = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1),
    ("2.0.1a", "2.0.1a", 0), ("2.0.1a", "2.0.1", 1), ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1), ("xyz10", "xyz10.1", -1), ("1.0aa", "1.0a", 1), ("1b.fc17", "1.fc17", -1),
    ("6.0.rc1", "6.0", 1), ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc1~git123", "1.0~rc1", -1),
    ("4.8.5-44.el7", "4.8.5-39.el7", 1), ("8.5.0-4.el8_5", "8.5.0-20.el8", -1),
    ("12.2.0-14+deb12u1", "12.2.0-14", 1), ("6.1.0-56-amd64", "6.1.0-9-amd64", 1), ("1.0^", "1.0", 1), ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0.1", -1), ("1.0.1", "1.0^git1", 1), ("1.0^a", "1.0~a", 1),  # rpm.vercmp says so
]


@pytest.mark.parametrize("a,b,expected", VECTORS)
def test_compare(a, b, expected):
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


def test_numeric_tuple():
    assert numeric_tuple("12.2.0") == (12, 2, 0)
    assert numeric_tuple("4.9.x") == (4, 9)
