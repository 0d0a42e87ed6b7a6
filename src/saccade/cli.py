"""The `saccade` command line: the only argv parser of the package.

Each subcommand is a pair of functions, `_add_<name>(subparsers)` that declares its arguments and
`_run_<name>(args) -> int` that does the work; heavy modules are imported inside the `_run_*` function,
so `saccade --help` stays fast. Subcommands: flops (analytic FLOPs and parameters, paper App. D.2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]


def _add_flops(subparsers: argparse._SubParsersAction) -> None:
    from saccade.flops import TEACHERS
    from saccade.model.config import PRESETS

    parser = subparsers.add_parser(
        "flops",
        help="analytic FLOPs per glimpse and parameter count",
        description=(
            "Analytic FLOPs (2 per multiply-accumulate; matmuls and convs only) of one CanViT glimpse step "
            "at several canvas grids, and of passive DINOv3 baselines. GFLOPs = 1e9 FLOPs."
        ),
    )
    parser.add_argument("--model", choices=sorted(PRESETS), help="CanViT preset (default canvit-b16)")
    parser.add_argument("--glimpse-px", type=int, default=128, help="glimpse side in pixels (default 128)")
    parser.add_argument(
        "--grids", type=int, nargs="+", default=[8, 16, 32, 64], help="canvas grids G (default 8 16 32 64)"
    )
    parser.add_argument(
        "--num-classes", type=int, default=150, help="classes of the segmentation probe (default 150, ADE20K)"
    )
    parser.add_argument("--teacher", choices=sorted(TEACHERS), help="also count a passive DINOv3 baseline")
    parser.add_argument(
        "--input-px", type=int, nargs="+", default=[128, 256, 512], help="teacher input sides (default 128 256 512)"
    )
    parser.add_argument("--json", action="store_true", help="print exact integer counts as JSON")
    parser.set_defaults(run=_run_flops)


def _canvit_rows(args: argparse.Namespace) -> dict:
    """Per-grid FLOPs of the --model preset, exact ints."""
    from saccade.flops import glimpse_flops, parameter_count, seg_probe_flops
    from saccade.model.config import preset

    config = preset(args.model)
    rows = []
    for grid in args.grids:
        breakdown = glimpse_flops(config, glimpse_px=args.glimpse_px, canvas_grid=grid)
        probe = seg_probe_flops(config.canvas_dim, grid, args.num_classes)
        rows.append(
            {"canvas_grid": grid, **breakdown.to_dict(), "probe": probe, "total_plus_probe": breakdown.total + probe}
        )
    return {"model": args.model, "parameters": parameter_count(config), "glimpse_px": args.glimpse_px, "rows": rows}


def _teacher_rows(args: argparse.Namespace) -> dict:
    """Per-input-size FLOPs of the --teacher baseline, exact ints."""
    from saccade.flops import DINOV3_NUM_PREFIX_TOKENS, TEACHERS, seg_probe_flops, teacher_flops

    spec = TEACHERS[args.teacher]
    rows = []
    for input_px in args.input_px:
        flops = teacher_flops(args.teacher, input_px)
        grid = input_px // spec.patch_size
        probe = seg_probe_flops(spec.embed_dim, grid, args.num_classes)
        num_tokens = DINOV3_NUM_PREFIX_TOKENS + grid**2
        row = {"input_px": input_px, "num_tokens": num_tokens, "total": flops, "probe": probe}
        rows.append({**row, "total_plus_probe": flops + probe})
    return {"teacher": args.teacher, "rows": rows}


def _gflops(flops: int, digits: int = 1) -> str:
    return f"{flops / 1e9:.{digits}f}"


def _print_canvit(table: dict, num_classes: int) -> None:
    rows = table["rows"]
    first = rows[0]
    print(
        f"{table['model']}: {table['parameters']:,} parameters; {table['glimpse_px']} px glimpse "
        f"({first['num_glimpse_tokens']} tokens), {first['num_reads']} reads + {first['num_writes']} writes"
    )
    header = ("G", "canvas tokens", "glimpse GFLOPs", f"+ probe({num_classes}) GFLOPs", "read GFLOPs", "write GFLOPs")
    lines = [
        (
            str(row["canvas_grid"]),
            str(row["num_canvas_tokens"]),
            _gflops(row["total"]),
            _gflops(row["total_plus_probe"]),
            _gflops(row["read_flops"], 3),
            _gflops(row["write_flops"], 3),
        )
        for row in rows
    ]
    _print_table(header, lines)
    print("read / write: GFLOPs of one Read / one Write")


def _print_teacher(table: dict, num_classes: int) -> None:
    print(f"{table['teacher']} (passive, one forward)")
    header = ("input px", "tokens", "GFLOPs", f"+ probe({num_classes}) GFLOPs")
    lines = [
        (str(row["input_px"]), str(row["num_tokens"]), _gflops(row["total"]), _gflops(row["total_plus_probe"]))
        for row in table["rows"]
    ]
    _print_table(header, lines)


def _print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    for cells in (header, *lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)))


def _run_flops(args: argparse.Namespace) -> int:
    if args.model is None and args.teacher is None:
        args.model = "canvit-b16"
    tables: dict[str, dict] = {}
    if args.model is not None:
        tables["canvit"] = _canvit_rows(args)
    if args.teacher is not None:
        tables["teacher"] = _teacher_rows(args)
    if args.json:
        print(json.dumps(tables, indent=1))
        return 0
    if "canvit" in tables:
        _print_canvit(tables["canvit"], args.num_classes)
    if "teacher" in tables:
        if "canvit" in tables:
            print()
        _print_teacher(tables["teacher"], args.num_classes)
    return 0


def _add_dataclass_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One --flag per field of a frozen config dataclass; unset flags keep the config file's or default value."""
    import dataclasses

    for field in dataclasses.fields(config_class):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(
                flag, type=kind, nargs="+", default=None, help=f"(default {' '.join(map(str, default))})"
            )
        else:
            parser.add_argument(flag, type=type(default), default=None, help=f"(default {default})")


