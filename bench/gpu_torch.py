"""PyTorch CUDA fine-tuning every layer of EfficientNet-Lite1 with a cat/dog head, on the same
photos, preprocessing, batch and optimiser as `native-trainer train --backbone
efficientnet-lite1 --unfreeze all` on burn-wgpu: the peer side of `scripts/gpu-fine-tune`.

    python3 bench/gpu_torch.py PHOTOS_DIR LITE1.safetensors EPOCHS BATCH LEARNING_RATE > torch.json

Prints one JSON object: images/s per epoch (the photos decoded and resized before the clock
starts, as the trainer packs them before its first epoch; batches, flips and the copy to the
GPU timed), and the accuracy on a seeded 10 % of the photos held out.
"""

import json
import os
import random
import re
import sys
import time

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_export import EfficientNetLite  # noqa: E402  (the same network, layer for layer)

SIZE, FRACTION = 240, 240 / 272
# The pretrained file's efficientnet_pytorch names to onnx_export's modules (the trainer's
# RENAMES in native-trainer/src/pretrained.rs): block names first.
RENAMES = [(r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
           (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.norm."),
           (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
           (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.norm."),
           (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
           (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.norm."),
           (r"^_conv_stem\.", "stem.conv."), (r"^_bn0\.", "stem.norm."),
           (r"^_conv_head\.", "head.conv."), (r"^_bn1\.", "head.norm.")]


def renamed(name):
    for pattern, replacement in RENAMES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


def load(path):
    """The backbone's own preprocessing: centre crop, bicubic, (x - 127) / 128."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        side = max(1, round(min(image.size) * FRACTION))
        left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BICUBIC)
    return (np.asarray(image, np.float32) - 127.0) / 128.0


def main(photos, weights, epochs, batch, learning_rate):
    names = sorted(n for n in os.listdir(photos) if n.startswith(("cat.", "dog.")))
    random.Random(42).shuffle(names)
    held = len(names) // 10
    test, train = names[:held], names[held:]
    images = {n: torch.from_numpy(load(os.path.join(photos, n)).transpose(2, 0, 1)) for n in names}
    labels = {n: int(n.startswith("dog.")) for n in names}
    backbone = EfficientNetLite("efficientnet_lite1")
    state = {renamed(k): v.reshape(backbone.state_dict()[renamed(k)].shape)
             for k, v in load_file(weights).items() if not k.startswith("_fc.")}
    backbone.load_state_dict(state, strict=True)
    model = nn.Sequential(backbone, nn.Linear(1280, 2)).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rates = []
    for epoch in range(epochs):
        random.Random(epoch).shuffle(train)
        model.train()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(train), batch):
            chunk = train[i:i + batch]
            x = torch.stack([images[n] for n in chunk])
            flip = torch.rand(len(chunk)) < 0.5
            x[flip] = x[flip].flip(3)
            y = torch.tensor([labels[n] for n in chunk])
            loss = nn.functional.cross_entropy(model(x.cuda()), y.cuda())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        rates.append(len(train) / (time.perf_counter() - start))
    model.eval()
    with torch.no_grad():
        x = torch.stack([images[n] for n in test]).cuda()
        predicted = model(x).argmax(1).cpu()
    accuracy = float((predicted == torch.tensor([labels[n] for n in test])).float().mean())
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "train_photos": len(train), "test_photos": len(test),
                      "images_per_second": rates, "held_out_accuracy": accuracy}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
