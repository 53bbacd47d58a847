#!/usr/bin/env bash
# make install and make uninstall: a staged install (DESTDIR, PREFIX=/opt/pst)
# and a real one into a temp PREFIX and SYSCONFDIR (nothing is written
# outside the test's temp dirs). The installed policies pass `postern
# check`; the installed broker, run without an argument, reads
# SYSCONFDIR/postern/postern.json and serves the echo demo with the
# installed handler; a program builds against the installed handler library
# with pkg-config; the man pages render; uninstall removes exactly what
# install put, keeping an operator's changed policy and files of their own.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v mandoc >/dev/null || fail "mandoc missing: make deps"

# make as an operator runs it, not with the variables of a make this test runs under
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$ROOT" "$@" >>"$T/make.log" 2>&1 ||
	{ cat "$T/make.log" >&2; fail "make $*"; }; }
# tree DIR: every path under DIR with its type and mode, sorted
tree() { (cd "$1" && find . -mindepth 1 -printf '%p %y %m\n' | LC_ALL=C sort); }

# ---- 1. staged: DESTDIR, PREFIX=/opt/pst, SYSCONFDIR=/etc ----------------
D=$T/dest
mkdir -p "$D/opt/pst/share/man"	# a directory that was there before install
mk install BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/pst
P=$D/opt/pst
for f in sbin/postern libexec/postern/echo libexec/postern/confine libexec/postern/dbrelay \
	share/postern/policies/echo.json share/postern/policies/db-egress.json \
	include/postern/handler.h lib/libpostern-handler.a lib/pkgconfig/postern-handler.pc \
	share/man/man8/postern.8 share/man/man5/postern.json.5; do
	[ -f "$P/$f" ] || fail "make install did not put PREFIX/$f"
done
[ ! -e "$P/bin/postern" ] || fail "postern installed in bin/, not sbin/"
[ ! -e "$P/libexec/postern/confine-static" ] || fail "a test-only handler was installed"
[ -x "$P/sbin/postern" ] && [ -x "$P/libexec/postern/echo" ] || fail "programs not executable"
for u in "$ROOT"/examples/systemd/postern.*; do
	[ -f "$P/lib/systemd/system/$(basename "$u")" ] || fail "unit $(basename "$u") not installed"
