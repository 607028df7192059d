"""The relay's boto3 session does not list every service botocore ships to create a client of its own
(relay/dal/clients.py, `ServiceLoader`); any other service still loads or fails as before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from relay.dal import clients


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients.forget()
    yield
    clients.forget()


def test_relay_clients_are_made_without_the_full_listing(
    session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_listing(self: Loader, type_name: str) -> list[str]:
        raise AssertionError(f"listed every service for {type_name}")

    monkeypatch.setattr(Loader, "list_available_services", full_listing)

    made = {
        name: clients.new_client(name).meta.service_model.service_name
        for name in sorted(clients.RELAY_SERVICES)
    }

    assert made == {"dynamodb": "dynamodb", "secretsmanager": "secretsmanager", "sqs": "sqs"}


def test_any_other_service_still_loads_through_the_full_listing(session: None) -> None:
    assert clients.new_client("sts").meta.service_model.service_name == "sts"
    with pytest.raises(UnknownServiceError):
        clients.new_client("no-such-service")


def test_the_loader_keeps_botocore_and_boto3_search_paths(session: None) -> None:
    loader = clients._session()._session.get_component("data_loader")

    assert isinstance(loader, clients.ServiceLoader)
    assert [path.rsplit("/", 2)[-2:] for path in loader.search_paths][-2:] == [
        ["botocore", "data"],
        ["boto3", "data"],
    ]
