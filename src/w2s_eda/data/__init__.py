"""Datasets: the registry of named tasks, local-file readers, and balanced disjoint splits."""

from .items import Item

__all__ = ["Item"]
