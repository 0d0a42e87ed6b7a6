"""GPU check of pretraining (issue 22): parity on the device, step speed and memory, NCCL data parallelism.

Runs on the torch already installed (no virtual environment, no network), from the repository root:

    PYTHONPATH=src python scripts/gpu_check.py [--baseline DIR] [--output gpu_check.json]     # or: make gpu-check
    PYTHONPATH=src python scripts/gpu_check.py --device cpu                                 # smoke run, tiny sizes

On CUDA (at most ~8 minutes on one GPU; every section has a time guard):
  1. parity: the reference episode (tests/data/reference) replayed on the device, every recorded output, and one
     TBPTT step's loss and gradients, float32 with TF32 off, against the authors' recorded values;
  2. training steps at the paper's geometry (CanViT-B, batch 64, 128 px glimpses, 32 x 32 canvas, 2 rollouts of
     2 glimpses, AdamW): float32 and bfloat16 eager, bfloat16 compiled, bfloat16 with activation checkpointing:
     glimpses per second, peak memory, compile time, and whether a step synchronises with the host
     (torch.cuda.set_sync_debug_mode("error") around one non-logging step);
  3. with --baseline (a folder holding the authors' canvit_pytorch and canvit_core packages, unpacked, e.g. by
     `pip install --no-deps --target DIR canvit-pytorch==0.2.1 canvit-core==0.2.1` on a machine with network):
     saccade bench's pretraining workload for both implementations from the same weights on the same GPU;
  4. with two or more GPUs: `saccade pretrain`'s trainer on 2 ranks with NCCL against 1 rank (same global batch).
Writes one JSON (every section records its error instead of stopping the others) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # saccade, and tests/ for the reference fixtures

from saccade.episode_config import EpisodeConfig  # noqa: E402
from saccade.pretrain.config import PretrainConfig  # noqa: E402
from saccade.pretrain.data import DistillationBatch, synthetic_dataset  # noqa: E402
from saccade.pretrain.state import build_model  # noqa: E402
from saccade.pretrain.step import to_device, training_step  # noqa: E402

# the paper's geometry on CUDA; tiny sizes for the CPU smoke run
GEOMETRY = {
    "cuda": dict(model="canvit-b16", batch_size=64, glimpse_px=128, canvas_grid=32, teacher_dim=768, steps=6),
    "cpu": dict(model="canvit-tiny", batch_size=4, glimpse_px=32, canvas_grid=4, teacher_dim=16, steps=2),
}
VARIANTS = {  # name: PretrainConfig changes
    "float32": dict(precision="float32"),
    "bfloat16": dict(precision="bfloat16"),
    "bfloat16_compiled": dict(precision="bfloat16", compile=True),
    "bfloat16_checkpoint_blocks": dict(precision="bfloat16", checkpoint_blocks=True),
    "float32_compiled": dict(precision="float32", compile=True),
}
# the CPU smoke run compiles once (float32: Inductor's CPU bfloat16 kernels take longer to build)
SMOKE_VARIANTS = ("float32", "bfloat16", "float32_compiled", "bfloat16_checkpoint_blocks")
GPU_VARIANTS = ("float32", "bfloat16", "bfloat16_compiled", "bfloat16_checkpoint_blocks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the full check) or cpu (tiny smoke run)")
    parser.add_argument("--baseline", type=Path, help="folder with the authors' canvit_pytorch and canvit_core")
    parser.add_argument("--output", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="sections after this are skipped")
    parser.add_argument("--dp-worker", type=Path, help=argparse.SUPPRESS)  # one rank of section 4
    args = parser.parse_args()
    if args.dp_worker is not None:
        return _data_parallel_worker(args.dp_worker, args.device)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for the smoke run", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.budget_minutes * 60
    report: dict = {"environment": _environment(device)}
    sections = {
        "parity": lambda: _parity(device),
        "training_steps": lambda: _training_steps(device, deadline),
        "baseline": lambda: _baseline(device, args.baseline),
        "data_parallel": lambda: _data_parallel(device),
    }
    for name, section in sections.items():
        report[name] = _guarded(section, deadline)
    report["seconds"] = round(time.monotonic() - deadline + args.budget_minutes * 60, 1)
    report["ok"] = all(_section_ok(value) for key, value in report.items() if key in sections)
    args.output.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def _guarded(section, deadline: float) -> dict:
    if time.monotonic() > deadline:
        return {"skipped": "time budget spent"}
    try:
        return section()
    except Exception as error:  # one failing section must not lose the others' figures
        return {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=6)}


def _section_ok(value: dict) -> bool:
    return "error" not in value and value.get("ok", True)


def _environment(device: torch.device) -> dict:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "commit": _git_commit(),
    }
    if device.type == "cuda":
        info |= {
            "gpu": torch.cuda.get_device_name(device),
            "gpu_count": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
            "nccl": _nccl_version(),
        }
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def _nccl_version() -> str | None:
    if not torch.distributed.is_nccl_available():
        return None
    version = torch.cuda.nccl.version()
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# -- 1. parity ---------------------------------------------------------------------------------------


def _parity(device: torch.device) -> dict:
    """Max |difference| of every recorded quantity of the reference episode and training step, on `device`."""
    from safetensors.torch import load_file
    from tests.conftest import REFERENCE
    from tests.model.test_reference_parity import load_reference_model, replay

    names = ("inputs", "outputs", "training")
    fixtures = {name: load_file(REFERENCE / f"{name}.safetensors", device=str(device)) for name in names}
    with _no_tf32():
        model = load_reference_model().to(device)
        record = replay(model, fixtures["inputs"])
        episode = {key: _max_diff(record[key], value) for key, value in fixtures["outputs"].items()}
        training = _reference_training_step(model, fixtures["inputs"], fixtures["training"])
    worst_episode = max(episode.values())
    worst_grad = max(value for key, value in training.items() if key.startswith("grad."))
    return {
        "episode_max_abs_diff": worst_episode,
        "training_loss_abs_diff": training["loss"],
        "training_grad_max_rel_diff": worst_grad,
        "episode_per_output": episode,
        "ok": worst_episode <= 1e-4 and training["loss"] <= 1e-4 and worst_grad <= 1e-3,
        "tolerances": "episode 1e-4 abs, loss 1e-4 abs, gradients 1e-3 relative to each gradient's max |value|",
    }


def _reference_training_step(model, inputs, training) -> dict[str, float]:
    """The fixture's TBPTT step (tests/model/test_reference_parity.py) on the model's device."""
    import torch.nn.functional as F
    from tests.conftest import REFERENCE

    from saccade import Viewpoint, sample_glimpse

    meta = json.loads((REFERENCE / "training.json").read_text())
    num_glimpses, chunk = meta["num_glimpses"], meta["tbptt_chunk_glimpses"]
    model.train()
    model.zero_grad(set_to_none=True)
    targets_patches = model.teacher_patch_standardizer(inputs["targets_raw_patches"])
    targets_cls = model.teacher_cls_standardizer(inputs["targets_raw_cls"])
    state = model.canvit.init_state(batch_size=2, canvas_grid=8)
    total = torch.zeros((), dtype=torch.float64, device=targets_cls.device)
    for start in range(0, num_glimpses, chunk):
        chunk_loss = torch.zeros((), device=targets_cls.device)
        for t in range(start, start + chunk):
            viewpoint = Viewpoint(centers=inputs["viewpoint_centers"][t], scales=inputs["viewpoint_scales"][t])
            state = model(sample_glimpse(inputs["scenes"], viewpoint, 32), state, viewpoint).state
            chunk_loss = chunk_loss + F.mse_loss(model.predict_teacher_patches(state), targets_patches)
            chunk_loss = chunk_loss + F.mse_loss(model.predict_teacher_cls(state), targets_cls)
        (chunk_loss / num_glimpses).backward()
        total += chunk_loss.detach().double() / num_glimpses
        state = state.detach()
    params = dict(model.named_parameters())
    diffs = {"loss": _max_diff(total, training["train.loss"].double().reshape(()))}
    for key, value in training.items():
        if key.startswith("grad."):
            grad = params[key.removeprefix("grad.")].grad
            diffs[key] = _max_diff(grad, value) / max(float(value.abs().max()), 1e-12)
    return diffs


def _max_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double().to(actual.device)).abs().max()) if expected.numel() else 0.0


@contextlib.contextmanager
def _no_tf32():
    """float32 matmuls in float32 (TF32 would round them to 10-bit mantissas)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# -- 2. training steps ---------------------------------------------------------------------------------


