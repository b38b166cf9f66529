"""Run a stage from a Snakemake script: logging to the rule's log, and clear failures.

The scripts in ``scripts/`` are thin adaptors. Each hands its work to :func:`run_stage`,
which sends the package's log records to the rule's ``log:`` file, and turns the errors a
user can cause (an unreadable frame, a session with no usable frame, a bad setting) into
one line naming the session, the file and what is wrong, instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SessionError", "run_stage"]

logger = logging.getLogger("spacepixels")


class SessionError(RuntimeError):
    """A session cannot be processed by a stage; the message says why in one line."""


def run_stage(snakemake: Any, stage: Callable[[Any], None]) -> None:
    """Run ``stage(snakemake)`` with logging to the rule's log file.

    Exits the script with status 1 and a one-line message on a user-facing error.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [console]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG, handlers=handlers, force=True)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    session = getattr(snakemake.wildcards, "session", "?")
    rule = getattr(snakemake, "rule", "stage")
    started = time.perf_counter()
    try:
        stage(snakemake)
    except (SessionError, ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, SessionError):
            logger.debug("details for the developers", exc_info=True)  # in the log file only
        logger.error("%s failed for session %s: %s", rule, session, message)
        logging.shutdown()
        sys.exit(1)
    logger.info("%s done for session %s in %.1f s", rule, session, time.perf_counter() - started)
    logging.shutdown()
