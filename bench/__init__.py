"""racl-bench harness: data, training, attacks, evaluation, results store, reports and CLI."""

__version__ = "0.1.0"
