#!/usr/bin/env python3
"""Convert PyTorch weights into a tunebench checkpoint (docs/checkpoints.md).

tunebench names every tensor by its PyTorch state_dict key, so converting is
copying: each tensor of the state_dict becomes /params/<key> (float32, in
PyTorch's shape; num_batches_tracked stays an int64 scalar), and the root gets
the attributes format = "tunebench-checkpoint" and format_version = 1. The
result loads with tb_checkpoint_load into a network built with the same keys,
e.g. the squeezenet plugin for torchvision's squeezenet1_0 / squeezenet1_1
weights, and a config can start a run from it (transfer learning: the
classifier head is re-initialised when the class counts differ).

Examples:

  # a state_dict saved with torch.save(model.state_dict(), "model.pth")
  scripts/torchvision_to_checkpoint.py model.pth -o model.h5

  # torchvision's pretrained file (e.g. ~/.cache/torch/hub/checkpoints/squeezenet1_1-b8a52dc0.pth),
  # checked against torchvision's architecture before writing
  scripts/torchvision_to_checkpoint.py --model squeezenet1_1 --weights squeezenet1_1-b8a52dc0.pth -o sq11.h5

  # torchvision's published weights through its own API (downloads unless cached)
  scripts/torchvision_to_checkpoint.py --model squeezenet1_1 --weights DEFAULT -o sq11.h5

  # list what a file holds without writing anything
  scripts/torchvision_to_checkpoint.py model.pth --list

Accepted inputs for a file: a state_dict, a whole pickled nn.Module, or a dict
holding a state_dict under "state_dict", "model_state_dict" or "model" (as
training scripts often save). Keys of a model saved inside nn.DataParallel
start with "module."; --strip-prefix module. removes it.

Needs torch (Debian: python3-torch), h5py (python3-h5py) and, for --model,
torchvision (python3-torchvision). Exit status: 0 done, 1 failed, 2 bad usage.
"""
import argparse
import os
import sys

import numpy as np

FORMAT = "tunebench-checkpoint"
FORMAT_VERSION = 1


def fail(msg, code=1):
    print(f"torchvision_to_checkpoint: {msg}", file=sys.stderr)
    sys.exit(code)


def extract_state_dict(obj, torch):
    """The state_dict inside whatever torch.load returned."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                return extract_state_dict(obj[key], torch)
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    fail("the file holds neither a state_dict nor a model (expected a dict of tensors, an nn.Module, "
         "or a dict with 'state_dict', 'model_state_dict' or 'model')")


def load_file(path, torch):
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds; report them in one line
        fail(f"{path}: torch.load failed: {e}")
    return extract_state_dict(obj, torch)


def from_torchvision(name, weights, num_classes, torch):
    try:
        import torchvision
    except ImportError:
        fail("--model needs torchvision (Debian: python3-torchvision)")
    try:
        builder = torchvision.models.get_model_builder(name) if hasattr(torchvision.models, "get_model_builder") \
            else getattr(torchvision.models, name)
    except (AttributeError, ValueError):
        fail(f"torchvision has no model '{name}' (e.g. squeezenet1_0, squeezenet1_1)")
    kwargs = {}
    if weights is None:
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        model = builder(**kwargs)  # torchvision's own random initialisation
    elif os.path.isfile(weights):
        sd = load_file(weights, torch)
        if num_classes is None:  # take the class count from the file's last weight tensor
            last = [k for k in sd if k.endswith(".weight")]
            if last:
                num_classes = int(sd[last[-1]].shape[0])
        model = builder(num_classes=num_classes) if num_classes is not None else builder()
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            fail(f"{weights} does not fit torchvision's {name}: {' '.join(first[:3])}")
    else:
        try:
            model = builder(weights=weights)
        except Exception as e:
            fail(f"torchvision could not provide weights '{weights}' for {name} (a file path, or e.g. DEFAULT "
                 f"with network access or a filled ~/.cache/torch): {e}")
    return model.state_dict()


def write_checkpoint(sd, out, source, torch):
    import h5py

    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["tunebench_version"] = f"torch {torch.__version__} via torchvision_to_checkpoint.py"
            f.attrs["git_commit"] = "unknown"
            f.attrs["source"] = source
            params = f.create_group("params", track_order=True)
            for key, value in sd.items():
                t = value.detach().cpu()
                if key.endswith("num_batches_tracked"):
                    params[key] = np.int64(t.item())
                elif t.is_floating_point():
                    params[key] = t.float().numpy()
                else:
                    fail(f"{key}: dtype {t.dtype} is neither floating point nor num_batches_tracked; "
                         "tunebench stores float32 tensors")
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(
        description="Convert a PyTorch state_dict (.pth/.pt) or torchvision pretrained weights into a tunebench "
                    "checkpoint (HDF5, /params/<state_dict key>, docs/checkpoints.md).",
        epilog="Examples: %(prog)s model.pth -o model.h5 | "
               "%(prog)s --model squeezenet1_1 --weights squeezenet1_1-b8a52dc0.pth -o sq11.h5 | "
               "%(prog)s model.pth --list")
    ap.add_argument("input", nargs="?", help="state_dict file (.pth/.pt) written by torch.save")
    ap.add_argument("--model", help="a torchvision model name (squeezenet1_0, squeezenet1_1, ...): checks the "
                                     "weights against its architecture, or gives its random initialisation "
                                     "without --weights")
    ap.add_argument("--weights", help="with --model: a weights file, or a torchvision weights name "
                                      "(DEFAULT, IMAGENET1K_V1) fetched by torchvision")
    ap.add_argument("--num-classes", type=int, help="with --model and no weights file: the class count")
    ap.add_argument("--strip-prefix", default="", help="remove this prefix from every key (e.g. 'module.')")
    ap.add_argument("-o", "--output", help="checkpoint to write (.h5)")
    ap.add_argument("--list", action="store_true", help="print the keys and shapes; write nothing")
    args = ap.parse_args()

    if bool(args.input) == bool(args.model):
        ap.print_usage(sys.stderr)
        fail("give either a state_dict file or --model NAME", 2)
    if args.input and (args.weights or args.num_classes):
        fail("--weights and --num-classes go with --model", 2)
    if not args.list and not args.output:
        fail("-o/--output is required (or --list)", 2)

    try:
        import torch
    except ImportError:
        fail("needs torch (Debian: python3-torch)")

    if args.input:
        sd, source = load_file(args.input, torch), os.path.abspath(args.input)
    else:
        sd = from_torchvision(args.model, args.weights, args.num_classes, torch)
        source = f"torchvision {args.model}" + (f" weights {args.weights}" if args.weights else " (random init)")
    if args.strip_prefix:
        sd = {(k[len(args.strip_prefix):] if k.startswith(args.strip_prefix) else k): v for k, v in sd.items()}
    if not sd:
        fail("the state_dict is empty")

    if args.list:
        for k, v in sd.items():
            print(f"{k:40s} {list(v.shape)} {str(v.dtype).replace('torch.', '')}")
    total = sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var",
                                                                      "num_batches_tracked")))
    if args.output:
        write_checkpoint(sd, args.output, source, torch)
        print(f"wrote {args.output}: {len(sd)} tensors, {total:,} parameters (from {source})")
    else:
        print(f"{len(sd)} tensors, {total:,} parameters")


if __name__ == "__main__":
    main()
