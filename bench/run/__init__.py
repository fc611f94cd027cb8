"""Executing a plan into a store: the runner, its handlers, leases, workers and the run summary."""
