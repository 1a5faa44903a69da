"""iSHARE delegation: a node's policies as delegation evidence, and evidence as rules.

A node's rules read as iSHARE delegation policies: ``resource.type`` = a class,
``identifiers`` = resource IRIs, ``attributes`` = property IRIs, ``actions`` = read.

*Answering a mask* (``POST /delegation``, iSHARE AR "delegation endpoint"): each policy
of the mask is echoed with ``Permit`` when the access subject's grant releases every
attribute of every identified resource, else ``Deny``. The answer depends on the
access subject's view and the policy alone (non-interference, DESIGN.md): a resource
counts when ``decide``, the one enforcement point, shows it and its class to the
subject; an attribute counts when the subject sees it there or, if it does not, when a
permit without conditions releases it to such a resource and no deny could withhold
it (evidence is about rights, not about which values exist). ``"*"`` means every
resource of the class the subject sees in the node's namespace, or every field: a
permit of all fields without conditions and no deny for the resource. Unknown classes
or identifiers, an empty class and any action other than read are ``Deny`` (fail
closed). A mask whose policies carry no ``Permit`` rule is malformed, as in iSHARE's
reference authorization registry.

*Accepting evidence*: delegation evidence issued by a trusted authorization registry
(``trust.verify_signed``: its ``x5c`` chain ends in a CA on the trusted list; its leaf
is an AR the node is configured to trust and is registered for that party) for this
node's policies and the caller becomes extra permit ``Rule`` objects, which the engine
treats exactly like file rules (so the files' deny rules still win). Only policies
whose rules are all ``Permit`` and whose actions include read count. Evidence that
fails any check is refused with ``Forbidden`` saying why (a stable ``reason``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pyoxigraph as ox

from gateway.errors import BadRequest, Forbidden
from gateway.identity.parties import Party
from gateway.identity.pki import fingerprint
from gateway.identity.trust import check_audience, check_lifetime, verify_signed
from gateway.policy.decide import RDF_TYPE, Lookup, decide
from gateway.policy.model import Grant, Rule
from gateway.policy.notice import selects

__all__ = [
    "EVIDENCE_HEADER",
    "EVIDENCE_LIFETIME",
    "LICENSES",
    "MAX_IDENTIFIERS",
    "MAX_POLICIES",
    "Data",
    "DelegationRequest",
    "Evidence",
    "Expand",
    "Policy",
    "answer",
    "evidence_rules",
    "is_read",
    "parse_mask",
    "permitted",
    "read_evidence",
    "rules_from_evidence",
    "verify_evidence",
]

#: the request header that carries delegation evidence (a ``delegation_token`` JWT)
EVIDENCE_HEADER = "delegation-evidence"
#: seconds an answer holds: the policy files may change at any time (= the JWT's life)
EVIDENCE_LIFETIME = 30
LICENSES = ("ISHARE.0001",)
MAX_POLICIES = 100
MAX_IDENTIFIERS = 1000
_READ = frozenset({"ishare.read", "read"})

Fail = Callable[[str], Exception]
Expand = Callable[[str], "str | None"]


class Data(Lookup, Protocol):
    """What answering a mask reads from the node's data (``gateway.store.Store``)."""

    def describe(self, iri: str) -> list[ox.Triple]: ...

    def members(self, class_iri: str, namespace: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """One delegation policy, of a mask or of evidence; ``target`` is kept as received."""

    target: Mapping[str, Any]
    type: str
    identifiers: tuple[str, ...]
    attributes: tuple[str, ...]
    actions: tuple[str, ...]
    #: ``environment.serviceProviders``; None when the policy names none
    service_providers: tuple[str, ...] | None
    effects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DelegationRequest:
    policy_issuer: str
    access_subject: str
    policy_sets: tuple[tuple[Policy, ...], ...]


@dataclass(frozen=True, slots=True)
class Evidence:
    authority: str  # the authorization registry that signed it
    not_before: int
    not_on_or_after: int
    policy_issuer: str
    access_subject: str
    policies: tuple[Policy, ...]  # of every policy set


def is_read(action: str) -> bool:
    return action.lower() in _READ


# -- parsing -------------------------------------------------------------------------


def parse_mask(body: Any) -> DelegationRequest:
    """A ``delegationRequest`` (iSHARE delegation mask); ``BadRequest`` naming the fault."""
    root = _object(body, "the body", BadRequest)
    request = _object(root.get("delegationRequest"), "delegationRequest", BadRequest)
    issuer = _string(request.get("policyIssuer"), "delegationRequest.policyIssuer", BadRequest)
    target = _object(request.get("target"), "delegationRequest.target", BadRequest)
    subject = _string(target.get("accessSubject"), "delegationRequest.target.accessSubject", BadRequest)
    sets = _list(request.get("policySets"), "delegationRequest.policySets", BadRequest, 10)
    parsed: list[tuple[Policy, ...]] = []
    count = 0
    for i, raw_set in enumerate(sets):
        where = f"delegationRequest.policySets[{i}]"
        policies = _list(_object(raw_set, where, BadRequest).get("policies"), f"{where}.policies", BadRequest)
        count += len(policies)
        if count > MAX_POLICIES:
            raise BadRequest(f"a delegation mask may hold at most {MAX_POLICIES} policies")
        one_set = tuple(_policy(p, f"{where}.policies[{j}]", BadRequest) for j, p in enumerate(policies))
        for j, policy in enumerate(one_set):
            if "Permit" not in policy.effects:
                raise BadRequest(
                    f"{where}.policies[{j}].rules must hold a rule with effect 'Permit' "
                    "(a mask asks whether its policies are permitted)"
                )
        parsed.append(one_set)
    return DelegationRequest(issuer, subject, tuple(parsed))


def read_evidence(claim: Any, authority: str, fail: Fail) -> Evidence:
    """The ``delegationEvidence`` claim of a delegation token, checked for shape only."""
    root = _object(claim, "delegationEvidence", fail)
    not_before = _epoch(root.get("notBefore"), "delegationEvidence.notBefore", fail)
    not_after = _epoch(root.get("notOnOrAfter"), "delegationEvidence.notOnOrAfter", fail)
    issuer = _string(root.get("policyIssuer"), "delegationEvidence.policyIssuer", fail)
    target = _object(root.get("target"), "delegationEvidence.target", fail)
    subject = _string(target.get("accessSubject"), "delegationEvidence.target.accessSubject", fail)
    policies: list[Policy] = []
    for i, raw_set in enumerate(_list(root.get("policySets"), "delegationEvidence.policySets", fail, 10)):
        where = f"delegationEvidence.policySets[{i}]"
        raw = _list(_object(raw_set, where, fail).get("policies"), f"{where}.policies", fail)
        policies.extend(_policy(p, f"{where}.policies[{j}]", fail) for j, p in enumerate(raw))
    return Evidence(authority, not_before, not_after, issuer, subject, tuple(policies))


def _policy(raw: Any, where: str, fail: Fail) -> Policy:
    policy = _object(raw, where, fail)
    target = _object(policy.get("target"), f"{where}.target", fail)
    resource = _object(target.get("resource"), f"{where}.target.resource", fail)
    type_ = _string(resource.get("type"), f"{where}.target.resource.type", fail)
    identifiers = _strings(
        resource.get("identifiers"), f"{where}.target.resource.identifiers", fail, MAX_IDENTIFIERS
    )
    attributes = _strings(resource.get("attributes"), f"{where}.target.resource.attributes", fail, 1000)
    actions = _strings(target.get("actions"), f"{where}.target.actions", fail, 20)
    providers: tuple[str, ...] | None = None
    if "environment" in target:
        environment = _object(target["environment"], f"{where}.target.environment", fail)
        if "serviceProviders" in environment:
            providers = _strings(
                environment["serviceProviders"], f"{where}.target.environment.serviceProviders", fail, 100
            )
    effects = []
    for k, rule in enumerate(_list(policy.get("rules"), f"{where}.rules", fail, 100)):
        effect = _object(rule, f"{where}.rules[{k}]", fail).get("effect")
        if effect not in ("Permit", "Deny"):
            raise fail(f"{where}.rules[{k}].effect must be 'Permit' or 'Deny', got {effect!r}")
        effects.append(effect)
    return Policy(target, type_, identifiers, attributes, actions, providers, tuple(effects))


def _object(value: Any, where: str, fail: Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{where} must be a JSON object")
    return value


def _string(value: Any, where: str, fail: Fail) -> str:
    if not isinstance(value, str) or not value:
        raise fail(f"{where} must be a non-empty string")
    return value


def _list(value: Any, where: str, fail: Fail, limit: int = MAX_POLICIES) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise fail(f"{where} must be a non-empty array")
    if len(value) > limit:
        raise fail(f"{where} may hold at most {limit} entries")
    return value


def _strings(value: Any, where: str, fail: Fail, limit: int) -> tuple[str, ...]:
    items = _list(value, where, fail, limit)
    if not all(isinstance(item, str) and item for item in items):
        raise fail(f"{where} must hold non-empty strings only")
    return tuple(items)


def _epoch(value: Any, where: str, fail: Fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{where} must be an integer number of seconds since the epoch")
    return value


# -- answering a mask ------------------------------------------------------------------


def permitted(
    policy: Policy,
    *,
    grant: Grant,
    data: Data,
    lookup: Lookup,
    namespace: str,
    expand: Expand,
    me: str,
) -> bool:
    """Whether ``grant`` releases every attribute of every resource ``policy`` names,
    judged from the access subject's view and the policy alone (non-interference): a
    resource it may not see, or whose class it may not see, is ``Deny`` like an unknown
    one, and ``"*"`` identifiers are the members of the class it sees."""
    if not all(is_read(a) for a in policy.actions):
        return False  # the node serves reads only
    if policy.service_providers is not None and me not in policy.service_providers:
        return False  # a policy about another provider's data
    cls = expand(policy.type)
    attributes = [expand(a) for a in policy.attributes if a != "*"]
    if cls is None or None in attributes:
        return False
    every_field = "*" in policy.attributes
    wanted = {a for a in attributes if a}
    try:
        views = _views(policy.identifiers, cls, grant, data, lookup, namespace)
        return bool(views) and all(
            _releases(grant, iri, cls, view, wanted, every_field) for iri, view in views.items()
        )
    except ValueError:  # an identifier or attribute that is not an IRI
        return False


def _views(
    identifiers: Sequence[str], cls: str, grant: Grant, data: Data, lookup: Lookup, namespace: str
) -> dict[str, list[ox.Triple]]:
    """The subject's view of each identified resource (``"*"``: every member of ``cls``
    in ``namespace`` the subject sees as one); an empty view for one outside the
    namespace or out of sight."""
    iris = dict.fromkeys(data.members(cls, namespace) if "*" in identifiers else [])
    iris.update(dict.fromkeys(i for i in identifiers if i != "*"))
    views: dict[str, list[ox.Triple]] = {}
    for iri in iris:
        seen = []
        if iri.startswith(namespace):
            seen = decide(grant, ox.NamedNode(iri), data.describe(iri), lookup).triples
        if iri in identifiers or _typed(seen, iri, cls):  # unseen members are not named to it
            views[iri] = seen
    return views


def _typed(view: list[ox.Triple], iri: str, cls: str) -> bool:
    return ox.Triple(ox.NamedNode(iri), ox.NamedNode(RDF_TYPE), ox.NamedNode(cls)) in view


def _releases(
    grant: Grant, iri: str, cls: str, view: list[ox.Triple], attributes: set[str], every_field: bool
) -> bool:
    """``Permit`` for one resource: its class is in the subject's view, and each attribute
    is either in it or, absent from it, released by the policy to such a resource without
    condition (then it has no value: it would be in the view)."""
    if not _typed(view, iri, cls):
        return False  # unknown, out of sight, or not (visibly) of the policy's class: alike
    subject = ox.NamedNode(iri)
    classes = frozenset(
        t.object.value
        for t in view
        if t.subject == subject and t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
    )
    shown = {t.predicate.value for t in view if t.subject == subject}
    mine = [r for r in grant.rules if selects(r, iri, classes) or r.effect == "deny"]
    if every_field and not _in_full(mine, iri):
        return False
    return all(a in shown or _without_condition(mine, iri, a) for a in attributes)


def _in_full(rules: list[Rule], iri: str) -> bool:
    """Every field, whatever the resource holds: an unconditional permit of all fields
    and no deny that could apply to this IRI."""
    if any(r.effect == "deny" and (not r.iris or any(p.match(iri) for p in r.iris)) for r in rules):
        return False
    return any(r.effect == "permit" and r.fields is None and not r.exclude and not r.where for r in rules)


def _without_condition(rules: list[Rule], iri: str, field: str) -> bool:
    """``field`` is released by a permit without conditions and no deny could withhold it."""
    for r in rules:
        if r.effect == "deny" and r.covers(field) and (not r.iris or any(p.match(iri) for p in r.iris)):
            return False
    return any(r.effect == "permit" and not r.where and r.covers(field) for r in rules)


def answer(request: DelegationRequest, verdict: Callable[[Policy], bool], now: int) -> dict[str, Any]:
    """The ``delegationEvidence`` claim: the mask echoed, each policy Permit or Deny."""
    return {
        "notBefore": now,
        "notOnOrAfter": now + EVIDENCE_LIFETIME,
        "policyIssuer": request.policy_issuer,
        "target": {"accessSubject": request.access_subject},
        "policySets": [
            {
                "maxDelegationDepth": 0,
                "target": {"environment": {"licenses": list(LICENSES)}},
                "policies": [
                    {"target": p.target, "rules": [{"effect": "Permit" if verdict(p) else "Deny"}]}
                    for p in policies
                ],
            }
            for policies in request.policy_sets
        ],
    }


# -- accepting evidence ---------------------------------------------------------------


def _refused(reason: str, detail: str) -> Forbidden:
    return Forbidden(f"the delegation evidence is refused: {detail}", reason=reason)


def _malformed(detail: str) -> Forbidden:
    return _refused("evidence_malformed", detail)


def verify_evidence(
    token: str,
    *,
    me: str,
    caller: str,
    trusted: Sequence[str],
    authorities: Mapping[str, Party | None],
    now: float,
) -> Evidence:
    """Verify a delegation token, then validate its claims (iSHARE JWT: RS256, ``x5c``,
    ``exp = iat + 30``; ``trust.verify_signed``). ``authorities`` maps each AR the node
    trusts to its registry entry; the signer must be one of them, active, with the
    signing certificate registered. ``aud`` is whoever asked the AR: the caller or this
    node."""
    signed = verify_signed(token, trusted=trusted, now=now, fail=_refused)
    _check_authority(signed.signer, fingerprint(signed.chain[0]), authorities, now)
    check_audience(signed.claims, (caller, me), _refused)
    check_lifetime(signed.claims, now, _refused)
    return read_evidence(signed.claims.get("delegationEvidence"), signed.signer, _malformed)


def _check_authority(
    authority: str, certificate: str, authorities: Mapping[str, Party | None], now: float
) -> None:
    """The signer is an AR this node trusts, active in the registry, signing with its
    registered certificate (iSHARE: the party check applies to ARs too)."""
    if authority not in authorities:
        raise _refused(
            "authority_untrusted", f"{authority} is not an authorization registry this node trusts"
        )
    entry = authorities[authority]
    if entry is None:
        raise _refused("authority_unknown", f"{authority} is not a participant in the registry")
    inactive = entry.active_at(dt.datetime.fromtimestamp(now, dt.UTC))
    if inactive:
        raise _refused("authority_not_active", inactive)
    if certificate not in entry.certificates:
        raise _refused(
            "certificate_not_registered", f"the signing certificate is not the one registered for {authority}"
        )


def evidence_rules(
    evidence: Evidence, *, me: str, caller: str, now: float, expand: Expand
) -> tuple[Rule, ...]:
    """Permit rules for ``caller`` from evidence about this node's policies, valid now."""
    if evidence.policy_issuer != me:
        raise _refused(
            "policy_issuer_wrong", f"its policyIssuer is {evidence.policy_issuer}, not this node ({me})"
        )
    if evidence.access_subject != caller:
        raise _refused("access_subject_wrong", f"it is for {evidence.access_subject}, not for {caller}")
    if not evidence.not_before <= now < evidence.not_on_or_after:
        raise _refused("evidence_not_in_force", "now is outside its notBefore .. notOnOrAfter")
    rules = []
    for policy in evidence.policies:
        if any(e != "Permit" for e in policy.effects) or not any(is_read(a) for a in policy.actions):
            continue
        rule = _rule(evidence, policy, caller, expand)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(evidence: Evidence, policy: Policy, caller: str, expand: Expand) -> Rule | None:
    cls = expand(policy.type)
    fields = [expand(a) for a in policy.attributes if a != "*"]
    if cls is None or None in fields:
        return None  # a class or property this node does not know grants nothing
    every = "*" in policy.identifiers
    content = [
        evidence.authority,
        caller,
        evidence.not_before,
        evidence.not_on_or_after,
        cls,
        sorted(set(policy.identifiers)),
        sorted(set(policy.attributes)),
    ]
    # the id names the content: views and caches are keyed by the grant's rule ids
    digest = hashlib.sha256(orjson.dumps(content)).hexdigest()[:16]
    return Rule(
        id=f"evidence-{digest}",
        file=f"delegation evidence from {evidence.authority}",
        line=0,
        effect="permit",
        parties=frozenset({caller}),
        roles=frozenset(),
        anyone=False,
        classes=frozenset({cls}),
        iris=() if every else tuple(re.compile(re.escape(i) + r"\Z") for i in policy.identifiers),
        where=(),
        fields=None if "*" in policy.attributes else frozenset(f for f in fields if f),
        exclude=frozenset(),
        valid_from=dt.datetime.fromtimestamp(evidence.not_before, dt.UTC),
        valid_until=dt.datetime.fromtimestamp(evidence.not_on_or_after, dt.UTC),
    )


def rules_from_evidence(
    token: str,
    *,
    me: str,
    caller: str,
    trusted: Sequence[str],
    authorities: Mapping[str, Party | None],
    now: float,
    expand: Expand,
) -> tuple[Rule, ...]:
    """The extra grant a delegation token gives ``caller``; ``Forbidden`` if refused."""
    evidence = verify_evidence(token, me=me, caller=caller, trusted=trusted, authorities=authorities, now=now)
    return evidence_rules(evidence, me=me, caller=caller, now=now, expand=expand)
