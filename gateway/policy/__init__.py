"""Field-level policies: who may read which fields of which resources.

``model`` holds the rules and grants; ``load`` reads and checks the policy files (YAML
against ``policies/schema.json``); the engine is pure: ``decide`` (rules, caller, a
resource's triples -> the triples the caller may see), built on ``conditions`` (does a
rule's selector match a resource) and ``compare`` (one comparator per kind of value);
``explain`` says why each field was released or withheld; ``delegation`` reads rules as
iSHARE delegation evidence and back; ``report`` is ``dsgo policy check``'s table.
"""
