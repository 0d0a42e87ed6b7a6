"""Frozen teachers for dense latent distillation (paper §5): images -> CLS [B, D] and patches [B, h, w, D].

`TEACHERS` names the loaders: `dinov2-s14-imgfocus` (the offline default, `dinov2_bundled.py`) and `hf`
(a local Hugging Face DINOv2 / DINOv3 folder, `hf.py`). Any other torch module becomes a teacher through
`WrappedTeacher` (`wrapped.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from saccade.teachers.base import Teacher, TeacherOutput, check_images, split_tokens
from saccade.teachers.dinov2_bundled import load_bundled_dinov2
from saccade.teachers.hf import load_hf_teacher
from saccade.teachers.wrapped import WrappedTeacher

__all__ = [
    "TEACHERS",
    "Teacher",
    "TeacherName",
    "TeacherOutput",
    "WrappedTeacher",
    "check_images",
    "load_teacher",
    "split_tokens",
]

TeacherName = Literal["dinov2-s14-imgfocus", "hf"]

TEACHERS: dict[TeacherName, Callable[..., Teacher]] = {
    "dinov2-s14-imgfocus": load_bundled_dinov2,  # kwargs: cache, onnx_path
    "hf": load_hf_teacher,  # args: path; kwargs: name
}


def load_teacher(name: str, *args: object, **kwargs: object) -> Teacher:
    """`TEACHERS[name](*args, **kwargs)`, with an error listing the known names."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known teachers: {', '.join(sorted(TEACHERS))}")
    return TEACHERS[name](*args, **kwargs)  # type: ignore[index]
