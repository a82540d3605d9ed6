"""A module repository's declaration (``kbuildguard.toml``) and kbuildguard's settings.

Precedence, resolved once in ``settings()``: command line > ``KBUILDGUARD_*`` environment >
``[kbuildguard]`` in the repository's kbuildguard.toml > packaged defaults. For example, with
``match = "minor"`` in kbuildguard.toml and ``KBUILDGUARD_MATCH=exact`` in the environment,
``kbuildguard make`` uses exact, and ``kbuildguard make --match version`` uses version.
Unknown keys are errors, never ignored.
"""

import os
import re
from typing import Any, Mapping, NamedTuple, Optional, Tuple

from kbuildguard.errors import ConfigError

CONFIG_NAME = "kbuildguard.toml"

try:  # Python 3.11+
    import tomllib as _toml  # type: ignore
except ImportError:  # pragma: no cover - depends on the interpreter
    import tomli as _toml  # type: ignore


class ModuleSpec(NamedTuple):
    name: str
    sources: Tuple[str, ...]
    include_dirs: Tuple[str, ...]
    ccflags: Tuple[str, ...]
    defines: Tuple[Tuple[str, str], ...]
    objects: Tuple[str, ...]  # prebuilt objects linked in (vendor blobs shipped as NAME.o_shipped)


class Settings(NamedTuple):
    match: str = "version"
    cc: Optional[str] = None
    kernel: Optional[str] = None
    kernel_dir: Optional[str] = None


class Project(NamedTuple):
    root: str
    config_path: Optional[str]
    modules: Tuple[ModuleSpec, ...]
    settings: Settings  # only what the file says; see settings() for the resolved values


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MODULE_KEYS = {"name", "sources", "include_dirs", "ccflags", "defines", "objects"}
_SETTING_KEYS = set(Settings._fields)


def _str_list(value: Any, where: str) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("%s must be a list of strings" % where)
    return tuple(value)


def _relative(path: str, where: str) -> str:
    if os.path.isabs(path) or ".." in path.split("/") or "\n" in path or " " in path:
        raise ConfigError("%s: %r must be a relative path inside the repository, without spaces" % (where, path))
    return path


def parse_config(text: str, path: str) -> Tuple[Tuple[ModuleSpec, ...], Settings]:
    try:
        data = _toml.loads(text)
    except Exception as exc:  # tomllib.TOMLDecodeError, tomli's: both subclass ValueError
        raise ConfigError("%s: invalid TOML: %s" % (path, exc))
    unknown = set(data) - {"module", "kbuildguard"}
    if unknown:
        raise ConfigError("%s: unknown table(s) %s (known: [kbuildguard], [[module]])" % (path, ", ".join(sorted(unknown))))
    raw_settings = data.get("kbuildguard", {})
    if not isinstance(raw_settings, dict):
        raise ConfigError("%s: [kbuildguard] must be a table" % path)
    bad = set(raw_settings) - _SETTING_KEYS
    if bad:
        raise ConfigError("%s: unknown key(s) in [kbuildguard]: %s (known: %s)" % (
            path, ", ".join(sorted(bad)), ", ".join(sorted(_SETTING_KEYS))))
    for key, value in raw_settings.items():
        if not isinstance(value, str):
            raise ConfigError("%s: [kbuildguard] %s must be a string" % (path, key))
    settings = Settings(**raw_settings)
    modules = []  # type: List[ModuleSpec]
    raw_modules = data.get("module", [])
    if not isinstance(raw_modules, list):
        raise ConfigError("%s: modules are declared as [[module]] tables" % path)
    for i, mod in enumerate(raw_modules):
        where = "%s: [[module]] #%d" % (path, i + 1)
        bad = set(mod) - _MODULE_KEYS
        if bad:
            raise ConfigError("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(sorted(bad)), ", ".join(sorted(_MODULE_KEYS))))
        name = mod.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError("%s: name must be a module name such as kdemo" % where)
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
        defines_raw = mod.get("defines", {})
        if not isinstance(defines_raw, dict):
            raise ConfigError("%s: defines must be a table, e.g. defines = { DEBUG = \"1\" }" % where)
        defines = []
        for key, value in defines_raw.items():
            if not _NAME.match(key) or "-" in key:
                raise ConfigError("%s: define %r is not a C identifier" % (where, key))
            defines.append((key, str(value)))
        modules.append(ModuleSpec(
            name, sources,
            tuple(_relative(d, where) for d in _str_list(mod.get("include_dirs", []), where + " include_dirs")),
            _str_list(mod.get("ccflags", []), where + " ccflags"),
            tuple(defines), objects))
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise ConfigError("%s: module names must be unique" % path)
    return tuple(modules), settings


def load(root: str) -> Project:
    path = os.path.join(root, CONFIG_NAME)
    if not os.path.isfile(path):
        return Project(root, None, (), Settings())
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc))
    modules, settings = parse_config(text, path)
    return Project(root, path, modules, settings)


def settings(cli: Mapping[str, Optional[str]], env: Mapping[str, str], project: Project) -> Settings:
    """Resolve every setting once: CLI > KBUILDGUARD_* environment > kbuildguard.toml > defaults."""
    known_env = {"KBUILDGUARD_" + k.upper() for k in Settings._fields}
    stray = sorted(k for k in env if k.startswith("KBUILDGUARD_") and k not in known_env | {"KBUILDGUARD_LOG", "KBUILDGUARD_SCL_ROOT"})
    if stray:
        raise ConfigError("unknown environment setting(s) %s (known: %s)" % (", ".join(stray), ", ".join(sorted(known_env))))
    values = {}  # type: Dict[str, Optional[str]]
    for field in Settings._fields:
        for layer in (cli.get(field), env.get("KBUILDGUARD_" + field.upper()), getattr(project.settings, field)):
            if layer:
                values[field] = layer
                break
    return Settings(**values)  # type: ignore
