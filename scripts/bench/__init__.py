"""Benchmarks: each prints figures and asserts nothing; run one as a module.

    uv run --frozen python -m scripts.bench.sales            # sales RPCs vs a bare gRPC echo and the ceiling
    uv run --frozen python -m scripts.bench.hold_layers      # CPU of a hold at each layer, in process
    uv run --frozen python -m scripts.bench.hold_script      # Redis' own time per hold script, by part
    uv run --frozen python -m scripts.bench.hot_path         # CPU of pieces of the hot path
    uv run --frozen python -m scripts.bench.seatmap          # upload, validate and query large maps
    uv run --frozen python -m scripts.bench.seatmap_spatial  # index, queries, best-available, SVG
    uv run --frozen python -m scripts.bench.organizer_isolation  # sales p99 while 200k-seat maps validate

Each takes ``--smoke`` (a few seconds, figures meaningless: what
``tests/scripts/test_bench_smoke.py`` runs so none of them rots) and ``--help``.
What they share, ports, child processes, readiness, timing and load, is in
:mod:`scripts.bench.harness`; the servers they start as child processes in
:mod:`scripts.bench.servers` and :mod:`scripts.bench.ceiling`. Figures go to
``docs/performance.md`` with the command that produced them.
"""
