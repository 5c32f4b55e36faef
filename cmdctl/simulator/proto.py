"""The generated protobuf messages of the native API and their wire type ids."""

from __future__ import annotations

from typing import Any

from aioesphomeapi import api_pb2 as _api_pb2
from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO

#: `api_pb2`, typed loosely: the generated module ships no stubs for its message classes
pb: Any = _api_pb2

#: message class → wire type id (the reverse of aioesphomeapi's table)
TYPE_OF: dict[Any, int] = {cls: msg_id for msg_id, cls in MESSAGE_TYPE_TO_PROTO.items()}
