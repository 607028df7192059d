"""The one attempt step both use cases call: the account's credentials and pacing, the provider call,
and what its answer means.

The HTTP reschedule (service.py) and the queued delivery (delivery.py) are peers over this step;
neither imports the other. A step either returns `Moved` or raises the RelayError to answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from relay.errors import RelayError, not_configured
from relay.ports import pace_key
from relay.providers.client import ProviderError, SendPolicy
from relay.providers.pacing import Pacing
from relay.reschedule.attempts import Succeeded, result_of
from relay.reschedule.circuit import PROBE_TRIES, Admission, Turn, counts

if TYPE_CHECKING:
    from relay.command import RescheduleCommand
    from relay.deadline import Deadline
    from relay.ports import BookingChain, Secrets
    from relay.providers.base import Credentials, Provider
    from relay.providers.client import ProviderReply
    from relay.reschedule.circuit import Breaker
    from relay.settings import Settings

logger = Logger(child=True)


class Providers(Protocol):
    """The provider calls' port (relay.providers.client.ProviderClient; a fake in tests/unit)."""

    def move(
        self,
        provider: Provider,
        command: RescheduleCommand,
        credentials: Credentials,
        deadline: Deadline | None = None,
        pacing: Pacing | None = None,
        *,
        settle_first: bool = False,
        policy: SendPolicy | None = None,
    ) -> ProviderReply: ...


@dataclass(frozen=True)
class Moved:
    """The provider moved the booking: what the record stores and what the caller is answered."""

    outcome: Succeeded

    def answer(self, reschedule_id: str, command: RescheduleCommand) -> dict[str, Any]:
        return result_of(reschedule_id, command, self.outcome.provider_result, self.outcome.new_booking_id)


