#!/usr/bin/env bash
# get-promtool.sh BUILD_DIR: the path of a promtool binary on stdout, from
# Debian's `prometheus` package, fetched with `apt-get download` and
# unpacked with dpkg-deb under BUILD_DIR/promtool (cached there): only the
# promtool binary is kept, nothing is installed and no daemon started.
# Exit 1 (with why on stderr) if it cannot be had.
set -u
dir=${1:?usage: get-promtool.sh BUILD_DIR}/promtool
bin=$dir/promtool
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then echo "$bin"; exit 0; fi
for c in apt-get dpkg-deb; do
	command -v "$c" >/dev/null || { echo "get-promtool: no $c" >&2; exit 1; }
done
mkdir -p "$dir" || exit 1
exec 9>"$dir/.lock"
flock -w 300 9 || { echo "get-promtool: $dir is locked" >&2; exit 1; }
if [ ! -x "$bin" ]; then
	rm -f "$dir"/prometheus_*.deb
	(cd "$dir" && timeout 300 apt-get download -q -o APT::Sandbox::User=root prometheus >/dev/null 2>&1) ||
		{ echo "get-promtool: apt-get download prometheus failed (no network or no such package)" >&2; exit 1; }
	tmp=$(mktemp -d "$dir/x.XXXXXX") || exit 1
	if dpkg-deb -x "$dir"/prometheus_*.deb "$tmp" && [ -x "$tmp/usr/bin/promtool" ]; then
		mv "$tmp/usr/bin/promtool" "$bin.new" && mv "$bin.new" "$bin"
	fi
	# the rest of the package (and its init.d: a directory named *.d
	# confuses the Makefile's dependency include) goes
	rm -rf "$tmp" "$dir"/prometheus_*.deb
fi
[ -x "$bin" ] && "$bin" --version >/dev/null 2>&1 || { echo "get-promtool: no promtool in the package" >&2; exit 1; }
echo "$bin"
