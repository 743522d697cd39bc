"""The peer side of `scripts/bench-peers`: what people would use instead of catdog, measured on
the same photos, input size, batch and threads, in the same run, next to catdog's own numbers.

- training throughput: PyTorch training the same CNN (conv 3x3 "same" without bias, batch-norm,
  ReLU, 2x2 max-pool per block; global average pool, dropout, dense) with Adam, against
  `native-trainer bench`;
- decode + preprocess: PIL (EXIF transpose, RGB, bilinear resize to 8-bit CHW) in as many
  worker processes as catdog uses threads, against catdog's loader;
- page weight: the built site's wasm, JS and models, raw and gzip.

Prints a markdown table and writes JSON. Run by `scripts/bench-peers`, which installs PyTorch,
Pillow and NumPy into a virtual environment first.
"""

import argparse
import gzip
import json
import multiprocessing
import os
import platform
import time

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def chosen_photos(data, count):
    """Every n-th photo of the sorted listing (both classes), as `native-trainer bench` picks."""
    names = sorted(
        name
        for name in os.listdir(data)
        if name.lower().endswith((".jpg", ".jpeg", ".png")) and name.split(".")[0] in ("cat", "dog")
    )
    step = max(len(names) // max(count, 1), 1)
    return [os.path.join(data, name) for name in names[::step][:count]]


def preprocess(args):
    path, size = args
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB").resize((size, size), Image.BILINEAR)
    # Resized 8-bit pixels, as catdog's loader keeps them; both normalise per training batch.
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def decode_bench(paths, size, workers):
    started = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        tensors = pool.map(preprocess, [(path, size) for path in paths], chunksize=16)
    seconds = time.perf_counter() - started
    return np.stack(tensors), seconds


class ConvBlock(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 3, padding="same", bias=False)
        self.norm = nn.BatchNorm2d(outputs)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x))))


class Cnn(nn.Module):
    """catdog's from-scratch CNN (`model/src/network.rs`), layer for layer."""

    def __init__(self, channels, dropout=0.3):
        super().__init__()
        blocks, inputs = [], 3
        for outputs in channels:
            blocks.append(ConvBlock(inputs, outputs))
            inputs = outputs
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(inputs, 2)

    def forward(self, x):
        features = self.blocks(x).mean(dim=(2, 3))
        return self.head(self.dropout(features))


def train_bench(images, labels, channels, batch, steps):
    torch.manual_seed(1)
    model = Cnn(channels)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = nn.CrossEntropyLoss()
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    mean = torch.from_numpy(MEAN)[None, :, None, None]
    std = torch.from_numpy(STD)[None, :, None, None]
    generator = torch.Generator().manual_seed(1)

    def step(index):
        rows = torch.arange(index * batch, (index + 1) * batch) % len(images)
        x, y = (images[rows].float() / 255.0 - mean) / std, labels[rows]
        # Random horizontal flips, as catdog's training batches have.
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        optimizer.zero_grad()
        value = loss(model(x), y)
        value.backward()
        optimizer.step()
        return value.item()

    for index in range(2):
        step(index)
    started = time.perf_counter()
    for index in range(steps):
        step(index)
    return time.perf_counter() - started


def page_weight(dist):
    rows = []
    for root, _, files in os.walk(dist):
        for name in sorted(files):
            if name.endswith((".wasm", ".js", ".bpk")):
                path = os.path.join(root, name)
                with open(path, "rb") as file:
                    raw = file.read()
                rows.append(
                    {
                        "file": os.path.relpath(path, dist),
                        "bytes": len(raw),
                        "gzip_bytes": len(gzip.compress(raw, compresslevel=9)),
                    }
                )
    return rows


