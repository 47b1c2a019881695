# shellcheck shell=bash
# Sourced by scripts/check.sh and tests/run-in-vm.sh: which tier a test file
# is in.  Each test names it in its leading comment block,
#
#	# tier: check (about 40 s: ...what it costs...)
#
# one of fast < check < full; a tier runs its own tests and those of the
# tiers below.  $CVM_TIER (default check) is the tier being run.

# tier_of FILE: the tier FILE declares; "check" when it declares none.
tier_of() {
	local t
	t=$(sed -n '/^[^#]/q; s/^# tier:[[:space:]]*\([a-z]*\).*/\1/p' "$1")
	echo "${t:-check}"
}

_tier_rank() {
	case "$1" in
	fast) echo 0 ;;
	check) echo 1 ;;
	full) echo 2 ;;
	*) echo 9 ;;
	esac
}

# in_tier FILE: FILE runs in $CVM_TIER.
in_tier() {
	(($(_tier_rank "$(tier_of "$1")") <= $(_tier_rank "${CVM_TIER:-check}")))
}
