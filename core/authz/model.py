"""The Casbin model: RBAC with role inheritance; objects ``Type.field`` with ``*`` wildcards."""

from __future__ import annotations

from casbin.model import Model

MODEL_TEXT = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act
"""

ACTIONS = ("read", "write", "call")


def casbin_model() -> Model:
    """A fresh model instance (Casbin mutates models while loading policies)."""
    model = Model()
    model.load_model_from_text(MODEL_TEXT)
    return model
