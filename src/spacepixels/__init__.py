"""SpacePixels: find what moved in nights of aligned astronomical sub-exposures.

The package holds all the logic of the Snakemake workflow beside it, one module per stage
(``check``, ``convert``, ...), plus the frame reader (``frames``), observation times
(``times``), session discovery (``sessions``), configuration (``config``) and the synthetic
night generator with ground truth (``synth``). Every module works on plain arrays, tables
and paths and is usable without Snakemake.
"""

__version__ = "0.1.0"
