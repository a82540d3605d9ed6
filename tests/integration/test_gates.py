"""The loader's gates on real modules built against Debian's headers, without a guest (the kernel's
own answers are in test_qemu_gates.py): each module fails exactly one gate, and check names it,
with both values and the fix."""

import json
import os
import shutil

from integration.conftest import drifted_tree, kbuildguard, named_kdemo, plain_make

HERE = os.path.dirname(os.path.abspath(__file__))


def _source(parent, name, body, licence="GPL"):
    """A one-file module calling what BODY calls, described by a bare Kbuild."""
    repo = os.path.join(str(parent), name)
    os.makedirs(repo)
    with open(os.path.join(repo, name + ".c"), "w") as f:
        f.write('#include <linux/module.h>\n#include <linux/timekeeping.h>\n%s\n'
                'static int __init kbg_init(void) { kbg_call(); return 0; }\n'
                'static void __exit kbg_exit(void) { }\n'
                'module_init(kbg_init);\nmodule_exit(kbg_exit);\nMODULE_LICENSE("%s");\n' % (body, licence))
    with open(os.path.join(repo, "Kbuild"), "w") as f:
        f.write("obj-m += %s.o\n" % name)
    return repo


def _check(release, *paths, extra=()):
    res = kbuildguard("check", "--kernel", release, "--json", *(list(extra) + list(paths)))
    data = json.loads(res.out)
    return res.code, {os.path.basename(m["path"]): m for m in data["modules"]}


def _gate(module, name):
    return [c for c in module["checks"] if c["name"] == name][0]


def test_a_crc_changed_in_the_build_tree_is_named(debian_release, compilers, tmp_path):
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, {})
    symvers = os.path.join(tree, "Module.symvers")
    lines = open(symvers).read().splitlines()
    real = [line for line in lines if line.split("\t")[1] == "_printk"][0]
    with open(symvers, "w") as f:
        f.write("\n".join("0x1234abcd" + line[10:] if line == real else line for line in lines) + "\n")
    repo = named_kdemo(tmp_path, "kdemo_crc", kbuildguard_toml=False)
    plain_make(repo, debian_release, "gcc-12", kernel_dir=tree)
    code, mods = _check(debian_release, os.path.join(repo, "kdemo_crc.ko"))
    versions = _gate(mods["kdemo_crc.ko"], "symbol_versions")
    assert code == 8 and mods["kdemo_crc.ko"]["effect"] == "rejected-at-load"
    assert "disagrees about version of symbol _printk (module 0x1234abcd, kernel %s)" % real.split("\t")[0] in versions["message"]
    assert versions["effect"] == "rejected-at-load" and "Module.symvers" in versions["fix"]
    # every other gate passes: the copy is the kernel's tree in all else
    assert [c["name"] for c in mods["kdemo_crc.ko"]["checks"] if not c["ok"]] == ["symbol_versions"]
    text = kbuildguard("check", "--kernel", debian_release, os.path.join(repo, "kdemo_crc.ko")).out.splitlines()
    headline = [line for line in text if line.startswith(os.path.join(repo, "kdemo_crc.ko"))][0]
    assert ("will be rejected at load: disagrees about version of symbol _printk (module 0x1234abcd, kernel %s): "
            "rebuild against the kernel's own Module.symvers (" % real.split("\t")[0]) in headline
    # issue 18 case 9: the gate not checked (no image: no reference layout) is named after the fix
    assert headline.endswith("; not fully checked: layout, name")
    headline = headline[:-len("; not fully checked: layout, name")]
    assert headline.endswith("%s/Module.symvers)" % debian_release) or headline.endswith("build/Module.symvers)")


