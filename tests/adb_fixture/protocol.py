"""The ADB wire format (device side): 24-byte message headers, and the shell-v2 and sync sub-protocols.

Constants and byte layouts only, so the server code reads like the protocol description in AOSP's
`packages/modules/adb/protocol.txt`, `SYNC.TXT` and `shell_protocol.h`.
"""

from __future__ import annotations

import dataclasses
import struct

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
A_STLS = 0x534C5453

# 0x01000001 lets both sides skip the payload checksum; we still send a correct one.
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024

HEADER = struct.Struct("<6I")

# shell protocol v2 packet ids (shell_protocol.h)
SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_WINDOW_SIZE = 5

SYNC_DATA_MAX = 64 * 1024

COMMAND_NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_OPEN: "OPEN", A_OKAY: "OKAY", A_CLSE: "CLSE",
                 A_WRTE: "WRTE", A_AUTH: "AUTH", A_STLS: "STLS"}


@dataclasses.dataclass
class Message:
    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, hex(self.command))


def pack_message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    checksum = sum(data) & 0xFFFFFFFF
    return HEADER.pack(command, arg0, arg1, len(data), checksum, command ^ 0xFFFFFFFF) + data


def unpack_header(header: bytes) -> tuple[int, int, int, int]:
    """Return (command, arg0, arg1, data_length); raise ValueError on a corrupt header."""
    command, arg0, arg1, length, _checksum, magic = HEADER.unpack(header)
    if magic != command ^ 0xFFFFFFFF:
        raise ValueError(f"bad ADB header magic for command {command:#x}")
    return command, arg0, arg1, length


def shell_packet(packet_id: int, data: bytes) -> bytes:
    return struct.pack("<BI", packet_id, len(data)) + data
