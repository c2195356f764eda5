"""SeACo-Paraformer: hotword biasing through a bias encoder and a second SAN-M decoder (model.py, export.py).
Importing the package needs no torch."""
