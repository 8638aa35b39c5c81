"""Turn `reconciler validate --format json` into GitHub annotations: each diagnostic becomes an
::error or ::warning workflow command on its file, line and column, titled with its code, so that
a pull request shows it on the changed line. Usage: python3 annotate.py VALIDATE_JSON_FILE.
Prints the file as it is when it is not that JSON (validate failed before it could write it).
Standard library only: it runs on whatever Python the job has."""

from __future__ import annotations

import json
import sys


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(diagnostic: dict) -> str:
    level = "warning" if diagnostic.get("severity") == "warning" else "error"
    properties = {"file": diagnostic.get("file"), "line": diagnostic.get("line"), "col": diagnostic.get("column"),
                  "title": diagnostic.get("code")}
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items() if value not in (None, ""))
    message = str(diagnostic.get("message", ""))
    if diagnostic.get("path"):
        message += f" (at {diagnostic['path']})"
    if diagnostic.get("hint"):
        message += f"\nhint: {diagnostic['hint']}"
    return f"::{level} {props}::{escape_data(message)}"


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        result = json.loads(text)
        diagnostics = result["diagnostics"]
    except (ValueError, KeyError, TypeError):
        sys.stdout.write(text)
        return 0
    for diagnostic in diagnostics:
        print(command(diagnostic))
    print(f"reconciler validate: {result.get('errors', 0)} error(s), {result.get('warnings', 0)} warning(s) in "
          f"{result.get('documents', 0)} document(s) in {result.get('files', 0)} file(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
