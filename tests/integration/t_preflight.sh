#!/usr/bin/env bash
# The preflight: what a policy needs from the host, found by `check` (as
# root; --no-preflight skips it; a user is told it was skipped), `run`
# (refused before anything is bound) and a reload (refused, the running
# policy keeps serving): an interpreter missing from the root, a missing
# exec, a missing bind source, a #! interpreter not in the root, a missing
# DT_NEEDED library (and one found through DT_RUNPATH $ORIGIN); a cpu limit
# below the kernel's minimum quota. And identity_files: a handler looks its
# uid up by name, reads localhost from /etc/hosts, cannot write them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v cc >/dev/null || skip "needs cc"
W="$BUILD/tests/helpers/whoami"
[ -x "$W" ] || fail "missing $W: run make first"

# sb NAME EXEC FILESYSTEM [EXTRA]: one sandbox's JSON
# (a port of its own, from the name: $(sb ...) runs in a subshell)
pport() { echo $((7100 + $(printf %s "$1" | cksum | cut -d' ' -f1) % 800)); }
sb() { printf '"%s": { "trigger": { "listen": ["127.0.0.1:%s"] }, "exec": ["%s"], "filesystem": %s%s }' "$1" "$(pport "$1")" "$2" "$3" "${4:+, $4}"; }
check_err() { # POLICY_FILE [ARGS]: stderr of a check that must fail with exit 1
	local rc=0 err
	err=$("$POSTERN" check "${@:2}" "$1" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 1 ] || fail "check of $1 exited $rc, want 1: $err"
	printf '%s' "$err"
}

# ---- a program and its library, built here --------------------------------
mkdir -p "$T/app/bin" "$T/app/lib" "$T/scripts"
cat >"$T/lib.c" <<'C'
int pfx_answer(void) { return 42; }
C
cat >"$T/prog.c" <<'C'
#include <stdio.h>
int pfx_answer(void);
int main(void) { printf("%d\n", pfx_answer()); return 0; }
C
cc -shared -fPIC -Wl,-soname,libpfx.so.1 -o "$T/app/lib/libpfx.so.1" "$T/lib.c"
cc -o "$T/app/bin/prog" "$T/prog.c" -L"$T/app/lib" -l:libpfx.so.1 -Wl,--enable-new-dtags,-rpath,'$ORIGIN/../lib'
# prog2 has no DT_RUNPATH: its library is found through the root's own
# /etc/ld.so.cache (made by ldconfig for /opt/custom), or not at all
cc -o "$T/app/bin/prog2" "$T/prog.c" -L"$T/app/lib" -l:libpfx.so.1
mkdir -p "$T/croot/opt/custom" "$T/croot/etc"
cp "$T/app/lib/libpfx.so.1" "$T/croot/opt/custom/"
echo /opt/custom >"$T/croot/etc/ld.so.conf"
ldconfig -r "$T/croot" || fail "ldconfig -r"
printf '#!/nonexistent/sh\necho hi\n' >"$T/scripts/bad.sh"
printf '#!/bin/sh\necho hi\n' >"$T/scripts/good.sh"
chmod 755 "$T/scripts/"*.sh "$T/app" "$T/app/bin" "$T/app/lib" "$T/scripts"
chmod 644 "$T/scripts/noexec.txt" 2>/dev/null || true
printf '#!/bin/sh\n' >"$T/scripts/notx.sh"; chmod 644 "$T/scripts/notx.sh"
# hostile: a link in a bind source to a host path outside the root (never
# followed there), a FIFO (never opened), a program on a noexec mount
ln -s /usr/bin/true "$T/scripts/inroot"
ln -s "$T/app/bin/prog" "$T/scripts/outside"
mkfifo "$T/scripts/fifo"
mkdir "$T/nx"
mount -t tmpfs -o noexec,size=1m tmpfs "$T/nx" || fail "mount a noexec tmpfs"
on_exit "umount -l '$T/nx'"
cp /usr/bin/true "$T/nx/true"; chmod 755 "$T/nx" "$T/nx/true"
NX='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/lib64", "target": "usr/lib64" }, { "bind": "'"$T"'/nx", "to": "/opt/nx" } ]'