done
# each unit's programs are where install put them
for u in "$P"/lib/systemd/system/postern.*; do
	for x in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$u"); do
		case $x in /opt/pst/*) [ -x "$D$x" ] || fail "$(basename "$u") runs $x, which install did not put" ;; esac
	done
done
# paths rewritten to PREFIX, and nothing left pointing at /usr/local
grep -q '"/opt/pst/libexec/postern/echo"' "$P/share/postern/policies/echo.json" ||
	fail "installed echo policy does not run /opt/pst/libexec/postern/echo: $(cat "$P/share/postern/policies/echo.json")"
left=$(grep -rl /usr/local "$P" "$D/etc" | grep -v -e '/sbin/postern$' -e '/libexec/' -e '\.a$' || true)
[ -z "$left" ] || fail "installed files still name /usr/local: $left"
grep -qx 'prefix=/opt/pst' "$P/lib/pkgconfig/postern-handler.pc" || fail "pkg-config prefix: $(cat "$P/lib/pkgconfig/postern-handler.pc")"
# the example policy in SYSCONFDIR: the rewritten echo policy, 0644
C=$D/etc/postern/postern.json
cmp -s "$C" "$P/share/postern/policies/echo.json" || fail "$C is not the installed echo policy"
assert_eq "$(stat -c %a "$C")" 644 "mode of the example policy"
# a second install never replaces the operator's policy
echo '{ "changed": true }' >"$C"
mk install BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/pst
assert_eq "$(cat "$C")" '{ "changed": true }' "a second make install replaced the operator's policy"
# uninstall: a changed policy stays, and the directories it needs; a
# directory that was there before stays; nothing else
mk uninstall BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/pst
assert_eq "$(tree "$D")" "./etc d 755
./etc/postern d 755
./etc/postern/postern.json f 644
./opt d 755
./opt/pst d 755
./opt/pst/share d 755
./opt/pst/share/man d 755" "what uninstall left of a staged install with a changed policy"
# with the example policy unchanged, uninstall removes it too, and the
# directories install made for it
rm -r "$D/etc"
mk install BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/pst
[ -f "$C" ] || fail "make install did not write the missing example policy"
mk uninstall BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/pst
assert_eq "$(tree "$D")" "./opt d 755
./opt/pst d 755
./opt/pst/share d 755
./opt/pst/share/man d 755" "what uninstall left of a staged install"
note "staged install and uninstall: ok"

# ---- 2. a real install into a temp PREFIX, SYSCONFDIR ---------------------
# SYSCONFDIR is compiled into postern run: a copy of the build, so that
# the project's own build keeps /etc
B2=$T/build
mkdir -p "$B2"
cp -a "$BUILD"/obj "$BUILD"/examples "$BUILD"/postern "$BUILD"/postern-warm "$BUILD"/postern-warm.so \
	"$BUILD"/libpostern.a "$BUILD"/libpostern-handler.a "$B2"/
P=$T/pst E=$T/etc
mk install BUILD="$B2" PREFIX="$P" SYSCONFDIR="$E"
C=$E/postern/postern.json
assert_eq "$(stat -c '%U %a' "$C")" "root 644" "owner and mode of the installed policy"
"$P/sbin/postern" --help >/dev/null || fail "installed postern does not run"
"$P/sbin/postern" run --help | grep -qF "$C" || fail "postern run --help does not name $C"
# the installed policies are valid as installed
out=$("$P/sbin/postern" check "$P"/share/postern/policies/*.json 2>&1) || fail "installed policies fail check: $out"
"$P/sbin/postern" check -q "$C" || fail "installed example policy fails check"

# postern run without an argument reads SYSCONFDIR/postern/postern.json; in
# the lab, with this run's table, control socket and state dir (which makes
# it the operator's changed policy for uninstall below)
jq --arg t "$TABLE" --arg c "$CONTROL" --arg s "$STATE" --argjson u "$UID_BASE" \
	'.broker += { table: $t, control: $c, state_dir: $s, uid_base: $u, grace: "3s" }' \
	"$C" >"$T/conf" && cat "$T/conf" >"$C" || fail "jq"
grep -q "\"$P/libexec/postern/echo\"" "$C" || fail "the installed policy does not run the installed echo"
run_placed nsenter --net=/run/netns/"$LAB" "$P/sbin/postern" run >>"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
bg_pid "$BROKER_PID"
wait_for 10 grep -q 'event=start ' "$BROKER_LOG" || { cat "$BROKER_LOG" >&2; fail "installed broker did not start"; }
grep -qF "policy=$C" "$BROKER_LOG" || fail "postern run without POLICY did not read $C"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 "hello, installed")" "hello, installed" "echo through the installed policy"
assert_eq "$(in_lab "$CLIENT" "[::1]:7000" "hello v6")" "hello v6" "IPv6 echo through the installed policy"
broker_stop
assert_clean_lab

# a program built against the installed handler library with pkg-config
cat >"$T/h.c" <<'C'
#include <stdio.h>
#include <postern/handler.h>
int main(void)
{
	char peer[64];
	printf("%s fd=%d\n", pst_handler_peer(peer, sizeof(peer)), pst_handler_socket());
	return 0;
}
C
flags=$(PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config --cflags --libs postern-handler) ||
	fail "pkg-config does not find postern-handler in $P/lib/pkgconfig"
assert_contains "$flags" "-I$P/include" "pkg-config --cflags"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror "$T/h.c" $flags -o "$T/h" || fail "a handler does not build against the installed library"
assert_eq "$(REMOTE_ADDR=192.0.2.7 REMOTE_PORT=4242 "$T/h" </dev/null)" "192.0.2.7:4242 fd=0" "the installed library's answers"

# the man pages render, with the installed paths
for m in man8/postern.8 man5/postern.json.5; do
	out=$(mandoc -Tutf8 "$P/share/man/$m" 2>&1) || fail "mandoc $m: $out"
	[ "$(wc -l <<<"$out")" -gt 40 ] || fail "$m renders to almost nothing: $out"
	if command -v man >/dev/null; then man -l "$P/share/man/$m" >/dev/null 2>&1 || fail "man -l $m"; fi
done
assert_contains "$(mandoc -Tascii -Owidth=200 "$P/share/man/man8/postern.8" | sed "s/.\x08//g")" "$C" "postern(8) FILES names the installed policy"

# uninstall: an operator's own handler stays, and the directory holding
# it; the changed policy stays; everything else goes
echo '#!/bin/sh' >"$P/libexec/postern/mine"
mk uninstall BUILD="$B2" PREFIX="$P" SYSCONFDIR="$E"
assert_eq "$(tree "$P")" "./libexec d 755
./libexec/postern d 755
./libexec/postern/mine f 644" "what uninstall left in PREFIX"
assert_eq "$(tree "$E")" "./postern d 755
./postern/postern.json f 644" "what uninstall left in SYSCONFDIR"
grep -q "\"$TABLE\"" "$C" || fail "uninstall changed the operator's policy"
# without a manifest, uninstall refuses rather than guessing
if mk_out=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$ROOT" uninstall BUILD="$B2" PREFIX="$P" SYSCONFDIR="$E" 2>&1); then
	fail "uninstall without an install succeeded: $mk_out"
fi
assert_contains "$mk_out" "install.manifest is missing" "uninstall without an install"
note "real install, check, run, pkg-config, man, uninstall: ok"
