#!/usr/bin/env python3
"""Checks docs/conformance.md against the statement lists and the tests it cites.

Every id of mqtt-3.1.1-ids.txt and mqtt-5.0-ids.txt has exactly one row, in the list's
order, in its table; every cited test exists; every quoted codec case name exists. Prints
the rows per status. Run from anywhere: python3 docs/conformance/check.py
"""
import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conformance.md"
TESTS = ROOT / "tests" / "unit"
FILES = {
    "C": "broker_conformance_test.cpp",
    "B": "broker_mqtt_test.cpp",
    "B5": "broker_mqtt5_test.cpp",
    "P": "broker_persistence_test.cpp",
    "S": "broker_sys_test.cpp",
    "D": "codec_decode_test.cpp",
    "E": "codec_roundtrip_test.cpp",
    "F": "codec_frame_test.cpp",
    "T": "codec_topic_test.cpp",
}
TABLES = {"MQTT 3.1.1": "mqtt-3.1.1-ids.txt", "MQTT 5.0": "mqtt-5.0-ids.txt"}
STATUSES = {"tested", "by design", "client", "n/a", "gap"}


def main() -> int:
    errors = []
    text = DOC.read_text()
    sources = {key: (TESTS / name).read_text() for key, name in FILES.items()}
    sections = re.split(r"^## ", text, flags=re.M)
    for title, list_name in TABLES.items():
        section = next((s for s in sections if s.startswith(title + " ")), None)
        if section is None:
            errors.append(f"no section '## {title} ...'")
            continue
        expected = (pathlib.Path(__file__).parent / list_name).read_text().split()
        rows = [r for r in section.splitlines() if r.startswith("| [MQTT-")]
        ids = [re.match(r"\| \[(MQTT-[^\]]+)\]", r).group(1) for r in rows]
        if ids != expected:
            missing = sorted(set(expected) - set(ids))
            extra = sorted(set(ids) - set(expected))
            dupes = [i for i, n in collections.Counter(ids).items() if n > 1]
            errors.append(f"{title}: missing {missing}, extra {extra}, duplicated {dupes}"
                          + ("" if missing or extra or dupes else ", order differs"))
        counts = collections.Counter()
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")]
            if len(cells) != 5:
                errors.append(f"{title}: row has {len(cells)} cells: {row[:60]}")
                continue
            status = cells[3]
            if status not in STATUSES:
                errors.append(f"{title}: unknown status '{status}' in {cells[0]}")
            counts[status] += 1
        print(f"{title}: {len(rows)} statements: "
              + ", ".join(f"{s} {counts[s]}" for s in sorted(counts)))
    for key, suite, name in re.findall(r"`(B5|C|B|D|E|F|T|P|S) (\w+)\.(\w+)`", text):
        pattern = rf"TEST(_F|_P)?\({suite},\s*{name}\)"
        if not re.search(pattern, sources[key]):
            errors.append(f"no test {suite}.{name} in {FILES[key]}")
    for case in re.findall(r'\("([^"]+)"\)', text):
        if f'"{case}"' not in sources["D"]:
            errors.append(f"no codec case \"{case}\" in {FILES['D']}")
    for error in errors:
        print("error:", error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
