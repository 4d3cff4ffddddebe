"""`ednas run PIPELINE.yml`: data -> latency table -> supernet -> search -> compressed, re-measured
models -> report, as resumable stages in one run folder (see runner and stages)."""
