"""The search settings of the paper's Table 5 rows, by the genotype name each one writes.

RACL (Dong et al., AAAI 2021), Table 5 ablates confidence learning and the ADMM
hyper-parameters (eta, rho). Imports nothing heavy, so reports can read it.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE5_PREFIX = "racl_table5_"


@dataclass(frozen=True)
class SearchVariant:
    """One row of the paper's Table 5 ablation."""

    row: str  # key in paper_results.json ``table5_ablation.rows``
    method: str
    eta: float
    rho: float

    @property
    def genotype_name(self) -> str:
        return TABLE5_PREFIX + self.row


# In the paper's row order (paper_results.json ``table5_ablation.rows``).
TABLE5_VARIANTS: dict[str, SearchVariant] = {
    v.genotype_name: v
    for v in (
        SearchVariant("without_cl", "racl_no_cl", 0.9, 1e-3),
        SearchVariant("eta0.9_rho0.01", "racl", 0.9, 1e-2),
        SearchVariant("eta0.9_rho0.0001", "racl", 0.9, 1e-4),
        SearchVariant("eta0.7_rho0.001", "racl", 0.7, 1e-3),
        SearchVariant("eta0.9_rho0.001", "racl", 0.9, 1e-3),
    )
}
