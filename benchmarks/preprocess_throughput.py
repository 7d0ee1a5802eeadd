"""Images/s of preprocess_multimodal_dataset against the bare encoder forward on the same images.

    python benchmarks/preprocess_throughput.py [--images 64] [--size vit-b32|tiny] [--batch_size 16]

The ratio (preprocess / bare forward) shows what decoding, the image processor, batching and writing
cost on top of the encoder; with decoding overlapped by worker threads it approaches 1 when the
encoder dominates. The encoder is randomly initialised from a config (no download).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 image_size=32, patch_size=8),
    "vit-b32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=224, patch_size=32),
}  # fmt: skip


def build_encoder(folder: Path, size: str) -> None:
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    config = SIZES[size]
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**config)).save_pretrained(folder)
    side = config["image_size"]
    CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    ).save_pretrained(folder)


def draw_images(folder: Path, count: int) -> None:
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    folder.mkdir(parents=True)
    for index in range(count):
        image = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x, y = rng.randrange(300), rng.randrange(220)
            draw.ellipse((x, y, x + 40, y + 30), fill=tuple(rng.randrange(256) for _ in range(3)))
        image.save(folder / f"{index:05d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", choices=sorted(SIZES), default="vit-b32")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=2)
    args = parser.parse_args()

    from turbo.media import MediaItem
    from turbo.modeling.multimodal.encoders import build_encoder as load_encoder
    from turbo.modeling.multimodal.readers import build_reader
    from turbo.pipelines.preprocessing.multimodal import find_media, run
    from turbo.settings.pipelines.preprocessing import PreprocessMultimodalSettings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_encoder(root / "encoder", args.size)
        draw_images(root / "images", args.images)
        settings = PreprocessMultimodalSettings.model_validate(
            {
                "modality": "image",
                "reader_settings": {"reader_type": "clip", "reader_path": str(root / "encoder")},
                "encoder_settings": {"modality_encoder_type": "clip", "encoder_path": str(root / "encoder")},
                "dataset_path": str(root / "images"),
                "batch_size": args.batch_size,
                "num_workers": args.num_workers,
                "output_file_path": str(root / "out"),
            }
        )
        encoder = load_encoder(settings.encoder_settings).eval()
        reader = build_reader(settings.reader_settings)
        items = [MediaItem("image", i.key, i.path, i.where) for i in find_media(root / "images", (".jpg",))]
        pixels = torch.stack([reader.read(item) for item in items])  # decoded beforehand, not timed
        with torch.inference_mode():
            encoder(pixels[: args.batch_size])  # warm-up
            start = time.perf_counter()
            for offset in range(0, len(pixels), args.batch_size):
                encoder(pixels[offset : offset + args.batch_size])
            bare = len(pixels) / (time.perf_counter() - start)

        start = time.perf_counter()
        config = run(settings)
        full = config["encoded"] / (time.perf_counter() - start)

    result = {
        "encoder": f"CLIP vision {args.size} (random init)",
        "images": args.images,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "threads": torch.get_num_threads(),
        "bare_forward_images_per_s": round(bare, 2),
        "preprocess_images_per_s": round(full, 2),
        "ratio_preprocess_to_bare": round(full / bare, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
