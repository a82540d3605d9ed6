"""Build kbuildguard on Python 3.6 from pyproject.toml, the one source of its metadata.

setuptools reads pyproject.toml's [project] table from version 61, which needs Python 3.7. On
Python 3.6 (CentOS 7, RHEL 8) the build requirements in pyproject.toml select setuptools 59.6, the
last for 3.6, and this file hands it the same table translated into setup() arguments. With
setuptools >= 61 it only calls setup(), which reads pyproject.toml itself. pip 18.1 (what a Python
3.6.15 venv has) predates PEP 517 and runs this file directly, after installing the same build
requirements.

A key of [project] or [tool.setuptools] that the translation does not know is an error, so that a
field added to pyproject.toml cannot go missing from the 3.6 build without notice;
tests/integration/test_source_install.py compares the wheels built on 3.6 and on 3.13.

TODO: remove this file (and the python_version < "3.7" build requirements) with Python 3.6 support.
"""

import ast
import os
import re
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
# [project] keys and how they become setup() arguments; "dynamic", "readme", "license", "scripts",
# "gui-scripts", "entry-points" and "optional-dependencies" are translated below.
_PLAIN = {"name": "name", "description": "description", "requires-python": "python_requires",
          "classifiers": "classifiers", "dependencies": "install_requires", "keywords": "keywords",
          "urls": "project_urls"}
_TRANSLATED = {"dynamic", "version", "readme", "license", "scripts", "gui-scripts", "entry-points", "optional-dependencies"}
_TOOL_KEYS = {"packages", "package-data", "dynamic"}
_README_TYPES = {".md": "text/markdown", ".rst": "text/x-rst"}


def _load_toml(path: str) -> Dict[str, Any]:
    try:
        import tomllib as toml  # type: ignore  # Python >= 3.11
    except ImportError:
        import tomli as toml  # type: ignore  # a build requirement on Python < 3.11
    with open(path, encoding="utf-8") as f:
        return toml.loads(f.read())


def _attr_value(root: str, attr: str) -> str:
    """``pkg.mod.NAME`` read from the module's source without importing it, as setuptools does."""
    module, _, name = attr.rpartition(".")
    base = os.path.join(root, *module.split("."))
    path = os.path.join(base, "__init__.py") if os.path.isdir(base) else base + ".py"
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise ValueError("%s: no assignment to %s" % (path, name))


def _readme(root: str, readme: Any) -> Dict[str, str]:
    if isinstance(readme, str):
        readme = {"file": readme}
    unknown = set(readme) - {"file", "content-type"}
    if unknown or "file" not in readme:
        raise ValueError("pyproject.toml [project] readme: setup.py translates only a file name (found %s)" % sorted(readme))
    with open(os.path.join(root, readme["file"]), encoding="utf-8") as f:
        text = f.read()
    kind = readme.get("content-type") or _README_TYPES.get(os.path.splitext(readme["file"])[1].lower(), "text/plain")
    return {"long_description": text, "long_description_content_type": kind}


def _packages(root: str, spec: Any) -> List[str]:
    if isinstance(spec, list):
        return list(spec)
    if isinstance(spec, dict) and set(spec) == {"find"}:
        from setuptools import find_packages
        find = spec["find"]
        if set(find) - {"where", "include", "exclude"} or find.get("where", ["."]) != ["."]:
            raise ValueError("pyproject.toml [tool.setuptools.packages.find]: setup.py translates where = [\".\"], 'include' and "
                             "'exclude' (found %s)" % sorted(find))
        return find_packages(where=root, include=find.get("include", ["*"]), exclude=find.get("exclude", []))
    raise ValueError("pyproject.toml [tool.setuptools] packages: setup.py translates a list or packages.find")


def setup_arguments(root: str = HERE) -> Dict[str, Any]:
    """pyproject.toml's [project] and [tool.setuptools] as setup() arguments for setuptools < 61."""
    data = _load_toml(os.path.join(root, "pyproject.toml"))
    project = data["project"]
    tool = data.get("tool", {}).get("setuptools", {})
    unknown = (set(project) - set(_PLAIN) - _TRANSLATED) | {"tool.setuptools." + k for k in set(tool) - _TOOL_KEYS}
    if unknown:
        raise ValueError("pyproject.toml: setup.py (the Python 3.6 build) does not translate %s: add it there" % ", ".join(sorted(unknown)))
    args = {arg: project[key] for key, arg in _PLAIN.items() if key in project}  # type: Dict[str, Any]
    dynamic = tool.get("dynamic", {})
    for key in project.get("dynamic", []):
        if key != "version" or set(dynamic.get("version", {})) != {"attr"}:
            raise ValueError("pyproject.toml: setup.py translates only a dynamic version given by 'attr' (found %s)" % key)
        args["version"] = _attr_value(root, dynamic["version"]["attr"])
    if "version" in project:
        args["version"] = project["version"]
    if "readme" in project:
        args.update(_readme(root, project["readme"]))
    if "license" in project:
        license_ = project["license"]
        if isinstance(license_, dict) and set(license_) != {"text"}:
            raise ValueError("pyproject.toml [project] license: setup.py translates only a text (found %s)" % sorted(license_))
        args["license"] = license_["text"] if isinstance(license_, dict) else license_
    entry_points = {group: ["%s = %s" % item for item in sorted(entries.items())]
                    for group, entries in project.get("entry-points", {}).items()}
    for key, group in (("scripts", "console_scripts"), ("gui-scripts", "gui_scripts")):
        if key in project:
            entry_points[group] = ["%s = %s" % item for item in sorted(project[key].items())]
    if entry_points:
        args["entry_points"] = entry_points
    if "optional-dependencies" in project:
        args["extras_require"] = dict(project["optional-dependencies"])
    if "packages" in tool:
        args["packages"] = _packages(root, tool["packages"])
    if "package-data" in tool:
        args["package_data"] = {name: list(globs) for name, globs in tool["package-data"].items()}
    args["include_package_data"] = True  # setuptools' default for a [project] table
    return args


def main() -> None:
    import setuptools

    major = int(re.match(r"\d+", setuptools.__version__).group())  # type: ignore  # always digits first
    if major >= 61:
        setuptools.setup()
    else:
        setuptools.setup(**setup_arguments())


if __name__ == "__main__":
    main()
