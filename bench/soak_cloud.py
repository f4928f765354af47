"""The cloud link of the soak: the edge's real cloud agent on a flapping link, fed poison.

:func:`cloud_companion` runs beside the soak site (``simulate(attach=...)``) in virtual time:
the edge's own :class:`~fuseguard.cloud.edge_agent.EdgeCloudAgent` over an
:class:`~fuseguard.api.edge_evse.EdgeEvseBackend` on the very ``EvseTargets`` the controller
obeys, with its MQTT link replaced by :class:`FlappingLink`: in process, no broker, the same
:class:`~fuseguard.cloud.link.Link` contract. The link is up for a random while, drops (every
publish then fails with ``LinkDownError``, as a dead broker connection does), and comes back
(subscriptions renewed, the agent's connect hook called: ``online`` and every status again).
While it is up the "cloud" sends commands through the agent's own message handler: valid ``set``
and ``clear`` commands and poisoned ones (:data:`POISON`: out-of-range, huge and non-finite
numbers, wrong types, malformed and oversized JSON, unknown EVSEs, wrong topics), and a poisoned
retained command right after every reconnect, as a broker would redeliver one.

Judged (:func:`cloud_verdict`): the link did flap, valid commands were acknowledged
``received``, no poisoned command was acknowledged ``received``, and the backend never stored a
target outside ``0`` or ``[min, max]`` A or beyond ``max_duration_s``; a dead agent task ends
the run (the runner re-raises) and an error-level log event counts as a crash in the soak.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fuseguard.api.edge_evse import EdgeEvseBackend
from fuseguard.api.evse_models import DEFAULT_MAX_DURATION_S, EvseInfo
from fuseguard.cloud.edge_agent import EdgeCloudAgent
from fuseguard.cloud.link import LinkDownError, LinkMessage, LinkTimeoutError
from fuseguard.cloud.protocol import MAX_PAYLOAD_BYTES, AckMessage, Topics
from fuseguard.control.targets import EvseTargets
from fuseguard.model.clock import Clock
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.scenario.runner import RunContext

EDGE_ID = "soak-edge"
REPLICA = "replica-1"
TOPICS = Topics()
#: (shortest, longest) up and down times of the link, and the gap between commands (s)
UP_S = (120.0, 2 * 3600.0)
DOWN_S = (2.0, 900.0)
COMMAND_GAP_S = (20.0, 900.0)
POISON_SHARE = 0.6


def _command(evse: str, **kw: Any) -> dict[str, Any]:
    return {"reply_to": TOPICS.ack(EDGE_ID, REPLICA), "evse_uuid": evse, **kw}


def _set(evse: str, current: Any, duration: Any) -> dict[str, Any]:
    return _command(evse, op="set", current=current, duration=duration)


#: kind -> (evse uuid, its max A, a random source) -> the payload of one poisoned command
POISON: dict[str, Callable[[str, int, random.Random], bytes | dict[str, Any]]] = {
    "current_above_max": lambda e, mx, r: _set(e, r.randint(mx + 1, 1000), 600),
    "current_below_min": lambda e, mx, r: _set(e, r.randint(1, MIN_CHARGE_CURRENT_A - 1), 600),
    "current_negative": lambda e, mx, r: _set(e, -r.randint(1, 100), 600),
    "current_huge_int": lambda e, mx, r: _set(e, 10**30, 600),
    "current_float": lambda e, mx, r: _set(e, 16.5, 600),
    "current_string": lambda e, mx, r: _set(e, "16", 600),
    "current_nan": lambda e, mx, r: _set(e, float("nan"), 600),
    "current_infinity": lambda e, mx, r: _set(e, float("inf"), 600),
    "duration_zero": lambda e, mx, r: _set(e, mx, 0),
    "duration_above_max": lambda e, mx, r: _set(e, mx, DEFAULT_MAX_DURATION_S + 1),
    "duration_1e9": lambda e, mx, r: _set(e, MIN_CHARGE_CURRENT_A, 10**9),
    "duration_2_5e11": lambda e, mx, r: _set(e, MIN_CHARGE_CURRENT_A, 250_000_000_000),
    "duration_infinity": lambda e, mx, r: _set(e, mx, float("inf")),
    "set_without_numbers": lambda e, mx, r: _command(e, op="set"),
    "unknown_op": lambda e, mx, r: _command(e, op="explode", current=mx, duration=60),
    "unknown_evse": lambda e, mx, r: _set("0" * 32, mx, 600),
    "evse_id_injection": lambda e, mx, r: _set("../../#", mx, 600),
    "truncated_json": lambda e, mx, r: json.dumps(_set(e, mx, 600)).encode()[:40],
    "not_json": lambda e, mx, r: b"\x00\xff<html>garbage</html>",
    "empty": lambda e, mx, r: b"",
    "json_array": lambda e, mx, r: b"[1, 2, 3]",
    "oversized": lambda e, mx, r: b'{"pad": "' + b"x" * (MAX_PAYLOAD_BYTES + 10) + b'"}',
    "deeply_nested": lambda e, mx, r: b'{"id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}


@dataclass
class CloudStats:
    """What happened on the cloud link during the soak (counters only: no growth)."""

    connects: int = 0
    drops: int = 0
    refused_while_down: int = 0
    valid: Counter[str] = field(default_factory=Counter)  # sent, received, rejected, unacked
    poison: Counter[str] = field(default_factory=Counter)  # sent, received, rejected, dropped
    poison_kinds: Counter[str] = field(default_factory=Counter)
    retained_poison: int = 0
    other_topics: int = 0
    stored: int = 0
    bad_targets_stored: list[str] = field(default_factory=list)
    acks: dict[str, str] = field(default_factory=dict)  # id -> state, until counted

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "connects": self.connects,
            "drops": self.drops,
            "publishes_refused_while_down": self.refused_while_down,
            "valid_commands": dict(self.valid),
            "poisoned_commands": dict(self.poison),
            "poison_kinds": dict(sorted(self.poison_kinds.items())),
            "retained_poison_on_reconnect": self.retained_poison,
            "messages_on_other_topics": self.other_topics,
            "targets_stored": self.stored,
            "bad_targets_stored": self.bad_targets_stored[:20],
        }


class WatchedBackend(EdgeEvseBackend):
    """The edge's EVSE backend, noting every target it stores and any it must never store."""

    def __init__(self, evses: dict[str, EvseInfo], targets: EvseTargets, stats: CloudStats):
        super().__init__(EDGE_ID, evses, targets, lambda _uuid: [])
        self.infos = evses
        self.stats = stats

    async def set_target(
        self, edge_device_id: str, evse_uuid: str, current_a: int, duration_s: int
    ) -> Literal["received", "rejected"]:
        """Store (as the edge does), checking the value against the EVSE's range first."""
        info = self.infos.get(evse_uuid)
        ok_current = current_a == 0 or (
            info is not None and info.min_current_a <= current_a <= info.max_current_a
        )
        if not (ok_current and 1 <= duration_s <= DEFAULT_MAX_DURATION_S):
            self.stats.bad_targets_stored.append(f"{evse_uuid}: {current_a} A, {duration_s} s")
        self.stats.stored += 1
        return await super().set_target(edge_device_id, evse_uuid, current_a, duration_s)


