"""The foundation of racl-bench: enums, the dataset table and loaders, the error base, torchrun
helpers, progress bars and atomic writes.

Imports nothing of racl-bench; every other package may import it
(``core <- genotypes <- models <- racl_search <- bench``).
"""
