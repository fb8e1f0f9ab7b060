"""Helpers of the end-to-end tests: the committed model zoo, one compile per artifact, references.

Compiles and host builds are the expensive part, so every (family, variant, precision) is compiled
once per session (`CompileCache`, the `compiled` fixture) and its output directory reused by every
test that needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "models"
EXAMPLE = REPO / "examples" / "hybrid"

FAMILIES = ("resnet8", "dscnn", "mbv2", "hybrid")
WITH_DYNAMO = ("resnet8", "hybrid")
# Float exports compiled with calibration (int8) and as float32.
FLOAT_VARIANTS = [(f, v) for f in FAMILIES for v in ("ts13", "ts17")] + \
                 [(f, "dynamo") for f in WITH_DYNAMO]
# Everything compiled to int8: the float exports (calibrated) and onnxruntime's QDQ models.
INT8_VARIANTS = FLOAT_VARIANTS + [(f, "qdq") for f in FAMILIES]


def model_path(family: str, variant: str) -> Path:
    if variant == "dynamo":
        return MODELS / family / "dynamo" / "model.onnx"
    return MODELS / family / f"{variant}.onnx"


def float_reference_path(family: str, variant: str) -> Path:
    """The float model an int8 compile is judged against (the QDQ model's float source is ts17)."""
    return model_path(family, "ts17" if variant == "qdq" else variant)


def load_samples(family: str, which: str = "inputs") -> np.ndarray:
    """[N, *input shape] float32 samples from calib.npz or inputs.npz."""
    with np.load(MODELS / family / f"{which}.npz") as data:
        return data["input"]


def case_id(case) -> str:
    return "-".join(case)


@dataclass
class Compiled:
    family: str
    variant: str
    precision: str
    artifact: object  # tfc.Artifact
    outdir: Path


class CompileCache:
    """Compiles each (family, variant, precision) once and writes it under one session directory."""

    def __init__(self, root: Path):
        self.root = root
        self._done: dict[tuple[str, str, str], Compiled] = {}

    def get(self, family: str, variant: str, precision: str) -> Compiled:
        key = (family, variant, precision)
        if key not in self._done:
            import tfc

            calib = (MODELS / family / "calib.npz"
                     if precision == "int8" and variant != "qdq" else None)
            prefix = f"{family}_{variant}_{precision}"
            art = tfc.compile(str(model_path(family, variant)), target="stm32f746", calib=calib,
                              precision=precision, name=prefix)
            self._done[key] = Compiled(family, variant, precision, art,
                                       art.write(self.root / prefix))
        return self._done[key]


_ORT_SESSIONS: dict[Path, object] = {}


def ort_outputs(path: Path, samples: np.ndarray) -> np.ndarray:
    """onnxruntime's first output for each sample, stacked: [N, *output shape]."""
    import onnxruntime as ort

    if path not in _ORT_SESSIONS:
        _ORT_SESSIONS[path] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sess = _ORT_SESSIONS[path]
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x})[0] for x in samples])


def tfc_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`tfc ARGS...` as a user runs it, through `python -m tfc.cli` (no console script needed)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tfc.cli", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - approx) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(signal / noise)
