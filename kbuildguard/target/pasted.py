"""Find the /proc/version line in whatever a user pasted, and say what had to be repaired.

A support ticket rarely carries a clean ``Linux version ...`` line. It carries dmesg
(``[    0.000000] Linux version ...``), ``journalctl -k`` or syslog (``Dec 01 10:00:00 host kernel:
Linux version ...``), a quoted mail (``> Linux version ...``) wrapped by the mailer or soft-broken by
quoted-printable (``=`` at the end of a line, ``=3D``), a line cut off after the compiler, or a whole
log, sosreport or supportconfig file in which the line is one among thousands.

:func:`find_kernel_line` returns the clean line and the repairs it made, in words a user can check
("removed a dmesg timestamp", "joined 2 lines wrapped by a mailer"). It only removes what a known
layout puts in front of the line and joins what a mailer broke: "Linux version" inside a sentence is
not a kernel line, and a line that parses as it is comes back unchanged. Pure functions, no I/O.
"""

import itertools
import re
from typing import Callable, List, NamedTuple, Optional, Pattern, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.identity import ProcVersion, parse_proc_version


class Found(NamedTuple):
    line: str  # the clean "Linux version ..." line
    repairs: Tuple[str, ...]  # what was done to the pasted text to get it; () when nothing was
    number: int  # 1-based number of the (first) line it was found on, in the text as decoded


# Where "Linux version" starts a kernel line. The colon is the "Linux version: R" some tools print.
_ANCHOR = re.compile(r"Linux version(?::)?(?=\s|$)")
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_ISO = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
# A syslog or journal record's time: RFC 3164 / journalctl's default "short" (optionally with
# microseconds: short-precise), ISO 8601 (short-iso, rsyslog's high-precision format), short-full,
# short-unix, and short-monotonic's "[    0.000000]".
_LOG_TIME = (r"(?:" + _MONTH + r"\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\.\d+)?"
             r"|" + _ISO +
             r"|" + _WEEKDAY + r"\s+\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\s+[A-Z][A-Za-z]{1,4})?"
             r"|\d{9,10}\.\d+"
             r"|\[\s*\d+\.\d+\])")
_DMESG_TIME = (r"(?:\[\s*\d+\.\d+\]"  # dmesg, a serial console, sosreport's sos_commands/kernel/dmesg
               r"|\[" + _WEEKDAY + r" " + _MONTH + r"\s+\d{1,2} \d\d:\d\d:\d\d \d{4}\]"  # dmesg -T
               r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[,.]\d+[+-]\d\d:?\d\d)")  # dmesg --time-format iso

# What a known layout puts in front of the kernel line, tried in turn until the line starts with
# "Linux version". Each removal is reported, except indentation.
_PREFIXES: List[Tuple[Pattern[str], str]] = [
    (re.compile(r"\s+"), ""),
    (re.compile(r"\ufeff"), ""),
    (re.compile(r"(?:>[ \t]?)+"), "removed mail quote markers ('>')"),
    (re.compile(r"\x1b\[[0-9;]*m"), "removed terminal colour codes"),
    # grep -r / grep -H output: "proc/version:", "sos_commands/kernel/dmesg:12:"
    (re.compile(r"(?:[\w.+-]*/)+[\w.+-]+:(?:\d+:)?"), "removed a file name (grep output)"),
    # BusyBox syslogd writes the facility.level before the tag: "Dec  1 10:00:00 nas kern.notice kernel:"
    (re.compile(r"(?:<\d{1,3}>)?" + _LOG_TIME + r"\s+[\w.:-]+\s+(?:[a-z]+\.[a-z]+\s+)?kernel(?:\[\d+\])?:"),
     "removed a syslog/journal prefix (time, host, 'kernel:')"),
    (re.compile(r"<\d{1,3}>1 " + _ISO + r"\s+[\w.:-]+\s+kernel\s+\S+\s+\S+\s+(?:-|\[[^\]]*\])"),
     "removed a syslog/journal prefix (time, host, 'kernel:')"),  # RFC 5424
    (re.compile(_DMESG_TIME), "removed a dmesg timestamp"),
    (re.compile(r"\[\s*[TC]\d+\]"), "removed a printk caller id ('[T0]')"),
    (re.compile(r"<\d{1,3}>"), "removed a kernel log level ('<5>')"),
    (re.compile(r"(?:kern|user|daemon|syslog)\s*:\s*(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:"),
     "removed a dmesg facility and level (dmesg -x)"),
    (re.compile(r"`+"), "removed Markdown backquotes"),
    (re.compile(r"[-*+][ \t]"), "removed a list bullet"),
]
# A line that starts a new record (TIME HOST TAG:, a dmesg time, a log level): it can't continue a
# wrapped kernel line. The host and tag are needed: "Nov 14 13:30:08 UTC 2023" may well continue one.
_RECORD_START = re.compile(r"^(?:(?:<\d{1,3}>)?" + _LOG_TIME + r"\s+[\w.:-]+\s+[\w./-]+(?:\[\d+\])?:|" + _DMESG_TIME + r"|<\d{1,3}>)")
# The end of a complete /proc/version line: a year (optionally with a zone after it, as Arch's
# "+0000"), Debian's "(2023-12-30)", or SUSE's source hash "(8ded7a2)".
_BUILD_DONE = re.compile(r"(?:\b(?:19|20)\d\d(?:\s+[+-]\d{4}|\s+[A-Z]{2,5})?|\(\d{4}-\d\d-\d\d\)|\([0-9a-f]{7,}\))\s*$")
# One word of the build part, whole (a word a break inside it may be rejoined to).
_BUILD_WORD = re.compile(r"^(?:\d\d:\d\d:\d\d|(?:19|20)\d\d|SMP|PREEMPT\w*|" + _WEEKDAY + r",?|" + _MONTH
                         + r"|[A-Z]{2,5}|[+-]\d{4}|\(\d{4}-\d\d-\d\d\))(?:\s|$)")
