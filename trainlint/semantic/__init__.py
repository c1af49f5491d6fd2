"""The per-file semantic model shared by the rules (see `SemanticModel`)."""

from trainlint.semantic.model import (
    Binding,
    CallSite,
    ClassInfo,
    Guard,
    Policy,
    Scope,
    SelfAccess,
    SemanticModel,
    is_stub,
    receiver,
)

__all__ = [
    "Binding", "CallSite", "ClassInfo", "Guard", "Policy", "Scope", "SelfAccess", "SemanticModel",
    "is_stub", "receiver",
]
