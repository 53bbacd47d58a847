#!/bin/sh
# make install / make uninstall (the Makefile passes its variables).
#
#   tools/install.sh install|uninstall
#
# Environment (all set by the Makefile): DESTDIR, PREFIX, SYSCONFDIR,
# SYSTEMDUNITDIR, BUILD, VERSION.
#
# install puts, under DESTDIR:
#   PREFIX/sbin/postern                          (a root daemon: sbin, not bin)
#   PREFIX/libexec/postern/*                     the example handlers
#   PREFIX/share/postern/policies/*.json         /usr/local rewritten to PREFIX
#   SYSCONFDIR/postern/postern.json              policies/echo.json, rewritten;
#                                                only when absent, never replaced
#   PREFIX/include/postern/handler.h             the handler library
#   PREFIX/lib/libpostern-handler.a
#   PREFIX/lib/pkgconfig/postern-handler.pc
#   PREFIX/share/man/man8/postern.8, man5/postern.json.5
#   SYSTEMDUNITDIR/postern.*                     examples/systemd, rewritten
# and records in PREFIX/share/postern/install.manifest each file it put and
# each directory it had to make, so that uninstall removes exactly those
# (directories only when empty) and leaves SYSCONFDIR/postern/postern.json
# when it differs from what install wrote (the operator's policy), or when
# install did not write it.
set -eu

: "${PREFIX:?}" "${SYSCONFDIR:?}" "${SYSTEMDUNITDIR:?}" "${BUILD:?}" "${VERSION:?}"
DESTDIR=${DESTDIR:-}
case $PREFIX in /*) ;; *) echo "install: PREFIX must be absolute, got \"$PREFIX\"" >&2; exit 2 ;; esac
case $SYSCONFDIR in /*) ;; *) echo "install: SYSCONFDIR must be absolute, got \"$SYSCONFDIR\"" >&2; exit 2 ;; esac

D=$DESTDIR
DATADIR=$PREFIX/share/postern
MANIFEST=$D$DATADIR/install.manifest
CONF=$SYSCONFDIR/postern/postern.json

# sed replacement text for PREFIX and SYSCONFDIR ('|', '&' and '\' escaped)
esc() { printf '%s' "$1" | sed 's/[|&\\]/\\&/g'; }
rewrite() {
	sed -e "s|/usr/local|$(esc "$PREFIX")|g" -e "s|/etc/postern|$(esc "$SYSCONFDIR")/postern|g" "$1"
}

# mkdirs DIR: make DIR and its missing parents, recording each one made
mkdirs() {
	[ -d "$D$1" ] && return 0
	mkdirs "$(dirname "$1")"
	install -d -m 0755 "$D$1"
	echo "d $1" >>"$NEWMAN"
}
# put MODE SRC DST: install SRC as DST, recorded
put() {
	mkdirs "$(dirname "$3")"
	install -m "$1" "$2" "$D$3"
	echo "f $3" >>"$NEWMAN"
}
# put_rewritten MODE SRC DST: SRC with PREFIX and SYSCONFDIR rewritten
put_rewritten() {
	rewrite "$2" >"$TMP/rewritten"
	put "$1" "$TMP/rewritten" "$3"
}

do_install() {
	for f in "$BUILD/postern" "$BUILD/libpostern-handler.a"; do
		[ -f "$f" ] || { echo "install: $f is missing: run make first" >&2; exit 1; }
	done
	TMP=$(mktemp -d)
	trap 'rm -rf "$TMP"' EXIT
	NEWMAN=$TMP/manifest
	: >"$NEWMAN"
	# what an earlier install made or wrote stays recorded as install's
	[ -f "$MANIFEST" ] && grep '^[dc] ' "$MANIFEST" >>"$NEWMAN" || true
	mkdirs "$DATADIR"

	put 0755 "$BUILD/postern" "$PREFIX/sbin/postern"
	for e in "$BUILD"/examples/*; do
		case $e in *-static) continue ;; esac
		[ -f "$e" ] && [ -x "$e" ] && put 0755 "$e" "$PREFIX/libexec/postern/$(basename "$e")"
	done
	for p in policies/*.json; do
		put_rewritten 0644 "$p" "$DATADIR/policies/$(basename "$p")"
	done

	# the example policy, for `postern run` without an argument: root's,
	# 0644 (postern refuses a policy others could write); never replaced
	mkdirs "$SYSCONFDIR/postern"
	if [ -e "$D$CONF" ]; then
		echo "install: $D$CONF exists: left as it is"
	else
		rewrite policies/echo.json >"$TMP/conf"
		install -m 0644 "$TMP/conf" "$D$CONF"
		echo "c $CONF" >>"$NEWMAN"
	fi

	put 0644 examples/lib/postern_handler.h "$PREFIX/include/postern/handler.h"
	put 0644 "$BUILD/libpostern-handler.a" "$PREFIX/lib/libpostern-handler.a"
	cat >"$TMP/pc" <<PC
prefix=$PREFIX
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: postern-handler
Description: helper library for handler programs run by postern (libc only)
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -lpostern-handler
PC
	put 0644 "$TMP/pc" "$PREFIX/lib/pkgconfig/postern-handler.pc"

	put_rewritten 0644 man/postern.8 "$PREFIX/share/man/man8/postern.8"
	put_rewritten 0644 man/postern.json.5 "$PREFIX/share/man/man5/postern.json.5"
	for u in examples/systemd/postern.*; do
		[ -f "$u" ] && put_rewritten 0644 "$u" "$SYSTEMDUNITDIR/$(basename "$u")"
	done

	sort -u "$NEWMAN" >"$TMP/sorted"
	install -m 0644 "$TMP/sorted" "$MANIFEST"
	echo "install: postern $VERSION in $D$PREFIX (files listed in $MANIFEST)"
}

do_uninstall() {
	if [ ! -f "$MANIFEST" ]; then
		echo "uninstall: $MANIFEST is missing: nothing installed in $D$PREFIX by make install" >&2
		exit 1
	fi
	TMP=$(mktemp -d)
	trap 'rm -rf "$TMP"' EXIT
	grep '^f ' "$MANIFEST" | cut -c3- | while IFS= read -r f; do
		rm -f "$D$f"
	done
	grep '^c ' "$MANIFEST" | cut -c3- | while IFS= read -r f; do
		[ -e "$D$f" ] || continue
		rewrite policies/echo.json >"$TMP/conf"
		if cmp -s "$TMP/conf" "$D$f"; then
			rm -f "$D$f"
		else
			echo "uninstall: $D$f differs from the example install wrote: left as it is"
		fi
	done
	rm -f "$MANIFEST"
	# directories install made, deepest first, when empty
	printf '%s\n' "$DIRS" | awk 'NF' | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- |
		while IFS= read -r d; do
			rmdir "$D$d" 2>/dev/null || true
		done
	echo "uninstall: postern removed from $D$PREFIX"
}

case ${1:-} in
install) do_install ;;
uninstall)
	DIRS=$(grep '^d ' "$MANIFEST" 2>/dev/null | cut -c3- || true)
	do_uninstall
	;;
*)
	echo "usage: tools/install.sh install|uninstall" >&2
	exit 2
	;;
esac
