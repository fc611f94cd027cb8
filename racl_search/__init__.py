"""RACL search: PC-DARTS supernet, log-normal architecture parameters, Lipschitz confidence
constraint solved by ADMM, genotype derivation (Dong et al., "Adversarially Robust Neural
Architecture Search with Confidence Learning", AAAI 2021).

Imports ``models`` and ``genotypes`` only. Entry points: :func:`racl_search.search.run_search`
and :func:`racl_search.api.ensure_searched`. Nothing heavy runs at import time.
"""
