"""Every parser of untrusted bytes: ELF (elf), a module's sections (module), compressed files
(compression), DER (der), module signatures with their PKCS#7 and X.509 parts (pkcs7) and their
RSA check (rsa), the certificates built into a kernel image and UEFI signature lists (certlist),
BTF (btf), Module.symvers (symvers).

This folder is the security boundary. A .ko, a vmlinuz, a certificate or a Module.symvers may be
hostile or broken: every read here is bounded, every failure is the one ``BadInput`` (exit 3, one
line, never a traceback), and tests/test_fuzz.py feeds each parser random and mutated bytes. Nothing
here imports from the layers above (target, gates, build, ...); tests/test_code_rules.py says so.
"""
