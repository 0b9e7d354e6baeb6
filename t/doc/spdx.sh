#!/bin/sh
# SPDX-License-Identifier: MIT
# Every source file starts with its licence line (LICENSE): C and the wire
# schema "/* SPDX-License-Identifier: MIT */" (or "// ..."), scripts and
# build files "# SPDX-License-Identifier: MIT" (after the #! line, if any;
# "dnl ..." in configure.ac). Source files: *.c *.h *.proto *.sh *.mk *.inc
# *.am *.in configure.ac, and quickstart, .ci/*, plugins/skeleton/Makefile.
# Data, documents, man pages, configs and debian/ (debian/copyright) are not.
# `t/doc/spdx.sh --fix` adds the line where it is missing (and nothing else).
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
fix=no
[ "${1:-}" = --fix ] && fix=yes
cd "$top_srcdir" || exit 1
if [ -e .git ] && command -v git >/dev/null; then
	files=$(git ls-files)
else # a tarball: what it holds
	# not a build inside it (distcheck's _build/), nor what configure and
	# make generate in place
	files=$(find . -path ./autom4te.cache -prune -o -path ./build-aux -prune -o -path ./m4 -prune \
		-o -path './_build*' -prune -o -path './build*' -prune \
		-o -type f ! -name config.h ! -name '*.pb-c.[ch]' -print | sed 's|^\./||')
fi
bad=0 n=0
for f in $files; do
	case $f in
	debian/* | m4/* | build-aux/* | Makefile.in | */Makefile.in | configure | aclocal.m4 | config.h.in) continue ;;
	*.c | *.h | *.proto | *.sh | *.mk | *.inc | *.am | *.in | configure.ac | quickstart | .ci/* | \
		plugins/skeleton/Makefile) ;;
	*) continue ;;
	esac
	[ -f "$f" ] || continue
	n=$((n + 1))
	first=$(sed -n 1p "$f")
	case $first in '#!'*) first=$(sed -n 2p "$f") ;; esac
	case $first in
	'/* SPDX-License-Identifier: MIT */' | '// SPDX-License-Identifier: MIT' | \
		'# SPDX-License-Identifier: MIT' | 'dnl SPDX-License-Identifier: MIT') ;;
	*)
		if [ $fix = yes ]; then
			case $f in
			*.c | *.h | *.proto | *.h.in) line='/* SPDX-License-Identifier: MIT */' ;;
			configure.ac) line='dnl SPDX-License-Identifier: MIT' ;;
			*) line='# SPDX-License-Identifier: MIT' ;;
			esac
			if sed -n 1p "$f" | grep -q '^#!'; then
				L=$line awk 'NR == 1 { print; print ENVIRON["L"]; next } { print }' "$f" >"$f.spdx"
			else
				L=$line awk 'NR == 1 { print ENVIRON["L"] } { print }' "$f" >"$f.spdx"
			fi
			cat "$f.spdx" >"$f" && rm -f "$f.spdx" # keeps the file's mode
			echo "fixed - $f"
		else
			echo "not ok - $f: no SPDX-License-Identifier: MIT line first"; bad=$((bad + 1))
		fi ;;
	esac
done
[ $bad -eq 0 ] && echo "ok - $n source files carry SPDX-License-Identifier: MIT" && exit 0
echo "$bad of $n source files without the SPDX line"
exit 1
