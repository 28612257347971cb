"""An agent instrumented with OpenLLMetry (traceloop-sdk), run in an environment of its own (traceloop
pins instrumentations of its own): `python tests/traceloop_agent.py OTLP_BASE MODEL_URL TICKET_ID TICKET`.
It answers the ticket with the real openai client against the fake model server and exports its
spans with traceloop's own exporter to OTLP_BASE/v1/traces."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
from traceloop.sdk import Traceloop  # noqa: E402
from traceloop.sdk.decorators import agent  # noqa: E402

from tests.otlp_helpers import run_agent  # noqa: E402

base, model_url, ticket_id, ticket = sys.argv[1:5]
Traceloop.init(app_name="support-agent", api_endpoint=base, disable_batch=True, telemetry_enabled=False,
               resource_attributes={"service.name": "support-agent"})


@agent(name="support-agent")
def answer(ticket: str) -> str:
    Traceloop.set_association_properties({"ticket_id": ticket_id})
    return run_agent(openai.OpenAI(base_url=model_url, api_key="test"), ticket)


print(answer(ticket))
