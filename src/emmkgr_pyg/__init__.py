"""E-MMKGR for PyTorch Geometric (layout: data -> graph -> nn -> train -> eval/search -> cli).

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: OpenMP
threads that spin while waiting (the default) slowed an Office epoch from 3.5 s to 88-134 s beside
one busy process on a 2-core machine. It must be set before torch loads libgomp, so the console
scripts (``emmkgr_pyg.cli.*``) and the benchmarks import ``emmkgr_pyg`` before torch.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
