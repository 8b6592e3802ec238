"""Weights & Biases tracking of every workflow job: offline by default, lineage by file.

One W&B run per Snakemake job:

- ``group`` = the study cell the job belongs to (dataset, seed, strong and weak model, as far
  as its wildcards say; ``models`` / ``study`` for jobs outside a cell), ``job_type`` = the rule,
  ``name`` = the wildcard values, ``config`` = the rule's params (the config subset that affects
  it) and the wildcards.
- Artifacts mirror the DAG at file level: every output file is logged as a reference artifact
  (no copy) named after its path, typed by stage (dataset, strong_signals, features,
  weak_labels, predictions, model, results). Online, every input file is marked as used
  (``use_artifact``), which draws the lineage graph; W&B cannot record uses offline, so offline
  runs list their inputs' artifact names under ``config.used_artifacts`` instead.
- The stage's returned numbers go to the run summary.

``wandb.mode`` (config) is ``offline`` (default; runs land under ``results/wandb/``, synced later
with ``wandb sync``), ``online`` (needs ``WANDB_API_KEY`` in the environment, never in a file) or
``disabled``. Our own JSON outputs stay the source of truth; tracking never fails a job.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

ARTIFACT_TYPES = {
    "download_bigbench": "dataset", "prep": "dataset", "prepare_model": "model",
    "explain_shard": "strong_signals", "explain": "strong_signals", "zero_shot": "strong_signals",
    "debate_round": "strong_signals", "debate": "strong_signals",
    "weak_features": "features", "weak_features_strong": "features", "strong_features": "features",
    "train_weak": "weak_labels", "train_weak_strong": "weak_labels",
    "train_ceiling": "predictions", "train_student": "predictions",
    "cell_table": "results", "analysis": "results",
}


def artifact_name(path: str) -> str:
    """A W&B artifact name for a file: its path with other characters than [A-Za-z0-9._-] as '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", os.path.normpath(path)).strip("-")


def group_of(wildcards: dict) -> str:
    """The study cell a job belongs to, from its wildcards."""
    if "dataset" not in wildcards:
        return "models" if "model" in wildcards else "study"
    parts = [wildcards["dataset"], f"seed{wildcards.get('seed', '')}"]
    parts += [wildcards[key] for key in ("weak", "strong") if key in wildcards]
    return "/".join(parts)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _numbers(obj, prefix="") -> dict:
    """Flatten the numbers of a nested dict for the run summary."""
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(_numbers(value, f"{prefix}{key}/" if prefix or key else ""))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix.rstrip("/")] = obj
    return out


class JobRun:
    """A W&B run for one Snakemake job (a no-op when disabled or when wandb fails)."""

    def __init__(self, job):
        self.run = None
        settings = job.config.get("wandb", {}) if hasattr(job, "config") else {}
        self.mode = settings.get("mode", "offline")
        if self.mode == "disabled":
            return
        self.rule = job.rule
        self.outputs = [str(path) for path in job.output]
        self.inputs = [str(path) for path in job.input]
        wildcards = {key: str(value) for key, value in job.wildcards.items()}
        root = Path(settings.get("dir") or "results/wandb")
        try:
            import wandb

            root.mkdir(parents=True, exist_ok=True)
            os.environ["WANDB_MODE"] = self.mode
            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(
                project=settings.get("project", "w2s-eda"), entity=settings.get("entity"),
                dir=str(root), mode=self.mode, group=group_of(wildcards), job_type=self.rule,
                name="_".join(wildcards.values()) or self.rule,
                config={
                    "params": _jsonable(dict(job.params.items())),
                    "wildcards": wildcards,
                    "used_artifacts": [artifact_name(path) for path in self.inputs],
                },
            )
            if self.mode == "online":
                for path in self.inputs:
                    self.run.use_artifact(f"{artifact_name(path)}:latest")
        except Exception as error:  # tracking must never cost a result
            log.warning("W&B tracking is off for this job: %s", error)
            self.run = None

    def finish(self, result=None, failed: bool = False) -> None:
        if self.run is None:
            return
        try:
            import wandb

            if not failed:
                numbers = _numbers(result) if isinstance(result, dict) else {}
                if numbers:
                    self.run.summary.update(numbers)
                if hasattr(result, "to_dict") and hasattr(result, "columns"):  # a table
                    self.run.log({"summary": wandb.Table(dataframe=result)})
                for path in self.outputs:
                    artifact = wandb.Artifact(
                        artifact_name(path), type=ARTIFACT_TYPES.get(self.rule, "output"),
                        metadata={"path": path, "rule": self.rule},
                    )
                    artifact.add_reference(Path(path).resolve().as_uri(), checksum=False)
                    self.run.log_artifact(artifact)
            self.run.finish(exit_code=1 if failed else 0)
        except Exception as error:
            log.warning("W&B tracking could not finish: %s", error)


# --- reading offline runs back (no network, no sync) ---------------------------------------------

_BLOCK = 32 * 1024
_HEADER = 7  # ":W&B", a 2-byte magic and a version byte


def _records(path: Path):
    """The protobuf records of an offline run file (W&B's log format: 32 KiB blocks of chunks
    with a 7-byte header: crc32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    position, pending = _HEADER, b""
    while position + 7 <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < 7:
            position += left_in_block
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        body = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = body if kind in (1, 2) else pending + body
        if kind in (1, 4):
            yield pending
            pending = b""


def offline_runs(root: str | Path) -> list[dict]:
    """Group, job_type, name, config keys and logged artifacts of every offline run under root."""
    from wandb.proto import wandb_internal_pb2

    runs = []
    for path in sorted(Path(root).glob("**/offline-run-*/run-*.wandb")):
        info = {"path": str(path), "artifacts": [], "config": {}}
        for raw in _records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                info.update(group=record.run.run_group, job_type=record.run.job_type,
                            name=record.run.display_name)
                for item in record.run.config.update:
                    info["config"][item.key] = json.loads(item.value_json)
            elif kind == "artifact":
                info["artifacts"].append({"name": record.artifact.name, "type": record.artifact.type})
            elif kind == "exit":
                info["exit_code"] = record.exit.exit_code
        runs.append(info)
    return runs