def _config_from_args(args: argparse.Namespace, config_class: type):
    """Config file (--config, JSON or TOML) overridden by explicit flags."""
    import dataclasses

    base = config_class.from_file(args.config).to_dict() if args.config else {}
    for field in dataclasses.fields(config_class):
        value = getattr(args, field.name)
        if value is not None:
            base[field.name] = tuple(value) if isinstance(value, list) else value
    return config_class.from_dict(base)


def _add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    from saccade.pretrain.config import PretrainConfig

    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a CanViT by dense latent distillation",
        description=(
            "Passive-to-active dense latent distillation (paper §5): per step an F-IID and an R-IID rollout from fresh "
            "canvases, truncated BPTT, MSE to standardized teacher patch and CLS features. Resumes from "
            "OUTPUT_DIR/checkpoint.pt; SIGTERM / SIGINT checkpoint and stop. Launch with torchrun for data parallelism."
        ),
    )
    parser.add_argument("--config", help="JSON or TOML file of PretrainConfig fields; flags override it")
    parser.add_argument(
        "--data",
        required=True,
        help="training data: a teacher-feature shard folder, a named set of crops of the bundled photos with the "
        "bundled teacher's features ('bundled', 'anchor': see saccade.data.distill_sets), or 'synthetic' (smoke run)",
    )
    parser.add_argument(
        "--val-data", help="held-out data, same kinds as --data ('bundled-heldout', 'anchor-heldout', 'anchor-seen')"
    )
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much training time")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dataclass_flags(parser, PretrainConfig)
    parser.set_defaults(run=_run_pretrain)


