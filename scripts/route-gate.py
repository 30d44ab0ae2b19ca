#!/usr/bin/env python3
"""Where the FAQ gate of inbound routing stands, from every case's reasons.

Usage (from the repository root):

    for s in tests/fixtures/routing/*.jsonl; do
      edesk --data-dir "$(mktemp -d)" mail route-eval --cases \
        --world tests/fixtures/routing/world.json "$s"
    done > /tmp/cases.jsonl
    python3 scripts/route-gate.py /tmp/cases.jsonl

For the cases the FAQ gate decided (rule "confident FAQ answer" or "no
confident FAQ answer"), it counts per confidence band how many would be
right with the FAQ's entry (the label accepts it), how many want a team, and
how many want another FAQ entry (a ranking miss, wrong whatever the gate
does); then the misses of every case by class, decisive rule and kind. It
answers "would another threshold, or a gate on the confidence alone, route
better?" with counts instead of guesses.
"""
import collections
import json
import re
import sys

FAQ = re.compile(
    r"feature faq: (\S+) confidence ([\d.]+)"
    r"(?: \(asked alone; whole mail ([\d.]+)\))?, (not confident|confident)"
)
DECIDED = re.compile(r"(?:answer with FAQ entry \S+|escalate to \S+) \(rule: ([^;)]*)")
GATE = ("no confident FAQ answer", "confident FAQ answer")
BANDS = [0.0, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.01]


def read(path):
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        c = json.loads(line)
        row = {"id": c["id"], "class": c["class"], "ok": c["ok"], "rule": "?"}
        for r in c["reasons"]:
            m = FAQ.match(r)
            if m:
                row["entry"], row["conf"] = m.group(1), float(m.group(2))
            m = DECIDED.match(r)
            if m:
                row["rule"] = m.group(1).strip()
        wants_faq = any(e.startswith("faq:") for e in c["expect"])
        right_entry = "entry" in row and f"faq:{row['entry']}" in c["expect"]
        row["kind"] = (
            "right entry" if right_entry else "wants another entry" if wants_faq else "wants a team"
        )
        yield row


def main(paths):
    rows = [r for p in paths for r in read(p)]
    gate = [r for r in rows if r["rule"] in GATE and "conf" in r]
    print(f"{len(rows)} cases, {len(gate)} decided by the FAQ gate")
    print(f"{'confidence':<12} {'n':>4} {'right entry':>12} {'wants a team':>13} {'wants another':>14}")
    for lo, hi in zip(BANDS, BANDS[1:]):
        band = [r for r in gate if lo <= r["conf"] < hi]
        kinds = collections.Counter(r["kind"] for r in band)
        print(
            f"{lo:.2f}-{min(hi, 1.0):.2f}   {len(band):>4} {kinds['right entry']:>12}"
            f" {kinds['wants a team']:>13} {kinds['wants another entry']:>14}"
        )
    print("\nmisses by class, deciding rule and kind:")
    misses = collections.Counter(
        (r["class"], r["rule"], r["kind"]) for r in rows if not r["ok"]
    )
    for (cls, rule, kind), n in misses.most_common():
        print(f"{n:>4}  {cls:<13} {rule[:50]:<50} {kind}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