def _step_config(device: torch.device, **changes) -> PretrainConfig:
    geometry = GEOMETRY[device.type]
    model = geometry["model"] if device.type == "cuda" else _smoke_model()
    patch = 16
    episode = EpisodeConfig(
        scene_px=geometry["canvas_grid"] * patch,
        glimpse_px=geometry["glimpse_px"],
        canvas_grid=geometry["canvas_grid"],
        num_glimpses=2,
    )
    # T = 2 glimpses per rollout (continue_prob 0), the paper's 2 rollouts: 4 x batch glimpses per step
    return PretrainConfig(
        model=model,
        episode=episode,
        batch_size=geometry["batch_size"],
        chunk_size=2,
        continue_prob=0.0,
        standardizer_samples=2,
        **changes,
    )


def _smoke_model() -> str:
    """canvit-tiny with 2 of its 4 blocks, as a JSON model file: compiling it stays well within the smoke minute."""
    from saccade.model.config import preset

    settings = preset("canvit-tiny").to_dict()
    settings["backbone"]["num_blocks"] = 2
    settings["backbone_name"] = "vit-tiny-2-blocks"
    path = Path(tempfile.gettempdir()) / "saccade-gpu-check-smoke-model.json"
    path.write_text(json.dumps(settings))
    return str(path)


