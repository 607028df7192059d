"""The benchmark behind the performance figures and budgets: `python -m bench` (or `make bench`).

Kept free of imports: a cold-start child runs as `python -m bench.cold_child`, and anything
imported here would be loaded before its timer starts.
"""
