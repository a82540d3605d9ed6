"""A module repository's declaration, ``kbuildguard.toml``: its modules and its ``[kbuildguard]`` table.

The file is data, never code: nothing in it can make make, the shell or the compiler run a
program. Paths stay inside the repository, flags that load or run code (``-fplugin``, ``-wrapper``,
``-B``, ``-specs``, ``@file``) are refused, and render.py quotes every value for make and the shell.
How its ``[kbuildguard]`` table ranks against the command line and the environment: settings.py.
Unknown keys are errors, never ignored.
"""

import os
import re
from typing import Any, Dict, NamedTuple, Optional, Tuple

from kbuildguard import bounded
from kbuildguard.errors import ConfigError
from kbuildguard.settings import FILE_FORBIDDEN, MATCH_LEVELS, FileSettings

CONFIG_NAME = "kbuildguard.toml"

# The TOML parsers, in the order tried, imported only when a kbuildguard.toml is read (a command that
# reads none -- detect, check -- must not need one): Python 3.11's tomllib; tomli (python3-tomli, EL9's
# and Debian 12's); toml (Debian 11's python3-toml 0.10, whose loads() also raises a ValueError);
# pip's vendored tomli (pip >= 21.2), where a distribution packages none.
TOML_PARSERS = ("tomllib", "tomli", "toml", "pip._vendor.tomli")


def _toml_loads(path: str) -> Any:
    """The first TOML parser's loads() that imports, or a one-line ConfigError naming what to install.
    Written out import by import (no import by name: tests/test_code_rules.py's dynamic-import rule)."""
    try:
        import tomllib as parser  # noqa: PLC0415 - lazily: see TOML_PARSERS
    except ImportError:
        try:
            import tomli as parser  # type: ignore[no-redef]  # noqa: PLC0415
        except ImportError:
            try:
                import toml as parser  # type: ignore[no-redef,import-untyped,unused-ignore]  # noqa: PLC0415
            except ImportError:
                try:
                    import pip._vendor.tomli as parser  # type: ignore[no-redef,import-untyped,unused-ignore]  # noqa: PLC0415
                except ImportError:
                    raise ConfigError("%s: no TOML parser to read it: this Python (before 3.11) has no tomllib; install "
                                      "tomli (python3-tomli, or pip install tomli) or Debian 11's python3-toml" % path) from None
    return parser.loads


class ModuleSpec(NamedTuple):
    name: str
    sources: Tuple[str, ...]
    include_dirs: Tuple[str, ...]
    ccflags: Tuple[str, ...]
    defines: Tuple[Tuple[str, str], ...]
    objects: Tuple[str, ...]  # prebuilt objects linked in (vendor blobs shipped as NAME.o_shipped)


class Project(NamedTuple):
    root: str
    config_path: Optional[str]
    modules: Tuple[ModuleSpec, ...]
    settings: FileSettings  # only what the file says; settings.resolve() ranks it


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# include/linux/module.h: char name[MODULE_NAME_LEN], MODULE_NAME_LEN = MAX_PARAM_PREFIX_LEN =
# 64 - sizeof(unsigned long) (include/linux/moduleparam.h): 56 on 64-bit kernels, NUL included; 60
# on 32-bit ones. The 64-bit limit holds everywhere.
MODULE_NAME_MAX = 55


def module_name_problem(name: str) -> str:
    """Why ``name`` cannot name a kernel module, or "". kbuild takes '-' (the module is then called
    with '_': scripts/Makefile.lib name-fix)."""
    if not _NAME.match(name):
        return "not a module name: letters, digits, '_' and '-', not starting with a digit"
    if len(name) > MODULE_NAME_MAX:
        return ("%d characters: a module name has at most %d (struct module's name[MODULE_NAME_LEN] is 56 bytes on "
                "64-bit kernels, with its NUL)" % (len(name), MODULE_NAME_MAX))
    return ""
