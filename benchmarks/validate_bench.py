"""Benchmark: offline validation of many documents, ours vs a naive baseline, same files.

The baseline is what a first version would do: the pure-Python YAML loader and a JSON-Schema
validator built for every document. Ours: the C loader when present, compiled validators reused,
plus line marks, duplicate-key detection and all semantic checks (so it does more work).
Run: python benchmarks/validate_bench.py [--documents N] [--files F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from reconciler import kinds
from reconciler.validate import validate

APP = """apiVersion: reconciler/v1
kind: App
metadata: {{name: app-{i}}}
spec:
  appId: snowflake-crawler
  credentialRef: cred-{c}
  connection: {{name: conn-{i}, adminRoles: ["$admin"]}}
  inputs:
    include_filter: {{"^DB{i}$": ["^PUBLIC$"]}}
    enable_lineage: true
  schedules: [{{cron: "{m} 2 * * *", timezone: Asia/Kolkata}}]
"""
CREDENTIAL = """apiVersion: reconciler/v1
kind: Credential
metadata: {{name: cred-{i}}}
spec:
  connector: snowflake
  authType: basic
  host: acme{i}.snowflakecomputing.com
  username: ${{env:SF_USER}}
  password: ${{env:SF_PASSWORD}}
"""


def write_corpus(root: Path, documents: int, files: int) -> None:
    credentials = max(1, documents // 10)
    docs = [CREDENTIAL.format(i=i) for i in range(credentials)]
    docs += [APP.format(i=i, c=i % credentials, m=i % 60) for i in range(documents - credentials)]
    per_file = -(-len(docs) // files)
    for f in range(files):
        chunk = docs[f * per_file:(f + 1) * per_file]
        if chunk:
            (root / f"m{f:04d}.yaml").write_text("---\n".join(chunk))


def naive(root: Path) -> int:
    count = 0
    for path in sorted(root.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=yaml.SafeLoader):
            schema = kinds.load_schema(kinds.get(doc["kind"]).schema_file)
            errors = list(Draft202012Validator(json.loads(json.dumps(schema))).iter_errors(doc))
            count += 1 + 0 * len(errors)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root, args.documents, args.files)
        started = time.perf_counter()
        result = validate([root], env={"SF_USER": "u", "SF_PASSWORD": "p"})
        ours = time.perf_counter() - started
        assert not result.errors, result.errors[:3]
        assert len(result.resources) == args.documents
        started = time.perf_counter()
        counted = naive(root)
        baseline = time.perf_counter() - started
    print(f"{'validator':<44}{'documents':>10}{'seconds':>10}{'docs/s':>10}")
    print(f"{'naive (pure-Python YAML, schema per doc)':<44}{counted:>10}{baseline:>10.2f}{counted / baseline:>10.0f}")
    print(f"{'reconciler validate (all checks, marks)':<44}{args.documents:>10}{ours:>10.2f}{args.documents / ours:>10.0f}")


if __name__ == "__main__":
    main()