def test_another_modules_exports_via_symvers(debian_release, compilers, tmp_path):
    mods = str(tmp_path / "modules")
    shutil.copytree(os.path.join(HERE, "modules"), mods)
    with open(os.path.join(mods, "kbuildguard.toml"), "w") as f:
        f.write('[[module]]\nname = "kbg_provider"\n')
    os.unlink(os.path.join(mods, "kbg_user.c"))
    assert kbuildguard("make", "--kernel", debian_release, cwd=mods).code == 0
    provider_symvers = os.path.join(mods, "Module.symvers")
    assert "kbg_provide" in open(provider_symvers).read()
    user = str(tmp_path / "user")
    os.makedirs(user)
    shutil.copy(os.path.join(HERE, "modules", "kbg_user.c"), user)
    with open(os.path.join(user, "kbuildguard.toml"), "w") as f:
        f.write('[[module]]\nname = "kbg_user"\n')
    # without the provider's list, modpost only warns (as asked) and the symbols gate refuses it
    res = kbuildguard("make", "--kernel", debian_release, "--", "KBUILD_MODPOST_WARN=1", cwd=user)
    assert res.code == 8 and "Unknown symbol kbg_provide" in res.err, res
    assert not os.path.exists(os.path.join(user, "kbg_user.ko"))
    # with it, kbuild records the CRC and the gates find the export
    res = kbuildguard("make", "--kernel", debian_release, "--symvers", provider_symvers, cwd=user)
    assert res.code == 0, res
    code, found = _check(debian_release, os.path.join(user, "kbg_user.ko"), extra=["--symvers", provider_symvers])
    assert code == 0 and _gate(found["kbg_user.ko"], "symbols")["ok"]
    assert _gate(found["kbg_user.ko"], "symbol_versions")["effect"] == "ok"
    code, found = _check(debian_release, os.path.join(user, "kbg_user.ko"))
    assert code == 8 and _gate(found["kbg_user.ko"], "symbols")["message"].startswith("Unknown symbol kbg_provide")


def test_a_proprietary_module_calling_a_gpl_only_export(debian_release, compilers, tmp_path):
    # ktime_get is EXPORT_SYMBOL_GPL in Debian's 6.1. modpost refuses to link a non-GPL module using it
    # (an error KBUILD_MODPOST_WARN does not soften in 6.1), so the module is built GPL and its
    # licence changed afterwards, as a vendor's relicensing script would: the same length, "MIT".
    repo = _source(tmp_path, "kbg_proprietary", "static void kbg_call(void) { pr_info(\"%lld\\n\", ktime_get()); }")
    plain_make(repo, debian_release, "gcc-12")
    ko = os.path.join(repo, "kbg_proprietary.ko")
    data = open(ko, "rb").read()
    assert data.count(b"license=GPL\x00") == 1
    with open(ko, "wb") as f:
        f.write(data.replace(b"license=GPL\x00", b"license=MIT\x00"))
    code, mods = _check(debian_release, ko)
    lic = _gate(mods["kbg_proprietary.ko"], "license")
    assert code == 8 and lic["effect"] == "rejected-at-load" and "Unknown symbol ktime_get (err -2)" in lic["message"]
    assert [c["name"] for c in mods["kbg_proprietary.ko"]["checks"] if not c["ok"]] == ["license"]
    # a proprietary module that uses no GPL-only export only taints, and make accepts it
    plain = _source(tmp_path, "kbg_closed", "static void kbg_call(void) { pr_info(\"closed\\n\"); }", licence="Proprietary")
    with open(os.path.join(plain, "Kbuild")) as f:
        assert "kbg_closed" in f.read()
    res = kbuildguard("make", "--kernel", debian_release, cwd=plain)
    assert res.code == 0 and "taint" in res.out, res
    assert os.path.exists(os.path.join(plain, "kbg_closed.ko"))


def test_a_vermagic_flag_that_differs_is_named(debian_release, compilers, tmp_path):
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, {"CONFIG_PREEMPT_BUILD": None})
    repo = named_kdemo(tmp_path, "kdemo_nopreempt", kbuildguard_toml=False)
    plain_make(repo, debian_release, "gcc-12", kernel_dir=tree)
    code, mods = _check(debian_release, os.path.join(repo, "kdemo_nopreempt.ko"))
    vermagic = _gate(mods["kdemo_nopreempt.ko"], "vermagic")
    assert code == 8 and vermagic["effect"] == "rejected-at-load"
    assert "'preempt' in the kernel, not in the module" in vermagic["message"]
