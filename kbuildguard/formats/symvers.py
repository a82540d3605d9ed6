"""Module.symvers: what a kernel (and the out-of-tree modules beside it) exports, with CRCs.

One line per export, tab-separated, in three layouts modpost has written:

    0xCRC  symbol  module  EXPORT_SYMBOL[_GPL]                  (< 5.4)
    0xCRC  symbol  namespace  module  EXPORT_SYMBOL[_GPL]       (5.4 - 5.8)
    0xCRC  symbol  module  EXPORT_SYMBOL[_GPL]  namespace       (5.9+)

Where a kernel's list lives is target/exports.py's: this module only reads the bytes.
"""

import re
from typing import Dict, Iterator, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats import compression

MAX_SYMVERS_BYTES = 64 * 1024 * 1024  # an allmodconfig Module.symvers is ~3 MiB


class Export(NamedTuple):
    crc: Optional[int]  # None: the exporter records no CRC (kernel without CONFIG_MODVERSIONS)
    module: str  # "vmlinux", or the module that exports it
    gpl_only: bool
    namespace: str
    source: str  # the file it was read from


Row = Tuple[str, str, str, str, str]  # the regex's groups: crc, name, and three more fields


class Table(Mapping[str, Export]):
    """Symbol -> Export over the matched rows, each made into an Export when first asked for:
    `make` asks for tens of the 25,000 a kernel exports, and building them all cost 0.15 s a run."""

    def __init__(self, rows: Dict[str, Tuple[Row, str]]):
        self._rows = rows
        self._made: Dict[str, Export] = {}

    def __getitem__(self, name: str) -> Export:
        made = self._made.get(name)
        if made is None:
            row, source = self._rows[name]
            made = self._made[name] = _export(row, source)
        return made

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def matched(self) -> Mapping[str, Tuple[Row, str]]:
        """The rows as matched, each with its file: what every Export is made from (gates/answers.py
        digests these, without making 25,000 Exports for a run that reads no module)."""
        return self._rows

    def complete(self) -> Dict[str, Export]:
        """Every export made, as a plain dict: for `check` over thousands of modules, whose lookups
        (400,000 for a kernel) then cost a dict's, not a Python method's."""
        return {name: self[name] for name in self._rows}


class Exports(NamedTuple):
    symbols: Mapping[str, Export]  # a Table; a plain dict once completed (complete_exports)
    sources: Tuple[str, ...]  # every file read, kernel's first


def complete_exports(exports: Optional[Exports]) -> Optional[Exports]:
    if exports is None or not isinstance(exports.symbols, Table):
        return exports
    return exports._replace(symbols=exports.symbols.complete())


LINE = re.compile(r"^0x([0-9A-Fa-f]+)\t([^\t\n]+)\t([^\t\n]*)\t([^\t\n]*)(?:\t([^\t\n]*))?[ \t\r]*$", re.M)


def _export(row: Row, source: str) -> Export:
    crc, _name, third, fourth, fifth = row
    if fourth.startswith("EXPORT_"):
        module, kind, namespace = third, fourth, fifth
    else:  # 5.4 - 5.8: the namespace third, the export type last (rows(): one of the two holds it)
        namespace, module, kind = third, fourth, fifth
    return Export(int(crc, 16), module, kind.endswith(("_GPL", "_GPL_FUTURE")), namespace.strip(), source)


def rows(text: str, source: str) -> Dict[str, Row]:
    """Every line's fields, or BadInput naming the first that is not a Module.symvers line. One regex
    pass in C and counts, no Python work per line: a distribution kernel's list has 25,000 lines."""
    found = LINE.findall(text)
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    if len(found) != lines or text.count("\tEXPORT_") != lines:  # a blank line, or one to name: the exact pass
        for number, line in enumerate(text.splitlines(), 1):
            match = LINE.match(line)
            if line.strip() and not match:
                raise BadInput("%s:%d: not a Module.symvers line (want 0xCRC, symbol, module, export type)" % (source, number))
            if match and not (match.group(4).startswith("EXPORT_") or (match.group(5) or "").startswith("EXPORT_")):
                raise BadInput("%s:%d: no EXPORT_SYMBOL type in this line" % (source, number))
    return {row[1]: row for row in found}


def parse(text: str, source: str) -> Dict[str, Export]:
    """Every export of one file, made (tests and small files; the gates use a Table)."""
    return {name: _export(row, source) for name, row in rows(text, source).items()}


def text_of(path: str) -> str:
    try:
        raw = bounded.read_file(path, MAX_SYMVERS_BYTES, "a Module.symvers")
    except OSError as exc:
        raise BadInput("%s: cannot read: %s" % (path, exc.strerror or exc))
    text = compression.decompress(raw, path, MAX_SYMVERS_BYTES) or raw
    if b"\x00" in text:
        raise BadInput("%s: binary data, not a Module.symvers" % path)
    return text.decode("utf-8", errors="replace")


def read(path: str) -> Dict[str, Export]:
    return parse(text_of(path), path)