# A line made only of what the build part of /proc/version is made of ("Nov 14 13:30:08 UTC 2023").
_BUILD_WORDS = re.compile(
    r"^(?:(?:" + _WEEKDAY + r",?|" + _MONTH + r"|\d{1,2}|\d\d:\d\d:\d\d|(?:19|20)\d\d|[A-Z]{2,5}|[+-]\d{4}"
    r"|SMP|PREEMPT\w*|Debian|Ubuntu|\d[\w.+~-]*|\(\d{4}-\d\d-\d\d\)|\([0-9a-f]{7,}\))(?:\s+|$))+$")
# Where a banner ends (init/version.c: "Linux version " UTS_RELEASE " (" LINUX_COMPILE_BY "@"
# LINUX_COMPILE_HOST ") (" LINUX_COMPILER ") " UTS_VERSION "\n"; UTS_VERSION ends with the build
# date, and distributions append their source version): a year, optionally with a zone, an RFC 2822
# time with its offset (Arch, Alpine: "Thu, 14 Dec 2023 03:45:42 +0000"), Debian's "(2023-12-30)", SUSE's
# "(8ded7a2)", or a year then one parenthesised source tag (Ubuntu's "(Ubuntu 5.15.0-91.101-generic
# 5.15.131)").
_COMPLETE = re.compile(r"(?:\b(?:19|20)\d\d(?:\s+[+-]\d{4}|\s+[A-Z]{2,5})?|\d\d:\d\d:\d\d\s+[+-]\d{4}"
                       r"|\(\d{4}-\d\d-\d\d\)|\([0-9a-f]{7,}\)|\b(?:19|20)\d\d\s+\([^()]+\))$")
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_ODD_BLANKS = re.compile(r"[\t\u00a0]")
# An HTML or XML element the banner stands in ("<td>", "<kernel>", "<td class=x>"): its end tag ends it.
_OPEN_TAG = re.compile(r"<([A-Za-z][\w:.-]*)(?:\s[^<>]*)?>\s*$")
_QP_ESCAPE = re.compile(r"=([0-9A-F]{2})")
_QP_SOFT_BREAK = re.compile(r"=[ \t]*\r?\n")
_QP_SOFT_END = re.compile(r"=[ \t]*$")
_QUOTE_MARKS = re.compile(r"[ \t]*(?:>[ \t]?)*")
_UNAME_A = re.compile(r"^\s*Linux \S+ (\d+\.\d+\S*) #\S+ .*$", re.MULTILINE)
_MAX_CONTINUATION = 12
# A break may fall inside a word when a word character is on both sides of it.
# (A break just before "," or ")" or just after "(" is one too: "9796371" / ", based on".)
_GLUE_BEFORE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~+#@:(/")
_GLUE_AFTER = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~+@:,)/")
_MAX_LOOSE_BREAKS = 10  # 1024 readings of one wrapped line at most
# Where each way of joining is only tried (a prefix's banner, for each count of wrapped lines; whether a
# line continues): fewer, so that a long quoted mail with "Linux version" in prose stays fast.
_MAX_LOOSE_TRIED = 7
# A token cut where no banner token ends or starts: ".0-14", "-14", "12.", "x86_", "lcy02-".
# A space before "," or before a ")" that does not close a ")" ("(SUSE Linux) )" is real: gcc 4.8's own).
_BROKEN_TOKEN = re.compile(r"(?:^|\s)[.\-_~/]\w|\w[\-_~@/]\s|\d[.:](?:\s|$)|\s,|[^)\s]\s+\)")
# The vendor text distributions' compilers print in their parenthesis (gcc's --with-pkgversion, clang's
# vendor prefix): a known name, then optionally the package version (and Gentoo's patch set).
_KNOWN_VENDOR = re.compile(r"^(?:Red Hat, Inc\.|Red Hat|Debian|Ubuntu/Linaro|Ubuntu|Alpine|Fedora|Raspbian|Anolis"
                           r"|SUSE Linux|openSUSE|Arch Linux|Linaro GCC|Mageia|Oracle|Photon OS|Chromium OS)(?: \d\S*)?$"
                           r"|^Gentoo \d+(?:\.\d+)+(?:_p\d{8})?(?: p\d+)?$"
                           r"|^Android \(\d+,? based on r\d+[a-z]?\)(?: \(?https?://[^\s()]+\)?)*$"
                           r"|^Arm GNU Toolchain \d+\.\d+\.Rel\d+ \(Build arm-\d+\.\d+\)$")
_WRAP_HINT = "give the line /proc/version prints, whole (cat /proc/version), not a wrapped copy from a mail"
_MAX_SHOWN = 60