def _random_batch(config: PretrainConfig, teacher_dim: int, device: torch.device) -> DistillationBatch:
    generator = torch.Generator().manual_seed(0)
    B, G, S = config.batch_size, config.episode.canvas_grid, config.episode.scene_px
    batch = DistillationBatch(
        scenes=torch.randn(B, 3, S, S, generator=generator),
        patches=torch.randn(B, G * G, teacher_dim, generator=generator),
        cls=torch.randn(B, teacher_dim, generator=generator),
    )
    return to_device(batch, device)


def _training_steps(device: torch.device, deadline: float) -> dict:
    geometry = GEOMETRY[device.type]
    model = geometry["model"] if device.type == "cuda" else f"{geometry['model']} with 2 of its blocks"
    results = {"geometry": geometry | {"model": model}, "glimpses_per_step": None}
    names = SMOKE_VARIANTS if device.type == "cpu" else GPU_VARIANTS
    for name in names:
        changes = VARIANTS[name]
        if time.monotonic() > deadline:
            results[name] = {"skipped": "time budget spent"}
            continue
        results[name] = _guarded(lambda changes=changes: _time_variant(device, changes, geometry), deadline)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next variant's peak memory is its own
        results["glimpses_per_step"] = results[name].get("glimpses_per_step", results["glimpses_per_step"])
    results["ok"] = all(_section_ok(results[name]) for name in names)
    return results


def _time_variant(device: torch.device, changes: dict, geometry: dict) -> dict:
    """Warm-up steps (compilation included), then timed steps: glimpses/s, peak memory, host syncs of a step."""
    config = _step_config(device, **changes)
    model = build_model(config, geometry["teacher_dim"]).to(device).train()
    for standardizer in (model.teacher_patch_standardizer, model.teacher_cls_standardizer):
        standardizer.fitted.fill_(True)  # unit statistics: random targets are standardized already
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    batch = _random_batch(config, geometry["teacher_dim"], device)
    generator = torch.Generator().manual_seed(0)

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses = training_step(model, batch, config=config, generator=generator)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return losses

    started = time.perf_counter()
    losses = step()  # compiles, when compiled
    _synchronize(device)
    first_step_seconds = time.perf_counter() - started
    step()
    sync = _sync_check(step, device)
    _synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(geometry["steps"]):
        losses = step()
    _synchronize(device)
    seconds = (time.perf_counter() - started) / geometry["steps"]
    glimpses = losses.num_glimpses * len(config.rollouts) * config.batch_size
    result = {
        "seconds_per_step": round(seconds, 4),
        "glimpses_per_second": round(glimpses / seconds, 1),
        "glimpses_per_step": glimpses,
        "first_step_seconds": round(first_step_seconds, 2),
        "loss": losses.metrics().loss,
        "host_syncs_in_step": sync,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def _sync_check(step, device: torch.device) -> str:
    """'none' when a step runs under torch.cuda.set_sync_debug_mode('error'), else the error ('n/a' on CPU)."""
    if device.type != "cuda":
        return "n/a (cpu)"
    _synchronize(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return "none"
    except RuntimeError as error:
        return f"synchronises: {str(error).splitlines()[0]} at {_innermost_saccade_frame(error)}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _innermost_saccade_frame(error: BaseException) -> str:
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if "saccade" in frame.filename]
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno} {frames[-1].name}" if frames else "?"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- 3. the authors' implementation ---------------------------------------------------------------------


