"""The bundled offline benchmark: Fashion-MNIST objects pasted on real photographs, with exact labels.

No real dense-label dataset ships in any package, so this is a scaled-down proxy of the paper's ADE20K and
ImageNet protocols (App. D.3-D.4), built from data that installs offline:

- objects: Fashion-MNIST (Debian package `dataset-fashion-mnist`, idx files in /usr/share/datasets/fashion-mnist;
  60k train / 10k test 28x28 greyscale items, 10 classes, MIT licence). Train scenes only use train items and
  test scenes only test items.
- backgrounds: natural photographs, split by photo (`saccade.evaluate.sources.load_backgrounds`): by default the
  photos of the Debian package `lomiri-wallpapers-16.04`, train scenes on the bundled photo catalogue's training
  photos and test scenes on its held-out ones (saccade.data.bundled), which no photo set of saccade pretrains on;
  or any image folder or [N, 3, H, W] tensor, where every `test_photo_every`-th photo (sorted by name) only
  appears behind test scenes. Each scene's photo is recorded (`Benchmark.train_backgrounds`, `test_backgrounds`).

A scene is a random square crop of a photo (side `background_crop` x its short side, random flip) resized to
scene_px, with objects pasted on top. An object is its Fashion-MNIST item resized to a random side in
`object_px` (bilinear); its silhouette is where the resized intensity is >= `mask_threshold`, and exactly those
pixels are overwritten with `tint x (0.3 + 0.7 x intensity)` for a random RGB tint, and labelled with its
class. Later objects occlude earlier ones in pixels and labels alike, so labels are exact.

- segmentation (`fashion-seg`): 2-4 objects of 48-96 px on 128 px scenes; 11 classes, 0 = background. Seen whole
  at a 32 px glimpse an object spans 12-24 px. The passive teacher reads 7.6 / 16.1 / 30.0 mIoU at 28 / 56 / 112 px
  (background only 6.0), and the main job's C2F canvas 8.1 -> 16.5 over 10 glimpses. With the former 32-64 px
  objects the teacher read 7.7 / 11.1 / 26.0 (background only 7.4) and the canvas 7.6 -> 10.8 (docs/main-job.md).
- classification (`fashion-cls`): one object of 48-80 px anywhere on a 128 px scene; 10 classes. Seen whole at a
  32 px glimpse the object spans 12-20 px, so zooming in matters. With 20-36 px objects even the passive teacher
  at 112 px read 14.5 % top-1 from its CLS (chance 10 %): the task could show nothing. At 48-80 px it reads 47 %
  at 112 px, 25 % at 56 px and 19 % at 28 px (1,024 training scenes, 300 probe steps).

Everything is drawn from seeded torch generators, so a config rebuilds the same tensors, and the build is
cached as safetensors under `<cache>/benchmarks/` (cache: $SACCADE_CACHE_DIR, else ~/.cache/saccade).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from saccade._checks import positive_int
from saccade._io import atomic_write, cache_dir
from saccade.evaluate.datasets import SceneTensors
from saccade.evaluate.sources import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    Backgrounds,
    load_backgrounds,
    load_fashion_mnist,
)

__all__ = [
    "BENCHMARKS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "Benchmark",
    "BenchmarkConfig",
    "build_benchmark",
    "load_backgrounds",
    "load_fashion_mnist",
    "paste_object",
]

CACHE_FORMAT_VERSION = 2  # 2: default backgrounds split by the bundled catalogue; each scene's photo recorded

BenchmarkTask = Literal["segmentation", "classification"]


def _pair(name: str, value: Sequence[Any], kind: type) -> tuple[Any, Any]:
    if not isinstance(value, Sequence) or len(value) != 2 or not all(isinstance(v, kind | int) for v in value):
        raise ValueError(f"BenchmarkConfig.{name} must be a pair (low, high), got {value!r}")
    low, high = value
    if not 0 < low <= high:
        raise ValueError(f"BenchmarkConfig.{name} must satisfy 0 < low <= high, got {value!r}")
    return low, high


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """How to build one benchmark (both splits)."""

    task: BenchmarkTask
    """'segmentation' (several objects, label maps) or 'classification' (one object, a class id)."""
    scene_px: int = 128
    """Scene side in pixels."""
    num_train: int = 2048
    """Training scenes."""
    num_test: int = 512
    """Test scenes."""
    num_objects: tuple[int, int] = (2, 4)
    """Objects per scene, drawn uniformly in [low, high] (classification needs (1, 1))."""
    object_px: tuple[int, int] = (48, 96)
    """Object side in pixels, drawn uniformly in [low, high]."""
    background_crop: tuple[float, float] = (0.3, 1.0)
    """Background crop side as a fraction of the photo's short side, uniform in [low, high]."""
    test_photo_every: int = 4
    """Every n-th photo of user-supplied backgrounds (sorted by name; n-1, 2n-1, ...) is held out for the test
    split; the default backgrounds are split by the bundled photo catalogue."""
    mask_threshold: int = 24
    """An object pixel is opaque (and labelled) where its resized intensity (0-255) is >= this."""
    seed: int = 0
    """Seed of everything random."""

    def __post_init__(self) -> None:
        if self.task not in ("segmentation", "classification"):
            raise ValueError(f"BenchmarkConfig.task must be 'segmentation' or 'classification', got {self.task!r}")
        for name in ("scene_px", "num_train", "num_test", "test_photo_every", "mask_threshold"):
            positive_int(f"BenchmarkConfig.{name}", getattr(self, name))
        if self.mask_threshold > 255:
            raise ValueError(f"BenchmarkConfig.mask_threshold must be in [1, 255], got {self.mask_threshold}")
        object.__setattr__(self, "num_objects", _pair("num_objects", self.num_objects, int))
        object.__setattr__(self, "object_px", _pair("object_px", self.object_px, int))
        object.__setattr__(self, "background_crop", _pair("background_crop", self.background_crop, float))
        if self.object_px[1] > self.scene_px:
            raise ValueError(f"BenchmarkConfig.object_px {self.object_px} must fit in scene_px={self.scene_px}")
        if self.background_crop[1] > 1:
            raise ValueError(f"BenchmarkConfig.background_crop must be <= 1, got {self.background_crop}")
        if self.task == "classification" and self.num_objects != (1, 1):
            raise ValueError(f"BenchmarkConfig.num_objects must be (1, 1) for classification, got {self.num_objects}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"BenchmarkConfig.seed must be an int, got {self.seed!r}")

    @property
    def num_classes(self) -> int:
        return len(FASHION_MNIST_CLASSES) + (1 if self.task == "segmentation" else 0)

    @property
    def class_names(self) -> tuple[str, ...]:
        return (("background",) if self.task == "segmentation" else ()) + FASHION_MNIST_CLASSES

    def to_dict(self) -> dict[str, Any]:
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BenchmarkConfig fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})