def decode_pasted(raw: bytes) -> Tuple[str, Tuple[str, ...]]:
    """Pasted bytes as text, and the repair that says how when it was not UTF-8.

    PowerShell 5's ``>`` and ``Out-File`` write UTF-16LE with a byte-order mark (``wsl cat
    /proc/version > v.txt``); Notepad may write UTF-16 without one. Other NUL bytes are binary data.
    Anything else is read as UTF-8, with what is not UTF-8 replaced (a Latin-1 month name in a
    journal prefix becomes U+FFFD, which the banner itself never contains: it is ASCII).
    """
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace"), ("decoded UTF-16 text (a Windows redirect)",)
    if b"\x00" in raw and len(raw) % 2 == 0 and raw[1::2].count(0) == len(raw) // 2:
        return raw.decode("utf-16-le", errors="replace"), ("decoded UTF-16 text (a Windows redirect)",)
    if b"\x00" in raw:
        # A serial console capture holds NULs where the line idled or the board reset (U-Boot's
        # "U-Boot 2023.01\0\0"): dropped from the lines that say no "Linux version". A NUL in a line
        # that does is binary data (vmlinux's linux_banner is NUL-terminated in .rodata): refused.
        lines = raw.split(b"\n")
        if any(b"\x00" in line and b"Linux version" in line.replace(b"\x00", b"") for line in lines):
            raise BadInput("binary data, not a /proc/version line")
        dirty = sum(1 for line in lines if b"\x00" in line)
        text = raw.replace(b"\x00", b"").decode("utf-8", errors="replace")
        return text, ("removed NUL bytes from %d line%s other than the kernel line (a serial capture)"
                      % (dirty, "" if dirty == 1 else "s"),)
    return raw.decode("utf-8", errors="replace"), ()


def find_kernel_line(text: str) -> Found:
    """The /proc/version line in ``text`` and the repairs made to find it; BadInput when there is none.

    When several kernel lines are found (a syslog of many boots) the last one is used: the most
    recent boot. The repairs say so when they name different kernels.
    """
    if "\x00" in text:
        raise BadInput("binary data (NUL bytes), not text with a /proc/version line")
    if not text.strip():
        raise BadInput("no kernel line: the text is empty")
    found, error = _search(text)
    # Quoted-printable: soft line breaks ("=" ending a line) are a strong sign and win over what the
    # raw text gave ("2.3=" / "8)" would read as linker 2.3); "=3D" escapes alone only when the raw
    # text gave nothing.
    soft = bool(_QP_SOFT_BREAK.search(text.rstrip()))
    if soft or (found is None and _QP_ESCAPE.search(text)):
        found_qp, error_qp = _search(_decode_quoted_printable(text))
        if found_qp is not None and (found is None or found_qp.line != found.line):
            return found_qp._replace(repairs=("decoded quoted-printable mail text ('=' line breaks, '=3D')",) + found_qp.repairs)
        error = error or error_qp
    if found is None and _ODD_BLANKS.search(text):
        # "Linux\tversion\t6.1.0 ..." (a spreadsheet or a terminal's copy), or every space a
        # non-breaking one (a web page): the banner has plain spaces only (init/version.c), so each of
        # these is read as one -- only when nothing was found as it stands.
        found_sp, error_sp = _search(_ODD_BLANKS.sub(" ", text))
        if found_sp is not None:
            return found_sp._replace(repairs=("replaced tabs or non-breaking spaces with spaces",) + found_sp.repairs)
        error = error_sp if error_sp is not None and not _ANCHOR.search(text) else error or error_sp
    if found is not None:
        return found
    assert error is not None
    raise error


def _search(text: str) -> Tuple[Optional[Found], Optional[BadInput]]:
    lines = text.splitlines()
    found: List[Tuple[Found, ProcVersion]] = []
    refused: Optional[BadInput] = None
    in_prose: Optional[Tuple[int, str]] = None
    for i, raw in enumerate(lines):
        if "Linux version" not in raw:
            continue
        anchors = list(_ANCHOR.finditer(raw))
        if len(anchors) > 1:
            # Several banners run together on one line: a log whose line breaks were lost (a paste
            # into a web form, `echo $(dmesg)`). Each banner is one boot (init/main.c start_kernel()
            # prints linux_banner once), so the last is the most recent, as between lines below; it
            # is read only when it is whole (its build part ends as a banner ends), never guessed.
            last = raw[anchors[-1].start():].rstrip()
            complete = _complete_banner(last, "")
            # "Linux version: Linux version 6.1.0-18 ..." (a form's label, then the line): an anchor
            # followed by another is a label, not a banner.
            labels = [a for a in anchors[:-1] if _ANCHOR.match(raw, len(raw) - len(raw[a.end():].lstrip()))]
            if complete is None:
                refused = BadInput("line %d holds %d 'Linux version' banners run together and the last is not "
                                   "a whole banner: %s" % (i + 1, len(anchors) - len(labels), _shown(last)),
                                   hint="give the line /proc/version prints, whole (cat /proc/version)")
                continue
            candidate, parsed, _trailer, cleanups = complete
            if len(labels) == len(anchors) - 1:
                repairs = ["removed the label before the kernel line (%s)" % _shown(raw[:anchors[-1].start()])]
            else:
                repairs = ["line %d holds %d kernel banners run together (line breaks lost); used the last, "
                           "%s (the most recent boot)" % (i + 1, len(anchors) - len(labels), parsed.release)]
            repairs.extend(r for r in cleanups if r not in repairs)
            found.append((Found(candidate, tuple(repairs), i + 1), parsed))
            continue
        start = _kernel_line_start(raw)
        if start is None:
            try:
                embedded = _embedded_banner(raw, lines[i + 1:i + 1 + _MAX_CONTINUATION], i + 1)
            except BadInput as exc:
                refused = BadInput("line %d: %s" % (i + 1, exc.message), hint=_WRAP_HINT)
                continue
            if embedded is not None:
                found.append(embedded)
                continue
            if in_prose is None:
                in_prose = (i + 1, raw.strip())
            continue
        offset, quoted, repairs = start
        line, more = _join_wrapped(raw[offset:], lines[i + 1:i + 1 + _MAX_CONTINUATION], quoted)
        if more:
            repairs.append("joined %d lines wrapped by a mailer" % (more + 1))
            pieces = [_continuation(nxt, quoted) or "" for nxt in lines[i + 1:i + 1 + more]]
            try:
                resolved, glued = _resolve_wrap(raw[offset:].rstrip(), pieces, _parses_whole, lines[i:i + 1 + more])
            except BadInput as exc:
                refused = BadInput("line %d: %s" % (i + 1, exc.message), hint=_WRAP_HINT)
                continue
            assert resolved is not None  # required: BadInput rather than None
            line = resolved
            if glued:
                repairs.append(glued)
        candidate, cleanups = _clean(line)
        try:
            parsed = parse_proc_version(candidate)
        except BadInput as exc:
            refused = BadInput("line %d: %s" % (i + 1, exc.message),
                               hint="give the line /proc/version prints, whole (cat /proc/version)")
            continue
        repairs.extend(r for r in cleanups if r not in repairs)
        found.append((Found(candidate, tuple(repairs), i + 1), parsed))
    if found:
        return _choose(found, lines), None
    if refused is not None:
        return None, refused
    return None, _nothing_found(lines, in_prose)


