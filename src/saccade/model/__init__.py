"""The CanViT model: config, backbone, canvas attention, the glimpse step, readouts and checkpoints."""
