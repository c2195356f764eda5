"""Contextual Paraformer: CLAS-style hotword biasing inside the decoder's last attention layer (model.py,
decoder.py, export.py). Importing the package needs no torch."""