def _quote_depth(raw: str) -> int:
    """How many mail quote markers ('>') start a pasted line: 0 for a line the writer typed."""
    m = re.match(r"[ \t]*((?:>[ \t]?)+)", raw)
    return m.group(1).count(">") if m else 0


def _choose(found: List[Tuple[Found, ProcVersion]], lines: List[str]) -> Found:
    """The kernel line to use among several, and the repair that says which and why.

    A reply quotes what came before it (RFC 5322 section 3.6.4: a reply's text, and its quote of the
    message it answers): a line quoted less deeply is newer than one quoted more, whether the reply is
    top- or bottom-posted (issue 22: a new banner above a '> '-quoted old one). Among lines quoted
    alike (a syslog of many boots) the last is the most recent boot: init/main.c start_kernel()
    prints linux_banner once per boot.
    """
    depths = [_quote_depth(lines[f.number - 1]) for f, _ in found]
    least = min(depths)
    chosen, parsed = [entry for entry, depth in zip(found, depths) if depth == least][-1]
    others = sorted({p.release for _, p in found if p.release != parsed.release})
    if not others:
        return chosen
    if len(set(depths)) > 1:
        why = "line %d, the least mail-quoted (a reply quotes older text)" % chosen.number
    else:
        why = "the last, line %d (the most recent boot)" % chosen.number
    return chosen._replace(repairs=chosen.repairs + (
        "found %d kernel lines (also %s); used %s" % (len(found), ", ".join(others), why),))


def strip_log_prefixes(raw: str) -> Tuple[str, List[str]]:
    """One pasted log line without what a known layout puts in front of the kernel's own text
    (indentation, quote markers, a syslog/journal prefix, a dmesg timestamp, a log level, ...),
    and the repairs made; the line itself when nothing is in front of it."""
    pos = 0
    repairs: List[str] = []
    while pos < len(raw):
        for pattern, repair in _PREFIXES:
            m = pattern.match(raw, pos)
            if m and m.end() > pos:
                pos = m.end()
                if repair and repair not in repairs:
                    repairs.append(repair)
                break
        else:
            break
    return _SGR.sub("", raw[pos:]).rstrip(), repairs


def _kernel_line_start(raw: str) -> Optional[Tuple[int, bool, List[str]]]:
    """Where the kernel line starts in ``raw`` (after a known prefix), whether it was mail-quoted,
    and the prefixes removed; None when "Linux version" follows something else (a sentence)."""
    for anchor in _ANCHOR.finditer(raw):
        pos = 0
        repairs: List[str] = []
        quoted = False
        while pos < anchor.start():
            for pattern, repair in _PREFIXES:
                m = pattern.match(raw, pos, anchor.start())
                if m and m.end() > pos:
                    pos = m.end()
                    if repair and repair not in repairs:
                        repairs.append(repair)
                    quoted = quoted or raw[m.start():m.end()].lstrip().startswith(">")
                    break
            else:
                break
        if pos == anchor.start():
            return pos, quoted, repairs
    return None


