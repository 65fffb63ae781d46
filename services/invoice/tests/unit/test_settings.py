"""Settings: working local defaults, and no default link secret in production."""

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_local_defaults_match_the_original_demo():
    settings = Settings(_env_file=None)
    assert (settings.invoice_number_prefix, settings.credit_note_prefix, settings.invoice_net_days) == ("INV-", "CN-", 7)
    assert settings.public_base_url == "http://localhost:8080"


def test_production_refuses_the_default_link_secret():
    with pytest.raises(ValidationError, match="INVOICE_LINK_SECRET"):
        Settings(environment="production")
    assert Settings(environment="production", invoice_link_secret="x" * 40).environment == "production"