class AttemptStep:
    def __init__(
        self,
        settings: Settings,
        *,
        secrets: Secrets,
        chain: BookingChain,
        providers: Providers,
        adapters: Mapping[str, Provider],
        breaker: Breaker | None = None,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._chain = chain
        self._providers = providers
        self._adapters = adapters
        self._breaker = breaker

    def credentials_name(self, command: RescheduleCommand) -> str:
        return f"{self._settings.secrets_prefix}/providers/{command.provider}/{command.account}"

    def prefetch(self, command: RescheduleCommand) -> None:
        """Start reading the account's secret (on a cold cache) while the caller takes its key."""
        self._secrets.prefetch(self.credentials_name(command))

    def admit(self, command: RescheduleCommand, token: str) -> Admission | None:
        """The account's circuit for a queued delivery: call as usual, probe, or wait (None: no circuit)."""
        if self._breaker is None:
            return None
        return self._breaker.admit(command.provider, command.account, token)

    def release(self, admission: Admission | None) -> None:
        """An admission not used (the delivery did not start): its probe lease is given back."""
        if self._breaker is not None and admission is not None:
            self._breaker.settled(admission, None, called=False)

    def hold_after(self, error: RelayError) -> int | None:
        """After a failed queued attempt: the wait until the account's next probe when this failure
        counts for its circuit (it is open now), else None (the retry schedule applies)."""
        if self._breaker is None or not counts(error):
            return None
        return self._breaker.reopen_wait()

    def move(
        self,
        command: RescheduleCommand,
        deadline: Deadline,
        *,
        pace_wait: float,
        settle_first: bool = False,
        admission: Admission | None = None,
        guard: Callable[[], None] | None = None,
    ) -> Moved:
        """One attempt: pace, call, and read the answer. `pace_wait`: the door's longest pacing wait.

        `settle_first`: an earlier attempt of this request ended with its outcome unknown, so the
        booking is read before anything is sent (providers whose move is not safe to repeat).
        After an unknown outcome inside this attempt, the provider client reads before resending.
        A queued delivery passes its circuit `admission` (a probe makes one try; the outcome opens or
        closes the circuit) and its `guard`, run right before each provider call starts.
        """
        adapter = self._adapters[command.provider]
        probing = admission is not None and admission.turn is Turn.PROBE
        policy = None
        if guard is not None or probing:
            policy = SendPolicy(before_each=guard, **({"max_tries": PROBE_TRIES} if probing else {}))
        try:
            reply = self._call(
                adapter, self.latest(command), deadline, pace_wait, settle_first, policy=policy
            )
        except RelayError as error:
            if self._breaker is not None and admission is not None:
                # Only a ProviderError comes from a call; pacing, the guard or a secret stopped the others.
                self._breaker.settled(admission, error, called=isinstance(error, ProviderError))
            raise
        if self._breaker is not None and admission is not None:
            self._breaker.settled(admission, None, called=True)
        return Moved(
            Succeeded(
                reply.status,
                reply.latency_ms,
                adapter.summarise(reply.body),
                adapter.new_booking_id(reply.body),
            )
        )

    def latest(self, command: RescheduleCommand) -> RescheduleCommand:
        """The command aimed at the booking's latest id, following the ids this relay recorded.

        Cal.com gives a booking a new id on every move; a link or zap holding an earlier id still
        means the same booking, so the move goes to the id the last recorded move created (the chain
        items each success writes with its answer: relay/dal/ledger.py).
        """
        if not self._adapters[command.provider].booking_id_changes:
            return command
        latest = self._chain.latest_booking_id(command.provider, command.booking_id)
        if latest is None or latest == command.booking_id:
            return command
        return command.model_copy(update={"booking_id": latest})

    def unsettled(self, command: RescheduleCommand, error: RelayError) -> bool:
        """Whether a failed attempt left the booking in an unknown state that a repeat could worsen:
        its retry must read the booking before sending anything."""
        adapter = self._adapters[command.provider]
        return (
            isinstance(error, ProviderError)
            and error.outcome_unknown
            and adapter.has_read
            and not adapter.repeat_is_harmless
        )

    def _call(
        self,
        adapter: Provider,
        command: RescheduleCommand,
        deadline: Deadline,
        pace_wait: float,
        settle_first: bool,
        *,
        policy: SendPolicy | None,
    ) -> ProviderReply:
        credentials = self._credentials(command)
        pacing = self._pacing(adapter, command, credentials, pace_wait)
        try:
            return self._providers.move(
                adapter,
                command,
                credentials,
                deadline,
                pacing=pacing,
                settle_first=settle_first,
                policy=policy,
            )
        except ProviderError as error:
            if error.code != "provider_auth_failed":
                raise
        # Refused credentials: the token may have been rotated since it was cached. Read it again, once.
        logger.warning(
            "provider refused the cached token; reading it again", extra={"provider": adapter.name}
        )
        credentials = self._credentials(command, force_fetch=True)
        return self._providers.move(
            adapter, command, credentials, deadline, pacing=pacing, settle_first=settle_first, policy=policy
        )

    def _pacing(
        self, adapter: Provider, command: RescheduleCommand, credentials: Credentials, pace_wait: float
    ) -> Pacing:
        """The account's pacing: each provider call (retries too) takes a token from its bucket first."""
        rate = (
            adapter.delivery_rate_per_minute
            if credentials.rate_per_minute is None
            else credentials.rate_per_minute
        )
        return Pacing(
            key=pace_key(command.provider, command.account), rate_per_minute=rate, max_wait_seconds=pace_wait
        )

    def _credentials(self, command: RescheduleCommand, *, force_fetch: bool = False) -> Credentials:
        """The account's secret, in the shape its adapter declares (naming missing keys, never values)."""
        name = self.credentials_name(command)
        secret = self._secrets.get_json(name, force_fetch=force_fetch)
        try:
            credentials = self._adapters[command.provider].credentials.model_validate(secret)
        except ValidationError as exc:
            keys = sorted({str(e["loc"][0]) for e in exc.errors(include_input=False) if e["loc"]})
            raise not_configured(f"secret {name!r} lacks a valid {', '.join(map(repr, keys))}.") from None
        for warning in credentials.warnings():
            logger.warning(warning, extra={"provider": command.provider, "account": command.account})
        return credentials
