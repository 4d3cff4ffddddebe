"""Human-facing output: drawn detections, heatmaps, Pareto reports."""