def _distillation_data(spec: str | None, config, *, seed: int):
    """A named crop set, 'synthetic' or a shard folder -> a distillation dataset (None for None)."""
    if spec is None:
        return None
    from saccade.data.distill_sets import DISTILLATION_SETS, distillation_crops

    if spec in DISTILLATION_SETS:
        return distillation_crops(spec, canvas_grid=config.canvas_grid, seed=seed)
    if spec == "synthetic":
        from saccade.pretrain.data import synthetic_dataset

        grid, size = config.canvas_grid, config.canvas_grid * 16
        return synthetic_dataset(max(256, 4 * config.batch_size), scene_px=size, grid=grid, dim=32, seed=seed)
    from pathlib import Path

    if not Path(spec).is_dir():
        raise ValueError(f"--data {spec}: no such shard folder (export one with `saccade export-features`)")
    from saccade.data.shards import ShardDataset

    return ShardDataset(spec)


def _run_pretrain(args: argparse.Namespace) -> int:
    from saccade.pretrain.config import PretrainConfig
    from saccade.pretrain.trainer import pretrain

    config = _config_from_args(args, PretrainConfig)
    train_set = _distillation_data(args.data, config, seed=config.seed)
    val_set = _distillation_data(args.val_data, config, seed=config.seed + 10_000)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    result = pretrain(config, train_set, val_set, device=args.device, max_seconds=max_seconds, progress=not args.quiet)
    print(json.dumps({"steps": result.steps_done, "output_dir": str(result.output_dir), **result.summary}, indent=1))
    return 0


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="probe a frozen CanViT per glimpse and policy; compare with a passive teacher",
        description=(
            "Train (or load) linear probes on a frozen CanViT (segmentation on the canvas, classification on the "
            "recurrent CLS; R-IID training rollouts), evaluate every policy per glimpse (global mIoU, pixel accuracy, "
            "top-1/top-5; mean and 95%% bootstrap interval over runs of stochastic policies), probe a passive teacher "
            "at several input sizes, and write results.md, results.csv and plots to --output-dir (paper §6, App. D)."
        ),
    )
    parser.add_argument("--config", help="JSON file of evaluate settings (the flag names with underscores)")
    add = parser.add_argument
    add("--checkpoint", help="CanViT checkpoint folder (ours, or the authors' 0.1 / 0.2)")
    add("--preset", help="evaluate a randomly initialised preset instead (smoke runs)")
    add("--model-seed", type=int, help="seed of the random initialisation (default 0)")
    benchmarks = ("fashion", "fashion-seg", "fashion-cls", "ade20k", "imagenet")
    add("--benchmark", choices=benchmarks, help="default fashion: the bundled fashion-seg and fashion-cls")
    add("--data-root", help="ADEChallengeData2016 folder (ade20k), or a root with train/ and val/ class folders")
    add("--scene-px", type=int, help="scene side for ade20k / imagenet (default 512)")
    add("--num-train", type=int, help="training scenes (bundled benchmark size, or a cap)")
    add("--num-test", type=int, help="test scenes (bundled benchmark size, or a cap)")
    add("--backgrounds", help="background photo folder of the bundled benchmark (default /usr/share/backgrounds)")
    add("--fashion-root", help="Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)")
    add("--cache", help="cache root for built benchmarks (default $SACCADE_CACHE_DIR or ~/.cache/saccade)")
    add("--output-dir", "-o", help="where the report, plots and probes go (default ./evaluation)")
    add("--policies", nargs="+", help="policies (default C2F F2C R-IID F-IID RFS EG-C2F)")
    add("--num-glimpses", "-T", type=int, help="glimpses per rollout (default 21)")
    add("--canvas-grid", type=int, help="canvas grid G (default 32)")
    add("--glimpse-px", type=int, help="glimpse side in px (default 128)")
    add("--num-runs", type=int, help="runs per stochastic policy (default 10)")
    add("--batch-size", type=int, help="batch of rollouts and probe training (default 16)")
    add("--seed", type=int, help="seed of policies, probe training and data order (default 0)")
    add("--probe-steps", type=int, help="probe training steps (default 40000)")
    add("--probe-lr", type=float, help="peak probe learning rate (default 3e-4)")
    add("--probe-warmup-steps", type=int, help="probe warmup steps (default 1500)")
    add("--train-glimpses", type=int, help="glimpses of the R-IID probe-training rollouts (default 10)")
    add("--seg-probe", help="load this segmentation probe (.safetensors) instead of training one")
    add("--cls-probe", help="load this classification probe (.safetensors) instead of training one")
    add("--teacher", help="passive baseline: a saccade.teachers name, or module:function returning a teacher")
    add("--teacher-px", type=int, nargs="+", help="teacher input sides (multiples of its patch size)")
    add("--device", help="torch device (default cpu)")
    add("--quiet", action="store_true", help="no progress bars")
    add("--threads", type=int, help="torch CPU threads (1 avoids oversubscription on a shared machine)")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from saccade.evaluate.pipeline import EvaluateRunConfig, run_evaluation

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    settings = {}
    if args.config:
        try:
            settings = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"--config {args.config}: {error}") from error
        if not isinstance(settings, dict):
            raise ValueError(f"--config {args.config} must hold a JSON object")
    for field in dataclasses.fields(EvaluateRunConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            settings[field.name] = value
    if args.quiet:
        settings["progress"] = False
    summary = run_evaluation(EvaluateRunConfig.from_dict(settings))
    print(summary.paths["markdown"].read_text())
    print("written:", ", ".join(str(path) for path in summary.paths.values()))
    return 0


def _add_evaluate_distillation(subparsers: argparse._SubParsersAction) -> None:
    from saccade.data.distill_sets import DISTILLATION_SETS

    parser = subparsers.add_parser(
        "evaluate-distillation",
        help="standardized cosine to the teacher per glimpse and policy, with the passive baselines",
        description=(
            "Roll out C2F, F2C, R-IID, F-IID and RFS on a named crop set with each pretrained model (e.g. one per "
            "training seed) and report the standardized patch / CLS cosine to the teacher per glimpse: the mean over "
            "the models, their range, and the input-matched teacher (the first glimpse's pixels through the teacher)."
        ),
    )
    parser.add_argument("--model", nargs="+", required=True, help="pretraining model folders (saved by pretrain)")
    parser.add_argument("--data", nargs="+", default=["anchor-heldout", "anchor-seen"], choices=DISTILLATION_SETS)
    parser.add_argument("--glimpse-px", type=int, default=32)
    parser.add_argument("--canvas-grid", type=int, default=8)
    parser.add_argument("--glimpses", type=int, default=10)
    parser.add_argument("--policy-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", "-o", help="write the results as JSON here (and the tables next to it as .md)")
    parser.set_defaults(run=_run_evaluate_distillation)


def _run_evaluate_distillation(args: argparse.Namespace) -> int:
    from pathlib import Path

    from saccade.evaluate.distillation import evaluate_distillation, markdown_report

    result = evaluate_distillation(
        args.model,
        args.data,
        glimpse_px=args.glimpse_px,
        canvas_grid=args.canvas_grid,
        num_glimpses=args.glimpses,
        policy_seeds=args.policy_seeds,
    )
    report = markdown_report(result)
    print(report)
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=1))
        output.with_suffix(".md").write_text(report)
    return 0