BENCHMARKS: dict[str, BenchmarkConfig] = {
    "fashion-seg": BenchmarkConfig(task="segmentation"),
    "fashion-cls": BenchmarkConfig(task="classification", num_objects=(1, 1), object_px=(48, 80)),
}


@dataclass(frozen=True)
class Benchmark:
    """A built benchmark: both splits in memory, and where every object went."""

    name: str
    config: BenchmarkConfig
    train: SceneTensors
    test: SceneTensors
    train_placements: Tensor  # [K, 6] int64: scene, label, top, left, size_px, Fashion-MNIST index
    test_placements: Tensor  # [K', 6]
    train_backgrounds: Tensor  # [N] int64: index into `backgrounds` of the photo behind each train scene
    test_backgrounds: Tensor  # [N'] int64
    backgrounds: tuple[str, ...]  # names of the background photos (catalogue image ids, file names or tensor_<i>)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names


# -- building ----------------------------------------------------------------------------------------


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform int in [low, high] inclusive."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _background(photo: Tensor, config: BenchmarkConfig, generator: torch.Generator) -> Tensor:
    """[3, S, S] float in [0, 1]: a random square crop of photo [3, H, W] uint8, resized, maybe flipped."""
    _, height, width = photo.shape
    side = max(1, round(min(height, width) * _uniform(generator, *config.background_crop)))
    top, left = _randint(generator, 0, height - side), _randint(generator, 0, width - side)
    crop = photo[:, top : top + side, left : left + side].float()[None] / 255.0  # [1, 3, side, side]
    S = config.scene_px
    scene = F.interpolate(crop, size=(S, S), mode="bilinear", align_corners=False, antialias=True)[0]
    return scene.flip(-1) if _uniform(generator, 0.0, 1.0) < 0.5 else scene


