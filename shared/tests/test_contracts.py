"""The event catalog and envelope: one contract per routing key, read tolerantly."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_shared.contracts import CustomerCreated, PaymentFailed
from billing_shared.events import CATALOG, Envelope, payload_model
from billing_shared.ids import new_id
from billing_shared.money import Money, format_money, normalize_currency


def test_every_contract_is_registered_under_a_snake_case_routing_key():
    assert len(CATALOG) >= 20
    for key, model in CATALOG.items():
        aggregate, fact = key.split(".")
        assert aggregate == aggregate.lower() and fact == fact.lower()
        assert "type" not in model.model_fields


def test_envelope_round_trips_and_ignores_unknown_fields():
    env = Envelope(type="customer.created", producer="customer", payload={"customer_id": str(uuid.uuid4()),
                   "email": "a@b.co", "future": 1})
    again = Envelope.model_validate_json(env.model_dump_json())
    assert again.event_id == env.event_id
    assert again.occurred_at.tzinfo is not None
    assert again.payload_as(CustomerCreated).email == "a@b.co"


def test_unknown_event_type_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown event type"):
        payload_model("customer.exploded")


def test_payment_failed_carries_decline_kind():
    with pytest.raises(ValueError):
        PaymentFailed(payment_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=1, currency="USD",
                      failure_code="x", decline_type="maybe")


def test_uuid7_ids_are_time_ordered():
    ids = [new_id() for _ in range(1000)]
    assert all(i.version == 7 for i in ids)
    assert len(set(ids)) == 1000
    timestamps = [i.int >> 80 for i in ids]
    assert timestamps == sorted(timestamps)


@given(st.integers(min_value=-10**12, max_value=10**12), st.integers(min_value=-10**12, max_value=10**12))
def test_money_addition_is_exact_integer_arithmetic(a, b):
    assert (Money(a, "USD") + Money(b, "USD")).amount == a + b


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money(50.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(ValueError):
        normalize_currency("XYZ1")


def test_money_is_formatted_per_currency():
    assert format_money(4999, "USD") == "$49.99"
    assert format_money(500, "JPY") == "¥500"
    assert format_money(1234, "KWD") == "KWD1.234"