def browser_rows(args):
    """catdog's page (flex, wgpu) against ONNX Runtime Web (wasm, webgpu), per model."""
    if not (args.page and args.ort):
        return []
    with open(args.page) as file:
        page = json.load(file)
    with open(args.ort) as file:
        ort = json.load(file)
    pairs = [("flex", "wasm", "CPU", "<= 1.0x ONNX Runtime Web"), ("wgpu", "webgpu", "WebGPU (software)", "")]
    rows = []
    for model in ("accurate", "small"):
        for backend, ep, where, bar in pairs:
            ours = next((r for r in page if r["model"] == model and r["backend"] == backend), None)
            theirs = next((r for r in ort if r["model"] == model and r["ep"] == ep), None)
            if not (ours and theirs):
                continue
            for key, what in (("warm_median_ms", "warm median"), ("first_ms", "first photo")):
                rows.append(
                    {
                        "measure": f"browser, {model} model, {where}, {what} (ms)",
                        "catdog": ours[key],
                        "peer": theirs[key],
                        "peer_name": f"ONNX Runtime Web {args.ort_version} ({ep}, 1 thread)",
                        "ratio": ours[key] / theirs[key],
                        "bar": bar if key == "warm_median_ms" else "",
                    }
                )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--photos", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--channels", default="32,64,128,256")
    parser.add_argument("--catdog", required=True, help="native-trainer bench --json output")
    parser.add_argument("--dist", help="the built site, for the page weight")
    parser.add_argument("--page", help="the page benchmark's JSON (tests/benches/page.rs)")
    parser.add_argument("--ort", help="ONNX Runtime Web's benchmark JSON (tests/benches/ort.rs)")
    parser.add_argument("--ort-version", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    channels = [int(c) for c in args.channels.split(",")]
    torch.set_num_threads(args.threads)

    paths = chosen_photos(args.data, args.photos)
    images, decode_seconds = decode_bench(paths, args.size, args.threads)
    labels = np.array([0 if os.path.basename(p).startswith("cat") else 1 for p in paths], dtype=np.int64)
    train_seconds = train_bench(images, labels, channels, args.batch, args.steps)

    with open(args.catdog) as file:
        ours = json.load(file)
    ours_decode = next(row for row in ours if row["what"].startswith("decode"))
    ours_train = next(row for row in ours if row["what"].startswith("train on flex"))
    peer_decode = len(paths) / decode_seconds
    peer_train = args.steps * args.batch / train_seconds
    rows = [
        {
            "measure": f"decode + preprocess, {len(paths)} photos at {args.size} px, {args.threads} threads (images/s)",
            "catdog": ours_decode["images_per_second"],
            "peer": peer_decode,
            "peer_name": f"PIL {Image.__version__} + NumPy, {args.threads} processes",
            "ratio": ours_decode["images_per_second"] / peer_decode,
            "bar": ">= 1,000 photos/s",
        },
        {
            "measure": f"training, CNN {channels}, batch {args.batch}, {args.size} px, {args.threads} threads (images/s)",
            "catdog": ours_train["images_per_second"],
            "peer": peer_train,
            "peer_name": f"PyTorch {torch.__version__} CPU",
            "ratio": ours_train["images_per_second"] / peer_train,
            "bar": ">= 0.5x PyTorch",
        },
    ]
    rows += browser_rows(args)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
        "catdog_bench": ours,
        "page_weight": page_weight(args.dist) if args.dist else [],
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as file:
        json.dump(result, file, indent=2)
    os.replace(tmp, args.out)

    print(f"machine: {result['machine']}, {result['date']}\n")
    print("| measure | catdog | peer | peer | catdog / peer | bar |")
    print("|---|---:|---|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['measure']} | {row['catdog']:.1f} | {row['peer_name']} | {row['peer']:.1f} "
            f"| {row['ratio']:.2f}x | {row['bar']} |"
        )
    print("\n(images/s: higher is better; ms: lower is better. WebGPU here is SwiftShader, a")
    print("software GPU: those rows show that both run, not how fast a real GPU is.)")
    if result["page_weight"]:
        print("\n| page file | bytes | gzip |")
        print("|---|---:|---:|")
        for row in result["page_weight"]:
            print(f"| {row['file']} | {row['bytes'] / 1e6:.2f} MB | {row['gzip_bytes'] / 1e6:.2f} MB |")
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