Handler = Callable[[LinkMessage], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


@dataclass(eq=False)
class FlappingLink:
    """A :class:`~fuseguard.cloud.link.Link` in process that drops and comes back (module doc);
    ``run()`` is its connection loop, as ``MqttLink.run`` is."""

    clock: Clock
    rng: random.Random
    evses: list[EvseInfo]
    stats: CloudStats
    on_message: Handler
    on_connect: Hook | None
    subscriptions: set[str] = field(default_factory=set)
    _up: bool = False
    _serial: int = 0
    _expect: dict[str, str] = field(default_factory=dict)  # command id -> "valid" | "poison"

    @property
    def connected(self) -> bool:
        """True while the simulated broker connection is up."""
        return self._up

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Take a publish (acks are counted), or refuse it while the link is down."""
        if not self._up:
            self.stats.refused_while_down += 1
            raise LinkDownError(f"{EDGE_ID}: simulated broker connection lost")
        if topic == TOPICS.ack(EDGE_ID, REPLICA):
            ack = AckMessage.model_validate_json(payload)
            kind = self._expect.pop(ack.id, None)
            if kind is not None:
                (self.stats.valid if kind == "valid" else self.stats.poison)[ack.state] += 1

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        """Remember the filter (renewed on every reconnect)."""
        self.subscriptions.add(topic_filter)

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait (on the injected clock) until the link is up."""
        waited = 0.0
        while not self._up:
            if waited >= timeout_s:
                raise LinkTimeoutError(f"{EDGE_ID}: not connected within {timeout_s} s")
            await self.clock.sleep(1.0)
            waited += 1.0

    async def run(self) -> None:
        """Up, deliver commands, drop, wait, again; until cancelled."""
        while True:
            self._up = True
            self.stats.connects += 1
            if self.on_connect is not None:
                await self.on_connect()
            await self._deliver(self._poison(), retain=True)  # a broker redelivers retained
            self.stats.retained_poison += 1
            up_until = self.clock.monotonic() + self.rng.uniform(*UP_S)
            while self.clock.monotonic() < up_until:
                await self.clock.sleep(self.rng.uniform(*COMMAND_GAP_S))
                if self.rng.random() < POISON_SHARE:
                    await self._deliver(self._poison())
                else:
                    await self._deliver(self._valid())
            if self.rng.random() < 0.3:  # the link dies while a command is being executed
                await self.on_message(LinkMessage(*self._valid()))
            self._up = False
            self.stats.drops += 1
            await self.clock.sleep(self.rng.uniform(*DOWN_S))
            self.settle()

    def _next_id(self, kind: str) -> str:
        self._serial += 1
        cid = f"c{self._serial}"
        self._expect[cid] = kind
        return cid

    def _valid(self) -> tuple[str, bytes]:
        info = self.rng.choice(self.evses)
        cid = self._next_id("valid")
        self.stats.valid["sent"] += 1
        if self.rng.random() < 0.3:
            body = _command(info.evse_uuid, op="clear", id=cid)
        else:
            current = self.rng.choice(
                [0, info.min_current_a, info.max_current_a]
                + [self.rng.randint(info.min_current_a, info.max_current_a)] * 3
            )
            body = _set(info.evse_uuid, current, self.rng.randint(60, 3600)) | {"id": cid}
        return TOPICS.command(EDGE_ID), json.dumps(body).encode()

    def _poison(self) -> tuple[str, bytes]:
        info = self.rng.choice(self.evses)
        if self.rng.random() < 0.05:  # a message for another edge or on another topic
            self.stats.other_topics += 1
            topic = self.rng.choice([TOPICS.command("other-edge"), TOPICS.state(EDGE_ID), "#"])
            return topic, json.dumps(_set(info.evse_uuid, 1000, 10**9) | {"id": "x"}).encode()
        kind = self.rng.choice(sorted(POISON))
        made = POISON[kind](info.evse_uuid, info.max_current_a, self.rng)
        self.stats.poison["sent"] += 1
        self.stats.poison_kinds[kind] += 1
        if isinstance(made, bytes):
            self._expect_none()
            return TOPICS.command(EDGE_ID), made
        made["id"] = self._next_id("poison")
        return TOPICS.command(EDGE_ID), json.dumps(made).encode()  # NaN, Infinity as JS does

    def _expect_none(self) -> None:
        """A payload that carries no id cannot be acknowledged: it counts as dropped."""
        self.stats.poison["dropped"] += 1

    async def _deliver(self, message: tuple[str, bytes], *, retain: bool = False) -> None:
        topic, payload = message
        await self.on_message(LinkMessage(topic, payload, retain))
        await self.clock.sleep(0.5)  # the agent's command task runs and acknowledges

    def settle(self) -> None:
        """Commands not acknowledged while the link was up: poisoned ones were dropped unread
        (no id the agent could trust), valid ones lost their ack with the connection."""
        for kind in self._expect.values():
            if kind == "valid":
                self.stats.valid["unacked"] += 1
            else:
                self.stats.poison["dropped"] += 1
        self._expect.clear()


async def cloud_companion(ctx: RunContext, stats: CloudStats, seed: int) -> None:
    """The cloud agent of the soak's edge on a :class:`FlappingLink` (module docstring)."""
    assert ctx.targets is not None, "the cloud link needs the fuseguard policy's targets"
    evses = [
        EvseInfo(ch.evse_uuid, MIN_CHARGE_CURRENT_A, ch.max_a, ((ch.plug_uuid, ch.id),))
        for ch in ctx.scenario.chargers
    ]
    backend = WatchedBackend({e.evse_uuid: e for e in evses}, ctx.targets, stats)
    agent = EdgeCloudAgent(
        "mqtt://127.0.0.1:1",  # never dialled: the link below replaces the MQTT client
        EDGE_ID,
        None,
        None,
        backend,
        evses,
        ctx.clock,
        status_interval_s=60.0,
    )
    mqtt = agent.link
    link = FlappingLink(
        ctx.clock, random.Random(seed), evses, stats, mqtt.on_message, mqtt.on_connect
    )
    agent.link = link  # type: ignore[assignment]
    try:
        await agent.run()
    finally:
        link.settle()


def cloud_verdict(stats: dict[str, Any]) -> dict[str, bool]:
    """The cloud link's criteria: it flapped, worked, and took no poison."""
    return {
        "cloud_link_flapped": stats["drops"] >= 2 and stats["connects"] >= 3,
        "valid_commands_received": stats["valid_commands"].get("received", 0) > 0
        and stats["valid_commands"].get("rejected", 0) == 0,
        "no_poisoned_command_accepted": stats["poisoned_commands"].get("received", 0) == 0
        and not stats["bad_targets_stored"],
    }


__all__ = ["POISON", "CloudStats", "FlappingLink", "cloud_companion", "cloud_verdict"]
