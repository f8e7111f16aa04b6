"""Planning a fine-tune before it runs: the VRAM planner, the cost estimator (pure maths)
and the quote that puts them together with the catalog, the balance and capacity."""
