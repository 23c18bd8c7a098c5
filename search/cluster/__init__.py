"""``python -m search.run --study NAME --cluster ray``: a study's workers as Ray actors across
the Ray cluster this machine belongs to.

PostgreSQL, the claim table and the artifact store stay the source of truth, as for workers
started by hand on several machines: each actor runs today's worker process (``python -m
search.worker``, its ``RunOptions`` as JSON on standard input), which claims units, trains
and checkpoints. Ray only starts, places and replaces those processes and keeps nothing of
the study (no Ray Tune). ``join`` connects before anything is stored and refuses, in one
line, what cannot work there; ``work_on_cluster`` runs and watches the actors.

Ray is an optional extra (``pip install "keras-optuna-search[ray]"``): nothing here imports
it until a run asks for a cluster.
"""

from search.cluster.joining import join
from search.cluster.supervise import work_on_cluster

__all__ = ["join", "work_on_cluster"]
