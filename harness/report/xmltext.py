"""Text fit for XML 1.0 (and so for HTML and Markdown reports): ANSI colour codes and forbidden characters removed.

XML 1.0 allows only #x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF
(https://www.w3.org/TR/xml/#charsets); ElementTree escapes <, & and quotes but writes any other
character as is, so an error message carrying a terminal colour code (ESC [ 31 m) made junit.xml
unparseable. Colour codes are removed whole, so "\\x1b[31mred\\x1b[0m" reads "red", not "[31mred[0m".
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
"""CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes."""
FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` without ANSI escape sequences and without the characters XML 1.0 forbids."""
    return FORBIDDEN.sub("", ANSI.sub("", str(text)))


def sanitize_tree(element: ET.Element) -> ET.Element:
    """Every text, tail and attribute (names and values) of `element` and below made xml_safe, in place."""
    for node in element.iter():
        if node.text is not None:
            node.text = xml_safe(node.text)
        if node.tail is not None:
            node.tail = xml_safe(node.tail)
        if node.attrib:
            node.attrib = {xml_safe(k): xml_safe(v) for k, v in node.attrib.items()}
    return element
