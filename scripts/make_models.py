#!/usr/bin/env python3
"""Build the committed test models: train small nets on synthetic data, export them to ONNX.

    python scripts/make_models.py                  # every family
    python scripts/make_models.py hybrid resnet8   # some of them

Each family is trained briefly on a synthetic, class-structured data set (a fixed random template
per class, plus per-sample gain, shift and noise). A net with random weights has near-tied logits,
so int8 rounding flips its top-1 answer; a trained one is confident, which is what the end-to-end
acceptance check (int8 vs float top-1 agreement >= 95%) needs.

Outputs, per family (tests/models/<family>/):
    ts13.onnx                 TorchScript exporter, opset 13: BatchNorm kept, LayerNorm decomposed
    ts17.onnx                 TorchScript exporter, opset 17: BatchNorm folded, LayerNormalization
    dynamo/model.onnx(.data)  dynamo exporter with external data (hybrid and resnet8)
    qdq.onnx                  onnxruntime quantize_static (QDQ, per-channel, int8 act + weights)
    calib.npz, inputs.npz     {input name: float32 [N, *input shape]}, N = 100, disjoint seeds
and examples/hybrid/{model.onnx, calib.npz, input.npy} for the bundled example.

Every export is checked against onnxruntime before it is written. Needs torch and onnxscript
(`pip install -e '.[nas]'`); CI only reads the committed files.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "tests" / "models"
EXAMPLE_DIR = ROOT / "examples" / "hybrid"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NUM_SAMPLES = 100  # calibration set and test set size each
CALIB_SEED, TEST_SEED = 1001, 2002


# -- the nets -------------------------------------------------------------------------------------

def conv_bn(cin, cout, k=3, stride=1, groups=1, act: type[nn.Module] | None = nn.ReLU, pad=None):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2 if pad is None else pad, groups=groups,
                        bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """ResNet-8 stack: two 3x3 convs, a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, act=None))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else nn.Conv2d(cin, cout, 1, stride))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny image classification (CIFAR-10 shape): 16-32-64 filters, 1x3x32x32 -> 10."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.stacks = nn.Sequential(ResidualBlock(16, 16, 1), ResidualBlock(16, 32, 2),
                                    ResidualBlock(32, 64, 2))
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.pool(self.stacks(self.stem(x)))
        return self.fc(x.reshape(-1, 64))


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting DS-CNN (S): 1x1x49x10 MFCCs -> 12 keywords."""

    def __init__(self, num_classes=12, width=64, blocks=4):
        super().__init__()
        self.stem = conv_bn(1, width, k=(10, 4), stride=2, pad=(5, 1))  # -> 25 x 5
        self.blocks = nn.Sequential(*[
            nn.Sequential(conv_bn(width, width, 3, groups=width), conv_bn(width, width, 1))
            for _ in range(blocks)])
        self.pool = nn.AvgPool2d((25, 5))
        self.fc = nn.Linear(width, num_classes)
        self.width = width

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(x.reshape(-1, self.width))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual if shapes match."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, hidden, 1, act=nn.ReLU6)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """A narrow MobileNetV2 for 32x32 inputs (Relu6 everywhere, as in the paper)."""

    # (expand, out channels, stride)
    SETTINGS = ((1, 8, 1), (4, 16, 2), (4, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 1))

    def __init__(self, num_classes=10):
        super().__init__()
        layers, cin = [conv_bn(3, 16, 3, 2, act=nn.ReLU6)], 16
        for expand, cout, stride in self.SETTINGS:
            layers.append(InvertedResidual(cin, cout, stride, expand))
            cin = cout
        layers.append(conv_bn(cin, 64, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # exports as GlobalAveragePool
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).reshape(-1, 64))


class SelfAttention(nn.Module):
    """Multi-head self-attention written out op by op, the way the ONNX graph shows it."""

    def __init__(self, dim, heads, tokens):
        super().__init__()
        self.dim, self.heads, self.head_dim, self.tokens = dim, heads, dim // heads, tokens
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        # Static sizes (and -1 for the batch) keep the exported Reshape shapes constant.
        def split_heads(t):
            return t.reshape(-1, self.tokens, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split_heads(self.q(x)), split_heads(self.k(x)), split_heads(self.v(x))
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)  # Div by a constant
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(-1, self.tokens, self.dim)
        return self.proj(out)


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, tokens, mlp_ratio=2):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, tokens)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.ReLU(),
                                 nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Hybrid(nn.Module):
    """TinyFormer-shaped: conv stem + MBV2 blocks -> 8x8 tokens of 32 -> transformer -> mean -> fc."""

    def __init__(self, num_classes=10, dim=32, heads=2):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 16, 3, 2, act=nn.ReLU6),       # 16 x 16 x 16
            InvertedResidual(16, 24, 2, 4),           # 24 x 8 x 8
            InvertedResidual(24, dim, 1, 4))          # 32 x 8 x 8
        self.block = TransformerBlock(dim, heads, tokens=64)
        self.fc = nn.Linear(dim, num_classes)
        self.dim = dim

    def forward(self, x):
        x = self.features(x)
        x = x.reshape(-1, self.dim, 64).transpose(1, 2)  # [batch, tokens, dim]
        x = self.block(x)
        return self.fc(x.mean(dim=1))


# -- synthetic data -------------------------------------------------------------------------------

class TemplateTask:
    """Class k draws `gain * template_k + shift + noise`: learnable, and the same for calibration.

    Templates are smooth (upsampled from a coarse grid) so convolutions see spatial structure.
    """

    def __init__(self, input_shape, num_classes, seed, coarse=(4, 4), noise=0.35):
        rng = np.random.default_rng(seed)
        self.input_shape, self.num_classes, self.noise = tuple(input_shape), num_classes, noise
        c, h, w = input_shape[1:]
        grid = torch.from_numpy(rng.standard_normal((num_classes, c) + coarse).astype(np.float32))
        self.templates = nn.functional.interpolate(grid, size=(h, w), mode="bilinear",
                                                   align_corners=False).numpy()

    def sample(self, n, rng):
        labels = rng.integers(0, self.num_classes, n)
        gain = rng.uniform(0.7, 1.3, (n, 1, 1, 1)).astype(np.float32)
        shift = rng.normal(0.0, 0.1, (n, 1, 1, 1)).astype(np.float32)
        noise = rng.normal(0.0, self.noise, (n,) + self.input_shape[1:]).astype(np.float32)
        x = gain * self.templates[labels] + shift + noise
        return x.astype(np.float32), labels


FAMILIES = {
    # name: (constructor, input shape, classes, training steps, has a dynamo export)
    "resnet8": (ResNet8, (1, 3, 32, 32), 10, 300, True),
    "dscnn": (DSCNN, (1, 1, 49, 10), 12, 300, False),
    "mbv2": (MobileNetV2, (1, 3, 32, 32), 10, 400, False),
    "hybrid": (Hybrid, (1, 3, 32, 32), 10, 400, True),
}


def train(model: nn.Module, task: TemplateTask, steps: int, seed: int, batch: int = 32) -> float:
    """Adam on fresh batches; returns the final training loss."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        x, y = task.sample(batch, rng)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def sample_set(task: TemplateTask, seed: int) -> np.ndarray:
    """NUM_SAMPLES model inputs stacked on a new first axis: [N, *input shape]."""
    x, _ = task.sample(NUM_SAMPLES, np.random.default_rng(seed))
    return x[:, None]