NOLIB64='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/bin", "target": "usr/bin" } ]'
APP_BIN='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/lib64", "target": "usr/lib64" }, { "bind": "'"$T"'/app/bin", "to": "/opt/app/bin" } ]'
APP_ALL='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/lib64", "target": "usr/lib64" }, { "bind": "'"$T"'/app", "to": "/opt/app" } ]'
CUSTOM='{ "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/lib64", "target": "usr/lib64" }, { "bind": "'"$T"'/app/bin", "to": "/opt/app/bin" }, { "bind": "'"$T"'/croot/opt/custom", "to": "/opt/custom" }'
CACHE="[ $CUSTOM, { \"bind\": \"$T/croot/etc\", \"to\": \"/etc\" } ]"
SCRIPTS='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" }, { "bind": "'"$T"'/scripts", "to": "/opt/s" } ]'

broker_json "{ $(sb nolib64 /usr/bin/cat "$NOLIB64"),
  $(sb noexec /opt/postern/none "$FS_JSON"),
  $(sb nosrc /usr/bin/cat '[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" }, { "symlink": "/lib64", "target": "usr/lib64" }, { "bind": "'"$T"'/gone", "to": "/data" } ]'),
  $(sb shebang /opt/s/bad.sh "$SCRIPTS"),
  $(sb notx /opt/s/notx.sh "$SCRIPTS"),
  $(sb nolib /opt/app/bin/prog "$APP_BIN"),
  $(sb outside /opt/s/outside "$SCRIPTS"), $(sb fifo /opt/s/fifo "$SCRIPTS"),
  $(sb nx /opt/nx/true "$NX"), $(sb nocache /opt/app/bin/prog2 "[ $CUSTOM ]") }" >"$T/bad.json"
err=$(check_err "$T/bad.json")
assert_contains "$err" "$T/bad.json: sandboxes.nolib64.exec[0]: \"/usr/bin/cat\": its interpreter /lib64/ld-linux-x86-64.so.2 is not inside the sandbox's root: /lib64 does not exist there (add { \"symlink\": \"/lib64\", \"target\": \"usr/lib64\" })" "missing interpreter, with the fix"
assert_contains "$err" "sandboxes.noexec.exec[0]: \"/opt/postern/none\": not found in the sandbox's root: /opt/postern/none does not exist there" "missing exec"
assert_contains "$err" "sandboxes.nosrc.filesystem[3].bind: \"$T/gone\": does not exist on the host" "missing bind source"
assert_contains "$err" "sandboxes.shebang.exec[0]: \"/opt/s/bad.sh\": its interpreter /nonexistent/sh (#!) is not inside the sandbox's root" "#! interpreter"
assert_contains "$err" "sandboxes.notx.exec[0]: \"/opt/s/notx.sh\": is not executable by the sandbox's uid" "not executable"
assert_contains "$err" "sandboxes.nolib.exec[0]: \"/opt/app/bin/prog\": needs the library libpfx.so.1, which is not inside the sandbox's root" "missing DT_NEEDED library"
assert_contains "$err" "sandboxes.outside.exec[0]: \"/opt/s/outside\": not found in the sandbox's root: /tmp does not exist there" "a link to a host path is followed inside the root"
assert_contains "$err" "sandboxes.fifo.exec[0]: \"/opt/s/fifo\": is a special file (a FIFO, a device, a socket), not a regular file" "a FIFO"
assert_contains "$err" "sandboxes.nx.exec[0]: \"/opt/nx/true\": lies on a noexec mount on the host ($T/nx/true)" "noexec"
assert_contains "$err" "sandboxes.nocache.exec[0]: \"/opt/app/bin/prog2\": needs the library libpfx.so.1, which is not inside" "no cache, no library"
assert_contains "$err" "10 errors (preflight)" "one error each"
# --no-preflight: only the policy itself
"$POSTERN" check --no-preflight -q "$T/bad.json" || fail "--no-preflight still runs the preflight"
# as a user: said to be skipped
chmod 644 "$T/bad.json"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$POSTERN" check "$T/bad.json") ||
	fail "check as a user failed: $out"
assert_contains "$out" "preflight skipped: not root" "a user is told"

# what passes: the library through DT_RUNPATH $ORIGIN/../lib or the root's
# ld.so.cache, a #! script, a link inside the bind source to the root's /usr
broker_json "{ $(sb app /opt/app/bin/prog "$APP_ALL"), $(sb good /opt/s/good.sh "$SCRIPTS"), $(sb inroot /opt/s/inroot "$SCRIPTS"), $(sb cache /opt/app/bin/prog2 "$CACHE"),
  $(sb who /opt/helpers/whoami "$FS_JSON" '"identity_files": true') }" >"$T/good.json"
out=$("$POSTERN" check "$T/good.json" 2>&1) || fail "a policy whose roots hold what they need: $out"
assert_contains "$out" "policy OK (5 sandboxes)" "good policy"