def paste_object(
    scene: Tensor,
    label: Tensor,
    item: Tensor,
    *,
    class_id: int,
    top: int,
    left: int,
    size_px: int,
    tint: Tensor,
    mask_threshold: int = 24,
) -> Tensor:
    """Paste a greyscale item [h, w] uint8 at (top, left) as a size_px square; returns its silhouette [size, size].

    scene [3, H, W] float in [0, 1] and label [H, W] are written in place, on exactly the silhouette pixels
    (resized intensity >= mask_threshold): colour tint [3] x (0.3 + 0.7 x intensity), label class_id.
    """
    resized = F.interpolate(item.float()[None, None], size=(size_px, size_px), mode="bilinear", align_corners=False)
    intensity = resized[0, 0].clamp(0, 255)  # [size, size], 0-255
    mask = intensity >= mask_threshold  # [size, size]
    colour = tint.reshape(3, 1, 1) * (0.3 + 0.7 * intensity / 255.0)  # [3, size, size]
    region = scene[:, top : top + size_px, left : left + size_px]
    if region.shape[1:] != (size_px, size_px):
        raise ValueError(f"an object of {size_px} px at ({top}, {left}) leaves the {tuple(scene.shape[1:])} scene")
    region[:, mask] = colour[:, mask]
    label[top : top + size_px, left : left + size_px][mask] = class_id
    return mask


def _build_split(
    config: BenchmarkConfig,
    *,
    num_scenes: int,
    items: Tensor,
    item_labels: Tensor,
    photos: Sequence[Tensor],
    pool: Sequence[int],
    generator: torch.Generator,
    description: str,
    progress: bool = True,
) -> dict[str, Tensor]:
    """images [N, 3, S, S] uint8, targets [N, S, S] uint8 or [N] int64, placements [K, 6] int64 and backgrounds
    [N] int64 (the index of each scene's photo, drawn from `pool`)."""
    S = config.scene_px
    segmentation = config.task == "segmentation"
    offset = 1 if segmentation else 0  # label 0 is the background in segmentation
    images = torch.empty(num_scenes, 3, S, S, dtype=torch.uint8)
    maps = torch.zeros(num_scenes, S, S, dtype=torch.uint8)
    backgrounds = torch.empty(num_scenes, dtype=torch.int64)
    placements = []
    for index in tqdm(range(num_scenes), desc=description, leave=False, disable=not progress or num_scenes < 512):
        backgrounds[index] = pool[_randint(generator, 0, len(pool) - 1)]
        scene = _background(photos[int(backgrounds[index])], config, generator)  # [3, S, S]
        label = maps[index]
        for _ in range(_randint(generator, *config.num_objects)):
            item_index = _randint(generator, 0, len(items) - 1)
            class_id = int(item_labels[item_index]) + offset
            size = _randint(generator, *config.object_px)
            top, left = _randint(generator, 0, S - size), _randint(generator, 0, S - size)
            tint = torch.empty(3).uniform_(0.35, 1.0, generator=generator)
            paste_object(
                scene,
                label,
                items[item_index],
                class_id=class_id,
                top=top,
                left=left,
                size_px=size,
                tint=tint,
                mask_threshold=config.mask_threshold,
            )
            placements.append((index, class_id, top, left, size, item_index))
        images[index] = (scene * 255).round().clamp(0, 255).to(torch.uint8)
    placement_tensor = torch.tensor(placements, dtype=torch.int64).reshape(-1, 6)
    targets = maps if segmentation else placement_tensor[:, 1].clone()
    return {"images": images, "targets": targets, "placements": placement_tensor, "backgrounds": backgrounds}


