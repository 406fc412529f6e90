"""Exact tallies of simulated runs and the reports built from them."""
