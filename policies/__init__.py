"""The policy files' JSON Schema (``schema.json``).

Not code: this file makes the folder package data, installed as ``gateway._policies`` (see
``pyproject.toml``) and found through ``importlib.resources`` (``gateway.policy.load``).
"""
