"""Use cases, free of GraphQL; each write is one transaction with its audit entries."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock, SystemClock
from core.db import Database
from core.services.audit import Actor
from core.services.customers import CustomerService
from core.services.users import UserService


@dataclass
class Services:
    """Every use case of the process, sharing one database and one clock."""

    db: Database
    clock: Clock
    customers: CustomerService
    users: UserService

    @classmethod
    def create(cls, db: Database, clock: Clock | None = None) -> Services:
        clock = clock or SystemClock()
        return cls(
            db=db, clock=clock, customers=CustomerService(db, clock), users=UserService(db, clock)
        )


__all__ = ["Actor", "Services"]
