"""Test-only fault injection, used by tests/test_kill_and_resume.py; never part of the package.

Python imports ``sitecustomize`` at startup from sys.path. The kill-and-resume test puts this
folder on PYTHONPATH for the Snakemake runs it kills; the workflow's script jobs are subprocesses
of the same Python and inherit the environment, so they import this too.

When ``W2S_TEST_PAUSE_AFTER_FIRST_SAVE`` (seconds) is set, ``os.replace`` is wrapped: after the
first replace onto a path under ``/chunks/`` or ``/checkpoints/`` (every chunk and checkpoint is
written through ``w2s_eda.io.atomic_path``, which ends with ``os.replace``), the process sleeps
that long, once: the window in which the test kills the job. When the variable is unset this
module changes nothing.

A ``sitecustomize`` further along sys.path (which this one shadows) is still run.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _chain_shadowed_sitecustomize() -> None:
    """Run the sitecustomize this one shadows, if there is one, as Python would have."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path
            if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _install_pause() -> None:
    value = os.environ.get("W2S_TEST_PAUSE_AFTER_FIRST_SAVE")
    if not value:
        return
    try:
        seconds = float(value)
    except ValueError:
        print(f"sitecustomize: ignoring W2S_TEST_PAUSE_AFTER_FIRST_SAVE={value!r}",
              file=sys.stderr)
        return

    import functools
    import time

    replace = os.replace
    paused = False

    @functools.wraps(replace)
    def replace_then_pause(src, dst, *args, **kwargs):
        nonlocal paused
        result = replace(src, dst, *args, **kwargs)
        if not paused:
            try:
                target = os.fsdecode(dst)
            except TypeError:  # a file descriptor, say: never a chunk or checkpoint path
                target = ""
            if "/chunks/" in target or "/checkpoints/" in target:
                paused = True
                time.sleep(seconds)
        return result

    os.replace = replace_then_pause


try:
    _install_pause()
finally:
    _chain_shadowed_sitecustomize()
