"""The parsers of untrusted binary formats: ELF (elf), a module's sections (module), compressed files
(compression), DER (der), module signatures with their PKCS#7 and X.509 parts (pkcs7) and their
RSA check (rsa), the certificates built into a kernel image and UEFI signature lists (certlist),
BTF (btf), Module.symvers (symvers).

A .ko, a vmlinuz, a certificate or a Module.symvers may be hostile or broken: every read here is
bounded (through kbuildguard/bounded.py), every failure is the one ``BadInput`` (exit 3, one line,
never a traceback). This folder is not every parser of hostile input: identity, target/pasted,
project, explain/loadlog and explain/load, target/keyrings, target/sysroot, target/fetch, target/kmod
parse hostile text too. docs/architecture.md's "Hostile input" table lists them all, with each
one's bound and the test that fuzzes it (tests/test_fuzz.py, test_signature.py, test_keyrings.py)
or the hand-written cases that cover it; a test holds that table to the tree. Nothing
here imports from the layers above (target, gates, build, ...); tests/test_code_rules.py says so.
"""