# a plain check error: a cpu quota below the kernel's minimum
broker_json "{ $(sb cpu /usr/bin/cat "$FS_JSON" '"limits": { "cpu": 0.000001 }') }" >"$T/cpu.json"
err=$(check_err "$T/cpu.json" --no-preflight)
assert_contains "$err" "sandboxes.cpu.limits.cpu: 1e-06: a quota of 0.1 us per 100000 us period (cpu.max) is below the kernel's minimum of 1000 us: at least 0.01 cores" "cpu"
# 0.0.0.0:P in one sandbox, 127.0.0.1:P in another (policy_verify.c)
broker_json "{ $(sb w /usr/bin/cat "$FS_JSON"), \"x\": { \"trigger\": { \"listen\": [\"0.0.0.0:$(pport w)\"] }, \"exec\": [\"/usr/bin/cat\"], \"filesystem\": $FS_JSON } }" >"$T/wild.json"
err=$(check_err "$T/wild.json" --no-preflight)
assert_contains "$err" "overlaps \"127.0.0.1:$(pport w)\"" "a wildcard over a specific address"
# identity_files over a bound /etc
broker_json "{ $(sb idetc /usr/bin/cat '[ { "bind": "/usr" }, { "bind": "/etc" } ]' '"identity_files": true') }" >"$T/idetc.json"
err=$(check_err "$T/idetc.json" --no-preflight)
assert_contains "$err" "sandboxes.idetc.filesystem[1].bind: \"/etc\": \"identity_files\" writes /etc/passwd, /etc/group and /etc/hosts into the root, and this entry takes /etc" "identity_files conflict"

# the shipped policies, when what they run is installed
for p in "$ROOT"/policies/*.json; do
	if [ -x /usr/local/libexec/postern/echo ]; then
		"$POSTERN" check -q "$p" || fail "shipped policy $p fails its preflight"
	fi
done

# ---- run: refused before anything is bound ---------------------------------
broker_json "{ $(sb nolib64 /usr/bin/cat "$NOLIB64") }" >"$T/run-bad.json"
rc=0
timeout 20 nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/run-bad.json" >"$T/run.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "run of a policy failing its preflight exited $rc: $(cat "$T/run.log")"
assert_contains "$(cat "$T/run.log")" "event=preflight_failed" "run logs the preflight"
assert_contains "$(cat "$T/run.log")" "its interpreter /lib64/ld-linux-x86-64.so.2 is not inside the sandbox's root" "run says why"
assert_not_contains "$(in_lab nft list tables 2>/dev/null)" "$TABLE" "no table made"
[ ! -e "$CONTROL" ] || fail "control socket made"
[ ! -e "/run/postern/$TABLE.lock" ] || fail "lock taken"
# run --no-preflight: started, and said so (its handlers fail at their spawn)
broker_start "$T/run-bad.json" --no-preflight
assert_contains "$(grep 'event=preflight ' "$BROKER_LOG")" 'preflight="skipped (--no-preflight)"' "run --no-preflight says so"
broker_stop

# ---- identity_files, then a reload that fails its preflight ----------------
broker_json "{ \"who\": { \"trigger\": { \"listen\": [\"127.0.0.1:7000\"] }, \"exec\": [\"/opt/helpers/whoami\"],
  \"filesystem\": $FS_JSON, \"identity_files\": true } }" >"$T/policy.json"
broker_start "$T/policy.json"
out=$(in_lab "$CLIENT" 127.0.0.1:7000 "")
assert_eq "$out" "user=postern group=postern home=/ shell=/usr/sbin/nologin localhost=yes passwd_writable=no" "identity files in the root"

broker_json "{ \"who\": { \"trigger\": { \"listen\": [\"127.0.0.1:7000\"] }, \"exec\": [\"/opt/helpers/nothere\"],
  \"filesystem\": $FS_JSON, \"identity_files\": true } }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 10 grep -q 'event=reload_failed' "$BROKER_LOG" || fail "reload with a preflight error not refused"
assert_contains "$(grep 'event=reload_invalid' "$BROKER_LOG")" "sandboxes.who.exec[0]: \\\"/opt/helpers/nothere\\\": not found in the sandbox's root" "reload says why"
out=$(in_lab "$CLIENT" 127.0.0.1:7000 "")
assert_contains "$out" "user=postern" "the running policy keeps serving"
broker_stop
assert_clean_lab
echo "preflight: ok"
