"""Old import path of the solver, kept only for ``lock.py`` (owned elsewhere) until it imports
``conda.order.dependency_order``; new code imports ``conda.solve`` / ``conda.order``. Delete with that change."""

from .order import dependency_order
from .solve import solve

__all__ = ["dependency_order", "solve"]
