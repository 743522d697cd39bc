"""catdog's networks in PyTorch and ONNX, with the same weights: the peer side of the browser
benchmark (ONNX Runtime Web runs the `.onnx` this writes).

Reads the safetensors file `native-trainer export-safetensors` writes (PyTorch's layout, the
model's header as metadata), rebuilds the network layer for layer (the small CNN or
EfficientNet-Lite0 with TensorFlow "SAME" padding, ReLU6 and batch-norm epsilon 1e-3, and the
cat/dog head), checks that its logits equal catdog's own on real photos (given as
`native-trainer predict --json` output), exports ONNX, and checks ONNX Runtime's logits too.

    python bench/onnx_export.py WEIGHTS.safetensors CATDOG_PREDICT.json OUT.onnx
"""

import json
import math
import sys

import numpy as np
import onnxruntime
import torch
from PIL import Image, ImageOps
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (the odd pixel after), bias-free."""

    def __init__(self, inputs, outputs, kernel, stride=1, groups=1):
        super().__init__(inputs, outputs, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        pads = []
        for size in (x.shape[3], x.shape[2]):
            stride, kernel = self.stride[0], self.kernel_size[0]
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class ConvNorm(nn.Module):
    def __init__(self, inputs, outputs, kernel, stride=1, groups=1, epsilon=1e-3):
        super().__init__()
        self.conv = SameConv(inputs, outputs, kernel, stride, groups)
        self.norm = nn.BatchNorm2d(outputs, eps=epsilon)

    def forward(self, x):
        return self.norm(self.conv(x))


class MbConv(nn.Module):
    def __init__(self, inputs, outputs, kernel, stride, expansion):
        super().__init__()
        hidden = inputs * expansion
        self.expand = ConvNorm(inputs, hidden, 1) if expansion != 1 else None
        self.depthwise = ConvNorm(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvNorm(hidden, outputs, 1)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return y + x if self.residual else y


# (kernel, stride, expansion, output channels): model/src/efficientnet.rs's STAGES; the
# blocks per stage depend on the family member (Variant::stage_blocks).
STAGES = [(3, 1, 1, 16), (3, 2, 6, 24), (5, 2, 6, 40), (3, 2, 6, 80),
          (5, 1, 6, 112), (5, 2, 6, 192), (3, 1, 6, 320)]
STAGE_BLOCKS = {"efficientnet_lite0": [1, 2, 2, 3, 3, 4, 1],
                "efficientnet_lite1": [1, 3, 3, 4, 4, 5, 1]}


class EfficientNetLite(nn.Module):
    """The backbone, whole, or ending after stage `last_stage` (model/src/efficientnet.rs's
    Depth): then without the 1x1 head, its last block's output pooled."""

    def __init__(self, kind="efficientnet_lite0", last_stage=None):
        super().__init__()
        self.stem = ConvNorm(3, 32, 3, 2)
        blocks, inputs = [], 32
        stages = list(zip(STAGE_BLOCKS[kind], STAGES))[:last_stage or len(STAGES)]
        for count, (kernel, stride, expansion, outputs) in stages:
            for index in range(count):
                blocks.append(MbConv(inputs, outputs, kernel, stride if index == 0 else 1, expansion))
                inputs = outputs
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvNorm(inputs, 1280, 1) if last_stage is None else None
        self.features = 1280 if last_stage is None else inputs

    def forward(self, x):
        x = F.relu6(self.stem(x))
        for block in self.blocks:
            x = block(x)
        if self.head is not None:
            x = F.relu6(self.head(x))
        return x.mean(dim=(2, 3))


# model/src/efficientnet.rs's PET_CLASSES: what the "neither" check sums.
PET_CLASSES = slice(151, 294)


class Head(nn.Module):
    def __init__(self, features, hidden, pet_filter):
        super().__init__()
        self.hidden = nn.Linear(features, hidden) if hidden else None
        self.out = nn.Linear(hidden or features, 2)
        # The "neither" check's ImageNet classifier, when the model file has one: whole, or
        # (`rank`) as two factors, features to the rank and the rank to the 1000 classes.
        rank = (pet_filter or {}).get("rank")
        self.imagenet_basis = nn.Linear(features, rank, bias=False) if rank else None
        self.imagenet = nn.Linear(rank or features, 1000) if pet_filter else None

    def forward(self, features):
        x = features
        if self.hidden is not None:
            x = torch.relu(self.hidden(x))
        return self.out(x)


class EfficientNetClassifier(nn.Module):
    def __init__(self, hidden, pet_filter, kind="efficientnet_lite0", last_stage=None):
        super().__init__()
        self.backbone = EfficientNetLite(kind, last_stage)
        self.head = Head(self.backbone.features, hidden, pet_filter)

    def forward(self, x):
        """The logits and, with the "neither" check, the pet probability too: the page computes
        both for every photo, so ONNX Runtime does the same work."""
        features = self.backbone(x)
        logits = self.head(features)
        if self.head.imagenet is None:
            return logits
        if self.head.imagenet_basis is not None:
            features = self.head.imagenet_basis(features)
        pets = torch.softmax(self.head.imagenet(features), dim=1)[:, PET_CLASSES].sum(dim=1)
        return logits, pets


