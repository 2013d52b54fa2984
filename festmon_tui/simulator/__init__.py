"""A simulated festival: traffic, injected anomalies with ground truth, and an accuracy report."""
