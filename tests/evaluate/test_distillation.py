"""Distillation evaluation: curves per policy and glimpse, the input-matched teacher baseline, the report."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from saccade.episode import iter_rollout
from saccade.episode_config import EpisodeConfig
from saccade.evaluate.distillation import distillation_curves, input_matched_teacher, markdown_report
from saccade.model.config import preset
from saccade.model.pretraining import CanViTForPretraining
from saccade.model.readout import Standardizer
from saccade.policies import make_policy
from saccade.pretrain.data import collate, synthetic_dataset
from saccade.pretrain.validate import COSINE_METRICS, cosine_curves, cosines_by_policy
from tests.evaluate.fakes import TinyTeacher


def _model_and_batch(dim: int = 16):
    torch.manual_seed(0)
    model = CanViTForPretraining(preset("canvit-tiny"), teacher_dim=dim, teacher_patch_grid=4).eval()
    data = synthetic_dataset(6, scene_px=64, grid=4, dim=dim)
    batch = collate(data, list(range(6)))
    model.teacher_patch_standardizer.fit(batch.patches)
    model.teacher_cls_standardizer.fit(batch.cls)
    return model, batch


def _episode(num_glimpses: int) -> EpisodeConfig:
    return EpisodeConfig(scene_px=64, glimpse_px=16, canvas_grid=4, num_glimpses=num_glimpses)


def cosines(model, batch, policy: str, **kwargs) -> dict[str, list[float]]:
    return cosines_by_policy(cosine_curves(model, batch, policies=(policy,), **kwargs))[policy]


def test_curves_average_policy_seeds_and_keep_deterministic_policies_single():
    model, batch = _model_and_batch()
    episode = _episode(3)
    curves = distillation_curves(
        model, batch, policies=("random", "repeated_full_scene"), policy_seeds=(0, 1), episode=episode
    )
    by_name = {(c.policy, c.metric): c for c in curves}
    assert [c.num_runs for c in curves] == [2, 2, 1, 1]
    runs = [cosines(model, batch, "random", seeds=(s,), episode=episode) for s in (0, 1)]
    expected = [(a + b) / 2 for a, b in zip(runs[0]["patch"], runs[1]["patch"], strict=True)]
    random_patch = by_name["random", COSINE_METRICS["patch"]]
    torch.testing.assert_close(random_patch.mean, torch.tensor(expected, dtype=torch.float64))
    assert random_patch.scenes.shape == (2, 6, 3)  # [R, N, T] per-scene cosines
    assert bool(((random_patch.low <= random_patch.mean) & (random_patch.mean <= random_patch.high)).all())
    single = cosines(model, batch, "repeated_full_scene", seeds=(0,), episode=episode)
    assert cosines_by_policy(curves)["repeated_full_scene"] == single
    assert all(c.num_glimpses == 3 for c in curves)


def test_a_common_space_maps_predictions_through_raw_features():
    model, batch = _model_and_batch()
    kwargs = {"episode": _episode(2)}
    policy = "repeated_full_scene"
    own = (model.teacher_patch_standardizer, model.teacher_cls_standardizer)
    same, default = cosines(model, batch, policy, space=own, **kwargs), cosines(model, batch, policy, **kwargs)
    for target in ("patch", "cls"):
        torch.testing.assert_close(torch.tensor(same[target]), torch.tensor(default[target]), atol=1e-6, rtol=0)
    # another space: statistics of half the batch, shifted; the score is the cosine after mapping by hand
    patch_space = Standardizer(16, 16).fit(batch.patches[:3] + 0.5)
    cls_space = Standardizer(1, 16).fit(batch.cls[:3] - 0.5)
    scores = cosines(model, batch, policy, space=(patch_space, cls_space), **kwargs)
    rollout_policy = make_policy("repeated_full_scene", batch_size=6)
    *_, last = iter_rollout(model, batch.scenes, rollout_policy, num_glimpses=2, glimpse_px=16, canvas_grid=4)
    with torch.no_grad():
        predicted = patch_space(own[0].destandardize(model.predict_teacher_patches(last.state)))
    expected = F.cosine_similarity(predicted, patch_space(batch.patches), dim=-1).mean().item()
    assert abs(scores["patch"][-1] - expected) < 1e-6
    assert abs(scores["patch"][-1] - cosines(model, batch, policy, **kwargs)["patch"][-1]) > 1e-3


def test_input_matched_teacher_scores_the_teacher_on_the_first_glimpse():
    teacher = TinyTeacher(patch_size=8, dim=16)
    model, batch = _model_and_batch()
    # targets = the teacher's own features of the glimpse pixels, upsampled: the baseline must score ~1
    from saccade.geometry import Viewpoint
    from saccade.glimpse import sample_glimpse

    full = Viewpoint(centers=torch.zeros(6, 2), scales=torch.ones(6))
    pixels = F.interpolate(sample_glimpse(batch.scenes, full, 16), size=(16, 16), mode="bilinear", antialias=True)
    output = teacher(pixels)
    up = F.interpolate(output.patches.permute(0, 3, 1, 2), size=(4, 4), mode="bilinear").flatten(2).transpose(1, 2)
    perfect = type(batch)(scenes=batch.scenes, patches=up.detach(), cls=output.cls.detach())
    scores = input_matched_teacher(model, perfect, teacher, glimpse_px=16)
    assert scores["patch"] > 0.999 and scores["cls"] > 0.999
    assert input_matched_teacher(model, batch, teacher, glimpse_px=16)["patch"] < 0.9  # unrelated targets


def test_report_has_a_row_per_policy_and_target_with_seed_ranges():
    curves = {"coarse_to_fine": {"patch": [0.1, 0.2], "cls": [0.3, 0.4]}}
    result = {
        "data": {
            "anchor-heldout": {
                "models": [{}, {}],
                "mean": curves,
                "low": curves,
                "high": {"coarse_to_fine": {"patch": [0.15, 0.25], "cls": [0.3, 0.4]}},
                "input_matched_teacher": {"patch": 0.238, "cls": 0.241},
            }
        }
    }
    report = markdown_report(result)
    assert "| C2F | patch | 0.100 | 0.200 | 0.100-0.150 |" in report
    assert "input-matched teacher 0.238 patch / 0.241 CLS" in report


def test_cli_reports_mean_and_range_over_models(tmp_path, monkeypatch):
    import json

    import saccade.data.distill_sets as distill_sets
    import saccade.teachers.dinov2_bundled as bundled
    from saccade import save_pretrained
    from saccade.cli import main

    model, _ = _model_and_batch()
    save_pretrained(model, tmp_path / "model")
    monkeypatch.setattr(distill_sets, "distillation_crops", lambda name, **_: synthetic_dataset(4, scene_px=64, dim=16))
    monkeypatch.setattr(bundled, "load_bundled_dinov2", lambda: TinyTeacher(patch_size=8, dim=16))
    out = tmp_path / "eval"
    args = ["evaluate-distillation", "--model", str(tmp_path / "model"), str(tmp_path / "model")]
    args += ["--data", "anchor-heldout", "--episode.glimpse-px", "16", "--episode.canvas-grid", "4"]
    args += ["--episode.num-glimpses", "2"]
    assert main([*args, "--seed", "0", "--output-dir", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["provenance"]["seeds"] == {"policy_seeds": [0]}
    result = json.loads((out / "results.json").read_text())["data"]["anchor-heldout"]
    assert len(result["models"]) == 2
    assert result["low"] == result["high"] == result["mean"]  # the same model twice
    assert set(result["mean"]) == {
        "coarse_to_fine",
        "fine_to_coarse",
        "random",
        "full_then_random",
        "repeated_full_scene",
    }
    assert "| C2F | patch |" in (out / "results.md").read_text()
    common = tmp_path / "common"
    assert main([*args, "--seed", "0", "--statistics", "anchor", "--output-dir", str(common)]) == 0
    assert json.loads((common / "results.json").read_text())["statistics"] == "anchor"
    assert "scored in the statistics of anchor" in (common / "results.md").read_text()
