"""The in-process contract (``kestrel.scheduler.contract``, ``kestrel.common.events``) mirrors proto/."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from kestrel.common.events import Attempt, RequestEvent
from kestrel.scheduler import contract
from kestrel.v1 import events_pb2, scheduler_pb2

ROOT = Path(__file__).resolve().parents[2]


def proto_fields(message: type) -> set[str]:
    return {field.name for field in message.DESCRIPTOR.fields}


def test_outcomes_and_exhausted_reasons_match_the_proto_enums() -> None:
    for outcome in contract.Outcome:
        assert scheduler_pb2.Outcome.Value(f"OUTCOME_{outcome.name}") == outcome.value
    for reason in contract.ExhaustedReason:
        assert scheduler_pb2.ExhaustedReason.Value(f"EXHAUSTED_REASON_{reason.name}") == reason.value


def test_scheduler_messages_carry_the_same_fields() -> None:
    lease_request = {f.name for f in dataclasses.fields(contract.LeaseRequest)}
    assert lease_request - {"max_wait_s", "exclude_accounts"} <= proto_fields(scheduler_pb2.AcquireRequest)
    assert {"max_wait_ms", "exclude_accounts"} <= proto_fields(scheduler_pb2.AcquireRequest)
    assert {f.name for f in dataclasses.fields(contract.Usage)} == proto_fields(scheduler_pb2.Usage)
    completion = {f.name for f in dataclasses.fields(contract.Completion)} - {"retry_after_s"}
    assert completion | {"retry_after_ms"} <= proto_fields(scheduler_pb2.CompleteRequest)


def test_request_event_fields_match_the_proto() -> None:
    assert {f.name for f in dataclasses.fields(RequestEvent)} == proto_fields(events_pb2.RequestEvent)
    assert {f.name for f in dataclasses.fields(Attempt)} == proto_fields(events_pb2.Attempt)


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        check=True,
    )
    committed = ROOT / "services" / "common"
    for generated in tmp_path.rglob("*.py*"):
        relative = generated.relative_to(tmp_path)
        assert (committed / relative).read_text() == generated.read_text(), f"run `make proto`: {relative} is stale"
