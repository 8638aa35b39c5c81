"""Benchmark: offline validation of many documents, ours vs a naive baseline, same files.

The baseline is what a first version would do: the pure-Python YAML loader and a JSON-Schema
validator built for every document. Ours: the C loader when present, compiled validators reused,
plus line marks, duplicate-key detection and all semantic checks (so it does more work).
By default one file per document (what a repository of manifests looks like); CPU seconds are
the process's own (time.process_time), wall seconds the clock's.
Run: python benchmarks/validate_bench.py [--documents N] [--files F] [--no-baseline]
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
    parser.add_argument("--files", type=int, default=0, help="files to spread the documents over (0: one per document)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline (slow)")
    args = parser.parse_args()
    files = args.files or args.documents
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root, args.documents, files)
        wall, cpu = time.perf_counter(), time.process_time()
        result = validate([root], env={"SF_USER": "u", "SF_PASSWORD": "p"})
        ours = (time.perf_counter() - wall, time.process_time() - cpu)
        assert not result.errors, result.errors[:3]
        assert len(result.resources) == args.documents
        if not args.no_baseline:
            wall, cpu = time.perf_counter(), time.process_time()
            counted = naive(root)
            baseline = (time.perf_counter() - wall, time.process_time() - cpu)
    print(f"{args.documents} documents in {files} files")
    print(f"{'validator':<44}{'documents':>10}{'wall s':>10}{'CPU s':>10}{'docs/s':>10}")
    if not args.no_baseline:
        print(f"{'naive (pure-Python YAML, schema per doc)':<44}{counted:>10}{baseline[0]:>10.2f}{baseline[1]:>10.2f}"
              f"{counted / baseline[1]:>10.0f}")
    print(f"{'reconciler validate (all checks, marks)':<44}{args.documents:>10}{ours[0]:>10.2f}{ours[1]:>10.2f}"
          f"{args.documents / ours[1]:>10.0f}")


if __name__ == "__main__":
    main()
