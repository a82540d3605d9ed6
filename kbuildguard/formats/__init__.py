"""The parsers of untrusted binary formats: ELF (elf), a module's sections (module), compressed files
(compression), DER (der), module signatures with their PKCS#7 and X.509 parts (pkcs7) and their
RSA check (rsa), the certificates built into a kernel image and UEFI signature lists (certlist),
BTF (btf), Module.symvers (symvers).

A .ko, a vmlinuz, a certificate or a Module.symvers may be hostile or broken: every read here is
bounded (through kbuildguard/bounded.py), every failure is the one ``BadInput`` (exit 3, one line,
never a traceback). This folder is not every parser of hostile input: modules of other layers
parse hostile text too (pasted tickets, dmesg, a captured root, a repository's toml). Their list is
docs/architecture.md's "Hostile input" table, the one place, with each one's bound and the test that
fuzzes or covers it; a test holds that table to the tree. Nothing
here imports from the layers above (target, gates, build, ...); tests/test_code_rules.py says so.
"""
