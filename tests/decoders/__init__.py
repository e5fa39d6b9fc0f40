"""Decoders of the guide's readers, for harness.testing: naive ones and correct ones.

Each module exposes ``factory`` (what ``check_decoder`` and ``harness fuzz decoder
MODULE:FACTORY`` take). :mod:`.strict` is a correct decoder written from docs/PROTOCOL.md
alone (no harness code); every naive one is the mistake a reader of the guide makes, in
one place, so that the check that catches it is known:

=====================  ==============================================  ==========================
module                 the mistake                                     caught by (check, rule)
=====================  ==============================================  ==========================
``one_recv``           one feed() is one whole message                 split, F2
``duplicate_keys``     json.loads: the last of a repeated key wins     violation:duplicate-key, H4
``peer_codec``         content.decode(header["content-encoding"])      violation:unsupported-encoding, C2
``accepts_nan``        json.loads: NaN and Infinity are numbers        violation:non-finite-number, H3
``no_limit``           waits for the whole declared content            content-limit, L1
``drops_second``       one message per feed(), the rest thrown away    split, F3
``never_incomplete``   close() never complains                         violation:incomplete-message, F4
``no_value_checks``    nothing about the header's values is checked    violation:invalid-header-value, H7
=====================  ==============================================  ==========================

``harness_decoder`` is harness's own :class:`harness.Decoder` (it fits the adapter as it is).
"""

#: module -> (the check of harness.testing.check_decoder that catches it, the rule it names)
NAIVE: dict[str, tuple[str, str]] = {
    "one_recv": ("split", "F2"),
    "duplicate_keys": ("violation:duplicate-key", "H4"),
    "peer_codec": ("violation:unsupported-encoding", "C2"),
    "accepts_nan": ("violation:non-finite-number", "H3"),
    "no_limit": ("content-limit", "L1"),
    "drops_second": ("split", "F3"),
    "never_incomplete": ("violation:incomplete-message", "F4"),
    "no_value_checks": ("violation:invalid-header-value", "H7"),
}

#: Correct decoders: check_decoder finds nothing.
CORRECT = ["strict", "harness_decoder"]
