"""One module per ``bench`` subcommand; see :mod:`bench.cli`."""
