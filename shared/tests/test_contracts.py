"""The event catalog and envelope: one contract per routing key, read tolerantly."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_shared.amqp import binding_patterns
from billing_shared.contracts import CustomerCreated, PaymentFailed, PaymentSucceeded
from billing_shared.events import CATALOG, Envelope, payload_model, routing_key_of
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


def _payment_succeeded(**kw) -> PaymentSucceeded:
    return PaymentSucceeded(payment_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=500, currency="USD", **kw)


def test_payment_facts_are_routed_by_what_was_paid_and_whether_dunning_retried_it():
    assert _payment_succeeded().routing_key() == "payment.succeeded.one_off.direct"
    assert _payment_succeeded(invoice_id=uuid.uuid4()).routing_key() == "payment.succeeded.invoice.direct"
    assert (_payment_succeeded(invoice_id=uuid.uuid4(), dunning_case_id=uuid.uuid4()).routing_key()
            == "payment.succeeded.invoice.dunning")
    assert _payment_succeeded(dunning_case_id=uuid.uuid4()).routing_key() == "payment.succeeded.one_off.dunning"


def test_other_events_are_routed_by_their_type_alone():
    assert CustomerCreated(customer_id=uuid.uuid4(), email="a@b.co").routing_key() == "customer.created"


def test_an_envelope_is_routed_like_its_event():
    event = _payment_succeeded(invoice_id=uuid.uuid4())
    env = Envelope(type=event.type, producer="payment", payload=event.model_dump(mode="json"))
    assert routing_key_of(env) == "payment.succeeded.invoice.direct"
    assert routing_key_of(Envelope(type="benchhop.requested", producer="x", payload={})) == "benchhop.requested"


def test_a_consumer_hears_a_type_whole_unless_its_bindings_narrow_it():
    bind, unbind = binding_patterns(
        ["payment.succeeded", "invoice.paid"], {"payment.succeeded": ["payment.succeeded.*.dunning"]})
    # The bare type stays bound for producers from before routing words; the old catch-all goes.
    assert bind == ["invoice.paid.#", "payment.succeeded", "payment.succeeded.*.dunning"]
    assert unbind == ["payment.succeeded.#"]


def test_a_retired_type_loses_every_binding_it_had():
    bind, unbind = binding_patterns(["invoice.paid"], {}, retired=["customer.updated"])
    assert bind == ["invoice.paid.#"]
    assert unbind == ["customer.updated", "customer.updated.#"]
