"""`python -m lossctl` and the `lossctl` command (pyproject's entry point is `lossctl.__main__:run`)."""

import gc
import os
import sys
import warnings


def run() -> None:
    # lossctl runs its own pool over a big file's chunks (--threads); BLAS threads inside each would only
    # oversubscribe the cores (none of its kernels leans on BLAS), and OpenBLAS starting one per core is about
    # 10 ms of numpy's import. A value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # A command is a short process whose objects (modules, the CLI, the arrays' wrappers) live until it exits:
    # collect them rarely, as mypy's main does, rather than every 700 allocations. Imports are most of a small
    # run, and the collections during them cost about 7 ms of its 0.14 s (benchmarks/run.py).
    gc.set_threshold(100_000, 50, 100)
    # stderr carries lossctl's own lines: its warnings say what an overflow or a nan means for the loss, so
    # NumPy's and torch's Python warnings (overflow in a sum, a deprecated pickle protocol) are not repeated
    # there. -W or PYTHONWARNINGS still turn them on.
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    from .cli import main

    main()


if __name__ == "__main__":
    run()
