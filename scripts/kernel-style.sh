#!/usr/bin/env bash
# Style and static checks as tests: checkpatch (--no-tree -f) on every kernel
# and uapi file, sparse (C=2) over both modules, clang-format over userspace/.
# Prints one PASS/FAIL line per check and closes with `N passed, N failed`.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
. scripts/kernel-release.sh
BUILD=${BUILD:-build}
passed=0 failed=0
result() { # NAME RC [DETAIL-FILE]
	if (($2 == 0)); then
		echo "PASS $1"; passed=$((passed + 1))
	else
		echo "FAIL $1"; failed=$((failed + 1))
		[[ -n "${3:-}" ]] && sed 's/^/    /' "$3"
	fi
}

# checkpatch.pl ships in Debian's linux-source tarball.
cpdir=$BUILD/checkpatch/linux-source-6.1/scripts
if [[ ! -f "$cpdir/checkpatch.pl" ]]; then
	mkdir -p "$BUILD/checkpatch"
	tar xJf /usr/src/linux-source-6.1.tar.xz -C "$BUILD/checkpatch" \
		linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
while IFS= read -r f; do
	perl "$cpdir/checkpatch.pl" --no-tree --quiet --show-types -f "$f" >"$tmp" 2>&1
	result "checkpatch $f" $? "$tmp"
done < <(git ls-files --cached --others --exclude-standard -- 'kernel/*.[ch]' 'include/*.h' |
	 sort)	# .gitignore keeps out kbuild's generated files

# sparse over our code: any warning in a file of ours fails.
rel=$(cvm_kernel_release)
make -C "/lib/modules/$rel/build" M="$TOP/kernel" C=2 modules >"$tmp.log" 2>&1
rc=$?
grep -E "^($TOP/)?(kernel|include)/[^:]+:[0-9]+:[0-9]+: (warning|error)" "$tmp.log" >"$tmp"
((rc == 0)) && [[ ! -s "$tmp" ]]
result "sparse kernel/" $? "$tmp"
rm -f "$tmp.log"

# clang-format (Google style, .clang-format) over userspace/.
find userspace \( -name '*.cc' -o -name '*.h' \) -print0 |
	xargs -0 clang-format --dry-run --Werror >"$tmp" 2>&1
result "clang-format userspace/" $? "$tmp"

echo "$passed passed, $failed failed"
((failed == 0))