def _add_scenes(subparsers: argparse._SubParsersAction) -> None:
    from saccade.data.bundled import DEFAULT_SOURCES, SOURCES

    parser = subparsers.add_parser(
        "scenes",
        help="list or preview the bundled offline photos",
        description=(
            "The bundled scene set: real photographs shipped by installable packages, with a train / held-out split "
            f"by photo. Default sources: {', '.join(DEFAULT_SOURCES)}; Debian sources need apt-get install."
        ),
    )
    parser.add_argument("--split", choices=("train", "heldout", "all"), default="all", help="(default all)")
    parser.add_argument(
        "--sources",
        nargs="+",
        choices=sorted(SOURCES),
        default=list(DEFAULT_SOURCES),
        metavar="SOURCE",
        help=f"packages to take photos from, among {', '.join(SOURCES)} (default: {' '.join(DEFAULT_SOURCES)})",
    )
    parser.add_argument("--debian-root", default="/", help="root the Debian packages are installed or unpacked under")
    parser.add_argument("--preview", metavar="PNG", help="write a contact sheet of the preprocessed scenes")
    parser.add_argument("--size-px", type=int, default=128, help="scene side for --preview (default 128)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(run=_run_scenes)


def _run_scenes(args: argparse.Namespace) -> int:
    from saccade.data.bundled import bundled_files, bundled_scenes
    from saccade.data.scenes import contact_sheet

    try:
        rows = bundled_files(args.split, sources=args.sources, debian_root=args.debian_root)
    except (ImportError, FileNotFoundError) as error:
        print(f"saccade scenes: error: {error}", file=sys.stderr)
        return 2
    listing = [
        {
            "image_id": p.image_id,
            "split": p.split,
            "photo": p.photo,
            "source": p.source,
            "path": str(path),
            "description": p.description,
        }
        for p, path in rows
    ]
    if args.json:
        print(json.dumps(listing, indent=1))
    else:
        header = ("image id", "split", "description")
        _print_table(header, [(row["image_id"], row["split"], row["description"]) for row in listing])
        photos = {(row["split"], row["photo"]) for row in listing}
        counts = {split: sum(1 for s, _ in photos if s == split) for split in ("train", "heldout")}
        print(f"{len(listing)} files, {counts['train']} train photos, {counts['heldout']} held-out photos")
    if args.preview:
        scenes = bundled_scenes(args.split, size_px=args.size_px, sources=args.sources, debian_root=args.debian_root)
        names = [image_id.split("/", 1)[-1] for image_id in scenes.image_ids]
        sheet = contact_sheet([scenes[i].image for i in range(len(scenes))], names)
        sheet.save(args.preview)
        print(f"preview: {args.preview}")
    return 0


def _add_export_features(subparsers: argparse._SubParsersAction) -> None:
    from saccade.data.bundled import DEFAULT_SOURCES, SOURCES
    from saccade.teachers import TEACHERS

    parser = subparsers.add_parser(
        "export-features",
        help="run a frozen teacher over scenes and write resumable feature shards",
        description=(
            "Teacher-feature export (paper App. C): CLS and fp16 patch features after the teacher's final LayerNorm, "
            "in fixed-size safetensors shards with an index. Rerun the same command to resume; launch with "
            "torchrun --nproc_per_node N to split the shards across processes."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder of the shards")
    parser.add_argument("--scenes", default="bundled", help="'bundled' or an image folder (default bundled)")
    parser.add_argument(
        "--split", choices=("train", "heldout", "all"), default="train", help="bundled split (default train)"
    )
    parser.add_argument(
        "--sources",
        nargs="+",
        choices=sorted(SOURCES),
        default=list(DEFAULT_SOURCES),
        metavar="SOURCE",
        help=f"bundled photo sources, among {', '.join(SOURCES)} (default: {' '.join(DEFAULT_SOURCES)})",
    )
    parser.add_argument("--debian-root", default="/", help="root of the Debian bundled sources")
    parser.add_argument("--size-px", type=int, default=224, help="scene side, a multiple of the patch size (224)")
    parser.add_argument("--teacher", choices=sorted(TEACHERS), default="dinov2-s14-imgfocus")
    parser.add_argument("--teacher-path", help="local Hugging Face model folder (--teacher hf)")
    parser.add_argument("--cache", help="cache folder of converted weights (default $SACCADE_CACHE_DIR or ~/.cache)")
    parser.add_argument("--shard-size", type=int, default=1024, help="scenes per shard (default 1024)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per teacher forward (default 32)")
    parser.add_argument("--cls-dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes (default 0)")
    parser.add_argument("--device", default="cpu", help="teacher device (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads per process")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_export_features)


def _run_export_features(args: argparse.Namespace) -> int:
    import torch

    from saccade.data.bundled import bundled_scenes
    from saccade.data.export import ExportConfig, export_features
    from saccade.data.scenes import ImageFolderScenes
    from saccade.teachers import load_teacher

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = ExportConfig(
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        cls_dtype=args.cls_dtype,
        num_workers=args.num_workers,
        device=args.device,
    )
    try:
        if args.scenes == "bundled":
            scenes = bundled_scenes(
                args.split, size_px=args.size_px, sources=args.sources, debian_root=args.debian_root
            )
        else:
            scenes = ImageFolderScenes(args.scenes, size_px=args.size_px)
        if args.teacher == "hf":
            if args.teacher_path is None:
                raise ValueError("--teacher hf needs --teacher-path (a local Hugging Face model folder)")
            teacher = load_teacher("hf", args.teacher_path)
        else:
            teacher = load_teacher(args.teacher, cache=args.cache)
    except (ImportError, FileNotFoundError) as error:
        print(f"saccade export-features: error: {error}", file=sys.stderr)
        return 2
    report = export_features(scenes, teacher.to(args.device), args.out, config=config, progress=not args.quiet)
    for item in report.skipped:
        print(f"skipped {item.image_id}: {item.reason}", file=sys.stderr)
    rate = report.images_written / report.seconds if report.seconds > 0 and report.images_written else 0.0
    summary = {"out": str(report.out_dir), "rank": report.rank, "world_size": report.world_size}
    summary |= {"shards_written": list(report.shards_written), "shards_already_done": list(report.shards_already_done)}
    summary |= {"images_written": report.images_written, "skipped": len(report.skipped)}
    print(json.dumps({**summary, "images_per_s": round(rate, 2), "complete": report.complete}))
    return 0


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: pretrain a tiny CanViT from nothing, evaluate every policy, write a report",
        description=(
            "End to end on the bundled offline data: crops of the bundled photos and their teacher features, "
            "pretraining of a tiny CanViT, probes on the bundled Fashion-MNIST benchmark, every policy per glimpse, "
            "then report.html and results.json in the output folder. Finished stages are skipped on a rerun."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, under 5 minutes (what CI runs)")
    parser.add_argument("--config", help="TOML or JSON file of DemoConfig fields (overrides the preset)")
    parser.add_argument("--output-dir", help="report folder (default report/, or report-quick/ with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from saccade.demo import DEMO_PRESETS, DemoConfig, run_demo

    config = DEMO_PRESETS["quick" if args.quick else "full"]
    if args.config:
        config = DemoConfig.from_dict({**config.to_dict(), **DemoConfig.from_file(args.config).to_dict()})
    if args.output_dir:
        config = dataclasses.replace(config, output_dir=args.output_dir)
    torch.set_num_threads(args.threads)
    run_demo(config)
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time CanViT against the authors' canvit-pytorch (same weights, same run)",
        description=(
            "Per-glimpse latency (batch 1) and throughput (batch 16) of CanViT-B and -S at canvas grids "
            "8..128, one pretraining step, GFLOP/s against a large matmul and peak memory; with the authors' "
            "package (--baseline or $SACCADE_BENCH_BASELINE) both run interleaved on the same weights and "
            "outputs are checked to agree. Writes bench.json and bench.md."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="tiny cases (smoke test, seconds)")
    parser.add_argument("--baseline", help="folder with canvit_pytorch + canvit_core (pip install --target)")
    parser.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    parser.add_argument("--models", nargs="+", help="presets of the glimpse cases (default canvit-b16 canvit-s16)")
    parser.add_argument("--grids", type=int, nargs="+", help="canvas grids (default 8 16 32 64 128)")
    parser.add_argument("--throughput-batch", type=int, help="batch of the throughput cases, 0 skips (default 16)")
    parser.add_argument("--pretrain-models", nargs="*", help="presets of the pretraining step (none skips it)")
    parser.add_argument("--repeats", type=int, help="timed rounds per case (default 9)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 2)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    import os

    from saccade.bench import BenchConfig, run_bench
    from saccade.bench.implementations import BASELINE_ENV

    settings = {
        "models": tuple(args.models) if args.models else None,
        "grids": tuple(args.grids) if args.grids else None,
        "throughput_batch": args.throughput_batch,
        "pretrain_models": tuple(args.pretrain_models) if args.pretrain_models is not None else None,
        "repeats": args.repeats,
        "num_threads": args.threads,
        "baseline_path": args.baseline or os.environ.get(BASELINE_ENV) or None,
    }
    settings = {name: value for name, value in settings.items() if value is not None}
    if args.no_memory:
        settings["measure_memory"] = False
    if "repeats" in settings:
        settings["min_repeats"] = min(settings["repeats"], BenchConfig.min_repeats)
    config = BenchConfig.quick(**settings) if args.quick else BenchConfig(**settings)
    report = run_bench(config)
    json_path, markdown_path = report.write(args.out)
    print(report.to_markdown())
    print(f"wrote {json_path} and {markdown_path}")
    return 0 if all(case.agree is not False for case in report.cases) else 1


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    from saccade.export.pipeline import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export one glimpse step to ONNX or torch.export (.pt2) and check it against the eager model",
        description=(
            "Export one CanViT glimpse step (glimpse, viewpoint centers and scales, canvas and recurrent CLS in; new "
            "canvas and recurrent CLS, plus the teacher readouts of a pretraining checkpoint, out) with a dynamic "
            "batch; glimpse size and canvas grid are fixed. Writes OUTPUT and OUTPUT.init.safetensors (the fresh "
            "state), reloads OUTPUT and prints its largest difference from the eager model at each batch size; "
            "exits 1 above the tolerance."
        ),
    )
    add = parser.add_argument
    add("--model", required=True, help="checkpoint folder (ours or the authors'), or a preset with random weights")
    add("--format", choices=FORMATS, help="default: from the suffix of --output (.onnx or .pt2)")
    add("--glimpse-px", type=int, default=128, help="glimpse side in px, fixed in the export (default 128)")
    add("--canvas-grid", type=int, default=32, help="canvas grid G, fixed in the export (default 32)")
    add("--output", "-o", required=True, help="file to write (.onnx or .pt2)")
    add("--no-readouts", action="store_true", help="leave a pretraining checkpoint's teacher readouts out")
    add("--batch-sizes", type=int, nargs="+", default=[1, 3], help="batch sizes of the parity check (default 1 3)")
    add("--tolerance", type=float, help="largest abs difference allowed (default 1e-4 onnx, 1e-5 torch-export)")
    add("--seed", type=int, default=0, help="seed of a preset's random weights (default 0)")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from saccade.export import GlimpseStep, export_glimpse_step
    from saccade.model.canvit import CanViT
    from saccade.model.checkpoint import load_pretrained
    from saccade.model.config import PRESETS

    if Path(args.model).is_dir():
        model, source = load_pretrained(args.model), args.model
    elif args.model in PRESETS:
        torch.manual_seed(args.seed)
        model, source = CanViT(PRESETS[args.model]).eval(), f"{args.model} (random weights, seed {args.seed})"
    else:
        raise ValueError(f"--model {args.model!r} is neither a checkpoint folder nor a preset ({', '.join(PRESETS)})")
    step = GlimpseStep(
        model, glimpse_px=args.glimpse_px, canvas_grid=args.canvas_grid, readouts=False if args.no_readouts else None
    )
    try:
        result = export_glimpse_step(
            step, args.output, format=args.format, batch_sizes=tuple(args.batch_sizes), tolerance=args.tolerance
        )
    except ImportError as error:
        print(f"saccade export: error: {error}", file=sys.stderr)
        return 2
    size_mb = result.path.stat().st_size / 1e6
    print(f"{source}: {args.glimpse_px} px glimpse, {args.canvas_grid} x {args.canvas_grid} canvas, dynamic batch")
    print(f"  inputs:  {', '.join(step.input_names)}")
    print(f"  outputs: {', '.join(step.output_names)}")
    print(f"wrote {result.path} ({size_mb:.1f} MB) and {result.initial_state_path} (the fresh state)")
    print(result.parity.summary())
    if not result.parity.ok:
        print(
            f"saccade export: error: parity check failed: max abs diff {result.parity.worst:.3g} "
            f"> tolerance {result.parity.tolerance:.0e}",
            file=sys.stderr,
        )
        return 1
    return 0


def _add_train_policy(subparsers: argparse._SubParsersAction) -> None:
    from saccade.policy_training.config import PolicyTrainConfig

    parser = subparsers.add_parser(
        "train-policy",
        help="learn where to look next: greedy one-step gain regression on a frozen CanViT",
        description=(
            "Measure the one-step gain (rise of the standardized teacher-patch cosine) of every candidate viewpoint "
            "along rollouts on training scenes, fit an MLP that predicts it, act greedily; rounds after the first "
            "collect on the learned policy's own rollouts. Writes OUTPUT_DIR/policy.safetensors and metrics.json."
        ),
    )
    parser.add_argument("--model", required=True, help="CanViTForPretraining checkpoint folder (frozen)")
    parser.add_argument("--data", default="bundled", help="training scenes: bundled (default) or synthetic")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    _add_dataclass_flags(parser, PolicyTrainConfig)
    parser.set_defaults(run=_run_train_policy)


def _run_train_policy(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from saccade.policy_training.config import PolicyTrainConfig
    from saccade.policy_training.run import run_train_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [field.name for field in dataclasses.fields(PolicyTrainConfig)]
    settings = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    result = run_train_policy(args.model, settings, data=args.data, progress=not args.quiet)
    print(json.dumps({"policy": str(result.policy_path), "rounds": result.metrics["rounds"]}, indent=1))
    return 0


def _add_evaluate_policy(subparsers: argparse._SubParsersAction) -> None:
    from saccade.policy_training.config import PolicyEvalConfig
    from saccade.policy_training.evaluate import POLICY_NAMES

    parser = subparsers.add_parser(
        "evaluate-policy",
        help="per-glimpse score of a learned policy beside C2F, EG-C2F, R-IID and the oracle",
        description=(
            "Standardized teacher-patch cosine after each glimpse, mean and 95%% bootstrap interval over held-out "
            "scenes, for the learned policy, C2F, EG-C2F, R-IID and the greedy oracle; writes results.md, "
            "results.csv, curves.png and per_scene.safetensors to --output-dir."
        ),
    )
    parser.add_argument("--model", required=True, help="CanViTForPretraining checkpoint folder (frozen)")
    parser.add_argument("--policy", required=True, help="policy.safetensors written by saccade train-policy")
    parser.add_argument("--data", default="bundled-heldout", help="scenes: bundled-heldout (default) or synthetic")
    parser.add_argument("--num-scenes", type=int, default=256, help="evaluation scenes (default 256)")
    parser.add_argument("--policies", nargs="+", choices=POLICY_NAMES, default=list(POLICY_NAMES))
    parser.add_argument("--output-dir", default="runs/policy/eval", help="report folder (default runs/policy/eval)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    _add_dataclass_flags(parser, PolicyEvalConfig)
    parser.set_defaults(run=_run_evaluate_policy)


def _run_evaluate_policy(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from saccade.policy_training.config import PolicyEvalConfig
    from saccade.policy_training.run import run_evaluate_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [field.name for field in dataclasses.fields(PolicyEvalConfig)]
    settings = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    paths = run_evaluate_policy(
        args.model,
        args.policy,
        settings,
        data=args.data,
        num_scenes=args.num_scenes,
        output_dir=args.output_dir,
        policies=tuple(args.policies),
        progress=not args.quiet,
    )
    print(paths["markdown"].read_text())
    print("written:", ", ".join(str(path) for path in paths.values()))
    return 0


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_flops,
    _add_pretrain,
    _add_evaluate,
    _add_evaluate_distillation,
    _add_scenes,
    _add_export_features,
    _add_demo,
    _add_bench,
    _add_export,
    _add_train_policy,
    _add_evaluate_policy,
)


def build_parser() -> argparse.ArgumentParser:
    """The `saccade` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="saccade", description="CanViT: active-vision foundation models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv (default sys.argv[1:]), run the subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"saccade {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
