"""Running benchmarks: everything between a configuration and its stored records.

The flow of ``run_bench`` (each module imports only those after it):

``bench`` (the runner: run folder, lock, store, plan) -> ``setup`` (seeds, devices, dataset, stream, the
checks that raise before training) -> ``executors`` (cells in this process, worker processes or Ray
tasks; ``workers``, ``resources``) -> ``arm`` (one arm through the stream for one seed, resumable with
``checkpoint``) -> ``step`` (one round: initialize with the strategy, train with its hooks).
``store`` holds every finished round; ``summary`` turns records into statistics; ``config`` is the
settings; ``sweep`` expands a sweep file into experiments. Nothing in the engine prints: progress leaves
as :class:`~activews.engine.arm.ProgressEvent` s and results as return values.
"""
