#!/bin/sh
# How blob.o_shipped was made: as a vendor would, with whatever compiler they had (gcc-11 here),
# with the flags an x86_64 kernel object needs to link into a module.
set -eu
cd "$(dirname "$0")"
CC=${BLOB_CC:-gcc-11}
"$CC" -c -O2 -mcmodel=kernel -fno-pic -mno-red-zone -fno-stack-protector -ffreestanding -nostdinc \
    -fno-asynchronous-unwind-tables vendor-src/blob.c -o blob.o_shipped
