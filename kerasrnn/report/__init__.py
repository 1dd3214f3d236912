"""Reports over training runs: summary tables and convergence plots."""
