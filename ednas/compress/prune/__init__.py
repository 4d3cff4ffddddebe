"""Structured channel pruning: `weights` cuts an Enhanced NanoDet to narrower widths (torch-pruning),
`latency_target` finds the cut that meets a relative latency (measured or from a table), `job`
is the whole run (`prune(recipe, model, source, PruneOptions)`) that `ednas prune` calls."""
