#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the kernel/common KUnit suites on UML with the kernel's own kunit.py.
#
#   scripts/kunit.sh [extra kunit.py run arguments, e.g. a suite glob]
#
# Unpacks Debian's linux-source-6.1 once, copies our sources into it as
# lib/cvm (CONFIG_CVM_KUNIT_TEST), and builds UML there.  The tree and the
# UML build live outside the clone, in $CVM_CACHE/kunit/KEY (default
# ~/.cache/cvm), KEY naming the inputs that would change the whole build:
# the tarball (name, size, mtime) and the .kunitconfig (anything else is
# caught by kbuild's own dependency tracking).  So a
# fresh clone rebuilds only lib/cvm (about 30 s, not 180 s).  Our files are
# copied only when their content differs, so an unchanged tree rebuilds
# nothing; a missing or emptied cache only makes the run slower.  One run
# at a time per cache (flock).  Prints KUnit's results, then
# "N passed, N failed"; exits non-zero on any failure, crash or build error.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
tarball=${CVM_LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache=${CVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cvm}
key=$( { stat -c '%n %s %Y' "$tarball"; cat "$top/kernel/tests/.kunitconfig"; } |
	sha256sum | cut -c1-16)
work=$cache/kunit/$key
src=$work/linux-source-6.1
out=$work/uml
log=$work/last-run.log

mkdir -p "$work"
exec 8>"$work/lock"
flock 8
# Builds for other keys (an older tarball) unused for a week go.
find "$cache/kunit" -mindepth 2 -maxdepth 2 -name lock -mtime +7 -printf '%h\n' |
	xargs -r rm -rf
if [ ! -d "$src" ]; then	# unpack aside, then move: never half a tree
	echo "kunit.sh: unpacking $tarball"
	rm -rf "$work/unpack"
	mkdir "$work/unpack"
	tar xJf "$tarball" -C "$work/unpack"
	mv "$work/unpack/linux-source-6.1" "$src"
	rmdir "$work/unpack"
fi

# lib/cvm: copies of our sources.  Files are only rewritten when their
# content changes, so an unchanged tree rebuilds nothing.
cvm=$src/lib/cvm
mkdir -p "$cvm"
update() {	# update FILE: replace FILE with stdin if different
	local tmp
	tmp=$(mktemp)
	cat > "$tmp"
	if cmp -s "$tmp" "$1"; then
		rm -f "$tmp"
	else
		mv "$tmp" "$1"
	fi
}
objs=() ours=(Kconfig Makefile)
for f in "$top"/kernel/common/*.[ch] "$top"/kernel/tests/*.[ch]; do
	b=$(basename "$f")
	[ -L "$cvm/$b" ] && rm -f "$cvm/$b"	# an older layout linked them
	update "$cvm/$b" <"$f"
	ours+=("$b")
	case $f in
	*.c) objs+=("${b%.c}.o") ;;
	esac
done
# Files another checkout had and this one has not.
for f in "$cvm"/*; do
	[[ " ${ours[*]} " == *" $(basename "$f") "* ]] || rm -f "$f"
done
update "$cvm/Kconfig" <<'KCONFIG'
# SPDX-License-Identifier: GPL-2.0
config CVM_KUNIT_TEST
	tristate "KUnit tests for the CVM placement core" if !KUNIT_ALL_TESTS
	depends on KUNIT
	select LIBCRC32C
	select RAID6_PQ
	default KUNIT_ALL_TESTS
	help
	  Hashing, CRC32C, cluster map validation and placement, map codec
	  object/stripe arithmetic and erasure-code math (against lib/raid6)
	  from CVM's kernel/common.
KCONFIG
update "$cvm/Makefile" <<MAKEFILE
# SPDX-License-Identifier: GPL-2.0
obj-\$(CONFIG_CVM_KUNIT_TEST) += cvm_kunit.o
cvm_kunit-y := ${objs[*]}
MAKEFILE
grep -qx 'source "lib/cvm/Kconfig"' "$src/lib/Kconfig" ||
	echo 'source "lib/cvm/Kconfig"' >> "$src/lib/Kconfig"
grep -qx 'obj-y += cvm/' "$src/lib/Makefile" ||
	echo 'obj-y += cvm/' >> "$src/lib/Makefile"

cd "$src"
set +e
python3 ./tools/testing/kunit/kunit.py run \
	--kunitconfig="$top/kernel/tests/.kunitconfig" \
	--build_dir="$out" --arch=um --jobs="${CVM_KUNIT_JOBS:-2}" "$@" |
	tee "$log"
status=${PIPESTATUS[0]}
set -e

# "Testing complete. Ran 12 tests: passed: 11, failed: 1"
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
	grep -o 'Testing complete\. Ran [0-9]* tests:.*' | tail -n 1 || true)
count() {
	echo "$summary" | grep -o "$1: [0-9]*" | grep -o '[0-9]*' || echo 0
}
passed=$(count passed)
failed=$(($(count failed) + $(count crashed) + $(count errors)))
if [ -z "$summary" ] && [ "$failed" -eq 0 ]; then
	failed=1	# no summary: the build or the boot failed
fi
echo "$passed passed, $failed failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
	exit 1
fi
