"""How strict and how slow the fake is: the knobs tests turn (``FakeAzure.behaviour``).

Defaults are Azure's behaviour at test scale: every delay Azure has is on, measured in seconds
instead of minutes, so the collection's waits run in every test. A test that exercises one fault
sets its field before a run and restores it after.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Seeded, state-free fault injection (answered before the request is handled).

    ``throttle_rate`` and ``error_rate`` are probabilities per counted request; ``error_burst``
    is how many consecutive requests fail once an error starts; ``services`` limits injection to
    some services (``main`` = ARM and login, ``graph``, ``keyvault``; empty = all).
    """

    seed: int = 0
    throttle_rate: float = 0.0
    retry_after: int = 1
    error_rate: float = 0.0
    error_status: int = 503
    error_burst: int = 1
    services: tuple[str, ...] = ()


@dataclass
class Behaviour:
    # A new service principal or user-assigned identity is unknown to ARM role assignment
    # (PrincipalNotFound) and to Graph reads for this long.
    principal_lag: float = 2.0
    # A new role assignment takes effect (ARM and Key Vault data plane) after this long.
    rbac_propagation: float = 2.0
    # A new vault's hostname does not resolve for this long.
    vault_dns_lag: float = 2.0
    # How many times a managedClusters operation answers InProgress before Succeeded.
    aks_operation_polls: int = 1
    faults: Faults = field(default_factory=Faults)
    # Kill the client process holding the connection of the N-th counted request (None: never).
    kill_at_call: int | None = None
