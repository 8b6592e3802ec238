"""Explanation, Debate, Align (EDA): a weak-to-strong study.

All of the study's logic lives in this package; ``workflow/scripts/`` only call into it.
"""

__version__ = "0.1.0"