def _embedded_banner(raw: str, following: List[str], number: int) -> Optional[Tuple[Found, ProcVersion]]:
    """A whole banner behind a prefix no known layout explains ("# ", "OS: ", gdb's "$1 = 0x... <linux_banner>
    \"", a Markdown table cell, "Preparing to boot ", a journal line with a non-English month), or None.

    The rule that keeps this from reading a sentence as a kernel line: what follows "Linux version"
    (joined over wrapped lines, less a known trailer: a closing quote, gdb's "\\n\"", the rest of a
    table row) must parse completely -- release, compiler, and a build part ("#1 SMP ...") that ends
    where a banner ends (a year, a time zone, Debian's "(2023-12-30)", SUSE's "(8ded7a2)", Ubuntu's
    "(Ubuntu 5.15.0-91.101-generic 5.15.131)"). Anything else after it and the line is refused.
    """
    for anchor in _ANCHOR.finditer(raw):
        prefix = raw[:anchor.start()]
        quoted = prefix.lstrip().startswith(">")
        pieces: List[str] = []
        for nxt in following:
            piece = _continuation(nxt, quoted)
            if piece is None:
                break
            pieces.append(piece)
        complete = None
        joined = ""
        first = raw[anchor.start():].rstrip()
        whole = _whole_after(prefix)
        glued = ""
        # The fewest wrapped lines that make a whole banner; one more only when it is the
        # parenthesised source tag that ends a banner (Ubuntu's).
        for more in range(len(pieces) + 1):
            if more == 0:
                complete = _complete_banner(first, prefix)
            else:
                maybe, glued = _resolve_wrap(first, pieces[:more], whole, [raw] + following[:more], required=False,
                                             most=_MAX_LOOSE_TRIED)
                joined = maybe or ""
                complete = None if maybe is None else _complete_banner(joined, prefix)
            if complete is not None:
                if more < len(pieces) and re.match(r"^\([^()]+\)$", pieces[more]):
                    longer = _complete_banner((first if more == 0 else joined) + " " + pieces[more], prefix)
                    if longer is not None:
                        complete, more = longer, more + 1
                break
        if complete is None:
            continue
        candidate, parsed, trailer, cleanups = complete
        repairs = ["removed the text before the kernel line (%s)" % _shown(prefix)]
        if trailer:
            repairs.append("removed the text after the kernel line (%s)" % _shown(trailer))
        if more:
            repairs.append("joined %d lines wrapped by a mailer" % (more + 1))
        if glued:
            repairs.append(glued)
        repairs.extend(r for r in cleanups if r not in repairs)
        return Found(candidate, tuple(repairs), number), parsed
    return None


def _complete_banner(line: str, prefix: str) -> Optional[Tuple[str, ProcVersion, str, List[str]]]:
    """The banner in ``line`` (less a trailer), parsed, when it is whole; else None."""
    line, trailer = _strip_trailer(line, prefix)
    candidate, cleanups = _clean(line)
    try:
        parsed = parse_proc_version(candidate)
    except BadInput:
        return None
    if not parsed.build or not _COMPLETE.search(candidate):
        return None
    return candidate, parsed, trailer, cleanups


def _strip_trailer(line: str, prefix: str) -> Tuple[str, str]:
    """``line`` without what the layout its ``prefix`` shows puts after a banner, and what that was."""
    end = len(line)
    tag = _OPEN_TAG.search(prefix)
    if "|" in prefix and "|" in line:  # a Markdown or text table row: a banner has no "|"
        end = line.index("|")
    elif tag is not None and "</%s>" % tag.group(1) in line:  # <td>...</td>, <kernel>...</kernel>
        end = line.index("</%s>" % tag.group(1))
    elif prefix.rstrip().endswith("(") and _closing_paren(line) >= 0:  # "(Linux version ...)"
        end = _closing_paren(line)
    elif prefix.rstrip().endswith('"') and '"' in line:
        # A JSON or shell string ("MESSAGE": "Linux version ...", "_HOSTNAME": ...): a banner has no
        # '"' (init/version.c), so the string ends at the first one; printk's newline may precede it.
        end = line.index('"')
        end = len(re.sub(r"(?:\\n)+$", "", line[:end]))
    else:
        m = re.search(r"(?:\\n)*[\"']?[,;]?\s*$", line) if ('"' in prefix or "'" in prefix) else None
        if m is not None:
            end = m.start()
        elif line.rstrip().endswith("\\n"):  # printk's own newline, escaped by a debugger or a dump tool
            end = len(line.rstrip()) - 2
    kept = line[:end].rstrip()
    return kept, line[len(kept):].strip()


def _closing_paren(line: str) -> int:
    """Where the ")" that closes a parenthesis opened before ``line`` is, or -1 (a banner's own
    parentheses are balanced: init/version.c)."""
    depth = 0
    for i, ch in enumerate(line):
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i
            depth -= 1
    return -1


def _shown(text: str) -> str:
    """What was dropped, as the user can find it again: quoted, control characters escaped, shortened."""
    text = text.strip() or text
    text = "".join(ch if ch.isprintable() else "\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch)
                   for ch in text)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN - 3] + "..."
    return "'%s'" % text


def _join_wrapped(first: str, following: List[str], quoted: bool) -> Tuple[str, int]:
    """The kernel line with the lines a mailer wrapped it onto joined back, and how many were.

    Inside the builder's or the compiler's parentheses any line may follow, so there the lines
    are taken only if they close them: a line cut off inside them and followed by prose stays as
    it is.
    """
    pieces = [_continuation(raw, quoted) for raw in following]
    line = first.rstrip()
    used = 0
    taken: List[str] = []
    while used < len(pieces) and not line.endswith(("...", "\u2026")):  # "..." is cut off on purpose
        if _unbalanced(line):
            closed: Optional[Tuple[str, int]] = None
            ahead = line
            for n, piece in enumerate(pieces[used:], start=1):
                if piece is None:
                    break
                ahead = ahead + " " + piece
                if not _unbalanced(ahead):
                    closed = (ahead, n)
                    break
            if closed is None:
                break
            taken.extend(p for p in pieces[used:used + closed[1]] if p is not None)
            line, used = closed[0], used + closed[1]
            continue
        piece = pieces[used]
        if piece is None or not _continues_some_way(first.rstrip(), taken, piece):
            break
        line = line + " " + piece
        taken.append(piece)
        used += 1
    return line, used


