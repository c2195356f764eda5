"""U2 family: WeNet U2 / U2++ checkpoints (config.py reads their folders, numpy), encoders, decoders and
U2Model (PyTorch), the engine and the task. The searches live in funasr/search.py. Importing the package needs no torch."""