_MODULE_KEYS = {"name", "sources", "include_dirs", "ccflags", "defines", "objects"}
_SETTING_KEYS = set(FileSettings._fields) - {"sign_key", "sign_cert"}  # those come from [sign]
_SIGN_KEYS = {"key", "cert"}
# What ccflags may hold: warnings, macros, optimisation and debug levels, -std, and -f/-m options
# whose value is no path. Anything else could load or run a program (-fplugin, -wrapper, -B,
# -specs), read or write files of the repository's choosing (-fdump-*=FILE, -fopt-info=FILE,
# -include, -I/etc, @file), or change what is built (-E, -o).
_CCFLAG = re.compile(r"^(?:-W(?:no-)?[a-z][a-z0-9+-]*(?:=[A-Za-z0-9_+-]+)?"
                     r"|-[DU][A-Za-z_][A-Za-z0-9_]*(?:=[^\n]*)?"
                     r"|-O[0-3sgz]?|-g[a-z0-9-]*|-std=[a-z0-9+]+"
                     r"|-m[a-z0-9][a-z0-9_+-]*(?:=[A-Za-z0-9_,+-]+)?"
                     r"|-f(?:no-)?[a-z0-9][a-z0-9_+-]*(?:=[A-Za-z0-9_,+-]+)?)$")
_FILE_WRITING = re.compile(r"^-f(?:no-)?(?:dump|opt-info|profile|auto-profile|plugin|save-optimization-record|"
                           r"callgraph-info|record-gcc-switches|stack-usage|debug-prefix-map|coverage|test-coverage)")


def _ccflag(flag: str, where: str) -> str:
    if not _CCFLAG.match(flag) or _FILE_WRITING.match(flag):
        raise ConfigError("%s: ccflags entry %r is not allowed: kbuildguard.toml takes warnings (-W...), macros (-D/-U), "
                          "-O and -g levels, -std= and -f/-m options without paths; include folders go in include_dirs "
                          "(a repository must not make the compiler run programs or read or write files of its choosing)"
                          % (where, flag))
    return flag


