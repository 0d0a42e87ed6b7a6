"""Pretraining: policy-agnostic passive-to-active dense latent distillation (paper §5, App. C)."""
