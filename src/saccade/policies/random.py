"""Random and full-scene glimpse policies: R-IID, F-IID and RFS (paper §5, App. C; spec §2).

R-IID draws every step, independently per batch item, a scale from p(s) ∝ 1 - s on [s_min, s_max] and a
centre uniform over the positions where the crop stays inside the scene (the "safe box" [-L, L]^2 with
L = 1 - s). Sampling L = sqrt(L_min^2 + u (L_max^2 - L_min^2)), u ~ U(0, 1), makes the safe-box area
(2L)^2 uniform, which is what weights small scales by their larger number of valid centres.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import torch

from saccade.geometry import Viewpoint
from saccade.policies._common import check_batch_size, check_generator, check_step, draw_device, output_device

if TYPE_CHECKING:
    from saccade.model.canvit import RecurrentState

__all__ = ["FullThenRandom", "RandomPolicy", "RepeatedFullScene", "check_scale_range", "sample_safe_box"]


def _check_scale(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must lie in (0, 1], got {value}")
    return float(value)


def check_scale_range(s_min: object, s_max: object) -> tuple[float, float]:
    """Validate 0 < s_min <= s_max <= 1 and return them as floats."""
    low, high = _check_scale("s_min", s_min), _check_scale("s_max", s_max)
    if low > high:
        raise ValueError(f"s_min must be <= s_max, got s_min={low} > s_max={high}")
    return low, high


def sample_safe_box(
    batch_size: int,
    *,
    s_min: float = 0.05,
    s_max: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Viewpoint:
    """One R-IID viewpoint per item: draws rand(B) (scale) then rand(B, 2) (centre) from `generator`."""
    out = output_device(generator, device)
    where = draw_device(generator, out)
    u = torch.rand(batch_size, generator=generator, device=where)  # [B]
    v = torch.rand(batch_size, 2, generator=generator, device=where)  # [B, 2] (y, x)
    half_min, half_max = 1.0 - s_max, 1.0 - s_min  # L_min, L_max: safe-box half sides
    half_side = torch.sqrt(half_min**2 + u * (half_max**2 - half_min**2))  # [B]
    centers = (2.0 * v - 1.0) * half_side[:, None]  # [B, 2] uniform in [-L, L]^2
    return Viewpoint(centers=centers.to(out), scales=(1.0 - half_side).to(out))


class RandomPolicy:
    """R-IID `random`: an independent safe-box viewpoint per step and per batch item; no length limit."""

    name = "random"
    num_steps: int | None = None

    def __init__(
        self,
        batch_size: int,
        *,
        s_min: float = 0.05,
        s_max: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.s_min, self.s_max = check_scale_range(s_min, s_max)
        self.generator = check_generator(generator)
        self.device = output_device(generator, device)
        self.reset()

    def reset(self) -> None:
        """Start a new episode (the generator stream continues; reseed it to replay an episode)."""
        self._next_t = 0

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        """Viewpoint for step t (steps must come in order 0, 1, 2, ...)."""
        check_step(t, name=self.name, num_steps=self.num_steps, expected=self._next_t)
        self._next_t += 1
        return self._draw()

    def _draw(self) -> Viewpoint:
        return sample_safe_box(
            self.batch_size, s_min=self.s_min, s_max=self.s_max, generator=self.generator, device=self.device
        )


@final
class FullThenRandom(RandomPolicy):
    """F-IID `full_then_random`: the full scene at t = 0, then R-IID; no length limit."""

    name = "full_then_random"

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        """Viewpoint for step t (steps must come in order 0, 1, 2, ...)."""
        check_step(t, name=self.name, num_steps=self.num_steps, expected=self._next_t)
        self._next_t += 1
        return Viewpoint.full_scene(self.batch_size, device=self.device) if t == 0 else self._draw()


class RepeatedFullScene:
    """RFS `repeated_full_scene`: (0, 0, 1) at every step, the recurrence-only control; deterministic."""

    name = "repeated_full_scene"
    num_steps: int | None = None

    def __init__(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        # `generator` is accepted for a uniform factory signature and unused: nothing is random here.
        self.batch_size = check_batch_size(batch_size)
        self.device = output_device(check_generator(generator), device)

    def reset(self) -> None:
        """Nothing to reset."""

    def step(self, t: int, state: RecurrentState | None = None) -> Viewpoint:
        check_step(t, name=self.name, num_steps=self.num_steps)
        return Viewpoint.full_scene(self.batch_size, device=self.device)
