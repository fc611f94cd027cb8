"""The results store: one SQLite file, its format, opening it safely, and reading its rows."""
