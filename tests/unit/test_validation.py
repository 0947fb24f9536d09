"""Module-level data of chalicelib/validation.py that is written out rather than derived at import."""
import re
import sys
import unicodedata

from chalicelib import validation


def test_the_control_characters_are_exactly_unicodes_cc_zl_and_zp():
    derived = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Cc", "Zl", "Zp")}
    written = {chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(f"[{validation.CONTROL_CHARACTERS}]", chr(c))}
    assert written == derived
    assert len(derived) == 67  # 65 controls, U+2028 and U+2029


def test_each_run_of_control_characters_becomes_one_space():
    name = validation.display_name({"name": "\tAcme\r\n\x00Inc\u2028\x85"}, "name", 100)
    assert name == "Acme Inc"