def _continues_some_way(first: str, taken: List[str], nxt: str) -> bool:
    """Whether ``nxt`` continues the kernel line ``first`` + ``taken`` read in some way of joining
    them: "(aarch64-linux-gnu-gcc" / "-13 (Ubuntu ..." names its compiler only as "gcc-13"."""
    line = " ".join([first] + taken)
    if _continues(line, nxt) or _continues_glued(line, nxt):
        return True
    loose = [i for i, piece in enumerate(taken) if _gluable(first if i == 0 else taken[i - 1], piece)]
    if not loose or len(loose) > _MAX_LOOSE_TRIED:
        return False
    for choice in itertools.product((False, True), repeat=len(loose)):
        glue = {i for i, g in zip(loose, choice) if g}
        if not glue:
            continue
        text = first
        for i, piece in enumerate(taken):
            text += ("" if i in glue else " ") + piece
        if _continues(text, nxt) or _continues_glued(text, nxt):
            return True
    return False


def _continuation(raw: str, quoted: bool) -> Optional[str]:
    """A following line as it may continue the kernel line (quote markers off), or None if it can't."""
    if quoted:
        m = re.match(r"[ \t]*(?:>[ \t]?)+", raw)
        if not m:
            return None
        raw = raw[m.end():]
    text = raw.strip()
    if not text or "Linux version" in text or _RECORD_START.match(text):
        return None
    return text


def _continues(line: str, nxt: str) -> bool:
    """Whether ``nxt`` is the rest of a wrapped kernel line that so far reads ``line`` (balanced)."""
    if not _ANCHOR.sub("", line, count=1).strip():
        return nxt[:1].isdigit()  # "Linux version" then the release
    if not _names_compiler(line):
        return nxt.startswith("(")  # the builder or the compiler
    if not re.search(r"#\d", line):
        return bool(re.match(r"#\d", nxt))  # the build: "#1 SMP ..."
    return not _BUILD_DONE.search(line) and bool(_BUILD_WORDS.match(nxt))


def _continues_glued(line: str, nxt: str) -> bool:
    """Whether ``nxt`` continues ``line`` when the mailer broke a word ("6.1.0-12-cl" / "oud-amd64 (",
    "... 2.40) #" / "1 SMP ..."): judged as if the broken word had been whole. Which joining is read
    is decided afterwards by :func:`_resolve_wrap`."""
    if not _gluable(line, nxt) or _BUILD_DONE.search(line):
        return False
    head, _, tail = line.rpartition(" ")
    if re.search(r"#\d", head):
        # In the build part only a word the build is made of: "02:" / "00:00 UTC 2026" (not a
        # cut-off "UTC 2" / "bye").
        return bool(_BUILD_WORD.match(tail + nxt))
    return bool(head) and _continues(head, tail + nxt)


def _gluable(before: str, after: str) -> bool:
    """Whether a line break between ``before`` and ``after`` may have been inside a word."""
    if not before or not after:
        return False
    return (before[-1] in _GLUE_BEFORE and after[0] in _GLUE_AFTER) or (before[-1] == ")" and after[0] in ",)")


def _indent(raw: str) -> int:
    """The blanks a pasted line starts with, after its quote markers ("> >  p13)": 1)."""
    m = re.match(r"[ \t]*(?:>[ \t]?)+", raw)
    rest = raw[m.end():] if m else raw
    return len(rest) - len(rest.lstrip(" \t"))


def _resolve_wrap(first: str, pieces: List[str], accept: Callable[[str], Optional[ProcVersion]],
                  raws: List[str], required: bool = True, most: int = _MAX_LOOSE_BREAKS) -> Tuple[Optional[str], str]:
    """The one way of joining ``first`` and the wrapped ``pieces`` that reads as a whole kernel line, and
    the repair to report when a word was rejoined ("" when not); BadInput when two ways read as
    different kernels or compilers, or (``required``) when none reads.

    A mailer wraps at a space (and drops it) or, with a long line or a hard 72-column wrap, inside a
    word (format=flowed with DelSp=yes, RFC 3676 section 4.2, even marks that break with a space it
    deletes): nothing in the text says which. Each break between two word characters is read both
    ways. A way counts when it parses (``accept``) and no token is visibly broken (a builder with a
    space, "( mockbuild", ".0-14", "x86_"). When the ways that count read as different identities,
    the consistent ones are kept: the version inside the vendor's parenthesis equals the compiler's
    ("(Debian 12.2.0-14) 12.2.0", "8.5.0 ... (Red Hat 8.5.0-20)"), the vendor is one distributions
    print ("Red Hat", not "RedHat" or "Deb ian"), a linker and a compiler date are read when any way
    reads one (_CONSISTENT, each rule in turn). Line lengths are not used: a terminal's hard cut
    re-wrapped at spaces by a mailer gives lines of any length with words broken anywhere. What the
    pasted lines (``raws``) do show: a line that starts, or ends, with more blanks than the others was
    cut at a space. Anything still ambiguous is refused: a wrong compiler is worse than none.
    """
    loose = _loose_breaks(first, pieces, raws)
    if len(loose) > most:
        if not required:
            return None, ""
        raise BadInput("%d wrapped lines could each be broken inside a word: too many to rejoin safely" % len(loose))
    readings = _readings(first, pieces, loose, accept)
    if not readings:
        if required:
            raise BadInput("the %d lines wrapped by a mailer join into no whole kernel line" % (len(pieces) + 1))
        return None, ""
    readings = _consistent(readings)
    # Same identity every way: prefer a whole build date ("UTC 2023", not "UTC 20 23"), then fewest joins.
    text, _, glued = min(readings, key=lambda r: (not _COMPLETE.search(r[0]), r[2]))
    if not glued:
        return text, ""
    return text, "rejoined %d word%s the mailer broke inside" % (glued, "" if glued == 1 else "s")


