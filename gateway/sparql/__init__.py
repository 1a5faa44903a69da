"""Where /sparql queries run: worker processes that can be stopped (pool, worker)."""
