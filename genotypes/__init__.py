"""Cell genotypes as validated JSON data: the typed values, the loader, the saver.

Imports nothing of racl-bench (``genotypes <- models <- racl_search <- bench``). See
``docs/ARCHITECTURE.md`` for the contract.
"""

from genotypes.errors import GenotypeError
from genotypes.files import (
    ENV_VAR,
    GenotypeFile,
    find_genotype_file,
    genotype_dirs,
    list_genotypes,
    load,
    load_genotype,
    read_genotype_file,
    save_genotype,
    to_dict,
)
from genotypes.ops import KNOWN_OPS, PRIMITIVES, ROBNET_EDGES, ROBNET_NODES, ROBNET_OPS
from genotypes.schema import Genotype, RobNetArch

__all__ = [
    "ENV_VAR",
    "KNOWN_OPS",
    "PRIMITIVES",
    "ROBNET_EDGES",
    "ROBNET_NODES",
    "ROBNET_OPS",
    "Genotype",
    "GenotypeError",
    "GenotypeFile",
    "RobNetArch",
    "find_genotype_file",
    "genotype_dirs",
    "list_genotypes",
    "load",
    "load_genotype",
    "read_genotype_file",
    "save_genotype",
    "to_dict",
]