def _loose_breaks(first: str, pieces: List[str], raws: List[str]) -> List[int]:
    """The indexes of the pieces whose break before them may have been inside a word. A line that starts
    with more blanks than the others (after its quote markers), or ends with more than the others
    (format=flowed puts one at the end of each), was cut at a space."""
    group = raws[:len(pieces) + 1]
    indents = [_indent(raw) for raw in group]
    trails = [len(raw.rstrip("\r\n")) - len(raw.rstrip()) for raw in group[:-1]]
    least_indent = min(indents) if indents else 0
    least_trail = min(trails) if trails else 0
    return [i for i, piece in enumerate(pieces)
            if _gluable(first if i == 0 else pieces[i - 1], piece)
            and (i + 1 >= len(indents) or indents[i + 1] <= least_indent)
            and (i >= len(trails) or len(trails) < 2 or trails[i] <= least_trail)]


def _readings(first: str, pieces: List[str], loose: List[int],
              accept: Callable[[str], Optional[ProcVersion]]) -> List[Tuple[str, ProcVersion, int]]:
    """(text, parsed, words rejoined) of every way of joining the pieces (each loose break glued or
    not) that parses and has no visibly broken token."""
    readings: List[Tuple[str, ProcVersion, int]] = []
    for choice in itertools.product((False, True), repeat=len(loose)):
        glue = {i for i, g in zip(loose, choice) if g}
        text = first
        for i, piece in enumerate(pieces):
            text += ("" if i in glue else " ") + piece
        parsed = accept(text)
        if parsed is not None and not _visibly_broken(parsed):
            readings.append((text, parsed, len(glue)))
    return readings


def _consistent(readings: List[Tuple[str, ProcVersion, int]]) -> List[Tuple[str, ProcVersion, int]]:
    """The readings when they all read one identity; else the consistent ones (_CONSISTENT, each rule in
    turn) when those read one identity; BadInput otherwise."""
    if len({_identity(p) for _, p, _ in readings}) <= 1:
        return readings
    with_linker = any(p.compiler.linker is not None for _, p, _ in readings)
    with_date = any(p.compiler.date for _, p, _ in readings)
    # Each rule in turn keeps the readings that pass it, unless none does (then it tells nothing).
    consistent = readings
    for rule in _CONSISTENT:
        consistent = [r for r in consistent if rule(r[1], with_linker, with_date)] or consistent
    if len({_identity(p) for _, p, _ in consistent}) != 1:
        raise BadInput("a word broken across the wrapped lines reads two ways (%s); refused rather than guessed"
                       % _ambiguity(consistent))
    return consistent


def _parses_whole(text: str) -> Optional[ProcVersion]:
    try:
        return parse_proc_version(text)
    except BadInput:
        return None


def _whole_after(prefix: str) -> Callable[[str], Optional[ProcVersion]]:
    def accept(text: str) -> Optional[ProcVersion]:
        # Cheap first: a whole banner ends as _COMPLETE says (less what _clean may remove after it).
        kept, _ = _strip_trailer(text, prefix)
        if not _COMPLETE.search(re.sub(r"[\s.\u2026\"`\[\]]+$", "", kept)):
            return None
        complete = _complete_banner(text, prefix)
        return None if complete is None else complete[1]
    return accept


def _identity(pv: ProcVersion) -> Tuple[str, ...]:
    linker = pv.compiler.linker
    return (pv.release, pv.builder.strip(), pv.compiler.describe(), pv.compiler.date, pv.compiler.program,
            "" if linker is None else linker.describe())


def _visibly_broken(pv: ProcVersion) -> bool:
    """A reading with a token no banner has: a builder (user@host, init/version.c LINUX_COMPILE_BY "@"
    LINUX_COMPILE_HOST) with a space, a space just inside a parenthesis, a version cut at a dot or dash."""
    if re.search(r"\s", pv.builder.strip()) or "( " in pv.text:
        return True
    if pv.build and not re.match(r"#\d", pv.build):
        return True
    if re.search(r"\d{5}", pv.compiler.version):  # "13.2.1" / "20240206" read as "13.2.120240206"
        return True
    linker = pv.compiler.linker
    # The linker's version ends its part: ")" or its own parenthesis follows ("2.39-6.a" / "mzn2023.0.9").
    if linker is not None and linker.version and not re.search(r"(?<![\w.])(?<!\d )" + re.escape(linker.version) + r"(?:\)| \()", pv.text):
        return True
    # The release is one word, then the builder's parenthesis ("...-ab10675" / "345 (kleaf@...").
    if not re.match(r"Linux version:?\s+\S+\s+\(", pv.text):
        return True
    return bool(_BROKEN_TOKEN.search(pv.text))


def _has_linker(pv: ProcVersion, with_linker: bool, with_date: bool) -> bool:
    """A linker is read when some reading reads one ("GNU" / "ld version ..." must not lose it)."""
    return pv.compiler.linker is not None or not with_linker


def _has_date(pv: ProcVersion, with_linker: bool, with_date: bool) -> bool:
    """The compiler's date is read when some reading reads one ("2013" / "0114")."""
    return bool(pv.compiler.date) or not with_date


