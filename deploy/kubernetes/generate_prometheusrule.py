"""Write deploy/kubernetes/base/prometheusrule.yaml from the rule files in prometheus/rules/.

Run from anywhere: ``python deploy/kubernetes/generate_prometheusrule.py`` (``make
prometheusrule``; ``--check`` only reports whether the committed file is current).
tests/e2e/test_deploy.py fails when the PrometheusRule and the rule files differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.rules.yml"))
OUTPUT = Path(__file__).resolve().parent / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from prometheus/rules/*.rules.yml by
# deploy/kubernetes/generate_prometheusrule.py (make prometheusrule). Do not edit.
"""


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def render() -> str:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "scrapejobs-exporter",
            "labels": {"app.kubernetes.io/name": "scrapejobs-exporter"},
        },
        "spec": {"groups": rule_groups()},
    }
    body = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the PrometheusRule manifest.")
    parser.add_argument("--check", action="store_true", help="only check it is up to date")
    args = parser.parse_args(argv)
    text = render()
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
    if args.check:
        if current != text:
            print(f"{OUTPUT} is out of date: run make prometheusrule", file=sys.stderr)
            return 1
        return 0
    if current != text:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
