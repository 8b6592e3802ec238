"""Logging for workflow scripts: one readable line per event in the rule's log file."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import StudyError


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


def run_stage(main: Callable[[], object], job=None) -> None:
    """Run a stage; an input problem ends it with one clear ERROR line and exit status 1.

    ``job`` (a script's ``snakemake`` object) is tracked as a W&B run (see tracking.py).
    """
    configure()
    tracked = None
    if job is not None:
        from .tracking import JobRun

        tracked = JobRun(job)
    try:
        result = main()
    except BaseException as error:
        if tracked is not None:
            tracked.finish(failed=True)
        if isinstance(error, StudyError):
            logging.getLogger("w2s_eda").error("%s", error)
            sys.exit(1)
        raise
    if tracked is not None:
        tracked.finish(result)
