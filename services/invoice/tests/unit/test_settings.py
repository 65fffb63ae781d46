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


@pytest.mark.parametrize("environment", ["Production", " production ", "prod", "staging"])
def test_an_environment_named_otherwise_does_not_slip_past_the_production_checks(environment):
    """The default link secret is public: a deployment named "prod" that kept it would let anyone sign links."""
    with pytest.raises(ValidationError, match="INVOICE_LINK_SECRET|'local', 'test' or 'production'"):
        Settings(environment=environment)
    assert Settings(environment="TEST").environment == "test"


def test_a_link_in_an_invoice_email_still_opens_after_its_terms_a_month_of_dunning_and_an_smtp_outage():
    import time
    import uuid

    from app.domain import links
    from app.links import InvoiceLinks

    settings = Settings(_env_file=None)
    invoice_id = uuid.uuid4()
    token = InvoiceLinks(settings.public_base_url, settings.invoice_link_secret, settings.invoice_link_ttl_s).token(
        invoice_id
    )
    day = 24 * 3600
    opened_at = int(time.time()) + (settings.invoice_net_days + 30 + 3) * day
    assert links.verify(settings.invoice_link_secret, invoice_id, token, opened_at)
