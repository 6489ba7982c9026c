"""The README's configuration table is generated from the settings classes: this fails when it is stale."""

from __future__ import annotations

import pytest

from services.operator.configdoc import README, render_readme, table

pytestmark = pytest.mark.unit


def test_readme_configuration_table_matches_the_code() -> None:
    text = README.read_text()
    assert render_readme(text) == text, "README.md's configuration table is stale: run `make docs`"


def test_every_setting_of_every_service_is_in_the_table() -> None:
    rendered = table()
    for variable in ("JOBSYNC_INGRESS_PATH_SECRETS", "JOBSYNC_POLLER_API_KEY", "JOBSYNC_PROJECTOR_WRITE_CHUNK",
                     "JOBSYNC_KAFKA_BOOTSTRAP_SERVERS", "JOBSYNC_MONGODB_URI", "JOBSYNC_LOG_FORMAT"):
        assert f"`{variable}`" in rendered
