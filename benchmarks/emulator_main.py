"""Entry point for the emulator process: the package's emulator CLI, long answers allowed.

The emulator caps an answer at ``max_tokens``, whose default and maximum are the API's 4096
(AI21's Jamba API reference). A 10,000-token stream needs more, and no request field or flag
raises the cap yet, so this process raises the validator's limit before handing over to the
CLI. It runs in its own process, so nothing in the benchmark's process is patched.
"""

from __future__ import annotations

import sys

from ai21_emulator import __main__ as emulator_cli
from ai21_emulator import _validation

LONG_ANSWER_LIMIT = 100_000

if __name__ == "__main__":
    _validation.MAX_TOKENS_LIMIT = LONG_ANSWER_LIMIT
    sys.exit(emulator_cli.main())
