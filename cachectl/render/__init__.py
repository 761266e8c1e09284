"""Result objects -> output: Rich text, JSON, SARIF, GitHub annotations, Prometheus text."""