# -- export and checks ----------------------------------------------------------------------------

def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def check_against_torch(path: Path, model: nn.Module, inputs: np.ndarray, atol=1e-4) -> None:
    for x in inputs[:8]:
        expected = model(torch.from_numpy(x)).detach().numpy()
        got = ort_run(path, x)
        if not np.allclose(got, expected, atol=atol, rtol=1e-4):
            raise SystemExit(f"{path}: onnxruntime differs from torch by "
                             f"{np.abs(got - expected).max():.3g}")


def export_torchscript(model, example, path: Path, opset: int) -> None:
    """Opset 13 keeps BatchNormalization nodes (and the Identity nodes that come with unfolded
    weights) so the front end and fold-batchnorm see them; opset 17 lets the exporter fold
    BatchNorm into the convolutions, the way most deployed models arrive."""
    mode = torch.onnx.TrainingMode.PRESERVE if opset == 13 else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice, and a constant-folding caution that is for
        # models in training mode (ours are in eval mode, so BatchNorm exports as inference).
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], training=mode)


def export_dynamo(model, example, path: Path) -> None:
    """Dynamo exporter with the weights in `model.onnx.data` next to the model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.iterdir():
        old.unlink()
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME],
                                output_names=[OUTPUT_NAME], optimize=True, verbose=False)
    program.save(str(path), external_data=True)
    onnx.checker.check_model(str(path))


class _NpzReader:
    """onnxruntime CalibrationDataReader over our calib arrays."""

    def __init__(self, samples: np.ndarray):
        self._it = iter([{INPUT_NAME: s} for s in samples])

    def get_next(self):
        return next(self._it, None)


def export_qdq(float_path: Path, calib: np.ndarray, path: Path) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(float_path), str(prepped), skip_symbolic_shape=True)
        quantize_static(str(prepped), str(path), _NpzReader(calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)


def top1_agreement(path_a: Path, path_b: Path, inputs: np.ndarray) -> float:
    a = np.array([ort_run(path_a, x).argmax() for x in inputs])
    b = np.array([ort_run(path_b, x).argmax() for x in inputs])
    return float((a == b).mean())


def build_family(name: str) -> None:
    ctor, input_shape, classes, steps, with_dynamo = FAMILIES[name]
    seed = sorted(FAMILIES).index(name)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = ctor()
    task = TemplateTask(input_shape, classes, seed=100 + seed)
    loss = train(model, task, steps, seed=200 + seed)
    calib, tests = sample_set(task, CALIB_SEED + seed), sample_set(task, TEST_SEED + seed)
    params = sum(p.numel() for p in model.parameters())

    out = MODELS_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(tests[0])
    with torch.no_grad():
        for opset in (13, 17):
            export_torchscript(model, example, out / f"ts{opset}.onnx", opset)
            check_against_torch(out / f"ts{opset}.onnx", model, tests)
        if with_dynamo:
            export_dynamo(model, example, out / "dynamo" / "model.onnx")
            check_against_torch(out / "dynamo" / "model.onnx", model, tests)
        logits = model(torch.from_numpy(tests[:, 0])).numpy()
    np.savez(out / "calib.npz", **{INPUT_NAME: calib})
    np.savez(out / "inputs.npz", **{INPUT_NAME: tests})
    export_qdq(out / "ts17.onnx", calib, out / "qdq.onnx")

    _, labels = task.sample(NUM_SAMPLES, np.random.default_rng(TEST_SEED + seed))
    accuracy = float((logits.argmax(1) == labels).mean())
    top2 = np.sort(logits, axis=1)[:, -2:]
    agree = top1_agreement(out / "ts17.onnx", out / "qdq.onnx", tests)
    print(f"{name:8s} params={params:6d} loss={loss:.4f} acc={accuracy:.2f} "
          f"margin-p5={float(np.percentile(top2[:, 1] - top2[:, 0], 5)):.2f} ort-qdq-agree={agree:.2f} "
          f"({time.perf_counter() - t0:.0f}s)")
    if agree < 0.95:
        raise SystemExit(f"{name}: onnxruntime's QDQ model agrees with float on only {agree:.0%}")
    if name == "hybrid":
        write_example(out, calib, tests)


def write_example(family_dir: Path, calib: np.ndarray, tests: np.ndarray) -> None:
    EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(family_dir / "ts17.onnx", EXAMPLE_DIR / "model.onnx")
    np.savez(EXAMPLE_DIR / "calib.npz", **{INPUT_NAME: calib})
    np.save(EXAMPLE_DIR / "input.npy", tests[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("families", nargs="*", choices=[[], *FAMILIES], default=[],
                        help="families to build (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.families or sorted(FAMILIES):
        build_family(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
