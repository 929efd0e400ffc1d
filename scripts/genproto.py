"""Regenerate the Python stubs (and mypy type stubs) from proto/seatwise/v1/*.proto.

Run with `make proto`. The output sits next to the .proto files, in the
`seatwise.v1` package the wheel ships; CI regenerates and fails on a diff.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from google.rpc import status_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "seatwise" / "v1").glob("*.proto"))
    for stale in (PROTO_ROOT / "seatwise" / "v1").glob("*_pb2*.py*"):
        stale.unlink()
    well_known = str(resources.files("grpc_tools") / "_proto")
    # google/rpc/status.proto ships with googleapis-common-protos, beside its status_pb2
    googleapis = str(Path(status_pb2.__file__).resolve().parents[2])
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"-I{googleapis}",
        f"--python_out={PROTO_ROOT}",
        f"--grpc_python_out={PROTO_ROOT}",
        f"--mypy_out={PROTO_ROOT}",
        f"--mypy_grpc_out={PROTO_ROOT}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