def _program_named(pv: ProcVersion, with_linker: bool, with_date: bool) -> bool:
    """The program name the compiler printed ("gcc-12", "aarch64-linux-gnu-gcc-13", "gcc-toolset-13-gcc"),
    not "gccversion" from "gcc" / "version"."""
    program = pv.compiler.program
    return not program or bool(re.search(r"(?:gcc|clang|cc)(?:-\d+(?:\.\d+)*)?$", program))


def _vendor_version_agrees(pv: ProcVersion, with_linker: bool, with_date: bool) -> bool:
    """The version in the vendor's parenthesis is the compiler's: "(Debian 12.2.0-14) 12.2.0", not 12.2."""
    inner = re.search(r"(?:^|\s)(\d+\.\d+\.\d+)", pv.compiler.vendor)
    version = pv.compiler.version
    return not (inner and re.match(r"^\d+\.\d+\.\d+$", version) and inner.group(1) != version)


def _vendor_known(pv: ProcVersion, with_linker: bool, with_date: bool) -> bool:
    """The vendor is one distributions print: "Red Hat 8.5.0-20", not "RedHat 8.5.0-20" or "Deb ian"."""
    return not pv.compiler.vendor or bool(_KNOWN_VENDOR.match(pv.compiler.vendor))


_CONSISTENT = (_has_linker, _has_date, _program_named, _vendor_version_agrees, _vendor_known)


def _ambiguity(readings: List[Tuple[str, ProcVersion, int]]) -> str:
    """The field the ways disagree on and two of its values: "compiler: gcc 12.2.0 (Deb ian 12.2.0-14) or ..."."""
    names = ("release", "builder", "compiler", "compiler date", "compiler program", "linker")
    seen = sorted({_identity(p) for _, p, _ in readings})
    for n, name in enumerate(names):
        values = sorted({ident[n] for ident in seen})
        if len(values) > 1:
            return "%s: %s" % (name, " or ".join("'%s'" % v for v in values[:2]))
    return "no way reads whole"


def _names_compiler(line: str) -> bool:
    try:
        parse_proc_version(line)
    except BadInput:
        return False
    return True


def _unbalanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
    return depth > 0


def _clean(line: str) -> Tuple[str, List[str]]:
    """Clean what may follow or sit inside the line.

    Colour codes and non-breaking spaces never belong to a kernel banner (it is ASCII) and would
    end up in the compiler's vendor text: always removed. Trailing "..." and quotes only when the
    line does not parse with them.
    """
    repairs: List[str] = []
    if _SGR.search(line):
        line = _SGR.sub("", line)
        repairs.append("removed terminal colour codes")
    if line.endswith("`"):  # the end of Markdown inline code (the start is a prefix)
        line = line.rstrip("`").rstrip()
        repairs.append("removed Markdown backquotes")
    if "\u00a0" in line:
        line = line.replace("\u00a0", " ")
        repairs.append("replaced non-breaking spaces")
    line = _drop_colon(line, repairs)
    try:
        parse_proc_version(line)
        return line, repairs
    except BadInput:
        pass
    stripped = re.sub(r"(?:\s*(?:\.\.\.|\u2026|\[\.\.\.\]|\"))+$", "", line)
    if stripped != line:
        line = stripped
        repairs.append("removed what follows the line ('...', quotes)")
    return line, repairs


def _drop_colon(line: str, repairs: List[str]) -> str:
    if line.startswith("Linux version:"):
        repairs.append("removed the colon after 'Linux version'")
        return "Linux version " + line[len("Linux version:"):].lstrip()
    return line


def _decode_quoted_printable(text: str) -> str:
    """RFC 2045 section 6.7 on text that is otherwise already decoded: soft breaks and =XX escapes.

    A soft-broken line that was quoted afterwards carries the quote markers on its continuation
    too ("> ...2.3=" then "> 8) #101-Ubuntu ..."): they are removed with the break.
    """
    lines = text.splitlines()
    joined: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        while _QP_SOFT_END.search(line) and i + 1 < len(lines):
            m = _QUOTE_MARKS.match(line)
            marks = m.group() if m else ""
            nxt = lines[i + 1]
            if marks.strip() and nxt.startswith(marks):
                nxt = nxt[len(marks):]
            line = _QP_SOFT_END.sub("", line) + nxt
            i += 1
        joined.append(line)
        i += 1
    text = "\n".join(joined)
    out = bytearray()
    pos = 0
    for m in _QP_ESCAPE.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return out.decode("utf-8", errors="replace")


def _nothing_found(lines: List[str], in_prose: Optional[Tuple[int, str]]) -> BadInput:
    count = sum(1 for line in lines if line.strip())
    if in_prose is not None:
        number, text = in_prose
        return BadInput("no kernel line: 'Linux version' appears only inside other text (line %d: %.*s)" % (number, _MAX_SHOWN, text),
                        hint="give the line /proc/version prints, whole (cat /proc/version)")
    m = _UNAME_A.search("\n".join(lines))
    if m:
        return BadInput("no kernel line: this is `uname -a` output (kernel %s), which does not name the compiler" % m.group(1),
                        hint="give the contents of /proc/version (in a sosreport: proc/version; in a supportconfig: basic-environment.txt)")
    return BadInput("no kernel line in %d line%s of text: none says 'Linux version'" % (count, "" if count == 1 else "s"),
                    hint="give the contents of /proc/version, or dmesg or journalctl -k output that contains it")
