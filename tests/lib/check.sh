# Sourced by the VM tests: count checks and report them the same way.
#
#   check "what is checked" COMMAND [ARG...]   run COMMAND, count pass/fail
#   refuses PATTERN COMMAND [ARG...]         COMMAND must fail, saying PATTERN
#   check_summary                            print `N passed, N failed`,
#                                            return non-zero on any failure
# CVM_TEST_VERBOSE=1 shows the output of passing checks too.
passed=0
failed=0

check() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		echo "ok   $what"
		[[ -n "${CVM_TEST_VERBOSE:-}" && -n "$out" ]] &&
			printf '%s\n' "$out" | sed 's/^/     /'
	else
		failed=$((failed + 1))
		echo "FAIL $what"
		[[ -n "$out" ]] && printf '%s\n' "$out" | sed 's/^/     /'
	fi
	return 0
}

# refuses PATTERN COMMAND [ARG...]: COMMAND must fail and say something
# matching PATTERN (grep -E) on stderr.
refuses() {
	local pat=$1 err
	shift
	if err=$("$@" 2>&1 >/dev/null); then
		echo "succeeded; expected a refusal matching '$pat'"
		return 1
	fi
	grep -Eq -- "$pat" <<<"$err" || { echo "refused, but said: $err"; return 1; }
}

check_summary() {
	echo "$passed passed, $failed failed"
	((failed == 0))
}

require_vm() {
	if [[ -z "${CVM_IN_VM:-}" ]]; then
		echo "$(basename "$0"): run me inside the test VM: scripts/vm-run.sh $0" >&2
		exit 2
	fi
}