def _fingerprint(config: BenchmarkConfig, backgrounds: Backgrounds, items: dict[str, Tensor]) -> str:
    """Hash of everything a build depends on: config, each split's photos (names and pixels), the items."""
    digest = hashlib.sha256(json.dumps({"v": CACHE_FORMAT_VERSION, **config.to_dict()}, sort_keys=True).encode())
    for split, pool in (("train", backgrounds.train), ("test", backgrounds.test)):
        for index in pool:
            digest.update(f"{split}:{backgrounds.names[index]}".encode())
            digest.update(backgrounds.photos[index].contiguous().numpy().tobytes())
    for key in sorted(items):
        digest.update(items[key].contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_benchmark(
    config: BenchmarkConfig | str,
    *,
    fashion_root: str | os.PathLike | None = None,
    backgrounds: Backgrounds | str | os.PathLike | Tensor | Sequence[Tensor] | None = None,
    debian_root: str | os.PathLike = "/",
    cache: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> Benchmark:
    """Build (or load from the cache) a benchmark: a BENCHMARKS name or a BenchmarkConfig.

    Args:
        fashion_root: folder of the Fashion-MNIST idx.gz files (default: the Debian package's).
        backgrounds: Backgrounds, photo folder or tensor(s), see `load_backgrounds` (default: the bundled
            catalogue's photos).
        debian_root: where the default backgrounds' Debian package is unpacked (see saccade.data.bundled).
        cache: cache root (see `cache_dir`); the build goes to `<cache>/benchmarks/<name>-<fingerprint>.safetensors`.
        use_cache: read and write the cache; False always rebuilds and writes nothing.
        progress: show a progress bar while building a large split.
    """
    if isinstance(config, str):
        if config not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {config!r}; known: {sorted(BENCHMARKS)}")
        name, config = config, BENCHMARKS[config]
    else:
        name = "fashion-seg" if config.task == "segmentation" else "fashion-cls"
    photo_split = load_backgrounds(backgrounds, test_photo_every=config.test_photo_every, debian_root=debian_root)
    train_items, train_labels = load_fashion_mnist("train", fashion_root)
    test_items, test_labels = load_fashion_mnist("test", fashion_root)
    sources = {"train_items": train_items, "train_labels": train_labels, "test_items": test_items}
    key = _fingerprint(config, photo_split, sources)
    path = cache_dir(cache) / "benchmarks" / f"{name}-{key}.safetensors"
    if use_cache and path.is_file():
        return _from_tensors(name, config, load_file(str(path)), photo_split.names)

    tensors: dict[str, Tensor] = {}
    for split, num, items, labels, pool, offset in (
        ("train", config.num_train, train_items, train_labels, photo_split.train, 0),
        ("test", config.num_test, test_items, test_labels, photo_split.test, 1),
    ):
        generator = torch.Generator().manual_seed(2 * config.seed + offset)
        built = _build_split(
            config,
            num_scenes=num,
            items=items,
            item_labels=labels,
            photos=photo_split.photos,
            pool=pool,
            generator=generator,
            description=f"{name} {split}",
            progress=progress,
        )
        tensors |= {f"{split}_{field}": value for field, value in built.items()}
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"config": json.dumps(config.to_dict()), "backgrounds": json.dumps(photo_split.names)}
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return _from_tensors(name, config, tensors, photo_split.names)


def _from_tensors(name: str, config: BenchmarkConfig, tensors: dict[str, Tensor], photos: tuple[str, ...]) -> Benchmark:
    def split(prefix: str) -> SceneTensors:
        return SceneTensors(
            tensors[f"{prefix}_images"],
            tensors[f"{prefix}_targets"],
            num_classes=config.num_classes,
            class_names=config.class_names,
        )

    return Benchmark(
        name=name,
        config=config,
        train=split("train"),
        test=split("test"),
        train_placements=tensors["train_placements"],
        test_placements=tensors["test_placements"],
        train_backgrounds=tensors["train_backgrounds"],
        test_backgrounds=tensors["test_backgrounds"],
        backgrounds=photos,
    )
