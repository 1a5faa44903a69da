"""The project's vocabulary files (BOT, dsgo.ttl, the JSON-LD context, SHACL shapes).

Not code: this file makes the folder package data, installed as ``gateway._vocab`` (see
``pyproject.toml``) and found through ``importlib.resources`` (``gateway.vocab.vocab_dir``).
"""
