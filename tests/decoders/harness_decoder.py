"""harness's own decoder: ``Decoder.feed`` returns Messages (``.header``, ``.content``), ``close()``
raises :class:`harness.ProtocolError`, whose ``code`` is the spec's."""

from __future__ import annotations

from harness import Decoder, ProtocolError


def error_code(exc: BaseException) -> str | None:
    return exc.code if isinstance(exc, ProtocolError) else None


def factory() -> Decoder:
    return Decoder()


factory.error_code = error_code  # type: ignore[attr-defined]
