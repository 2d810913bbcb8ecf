"""The built-in plugins pass the same contract a partner's plugin runs (``sdk.testing``)."""

from __future__ import annotations

from typing import Any, ClassVar

from sdk.testing import PluginContract


class TestBankingContract(PluginContract):
    plugin = "banking"
    sample: ClassVar[dict[str, Any]] = {
        "riskTolerance": "C2",
        "aumBand": "FROM_10M_TO_100M",
        "privacyOptOut": True,
        "kycReviewDate": "2027-01-15",
    }


class TestManufacturingContract(PluginContract):
    plugin = "manufacturing"
    sample: ClassVar[dict[str, Any]] = {
        "esgRequirements": ["carbon report"],
        "deliverySlaDays": 10,
        "qualityCertifications": ["ISO_9001", "IATF_16949"],
        "plantRegion": "CN_EAST",
    }
