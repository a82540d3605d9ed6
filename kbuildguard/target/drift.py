"""Header drift: a build tree configured differently from the kernel it claims to be.

A module compiled against such a tree sees a different ``struct module`` even with the right
compiler (e.g. Kconfig silently dropping an option because a tool was missing when the tree was
prepared). kbuildguard compares the tree's .config with the target kernel's own configuration
before building, and names the options that change struct module.
"""

from typing import List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard.target.kconfig import KernelConfig

# The #ifdefs inside struct module (include/linux/module.h), collected from the 4.18-6.12 headers:
# each one adds or removes members, and so moves `exit` or changes the struct's size.
STRUCT_MODULE_OPTIONS = (
    "CONFIG_ARCH_USES_CFI_TRAPS", "CONFIG_ARCH_WANTS_MODULES_DATA_IN_VMALLOC", "CONFIG_BPF_EVENTS",
    "CONFIG_CFI_CLANG", "CONFIG_CONSTRUCTORS", "CONFIG_DEBUG_INFO_BTF_MODULES", "CONFIG_DYNAMIC_DEBUG_CORE",
    "CONFIG_EVENT_TRACING", "CONFIG_FTRACE_MCOUNT_RECORD", "CONFIG_FUNCTION_ERROR_INJECTION", "CONFIG_GENERIC_BUG",
    "CONFIG_HAVE_STATIC_CALL_INLINE", "CONFIG_JUMP_LABEL", "CONFIG_KALLSYMS", "CONFIG_KPROBES", "CONFIG_KUNIT",
    "CONFIG_LIVEPATCH", "CONFIG_MITIGATION_ITS", "CONFIG_MODULES_TREE_LOOKUP", "CONFIG_MODULE_SIG",
    "CONFIG_MODULE_UNLOAD", "CONFIG_PRINTK_INDEX", "CONFIG_RETPOLINE", "CONFIG_SMP", "CONFIG_STACKTRACE_BUILD_ID",
    "CONFIG_STRICT_MODULE_RWX", "CONFIG_SYSFS", "CONFIG_TRACEPOINTS", "CONFIG_TRACING", "CONFIG_TREE_SRCU",
    "CONFIG_SRCU", "CONFIG_MODVERSIONS", "CONFIG_MODULE_SRCVERSION_ALL",
)


class Drift(NamedTuple):
    kernel_config: str  # where the kernel's configuration came from
    abi: Tuple[Tuple[str, str, str], ...]  # (option, kernel's value, tree's value) for struct module options
    other: int  # how many other options differ

    def describe(self) -> str:
        return ", ".join("%s %s in the kernel, %s in the tree" % (opt, k or "unset", t or "unset") for opt, k, t in self.abi)


def compare(kernel: Optional[KernelConfig], tree: Mapping[str, str]) -> Optional[Drift]:
    """How the build tree's configuration differs from the kernel's; None when either is not at hand
    (nothing to compare with). Pure: the kernel's configuration is read by its owner
    (kconfig.read_kernel) and handed to the loader's gates by the caller, not through this result."""
    if kernel is None or not tree:
        return None

    def norm(v: Optional[str]) -> str:
        return "" if v in (None, "n") else v

    abi: List[Tuple[str, str, str]] = []
    other = 0
    for key in sorted(set(kernel.values) | set(tree)):
        k, t = norm(kernel.values.get(key)), norm(tree.get(key))
        if k == t:
            continue
        if key in STRUCT_MODULE_OPTIONS:
            abi.append((key, k, t))
        elif not key.startswith(("CONFIG_CC_VERSION_TEXT", "CONFIG_GCC_VERSION", "CONFIG_CLANG_VERSION",
                                 "CONFIG_AS_VERSION", "CONFIG_LD_VERSION")):
            other += 1
    return Drift(kernel.path, tuple(abi), other)
