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
)

__all__ = [
    "Binding", "CallSite", "ClassInfo", "Guard", "Policy", "Scope", "SelfAccess", "SemanticModel",
]
