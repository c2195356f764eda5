"""Training: data augmentation on features (augment.py); the loss modules live beside each model family (``loss.py``)."""
