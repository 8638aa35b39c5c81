"""The one masking step at the output boundary: no secret value of the run ever leaves the process.

Takes the values that must never be shown, as the run meets them: the API key, the password in
the base URL's user-info, and every secret resolved from the environment (``manifests.resolve_env``
registers them). Gives ``mask(text)`` and ``mask_data(obj)``, which replace each of them by
``(sensitive)``, and ``MaskingStream``, which the CLI puts in place of stdout and stderr before
anything is printed or logged. Every file the tool writes for people (plan files, the step
summary, reports) goes through ``mask`` or ``mask_data`` as well.

This is the last line, not the only one: secrets are kept out of plans and reports by
construction; masking catches what a tenant echoes back (a 400 that quotes the request), a
secret typed into a field that is not secret, and a secret the server returns in clear.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any, TextIO

SENSITIVE = "(sensitive)"
MIN_LENGTH = 3  # shorter values are too common to replace in text (and are not worth the name secret)

_lock = threading.Lock()
_secrets: set[str] = set()
_forms: list[str] = []  # every secret and its JSON-escaped forms, longest first


def register(*values: Any) -> None:
    """Never show these values again in this process."""
    added = False
    with _lock:
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_LENGTH or value in _secrets:
                continue
            _secrets.add(value)
            added = True
        if added:
            forms = set()
            for secret in _secrets:
                shown = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
                cells = {form.replace("|", "\\|") for form in shown}  # as a markdown table cell shows it
                forms |= shown | cells | {form.replace("\n", " ") for form in cells}
            _forms[:] = sorted(forms, key=len, reverse=True)






def mask(text: str) -> str:
    forms = _forms
    if not forms or not text:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, SENSITIVE)
    return text


def mask_data(obj: Any) -> Any:
    """A copy of JSON-like data with every string that *is* a secret replaced. Whole values only:
    data is applied later (a plan file), and rewriting part of a value (``$admin`` when a username
    is ``admin``) would change what is applied. Text for people is masked by ``mask``."""
    if not _forms:
        return obj
    if isinstance(obj, str):
        return SENSITIVE if obj in _secrets else obj
    if isinstance(obj, dict):
        return {(SENSITIVE if k in _secrets else k): mask_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask_data(v) for v in obj]
    return obj




class MaskingStream(io.TextIOBase):
    """A text stream that masks every write before passing it on. It exposes no ``buffer``, so
    nothing (click, logging, tracebacks) can write around it."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(mask(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._inner, "errors", "strict")

    def writable(self) -> bool:
        return True
