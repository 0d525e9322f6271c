"""Numba kernels of fastinit (installed as ``fastinit.kernels``).

Kernels are private and trust their input: the Python layer in ``fastinit`` validates
every range and array before a kernel sees it. All of them use the one decorator in
``_jit.py``.
"""
