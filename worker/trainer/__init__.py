"""The training-pod program, `python -m worker.trainer --config run.json`.

It holds no Django import and no database, broker or Stripe credentials: it reads one run
config (config.py) and the dataset records (records.py), trains, and reports progress to
the platform over HTTP with a job-scoped token (events.py).
"""