def _baseline(device: torch.device, folder: Path | None) -> dict:
    """saccade bench's pretraining workload (T = 2 glimpses, MSE, backward, AdamW) for both, same weights."""
    if folder is None:
        return {"skipped": "no --baseline folder"}
    from saccade.bench.config import PretrainCase
    from saccade.bench.implementations import AuthorsCanViT, SaccadeCanViT, import_baseline
    from saccade.bench.workloads import make_episode, save_shared_weights
    from saccade.model.config import preset

    geometry = GEOMETRY[device.type]
    case = PretrainCase(
        model=geometry["model"],
        batch_size=geometry["batch_size"],
        canvas_grid=geometry["canvas_grid"],
        glimpse_px=geometry["glimpse_px"],
        num_glimpses=2,
        teacher_dim=geometry["teacher_dim"],
    )
    implementations = {"saccade": SaccadeCanViT(), "canvit-pytorch": AuthorsCanViT(import_baseline(folder))}
    results: dict = {"workload": dataclasses.asdict(case)}
    for name, implementation in implementations.items():
        reason = implementation.unsupported(preset(case.model))  # also registers the backbone with the authors' code
        if reason:
            return {"error": f"{name} cannot run {case.model}: {reason}"}
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_shared_weights(case, Path(tmp), seed=0)
        episode = _episode_on(make_episode(case, seed=0), device)
        for precision in ("float32", "bfloat16"):
            for name, implementation in implementations.items():
                key = f"{name}_{precision}"
                results[key] = _guarded(
                    lambda i=implementation, p=precision: _time_workload(i, weights, case, episode, device, p),
                    float("inf"),
                )
    for precision in ("float32", "bfloat16"):
        ours, theirs = results[f"saccade_{precision}"], results[f"canvit-pytorch_{precision}"]
        if "glimpses_per_second" in ours and "glimpses_per_second" in theirs:
            results[f"speedup_{precision}"] = round(ours["glimpses_per_second"] / theirs["glimpses_per_second"], 3)
    results["ok"] = not any("error" in value for value in results.values() if isinstance(value, dict))
    return results


def _episode_on(episode, device: torch.device):
    return dataclasses.replace(
        episode, **{f.name: getattr(episode, f.name).to(device) for f in dataclasses.fields(episode)}
    )


def _time_workload(implementation, weights: Path, case, episode, device: torch.device, precision: str) -> dict:
    from saccade.bench.workloads import make_workload

    original_load = implementation.load
    implementation.load = lambda folder: original_load(folder).to(device)
    try:
        workload = make_workload(implementation, weights, case, episode)
    finally:
        implementation.load = original_load
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bfloat16" else contextlib.nullcontext()
    )
    with autocast:
        for _ in range(2):
            workload.run()
        _synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        steps = GEOMETRY[device.type]["steps"]
        started = time.perf_counter()
        for _ in range(steps):
            workload.run()
        _synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    result = {
        "seconds_per_step": round(seconds, 4),
        "glimpses_per_second": round(case.num_glimpses * case.batch_size / seconds, 1),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        torch.cuda.empty_cache()
    return result


# -- 4. data parallelism ----------------------------------------------------------------------------------


def _data_parallel(device: torch.device) -> dict:
    """The trainer on 2 ranks (NCCL on CUDA, gloo on CPU) against 1 rank: the same losses, step by step."""
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU: NCCL data parallelism needs 2"}
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (1, 2):
            folder = Path(tmp) / f"ranks{ranks}"
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
            command += [str(Path(__file__).resolve()), "--device", device.type, "--dp-worker", str(folder)]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "NVIDIA_TF32_OVERRIDE": "0"}
            started = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode:
                return {"error": f"{ranks} rank(s) exited {done.returncode}", "stderr": done.stderr[-3000:]}
            lines = (folder / "metrics.jsonl").read_text().splitlines()
            losses = [json.loads(line)["loss"] for line in lines if '"loss"' in line]
            runs[ranks] = {"losses": losses, "seconds": round(time.perf_counter() - started, 1)}
    worst = max(abs(a - b) for a, b in zip(runs[1]["losses"], runs[2]["losses"], strict=True))
    return {
        "backend": "nccl" if device.type == "cuda" else "gloo",
        "one_rank": runs[1],
        "two_ranks": runs[2],
        "max_loss_diff": worst,
        "ok": worst <= 1e-4,
    }


def _data_parallel_worker(folder: Path, device_type: str) -> int:
    """One rank of section 4: 4 float32 steps of the tiny model on synthetic data with the real trainer."""
    from saccade.pretrain.trainer import pretrain

    config = PretrainConfig(
        model="canvit-tiny",
        episode=EpisodeConfig(scene_px=64, glimpse_px=32, canvas_grid=4, num_glimpses=4),
        batch_size=8,
        steps=4,
        warmup_steps=2,
        lr=1e-3,
        threads=1,
        val_every=0,
        log_every=1,
        standardizer_samples=64,
        precision="float32",
        tracker="none",
        output_dir=str(folder),
    )
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if device_type == "cuda" else "cpu"
    pretrain(config, synthetic_dataset(64, scene_px=64, grid=4, dim=16, seed=0), device=device, progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
