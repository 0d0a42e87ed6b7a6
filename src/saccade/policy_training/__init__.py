"""Learning where to look next (issue 10): greedy one-step gain regression on a frozen CanViT.

`collect` measures every candidate's gain along rollouts, `fit` trains the `GainRegressor`
(saccade.policies.learned), `train` runs the rounds and saves the policy, `evaluate` and `report` compare it
per glimpse with C2F, EG-C2F, R-IID and the oracle; `run` is what the CLI calls.
"""