class CnnBlock(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.conv = SameConv(inputs, outputs, 3)
        self.norm = nn.BatchNorm2d(outputs)

    def forward(self, x):
        return F.max_pool2d(torch.relu(self.norm(self.conv(x))), 2)


class Cnn(nn.Module):
    def __init__(self, channels):
        super().__init__()
        blocks, inputs = [], 3
        for outputs in channels:
            blocks.append(CnnBlock(inputs, outputs))
            inputs = outputs
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(inputs, 2)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))


def network(header):
    architecture = header["architecture"]
    if architecture["kind"] == "cnn":
        return Cnn(architecture["channels"])
    if architecture["kind"] in STAGE_BLOCKS:
        return EfficientNetClassifier(architecture["hidden"], architecture.get("pet_filter"),
                                      architecture["kind"], architecture.get("last_stage"))
    raise SystemExit(f"unknown architecture {architecture['kind']}")


def preprocess(path, header):
    """catdog's preprocessing, as the model file's header says: EXIF orientation, RGB, the
    whole photo squashed, a centred crop of the shorter side, or the centred fraction of each
    side (squashed first), resized to the input size (bilinear or bicubic), normalised.
    Resampling differs slightly from `image`'s."""
    spec = header["preprocess"]
    size, normalization = spec["input_size"], spec["normalization"]
    geometry = spec.get("geometry", {"kind": "squash"})
    resample = Image.BICUBIC if spec.get("resample") == "bicubic" else Image.BILINEAR
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        if geometry["kind"] in ("centre_crop", "squash_then_crop"):
            # Rust's round: halves away from zero (Python's round takes them to even).
            part = lambda side: min(side, max(1, math.floor(side * geometry["fraction"] + 0.5)))
            if geometry["kind"] == "centre_crop":
                width = height = part(min(image.size))
            else:
                width, height = part(image.size[0]), part(image.size[1])
            left, top = (image.size[0] - width) // 2, (image.size[1] - height) // 2
            image = image.crop((left, top, left + width, top + height))
        elif geometry["kind"] != "squash":
            raise SystemExit(f"unknown geometry {geometry['kind']}")
        image = image.resize((size, size), resample)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = (pixels - np.array(normalization["mean"], np.float32)) / np.array(normalization["std"], np.float32)
    return pixels.transpose(2, 0, 1)[None]


def logits_of(output):
    """The cat/dog logits, whether or not the network also gives the pet probability."""
    return output[0] if isinstance(output, tuple) else output


def main():
    weights, predictions, out = sys.argv[1:4]
    with safe_open(weights, "pt") as file:
        header = json.loads(file.metadata()["catdog_header"])
    model = network(header)
    missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
    # BatchNorm's batch counter is PyTorch's own; anything else missing is a mismatch.
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{weights}: missing {missing}, unexpected {unexpected}")
    model.eval()

    # Same weights, same verdicts: the probabilities of catdog's own predictions on real photos.
    # Resampling differs a little between PIL and `image`, hence the tolerance.
    worst = 0.0
    with open(predictions) as file:
        expected = json.load(file)
    for row in expected:
        with torch.no_grad():
            logits = logits_of(model(torch.from_numpy(preprocess(row["path"], header))))
        dog = torch.softmax(logits, dim=1)[0, 1].item()
        worst = max(worst, abs(dog - row["dog"]))
        if (dog > 0.5) != (row["dog"] > 0.5):
            raise SystemExit(f"{row['path']}: PyTorch says dog {dog:.3f}, catdog {row['dog']:.3f}")
    print(f"PyTorch agrees with catdog on {len(expected)} photos (largest difference in p(dog): {worst:.4f})")

    size = header["preprocess"]["input_size"]
    probe = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, size, size)).astype(np.float32))
    with torch.no_grad():
        outputs = ["logits", "pets"] if isinstance(model(probe), tuple) else ["logits"]
    torch.onnx.export(model, (probe,), out, input_names=["images"], output_names=outputs,
                      opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {"images": probe.numpy()})[0]
    with torch.no_grad():
        difference = np.abs(onnx_logits - logits_of(model(probe)).numpy()).max()
    if difference > 1e-3:
        raise SystemExit(f"{out}: ONNX Runtime's logits differ from PyTorch's by {difference}")
    print(f"wrote {out} (outputs: {', '.join(outputs)}); ONNX Runtime's logits equal PyTorch's to {difference:.1e}")


if __name__ == "__main__":
    main()
