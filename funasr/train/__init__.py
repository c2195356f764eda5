"""Training: the trainer (trainer.py), its config (config.py), optimisers and schedulers (optim.py), checkpoints
and averaging (checkpoint.py), torchrun's process group (distributed.py), the output model folder (folder.py),
recipe helpers (prepare.py) and feature augmentation (augment.py); ``run.train(cfg)`` puts them together. The
loss modules live beside each model family (``loss.py``).
"""
