"""Loads a qkv checkpoint in Python (see docs/checkpoint-format.md).

    python3 docs/load_checkpoint.py RUN_OR_CHECKPOINT           # json, struct, numpy only
    python3 docs/load_checkpoint.py RUN_OR_CHECKPOINT --torch   # also PyTorch's load_state_dict

Without --torch it lists model.safetensors' tensors (name, shape). With --torch it builds the
PyTorch twin of the model from the checkpoint's config.toml and vocab.json (the module
definitions of tests/fixtures/make_fixtures.py, so run it from a qkv source tree), loads the
weights with load_state_dict(strict=True) and runs one forward pass. Needs Python >= 3.11
(tomllib); Debian: python3-numpy, python3-torch.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def resolve(path):
    """A checkpoint directory: path itself, or the one path/latest names."""
    if os.path.exists(os.path.join(path, "manifest.json")):
        return path
    with open(os.path.join(path, "latest")) as f:
        return os.path.join(path, f.read().strip())


def read_safetensors(path):
    """(tensors, metadata): name -> float32 array in file order, and __metadata__."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", (name, entry["dtype"])
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
    return tensors, metadata


def torch_twin():
    """tests/fixtures/make_fixtures.py: the PyTorch modules the parity fixtures are made with."""
    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
    if fixtures not in sys.path:
        sys.path.insert(0, fixtures)
    import make_fixtures

    return make_fixtures


def build_torch_model(ckpt):
    """(model, [model] config, vocab size): the checkpoint's model in PyTorch, its weights
    loaded with strict=True."""
    import tomllib

    import torch

    twin = torch_twin()
    with open(os.path.join(ckpt, "config.toml"), "rb") as f:
        cfg = tomllib.load(f)["model"]
    with open(os.path.join(ckpt, "vocab.json")) as f:
        vocab = json.load(f)
    vocab_size = len(vocab["chars"]) + len(vocab["specials"])
    twin.set_dims(cfg["n_embd"], cfg["n_head"], cfg["n_layer"], vocab_size,
                  twin.ffn_hidden(cfg), cfg["block_size"])
    kind = cfg["kind"]
    model = twin.EncoderDecoder(cfg) if kind == "encoder_decoder" else twin.LanguageModel(cfg)
    # With tie_weights there is no lm_head.weight on either side; a model whose lm_head shares
    # the embedding as a separate key would take a copy of tok_emb.weight for it.
    tensors, _ = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    return model.eval(), cfg, vocab_size


def forward(model, cfg, ids):
    """Logits [1, T, V] for one sequence of ids (for encoder_decoder: as source and target)."""
    import torch

    causal_mask = torch_twin().causal_mask

    x = torch.tensor([ids])
    no_padding = torch.zeros(1, 1, 1, len(ids), dtype=torch.bool)
    with torch.no_grad():
        if cfg["kind"] == "decoder":
            return model(x, causal_mask(len(ids)))
        if cfg["kind"] == "encoder":
            return model(x, no_padding)
        return model(x, no_padding, x, causal_mask(len(ids)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a run directory (follows latest) or a checkpoint directory")
    parser.add_argument("--torch", action="store_true", help="load into the PyTorch model")
    args = parser.parse_args()

    ckpt = resolve(args.path)
    tensors, metadata = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    print(f"{ckpt}: {len(tensors)} tensors, {sum(t.size for t in tensors.values())} parameters, "
          f"metadata {metadata}")
    for name, t in tensors.items():
        print(f"  {name:40s} {list(t.shape)}")
    if args.torch:
        model, cfg, vocab_size = build_torch_model(ckpt)
        ids = [i % vocab_size for i in range(min(8, cfg["block_size"]))]
        logits = forward(model, cfg, ids)
        print(f"PyTorch {cfg['kind']}: load_state_dict(strict=True) ok; "
              f"logits {list(logits.shape)} for ids {ids}")


if __name__ == "__main__":
    main()
