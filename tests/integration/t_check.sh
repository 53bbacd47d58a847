#!/usr/bin/env bash
# postern check: every shipped policy passes; broken ones fail with exit 1 and
# the precise message; usage errors exit 2; --help reads like a man page.
. "$(dirname "$0")/lib.sh"
[ -x "$POSTERN" ] || fail "missing $POSTERN: run make first"
tmpdir_new T

for p in "$ROOT"/policies/*.json; do
	# (their preflight: t_preflight.sh, when what they run is installed)
	out=$("$POSTERN" check --no-preflight "$p") || fail "shipped policy $p does not pass: $out"
	assert_contains "$out" "policy OK" "$p"
done
out=$("$POSTERN" check --no-preflight "$ROOT/policies/echo.json")
assert_contains "$out" "echo: listen 127.0.0.1:7000 [::1]:7000 -> /usr/local/libexec/postern/echo (stdio)" "summary line"
[ -z "$("$POSTERN" check --no-preflight -q "$ROOT"/policies/*.json)" ] || fail "-q is not quiet"

cat >"$T/bad.json" <<'JSON'
{
  "postern": 1,
  "sandboxes": {
    "echo": {
      "trigger": { "listen": ["127.0.0.1:7000"] },
      "exec": ["/usr/local/libexec/postern/echo"],
      "egress": [ { "to": "10.0.0.0/33" }, { "to": "10.0.0.1/24", "proto": "tcp", "ports": [70000] } ],
      "limits": { "pids": "16", "timeout": "30" },
      "colour": "blue"
    }
  }
}
JSON
set +e
err=$("$POSTERN" check "$T/bad.json" 2>&1 >/dev/null); rc=$?
set -e
assert_eq "$rc" 1 "exit status of an invalid policy"
assert_contains "$err" "$T/bad.json: sandboxes.echo.egress[0].to: \"10.0.0.0/33\": prefix length 33 is out of range for IPv4" "cidr"
assert_contains "$err" "sandboxes.echo.egress[1].to: \"10.0.0.1/24\": host bits are set; the network is 10.0.0.0/24" "host bits"
assert_contains "$err" "sandboxes.echo.egress[1].ports[0]: 70000: out of range 1-65535" "port"
assert_contains "$err" "sandboxes.echo.limits.pids: \"16\": expected an integer, got a string" "type"
assert_contains "$err" "sandboxes.echo.limits.timeout: \"30\": not a duration" "duration"
assert_contains "$err" "sandboxes.echo.colour: unknown key" "unknown key"
assert_contains "$err" "6 errors" "all errors reported"

printf '{\n  "postern": 1,\n  "sandboxes": {\n    "a": { "exec": ["/x"], }\n  }\n}\n' >"$T/syntax.json"
set +e
err=$("$POSTERN" check "$T/syntax.json" 2>&1); rc=$?
set -e
assert_eq "$rc" 1 "syntax error exit"
assert_contains "$err" "$T/syntax.json:4:" "line of the syntax error"
assert_contains "$err" "JSON syntax error near" "syntax error text"

set +e
"$POSTERN" check "$T/missing.json" 2>"$T/e"; rc=$?
"$POSTERN" check 2>/dev/null; rc2=$?
"$POSTERN" check --bogus x 2>/dev/null; rc3=$?
set -e
assert_eq "$rc" 1 "missing file"
assert_contains "$(cat "$T/e")" "cannot open: No such file or directory" "missing file message"
assert_eq "$rc2" 2 "no argument is a usage error"
assert_eq "$rc3" 2 "unknown option is a usage error"

h=$("$POSTERN" check --help)
for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES; do assert_contains "$h" "$s" "check --help"; done
h=$("$POSTERN" --help)
for s in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" FILES EXAMPLES; do assert_contains "$h" "$s" "--help"; done
for v in run status top; do "$POSTERN" $v --help | grep -q SYNOPSIS || fail "$v --help"; done
echo "postern check: ok"
