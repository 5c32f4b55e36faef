"""Device-side frames of the native API: plaintext, and Noise_NNpsk0_25519_ChaChaPoly_SHA256.

Both splitters take whatever one `data_received` delivered (many frames, or part of one) and keep
the remainder for the next call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from noise.connection import NoiseConnection

NOISE_PROTOCOL = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE_PREFIX = b"NoiseAPIInit"
BAD_INDICATOR = "Bad indicator byte"
BAD_HANDSHAKE_LEN = "Bad handshake packet len"
EMPTY_HANDSHAKE = "Empty handshake message"
BAD_HANDSHAKE_ERROR_BYTE = "Bad handshake error byte"
HANDSHAKE_MAC_FAILURE = "Handshake MAC failure"
HANDSHAKE_ERROR = "Handshake error"

MAX_MESSAGE_SIZE = 32768  # firmware MAX_MESSAGE_SIZE (ESP32); larger frames close the connection
MAX_HANDSHAKE_SIZE = 128  # firmware MAX_HANDSHAKE_SIZE
_MAX_VARINT_SHIFT = 28  # the client and firmware accept varints of at most 4 bytes

_NONCE = struct.Struct("<LQ").pack
_U16 = struct.Struct(">H")
_NOISE_DATA_HEADER = struct.Struct(">HH").pack

#: What a plaintext device writes to a Noise client: raw bytes, deliberately not a valid frame.
PLAINTEXT_BAD_INDICATOR = b"\x00" + BAD_INDICATOR.encode()

Message = tuple[int, bytes]


class FrameError(Exception):
    """The peer sent bytes the device cannot accept; `reason` is the firmware's reason string."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_varint(value: int) -> bytes:
    """Protobuf varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class PlainFrames:
    """Plaintext framing: `00 | varint(len) | varint(type) | payload`."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    @property
    def pending(self) -> bool:
        """True while part of a message has been read but not yet split off."""
        return bool(self._rest)

    def split(self, data: bytes) -> list[Message]:
        """Every complete message in the stream so far; raises FrameError on a bad frame."""
        buf = self._rest + data if self._rest else bytes(data)
        end = len(buf)
        pos = 0
        out: list[Message] = []
        while end - pos >= 3:
            if buf[pos] != 0:
                raise FrameError(BAD_INDICATOR)
            p = pos + 1
            length = shift = 0
            while True:
                if p >= end:
                    self._rest = buf[pos:]
                    return out
                byte = buf[p]
                p += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift >= _MAX_VARINT_SHIFT:
                    raise FrameError(BAD_HANDSHAKE_LEN)
            msg_type = shift = 0
            while True:
                if p >= end:
                    self._rest = buf[pos:]
                    return out
                byte = buf[p]
                p += 1
                msg_type |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift >= _MAX_VARINT_SHIFT:
                    raise FrameError(BAD_HANDSHAKE_LEN)
            if length > MAX_MESSAGE_SIZE:
                raise FrameError(BAD_HANDSHAKE_LEN)
            if p + length > end:
                break
            out.append((msg_type, buf[p : p + length]))
            pos = p + length
        self._rest = buf[pos:]
        return out

    @staticmethod
    def encode(msg_type: int, payload: bytes) -> bytes:
        """One plaintext frame."""
        return b"\x00" + encode_varint(len(payload)) + encode_varint(msg_type) + payload


def _not_ready(nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
    raise FrameError(HANDSHAKE_ERROR)


class NoiseFrames:
    """Noise framing and the responder side of the handshake, one instance per connection."""

    __slots__ = ("_decrypt", "_encrypt", "_hello", "_proto", "_psk", "_rest", "_rx", "_tx")

    def __init__(self, psk: bytes, node_name: str, mac: str) -> None:
        self._rest = b""
        self._proto: NoiseConnection | None = None
        self._psk = psk
        # server hello: chosen protocol 0x01, node name, lowercase MAC without separators
        mac_hex = mac.replace(":", "").lower()
        self._hello = b"\x01" + node_name.encode() + b"\x00" + mac_hex.encode() + b"\x00"
        self._rx = 0
        self._tx = 0
        self._decrypt: Callable[[bytes, bytes, bytes | None], bytes] = _not_ready
        self._encrypt: Callable[[bytes, bytes, bytes | None], bytes] = _not_ready

    def split(self, data: bytes) -> list[bytes]:
        """Every complete frame body so far; raises FrameError on a bad indicator byte."""
        buf = self._rest + data if self._rest else bytes(data)
        end = len(buf)
        pos = 0
        out: list[bytes] = []
        while end - pos >= 3:
            if buf[pos] != 1:
                raise FrameError(BAD_INDICATOR)
            length = (buf[pos + 1] << 8) | buf[pos + 2]
            if pos + 3 + length > end:
                break
            out.append(buf[pos + 3 : pos + 3 + length])
            pos += 3 + length
        self._rest = buf[pos:]
        return out

    def server_hello(self, client_hello: bytes) -> bytes:
        """Answer the client hello frame; the prologue covers what the client actually sent."""
        proto = NoiseConnection.from_name(NOISE_PROTOCOL)
        proto.set_as_responder()
        proto.set_psks(self._psk)
        proto.set_prologue(PROLOGUE_PREFIX + _U16.pack(len(client_hello)) + client_hello)
        proto.start_handshake()
        self._proto = proto
        return self._frame(self._hello)

    def handshake(self, body: bytes) -> bytes:
        """Read handshake message 1, return the frame carrying message 2; FrameError on failure."""
        proto = self._proto
        if proto is None:
            raise FrameError(HANDSHAKE_ERROR)
        if len(body) > MAX_HANDSHAKE_SIZE:
            raise FrameError(BAD_HANDSHAKE_LEN)
        if not body:
            raise FrameError(EMPTY_HANDSHAKE)
        if body[0] != 0:
            raise FrameError(BAD_HANDSHAKE_ERROR_BYTE)
        try:
            proto.read_message(body[1:])
        except InvalidTag as err:
            raise FrameError(HANDSHAKE_MAC_FAILURE) from err
        except Exception as err:  # the noise package raises bare exceptions on malformed input
            raise FrameError(HANDSHAKE_ERROR) from err
        reply = bytes(proto.write_message())
        state = proto.noise_protocol
        self._decrypt = ChaCha20Poly1305(state.cipher_state_decrypt.k).decrypt
        self._encrypt = ChaCha20Poly1305(state.cipher_state_encrypt.k).encrypt
        self._proto = None
        return self._frame(b"\x00" + reply)

    def decrypt(self, body: bytes) -> Message:
        """One data frame body → (type, payload); FrameError if it does not authenticate."""
        try:
            plain = self._decrypt(_NONCE(0, self._rx), body, None)
        except InvalidTag as err:
            raise FrameError(HANDSHAKE_MAC_FAILURE) from err
        self._rx += 1
        if len(plain) < 4:
            raise FrameError(BAD_HANDSHAKE_LEN)
        return (plain[0] << 8) | plain[1], plain[4:]

    def encode(self, msg_type: int, payload: bytes) -> bytes:
        """One encrypted data frame."""
        body = self._encrypt(
            _NONCE(0, self._tx), _NOISE_DATA_HEADER(msg_type, len(payload)) + payload, None
        )
        self._tx += 1
        return self._frame(body)

    @classmethod
    def reject(cls, reason: str) -> bytes:
        """The explicit reject frame a Noise device sends before closing."""
        return cls._frame(b"\x01" + reason.encode())

    @staticmethod
    def _frame(body: bytes) -> bytes:
        return b"\x01" + _U16.pack(len(body)) + body
