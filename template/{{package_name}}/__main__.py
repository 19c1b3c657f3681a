"""``python -m PACKAGE COMMAND``: the project's commands (cli.py); `make` alone lists them as targets."""

import os
import signal
import sys


def _interrupted_early(signum, frame) -> None:
    sys.stderr.write("interrupted before anything was started; nothing to clean up\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_early)  # Ctrl+C while modal is still being imported: no traceback
from .cli import main  # noqa: E402

signal.signal(signal.SIGINT, signal.default_int_handler)
main()
