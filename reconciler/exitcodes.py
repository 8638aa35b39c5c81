"""Process exit codes, documented in the README. CI reads them, so they never change meaning."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # success, or no changes
    ERROR = 1  # anything went wrong: the message says what
    CHANGES = 2  # plan --detailed-exitcode / drift: the tenant differs from Git
    USAGE = 64  # bad command line (click's own 2 is remapped so CI never mistakes a typo for drift)
