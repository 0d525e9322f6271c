"""Measurements: deferred init against the memset write limit and against the peers a
user would pick (numba.prange, NumPy field by field)."""
