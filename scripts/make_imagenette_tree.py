#!/usr/bin/python3
"""Writes a synthetic JPEG tree in Imagenette's published layout, for benchmarks.

    OUT/train/<wnid>/<wnid>_<n>.JPEG   OUT/val/<wnid>/<wnid>_<n>.JPEG

for Imagenette's ten WordNet ids, so `[task] name = imagenette, path = OUT`
reads it like the real imagenette2-320 folder (which cannot be downloaded on
machines without network access). Each image is a class-coloured gradient
with noise (so JPEG sizes and decoding costs resemble photographs);
a few are greyscale, as in ImageNet.

Needs Pillow for /usr/bin/python3 (Debian: apt-get install python3-pil).

Example, Imagenette-sized at 320 px (13,394 images, about 1.3 GB):
    scripts/make_imagenette_tree.py /tmp/imagenette2-320 --train 963 --val 392 --size 320x480
"""
import argparse
import os
import random
import sys

WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
         "n03394916", "n03417042", "n03425413", "n03445777", "n03888605"]


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be HxW, e.g. 320x480")
    if h < 8 or w < 8 or h > 8192 or w > 8192:
        raise argparse.ArgumentTypeError("height and width must be in [8, 8192]")
    return h, w


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Needs python3-pil (Pillow).",
        epilog="Needs Pillow for /usr/bin/python3: apt-get install python3-pil.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder to create (gets train/ and val/)")
    ap.add_argument("--train", type=int, default=50, help="images per class in train/ (default 50)")
    ap.add_argument("--val", type=int, default=20, help="images per class in val/ (default 20)")
    ap.add_argument("--size", type=parse_size, default=(320, 480),
                    help="HxW of every image (default 320x480, shorter side 320 like imagenette2-320)")
    ap.add_argument("--vary", action="store_true",
                    help="swap to portrait (WxH) for every third image, as real photos vary")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args()

    try:
        from PIL import Image
    except ImportError:
        sys.exit("make_imagenette_tree.py: needs Pillow: apt-get install python3-pil")

    rng = random.Random(args.seed)
    h, w = args.size
    # noise tile reused (with a random offset) so generation is fast
    tile_w, tile_h = 2 * max(h, w), 2 * max(h, w)
    noise = Image.effect_noise((tile_w, tile_h), 40)
    count = 0
    for c, wnid in enumerate(WNIDS):
        colour = tuple(40 + (c * 53 + k * 97) % 180 for k in range(3))
        for split, n in (("train", args.train), ("val", args.val)):
            folder = os.path.join(args.out, split, wnid)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                ih, iw = (w, h) if args.vary and i % 3 == 2 else (h, w)
                base = Image.linear_gradient("L").resize((iw, ih))
                x0, y0 = rng.randrange(tile_w - iw + 1), rng.randrange(tile_h - ih + 1)
                n_img = noise.crop((x0, y0, x0 + iw, y0 + ih))
                mask = Image.blend(base, n_img, 0.5)
                img = Image.composite(Image.new("RGB", (iw, ih), colour), Image.new("RGB", (iw, ih), (250, 250, 250)),
                                      mask)
                if i % 50 == 49:
                    img = img.convert("L")  # some ImageNet JPEGs are greyscale
                img.save(os.path.join(folder, "%s_%05d.JPEG" % (wnid, i + (0 if split == "train" else 100000))),
                         quality=args.quality)
                count += 1
    print("wrote %d images to %s" % (count, args.out))


if __name__ == "__main__":
    main()
