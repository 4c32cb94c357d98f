#!/bin/sh
# Checks (or with --fix, applies) the committed .clang-format on every C file
# that git tracks. Generated and third-party files are not tracked here.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h')
[ -z "$files" ] && exit 0
if [ "${1:-}" = "--fix" ]; then
	# shellcheck disable=SC2086
	clang-format -i $files
else
	# shellcheck disable=SC2086
	clang-format --dry-run -Werror $files
fi
