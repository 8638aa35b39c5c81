"""reconciler: a declarative GitOps reconciler for Atlan tenants."""

__version__ = "0.1.0"
