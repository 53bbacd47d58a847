#!/usr/bin/env python3
"""A checker of the Prometheus text exposition format (0.0.4) and of the
rules `promtool check metrics` lints for, for postern's metrics endpoint.

    expocheck.py [FILE]     (stdin without FILE)

Prints each problem as "line N: what" and exits 1 if there is one, 0 if
the text is clean. Checked: the line grammar (names, labels, escapes,
values); HELP and TYPE for every family, each once, before its samples;
a family's lines together; counters ending in _total; no duplicate series;
le only on histogram buckets, quantile only on summaries; histograms with
ascending le, cumulative counts, a +Inf bucket equal to _count, and _sum.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError(f"bad value {s!r}")
    return float(s)


def parse_labels(s, i):
    """Labels from s[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        while i < len(s) and s[i] == " ":
            i += 1
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise ValueError(f"bad label name at column {i + 1}")
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ValueError(f"label {name}: expected =\"")
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise ValueError(f"label {name}: unterminated value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ValueError(f"label {name}: bad escape \\{nxt}")
                val.append({"n": "\n"}.get(nxt, nxt))
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ValueError(f"label {name}: newline in value")
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ValueError(f"label {name} twice")
        labels[name] = "".join(val)
        while i < len(s) and s[i] == " ":
            i += 1
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] == "}":
            return labels, i + 1
        else:
            raise ValueError("expected , or } after a label")


def family_of(name, types):
    if name in types:
        return name
    for suf in ("_bucket", "_sum", "_count"):
        base = name[: -len(suf)] if name.endswith(suf) else None
        if base and types.get(base) in ("histogram", "summary"):
            if suf == "_bucket" and types[base] != "histogram":
                continue
            return base
    return name


def check(text):
    errs = []
    helps, types, seen_samples, closed = {}, {}, set(), set()
    series = set()
    hist = {}  # (family, labels without le) -> {"b": [(le, v)], "sum":, "count":}
    current = None

    def err(n, msg):
        errs.append(f"line {n}: {msg}")

    if text and not text.endswith("\n"):
        err(text.count("\n") + 1, "the text does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                kind, name = parts[1], parts[2]
                if not NAME.fullmatch(name):
                    err(n, f"bad metric name {name!r}")
                    continue
                rest = parts[3] if len(parts) > 3 else ""
                if name in closed or (name in seen_samples):
                    err(n, f"{kind} for {name} after its samples or its family ended")
                if current and current != name:
                    closed.add(current)
                current = name
                if kind == "HELP":
                    if name in helps:
                        err(n, f"HELP for {name} twice")
                    if re.search(r"\\[^\\n]", rest) or rest.endswith("\\") and not rest.endswith("\\\\"):
                        err(n, f"HELP for {name}: bad escape")
                    helps[name] = rest
                else:
                    if name in types:
                        err(n, f"TYPE for {name} twice")
                    if rest not in TYPES:
                        err(n, f"TYPE for {name}: unknown type {rest!r}")
                    types[name] = rest
            continue
        m = NAME.match(line)
        if not m:
            err(n, "a sample line must start with a metric name")
            continue
        name = m.group(0)
        i = m.end()
        labels = {}
        try:
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
            if i >= len(line) or line[i] != " ":
                raise ValueError("expected a space before the value")
            fields = line[i:].split()
            if len(fields) not in (1, 2):
                raise ValueError("expected a value and at most a timestamp")
            value = parse_value(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
                raise ValueError("bad timestamp")
        except ValueError as e:
            err(n, f"{name}: {e}")
            continue
        fam = family_of(name, types)
        if fam != current:
            if fam in closed or fam in seen_samples:
                err(n, f"{name}: family {fam} is not contiguous")
            if current:
                closed.add(current)
            current = fam
        seen_samples.add(fam)
        t = types.get(fam)
        if t is None:
            err(n, f"{name}: no TYPE line for {fam}")
        if fam not in helps:
            err(n, f"{name}: no HELP line for {fam}")
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            err(n, f"{name}: the same series twice")
        series.add(key)
        if t == "counter" and not fam.endswith("_total"):
            err(n, f"{fam}: a counter's name should end in _total")
        if t != "counter" and fam.endswith("_total"):
            err(n, f"{fam}: only counters end in _total")
        if "le" in labels and not (t == "histogram" and name == fam + "_bucket"):
            err(n, f"{name}: le label outside a histogram's buckets")
        if "quantile" in labels and t != "summary":
            err(n, f"{name}: quantile label outside a summary")
        if t == "counter" and not (value >= 0):
            err(n, f"{name}: a counter below 0")
        if t == "histogram":
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            h = hist.setdefault((fam, rest), {"b": [], "sum": None, "count": None, "line": n})
            if name == fam + "_bucket":
                if "le" not in labels:
                    err(n, f"{name}: a bucket without le")
                    continue
                try:
                    h["b"].append((parse_value(labels["le"]), value, n))
                except ValueError:
                    err(n, f"{name}: bad le {labels['le']!r}")
            elif name == fam + "_sum":
                h["sum"] = value
            elif name == fam + "_count":
                h["count"] = value
            else:
                err(n, f"{name}: not a histogram series of {fam}")
    for (fam, rest), h in hist.items():
        n = h["line"]
        b = h["b"]
        les = [x[0] for x in b]
        if les != sorted(les) or len(set(les)) != len(les):
            err(n, f"{fam}{dict(rest)}: le not ascending")
        if not les or les[-1] != math.inf:
            err(n, f"{fam}{dict(rest)}: no +Inf bucket")
        for (l1, v1, _), (l2, v2, ln) in zip(b, b[1:]):
            if v2 < v1:
                err(ln, f"{fam}{dict(rest)}: bucket le={l2} below le={l1}: not cumulative")
        if h["count"] is None:
            err(n, f"{fam}{dict(rest)}: no _count")
        elif les and les[-1] == math.inf and b[-1][1] != h["count"]:
            err(n, f"{fam}{dict(rest)}: +Inf bucket {b[-1][1]} != _count {h['count']}")
        if h["sum"] is None:
            err(n, f"{fam}{dict(rest)}: no _sum")
    for fam in types:
        if fam not in helps:
            errs.append(f"{fam}: TYPE without HELP")
    return errs


def main():
    text = open(sys.argv[1], encoding="utf-8").read() if len(sys.argv) > 1 else sys.stdin.read()
    errs = check(text)
    for e in errs:
        print(e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
