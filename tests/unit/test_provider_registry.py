"""The provider registry is the one list: settings, template, OpenAPI and docs are held to it."""

from __future__ import annotations

from pathlib import Path

from pydantic import HttpUrl

from local.template import function_environment, load_template
from relay.providers import PROVIDERS
from relay.providers.base import Credentials
from relay.settings import Settings
from relay.web.schema import request_body

REPO = Path(__file__).resolve().parents[2]


def test_each_provider_declares_what_the_relay_needs() -> None:
    for name, adapter in PROVIDERS.items():
        assert adapter.name == name
        assert adapter.display_name
        assert adapter.booking_id_format
        assert issubclass(adapter.credentials, Credentials)
        assert adapter.delivery_rate_per_minute > 0
        assert adapter.production_base_url.startswith("https://")


def test_settings_have_a_base_url_per_provider_defaulting_to_production() -> None:
    base_urls = {name for name in Settings.model_fields if name.endswith("_base_url")}
    assert base_urls == {adapter.base_url_setting for adapter in PROVIDERS.values()}
    for adapter in PROVIDERS.values():
        default = Settings.model_fields[adapter.base_url_setting].default
        assert default == HttpUrl(adapter.production_base_url)


def test_template_passes_each_provider_base_url_with_the_production_default() -> None:
    template = load_template()
    environment = function_environment(template)
    parameters = template["Parameters"]
    for adapter in PROVIDERS.values():
        reference = environment[adapter.base_url_setting.upper()]
        parameter = parameters[reference["Ref"]]
        assert parameter["Default"] == adapter.production_base_url
        assert parameter["AllowedPattern"] == "^https://\\S+$"


def test_openapi_provider_enum_and_booking_id_docs_come_from_the_registry() -> None:
    schema = next(iter(request_body()["content"].values()))["schema"]["properties"]
    assert schema["provider"]["enum"] == sorted(PROVIDERS)
    for adapter in PROVIDERS.values():
        assert adapter.display_name in schema["booking_id"]["description"]


def test_the_docs_provider_table_lists_every_provider() -> None:
    docs = "\n".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").rglob("*.md")])
    for adapter in PROVIDERS.values():
        assert adapter.display_name in docs
        assert adapter.base_url_setting.upper() in docs
