"""Has a pretrained model learned its training photos instead of looking? (issue 19)

Scores a pretraining model (its model/ folder) the way pretraining validates it, the standardized patch cosine to
the teacher after each glimpse, on the first scenes of its own training set and on the held-out set of the demo's
`--data scenes` (saccade.data.scene_sets, seed 0), with more glimpses than the episode if asked. A large gap at
t = 0 means the readout recalls the training photos from the full view.

Measured (2026-12-05, docs/main-job.md), C2F at t = 0 / 4 / 9 / 20, 64 training and 64 held-out scenes:
  - the demo of 2026-12-04, the benchmark's 10 training photos: 0.435 / 0.466 / 0.473 / - against
    0.205 / 0.271 / 0.281 / -;
  - with 16 more training photos (`--train-sources scikit-image scikit-learn matplotlib`): 0.416 / 0.459 / 0.466 /
    0.480 against 0.276 / 0.334 / 0.341 / 0.353; F2C (held out) reaches 0.248 after its 16 fine tiles.

    python benchmarks/seen_vs_heldout.py report/pretrain/model --glimpses 21 \
        --train-sources scikit-image scikit-learn matplotlib
"""

from __future__ import annotations

import argparse
import dataclasses

from saccade.data.scene_sets import benchmark_scene_sets
from saccade.episode_config import EPISODES
from saccade.model.checkpoint import load_pretrained
from saccade.pretrain.data import collate
from saccade.pretrain.validate import cosine_curves, cosines_by_policy
from saccade.threads import use_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a pretraining model folder (report/pretrain/model)")
    parser.add_argument("--glimpses", type=int, default=EPISODES["cpu"].num_glimpses)
    parser.add_argument("--num-scenes", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=10_000, help="the training set's size (its cache key)")
    parser.add_argument("--train-sources", nargs="*", default=(), help="as the model was pretrained (its cache key)")
    parser.add_argument("--policies", nargs="+", default=["C2F", "RFS", "F2C"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    use_threads(args.threads)
    model = load_pretrained(args.model)
    episode = dataclasses.replace(EPISODES["cpu"], num_glimpses=args.glimpses)
    train, heldout = benchmark_scene_sets(
        "fashion-seg",
        canvas_grid=episode.canvas_grid,
        num_train=args.num_train,
        num_heldout=args.num_scenes,
        train_sources=args.train_sources,
    )
    for name, scenes in (("training", train.subset(args.num_scenes)), ("held-out", heldout)):
        batch = collate(scenes, list(range(len(scenes))))
        curves = cosine_curves(model, batch, policies=args.policies, episode=episode)
        for policy, cosines in cosines_by_policy(curves).items():
            print(f"{name:>8} {policy:>4}: " + " ".join(f"{value:.3f}" for value in cosines["patch"]))


if __name__ == "__main__":
    main()