def _define_value(key: str, value: Any, where: str) -> str:
    """A define's value as the C preprocessor should see it: strings as written, booleans 1/0, integers."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if "\n" in value or "\x00" in value or "\\" in value:
            raise ConfigError("%s: define %s: newlines, NUL and backslashes are not allowed in a value" % (where, key))
        return value
    raise ConfigError("%s: define %s must be a string, an integer or a boolean, not %s" % (where, key, type(value).__name__))


def _str_list(value: Any, where: str) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("%s must be a list of strings" % where)
    return tuple(value)


# What kbuild can take in a file name: make splits words at spaces and expands $ and #.
_PATH = re.compile(r"^[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*$")


def _relative(path: str, where: str) -> str:
    if os.path.isabs(path) or ".." in path.split("/") or not _PATH.match(path):
        raise ConfigError("%s: %r must be a relative path inside the repository, of letters, digits and . _ + - / "
                          "(make cannot take spaces, $ or # in a file name)" % (where, path))
    return path


def _parse_settings(raw: Any, path: str) -> FileSettings:
    if not isinstance(raw, dict):
        raise ConfigError("%s: [kbuildguard] must be a table" % path)
    for key in sorted(set(raw) & set(FILE_FORBIDDEN)):
        raise ConfigError("%s: [kbuildguard] %s is not allowed: %s" % (path, key, FILE_FORBIDDEN[key]))
    bad = set(raw) - _SETTING_KEYS
    if bad:
        raise ConfigError("%s: unknown key(s) in [kbuildguard]: %s (known: %s)" % (
            path, ", ".join(sorted(bad)), ", ".join(sorted(_SETTING_KEYS))))
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ConfigError("%s: [kbuildguard] %s must be a string" % (path, key))
    if "match" in raw and raw["match"] not in MATCH_LEVELS:
        raise ConfigError("%s: [kbuildguard] match %r is not one of %s" % (path, raw["match"], ", ".join(MATCH_LEVELS)))
    if "/" in raw.get("kernel", "") or raw.get("kernel") in ("", ".", ".."):
        raise ConfigError("%s: [kbuildguard] kernel %r is not a kernel release" % (path, raw["kernel"]))
    return FileSettings(**raw)


def _parse_sign(raw: Any, path: str, settings: FileSettings) -> FileSettings:
    """[sign] key and cert for make --sign: paths (relative ones from the repository's folder), never
    options or programs -- sign-file is always the target tree's own."""
    if not isinstance(raw, dict):
        raise ConfigError("%s: [sign] must be a table" % path)
    bad = set(raw) - _SIGN_KEYS
    if bad:
        raise ConfigError("%s: unknown key(s) in [sign]: %s (known: cert, key)" % (path, ", ".join(sorted(bad))))
    values = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip() or "\n" in value or "\0" in value:
            raise ConfigError("%s: [sign] %s must be a file path" % (path, key))
        if ":" in value.split("/", 1)[0]:
            raise ConfigError("%s: [sign] %s %r: a file path, not a URI (a PKCS#11 key is named on the command line or "
                              "in KBUILDGUARD_SIGN_KEY)" % (path, key, value))
        values["sign_" + key] = os.path.join(os.path.dirname(os.path.abspath(path)), value)
    return settings._replace(**values)


def _sources_and_objects(mod: Dict[str, Any], name: str, where: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    sources = tuple(_relative(s, where) for s in _str_list(mod.get("sources", [name + ".c"]), where + " sources"))
    if not sources:
        raise ConfigError("%s: sources must name at least one .c file" % where)
    for s in sources:
        if not s.endswith((".c", ".S")):
            raise ConfigError("%s: source %r must be a .c or .S file" % (where, s))
    objects = tuple(_relative(o, where) for o in _str_list(mod.get("objects", []), where + " objects"))
    for o in objects:
        if not o.endswith(".o"):
            raise ConfigError("%s: object %r must be an .o file (shipped as %s_shipped)" % (where, o, o))
    if len(sources) + len(objects) > 1 and name + ".o" in [s.rsplit(".", 1)[0] + ".o" for s in sources] + list(objects):
        # kbuild links NAME.ko from NAME-y; an object of the module's own name would be circular.
        raise ConfigError("%s: module %s is linked from several objects, so none may be named %s.o: "
                          "rename %s.c (e.g. %s_main.c)" % (where, name, name, name, name))
    return sources, objects


def _defines(raw: Any, where: str) -> Tuple[Tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise ConfigError("%s: defines must be a table, e.g. defines = { DEBUG = \"1\" }" % where)
    defines = []
    for key, value in raw.items():
        if not _NAME.match(key) or "-" in key:
            raise ConfigError("%s: define %r is not a C identifier" % (where, key))
        defines.append((key, _define_value(key, value, where)))
    return tuple(defines)


def _parse_module(mod: Any, where: str) -> ModuleSpec:
    if not isinstance(mod, dict):
        raise ConfigError("%s: must be a table" % where)
    bad = set(mod) - _MODULE_KEYS
    if bad:
        raise ConfigError("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(sorted(bad)), ", ".join(sorted(_MODULE_KEYS))))
    name = mod.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("%s: name must be a module name such as kdemo" % where)
    if module_name_problem(name):
        raise ConfigError("%s: name %r: %s" % (where, name, module_name_problem(name)))
    sources, objects = _sources_and_objects(mod, name, where)
    return ModuleSpec(
        name=name, sources=sources,
        include_dirs=tuple(_relative(d, where) for d in _str_list(mod.get("include_dirs", []), where + " include_dirs")),
        ccflags=tuple(_ccflag(f, where) for f in _str_list(mod.get("ccflags", []), where + " ccflags")),
        defines=_defines(mod.get("defines", {}), where), objects=objects)


def parse_config(text: str, path: str) -> Tuple[Tuple[ModuleSpec, ...], FileSettings]:
    loads = _toml_loads(path)
    try:
        data = loads(text)
    except Exception as exc:  # tomllib.TOMLDecodeError, tomli's, toml's TomlDecodeError: all subclass ValueError
        raise ConfigError("%s: invalid TOML: %s" % (path, exc))
    unknown = set(data) - {"module", "kbuildguard", "sign"}
    if unknown:
        raise ConfigError("%s: unknown table(s) %s (known: [kbuildguard], [sign], [[module]])" % (path, ", ".join(sorted(unknown))))
    settings = _parse_settings(data.get("kbuildguard", {}), path)
    settings = _parse_sign(data.get("sign", {}), path, settings)
    raw_modules = data.get("module", [])
    if not isinstance(raw_modules, list):
        raise ConfigError("%s: modules are declared as [[module]] tables" % path)
    modules = tuple(_parse_module(mod, "%s: [[module]] #%d" % (path, i + 1)) for i, mod in enumerate(raw_modules))
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise ConfigError("%s: module names must be unique" % path)
    return modules, settings


def load(root: str) -> Project:
    path = os.path.join(root, CONFIG_NAME)
    if not os.path.isfile(path):
        return Project(root, None, (), FileSettings())
    try:
        text = bounded.read_file(path, bounded.PROJECT.size, bounded.PROJECT.what).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc))
    modules, settings = parse_config(text, path)
    return Project(root, path, modules, settings)
