"""Field-level policies: who may read which fields of which resources.

``load`` reads and checks the policy files (YAML against ``policies/schema.json``);
``engine`` is pure: (rules, caller, a resource's triples) -> the triples the caller may
see, and why each field was released or withheld.
"""
