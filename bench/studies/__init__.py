"""Studies built on the harness: the search-seed study (does the constraint change the cell?)."""
