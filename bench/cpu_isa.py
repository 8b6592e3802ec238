"""Do the study's numbers depend on the CPU's instruction set, or on the number of threads?

Runs tests/test_reference.py (the small study at the default settings, compared with the
committed summary.csv and strong-model texts in tests/reference/) once per setting, each in a
fresh pytest session, and records which settings reproduce the reference:
- `native`: whatever this CPU has (the reference was written so);
- `avx512-no-amx`: torch's kernels, MKL and oneDNN held to AVX-512 without AMX or bf16, as on a
  CPU without native bf16 (the machine issue 16 measured on);
- `avx2`: all three held to AVX2, as on most laptops without AVX-512;
- `threads-2`: every job with 2 torch threads instead of the tests' 1 (`make run` uses up to 4).

The limits are set with ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA, which
every job of the study inherits. They emulate an instruction set on this CPU; another vendor's
CPU or another MKL code path can still round differently.

    .venv/bin/python bench/cpu_isa.py            # about 4 minutes a setting on 2 cores

Writes bench/records/cpu_isa.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTEST = str(Path(sys.executable).with_name("pytest"))

SETTINGS = {
    "native": {},
    "avx512-no-amx": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                      "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads-2": {"W2S_TEST_THREADS": "2"},
}


def run(name: str, env: dict) -> dict:
    started = time.time()
    result = subprocess.run([PYTEST, "-p", "no:cacheprovider", "-q", "tests/test_reference.py"],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, **env})
    output = result.stdout + result.stderr
    failures = re.findall(r"^E\s+(AssertionError: .*)$", output, flags=re.M)
    return {"setting": name, "env": env, "passed": result.returncode == 0,
            "summary": output.strip().splitlines()[-1] if output.strip() else "",
            "first_failures": [line[:400] for line in failures[:4]],
            "seconds": round(time.time() - started, 1)}


def main() -> None:
    names = sys.argv[1:] or list(SETTINGS)
    records = []
    for name in names:
        record = run(name, SETTINGS[name])
        records.append(record)
        print(f"{name:15s} {'reproduces' if record['passed'] else 'DIFFERS from'} the reference"
              f"  ({record['seconds']} s; {record['summary']})", flush=True)
        for line in record["first_failures"]:
            print("    " + line)
    out = REPO / "bench/records/cpu_isa.json"
    out.write_text(json.dumps({"cpu": cpu_name(), "records": records}, indent=1) + "\n")
    print(f"written: {out.relative_to(REPO)}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
