"""Every field of a function's definition (and of ``with_options``) is classified in
``modal_emu.definition``: a modal release that adds a field fails this test until someone decides
whether the emulator emulates it, refuses it by name, warns of it, or why it is irrelevant here."""

from __future__ import annotations

import pytest
from modal_emu.definition import EMULATED, IRRELEVANT, REFUSED, TABLES, WARNED


@pytest.mark.parametrize("message_name", sorted(TABLES))
def test_every_field_is_classified(message_name):
    message, table = TABLES[message_name]
    fields = {field.name for field in message.DESCRIPTOR.fields}
    unclassified = sorted(fields - set(table))
    stale = sorted(set(table) - fields)
    assert not unclassified, f"api_pb2.{message_name} fields not in modal_emu/definition.py: {unclassified}"
    assert not stale, f"modal_emu/definition.py classifies fields api_pb2.{message_name} lacks: {stale}"


@pytest.mark.parametrize("message_name", sorted(TABLES))
def test_every_classification_says_what_or_why(message_name):
    for name, field in TABLES[message_name][1].items():
        assert field.status in (EMULATED, REFUSED, WARNED, IRRELEVANT), name
        assert len(field.note) > 10, f"{message_name}.{name}: say what the feature is, or why"
