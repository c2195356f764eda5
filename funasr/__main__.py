"""``python -m funasr``: the ``funasr`` command."""
from funasr.bin.cli import main

raise SystemExit(main())
