"""The Dramatiq broker named by CITYMAIL_BROKER_URL, and the actors declared on it.

Actors are declared by ``declare_actors`` on a broker passed in (not a module-level global),
so that every process wires its own: the gateway to send, workers to run.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from mailer.settings import Settings

__all__ = ["make_broker"]


def make_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if url == "embedded":
        broker: dramatiq.Broker = StubBroker()
    elif url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=settings.queue_namespace)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    return broker
