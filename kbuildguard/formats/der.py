"""A small, bounded DER reader: just enough ASN.1 for a module's PKCS#7 signature and an X.509
certificate (pkcs7.py). Not the ``cryptography`` package: it has no wheels for Python 3.6 here; the
RSA check that needs the numbers read here is rsa.py's.

Every read stays inside its parent's bytes; lengths are definite (DER), at most 4 length bytes,
nesting at most MAX_DEPTH deep. Anything else is ``BadInput`` with one line, never an IndexError.
"""

from typing import List, NamedTuple

from kbuildguard.errors import BadInput

MAX_DEPTH = 32

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
BIT_STRING = 0x03
OID = 0x06
BOOLEAN = 0x01
NULL = 0x05
STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


class Node(NamedTuple):
    """One TLV: its tag byte, where its contents are in ``data``, and the whole encoding's end."""

    data: bytes
    tag: int
    start: int  # first content byte
    end: int  # one past the last content byte
    header: int  # where the tag byte is

    @property
    def content(self) -> bytes:
        return self.data[self.start:self.end]

    @property
    def raw(self) -> bytes:
        """The whole encoding, tag and length included (an issuer Name is compared this way)."""
        return self.data[self.header:self.end]

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self, depth: int = 0) -> List["Node"]:
        if not self.constructed:
            raise BadInput("malformed DER: tag 0x%02x at %d is not constructed" % (self.tag, self.header))
        if depth > MAX_DEPTH:
            raise BadInput("malformed DER: nested deeper than %d" % MAX_DEPTH)
        out: List[Node] = []
        pos = self.start
        while pos < self.end:
            node = read(self.data, pos, self.end)
            out.append(node)
            pos = node.end
        return out


def read(data: bytes, pos: int = 0, limit: int = -1) -> Node:
    """The TLV at ``pos``, which must end at or before ``limit`` (default: the end of data)."""
    limit = len(data) if limit < 0 else limit
    if pos + 2 > limit:
        raise BadInput("malformed DER: truncated at byte %d" % pos)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise BadInput("malformed DER: multi-byte tag at byte %d" % pos)
    first = data[pos + 1]
    at = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BadInput("malformed DER: length of %s bytes at byte %d" % ("indefinite" if count == 0 else count, pos))
        if at + count > limit:
            raise BadInput("malformed DER: truncated length at byte %d" % pos)
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    if at + length > limit:
        raise BadInput("malformed DER: %d bytes at byte %d run past the end (%d)" % (length, pos, limit))
    return Node(data, tag, at, at + length, pos)


def expect(node: Node, tag: int, what: str) -> Node:
    if node.tag != tag:
        raise BadInput("malformed %s: tag 0x%02x where 0x%02x belongs" % (what, node.tag, tag))
    return node


def oid(node: Node) -> str:
    """Dotted form of an OBJECT IDENTIFIER."""
    body = expect(node, OID, "object identifier").content
    if not body or body[-1] & 0x80:
        raise BadInput("malformed DER: bad object identifier")
    parts: List[int] = []
    value = 0
    for byte in bytearray(body):
        value = (value << 7) | (byte & 0x7F)
        if value.bit_length() > 64:
            raise BadInput("malformed DER: object identifier component too large")
        if not byte & 0x80:
            parts.append(value)
            value = 0
    first = min(parts[0] // 40, 2)
    return ".".join(str(p) for p in [first, parts[0] - 40 * first] + parts[1:])


def text(node: Node) -> str:
    encoding = STRING_TAGS.get(node.tag)
    if encoding is None:
        return node.content.hex()
    return node.content.decode(encoding, errors="replace")


def child(node: Node, index: int, what: str) -> Node:
    items = node.children()
    if index >= len(items):
        raise BadInput("malformed %s: element %d missing" % (what, index + 1))
    return items[index]
