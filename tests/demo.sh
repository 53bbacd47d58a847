#!/usr/bin/env bash
# make demo: the echo demo under isolation, inside a throwaway network
# namespace, so nothing of this machine's network is touched.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/build
[ "$(id -u)" = 0 ] || { echo "make demo needs root (namespaces, cgroups, nftables)"; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
NS="pst-demo-$$"
T=$(mktemp -d /tmp/pst-demo.XXXXXX)
chmod 755 "$T"
PID= CG=
cleanup() {
	[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	[ -n "${CG:-}" ] && rmdir "$CG" 2>/dev/null
	grep -F " $T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

say "1. A throwaway network namespace ($NS) for the whole demo"
ip netns add "$NS" && ip -n "$NS" link set lo up || exit 1
echo "   The broker, its nftables table and its sandbox networks live in it; it is deleted at the end."

say "2. The policy: policies/echo.json, pointed at the freshly built handlers"
# The shipped policy runs /usr/local/libexec/postern/echo (and binds that
# directory); here the handlers come from build/examples, bound read-only
# at /opt/postern in each sandbox.
jq --arg ex "$B/examples" --arg t "$T" '
  .broker = ((.broker // {}) + { control: ($t + "/control.sock"), state_dir: ($t + "/state"),
				 table: "postern_demo" })
  | .sandboxes.echo.exec[0] = "/opt/postern/echo"
  | .sandboxes.echo.filesystem |= map(select(.bind != "/usr/local/libexec/postern"))
  | .sandboxes.echo.filesystem += [ { bind: $ex, to: "/opt/postern" } ]
  | .sandboxes.confine = (.sandboxes.echo
      | .trigger = { listen: ["127.0.0.1:7001"] } | .exec = ["/opt/postern/confine"]
      | .filesystem += [ { proc: "/proc" } ])' policies/echo.json >"$T/echo.json" || exit 1
jq -C '.sandboxes.echo' "$T/echo.json" | sed 's/^/   /'
"$B/postern" check "$T/echo.json" | sed 's/^/   /' || exit 1

say "3. Starting the broker: postern run echo.json (log lines below are its stderr)"
# On cgroup v2 the broker must be alone in its cgroup (postern run --help,
# CGROUPS). From a login shell it is not: it runs in a scope of its own
# with its controllers delegated, as `systemd-run --scope -p Delegate=yes`
# makes one, or, without systemd, in a cgroup made for it here.
PLACE=()
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
if [ -f /sys/fs/cgroup/cgroup.controllers ] && [ "$own" != / ]; then
	if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then
		echo "   (cgroup v2: in a scope of its own, systemd-run --scope -p Delegate=yes)"
		PLACE=(systemd-run --scope --quiet --collect -p Delegate=yes --unit "postern-demo-$$")
	else
		CG=/sys/fs/cgroup/postern-demo-$$
		echo "   (cgroup v2: in a cgroup of its own, $CG)"
		mkdir "$CG" || exit 1
		PLACE=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG")
	fi
fi
"${PLACE[@]}" nsenter --net=/run/netns/"$NS" "$B/postern" run "$T/echo.json" 2> >(sed -u 's/^/   log| /' >&2) &
PID=$!
for _ in $(seq 1 100); do [ -S "$T/control.sock" ] && break; sleep 0.05; done
[ -S "$T/control.sock" ] || { echo "the broker did not start"; exit 1; }
sleep 0.2

say "4. Three echoes through it: each one is a fresh, isolated process"
for m in "hello, postern" "one process per request" "and it is gone afterwards"; do
	printf '   client sends %-28s -> gets back: %s\n' "\"$m\"" "$(ip netns exec "$NS" "$B/tests/helpers/pst-client" 127.0.0.1:7000 "$m")"
done
sleep 0.3

say "5. What a handler sees of its world (examples/confine.c, same isolation plus /proc)"
ip netns exec "$NS" "$B/tests/helpers/pst-client" 127.0.0.1:7001 "" | sed 's/^/   | /'
sleep 0.3

say "6. postern status"
"$B/postern" status -s "$T/control.sock" | sed 's/^/   /'

say "7. Clean shutdown: SIGTERM"
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
echo "   broker exited with status $rc"
left=$(ip netns exec "$NS" nft list tables 2>/dev/null)
echo "   nftables tables left in the namespace: ${left:-none}"

say "Running postern for real"
cat <<TXT
   make install                 # PREFIX=/usr/local; the echo policy in /etc/postern/postern.json
   postern check /etc/postern/postern.json
   postern run                  # as root: /etc/postern/postern.json; Ctrl-C stops it
   postern status               # from another terminal
   See README.md for the policy format, egress rules and limits.
TXT
exit $rc
