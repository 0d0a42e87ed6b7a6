"""The Teacher contract over every implementation (tiny weights), the HF loader and the wrapper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from saccade.teachers import TEACHERS, Teacher, TeacherOutput, WrappedTeacher, load_teacher
from saccade.teachers.hf import load_hf_teacher
from tests.datasets.helpers import tiny_teacher

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_transformers = pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers (optional extra 'hf') not installed")


class TokensViT(nn.Module):
    """A stand-in user model returning [B, 1 + R + h*w, D] tokens."""

    def __init__(self, dim: int = 8, patch_size: int = 7, num_registers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.prefix = nn.Parameter(torch.randn(1, 1 + num_registers, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.embed(images).flatten(2).transpose(1, 2)  # [B, h*w, D]
        return torch.cat([self.prefix.expand(len(images), -1, -1), patches], dim=1)


def _save_hf(kind: str, folder: Path) -> nn.Module:
    import transformers

    common = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    if kind == "dinov2":
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common, patch_size=14, image_size=28))
    elif kind == "dinov2_with_registers":
        config = transformers.Dinov2WithRegistersConfig(**common, patch_size=14, image_size=28, num_register_tokens=4)
        model = transformers.Dinov2WithRegistersModel(config)
    else:
        config = transformers.DINOv3ViTConfig(**common, patch_size=16, image_size=32, num_register_tokens=4)
        model = transformers.DINOv3ViTModel(config)
    model.eval().save_pretrained(folder)
    return model


def _teachers(tmp_path: Path) -> dict[str, Teacher]:
    teachers: dict[str, Teacher] = {
        "bundled-architecture": tiny_teacher(),
        "wrapped": WrappedTeacher(TokensViT(), patch_size=7, dim=8, num_registers=2),
    }
    if HAS_TRANSFORMERS:
        _save_hf("dinov3_vit", tmp_path / "dinov3")
        teachers["hf-dinov3"] = load_teacher("hf", tmp_path / "dinov3")
    return teachers


@pytest.mark.parametrize("kind", ["bundled-architecture", "wrapped", "hf-dinov3"])
def test_contract(kind, tmp_path, generator):
    teachers = _teachers(tmp_path)
    if kind not in teachers:
        pytest.skip("transformers (optional extra 'hf') not installed")
    teacher = teachers[kind]
    assert isinstance(teacher, Teacher) and isinstance(teacher.name, str)
    P, D = teacher.patch_size, teacher.dim
    images = torch.randn(3, 3, 2 * P, 3 * P, generator=generator)
    out = teacher(images)
    assert isinstance(out, TeacherOutput)
    assert out.cls.shape == (3, D) and out.patches.shape == (3, 2, 3, D)
    assert not out.patches.requires_grad
    single = teacher(images[1:2])  # batch independence
    torch.testing.assert_close(single.patches, out.patches[1:2], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=rf"multiples of the patch size {P}, got {2 * P + 1}x{3 * P} px"):
        teacher(torch.randn(1, 3, 2 * P + 1, 3 * P))
    with pytest.raises(ValueError, match=r"must be \[B, 3, H, W\], got \(1, 1, "):
        teacher(torch.randn(1, 1, P, P))
    with pytest.raises(TypeError, match="float tensor"):
        teacher(torch.zeros(1, 3, P, P, dtype=torch.uint8))


@needs_transformers
@pytest.mark.parametrize("kind", ["dinov2", "dinov2_with_registers", "dinov3_vit"])
def test_hf_teacher_drops_registers_and_matches_last_hidden_state(kind, tmp_path, generator):
    model = _save_hf(kind, tmp_path / kind)
    teacher = load_hf_teacher(tmp_path / kind)
    R = 0 if kind == "dinov2" else 4
    assert teacher.num_registers == R and teacher.name == f"hf:{kind}"
    P = teacher.patch_size
    images = torch.randn(2, 3, 2 * P, 2 * P, generator=generator)
    with torch.no_grad():
        tokens = model(pixel_values=images).last_hidden_state  # [B, 1 + R + 4, D]
    out = teacher(images)
    torch.testing.assert_close(out.cls, tokens[:, 0])
    torch.testing.assert_close(out.patches, tokens[:, 1 + R :].reshape(2, 2, 2, 16))


def test_hf_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is not a Hugging Face model folder"):
        load_hf_teacher(tmp_path)
    if not HAS_TRANSFORMERS:
        return
    import transformers

    transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=16,
        )
    ).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match="got model_type='vit'"):
        load_hf_teacher(tmp_path / "vit")


def test_wrapped_teacher_checks_outputs(generator):
    images = torch.randn(2, 3, 14, 14, generator=generator)
    with pytest.raises(ValueError, match=r"expected teacher tokens \[B, 7, D\] \(1 cls \+ 2 registers \+ 2x2"):
        WrappedTeacher(TokensViT(num_registers=1), patch_size=7, dim=8, num_registers=2)(images)
    with pytest.raises(ValueError, match=r"cls \[2, 9\] and patches \[2, 2, 2, 9\], got \(2, 8\)"):
        WrappedTeacher(TokensViT(), patch_size=7, dim=9, num_registers=2)(images)
    with pytest.raises(TypeError, match=r"wraps a torch\.nn\.Module, got function"):
        WrappedTeacher(lambda x: x, patch_size=7, dim=8)  # type: ignore[arg-type]

    class Direct(nn.Module):
        def forward(self, x):
            return TeacherOutput(cls=x.new_zeros(len(x), 8), patches=x.new_zeros(len(x), 2, 2, 8))

    assert WrappedTeacher(Direct(), patch_size=7, dim=8)(images).patches.shape == (2, 2, 2, 8)


def test_registry():
    assert set(TEACHERS) == {"dinov2-s14-imgfocus", "hf"}
    with pytest.raises(ValueError, match="unknown teacher 'dinov3'; known teachers: dinov2-s14-imgfocus, hf"):
        load_teacher("dinov3")
